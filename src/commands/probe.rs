//! `rtrain ckpts`, `rtrain status` and `rtrain check`: each is one composed probe script over one
//! exec channel per host, parsed locally (remote::probe), viewed (report) as a table, a panel or JSON.

use super::{CommandError, Ctx};
use crate::cli::{JsonHostArgs, StatusArgs};
use crate::config::Target;
use crate::remote::probe::{self, CkptsProbe, StatusInputs, StatusProbe};
use crate::remote::run::{sh_command, RunState};
use crate::report::check::{render_check, CheckJson};
use crate::report::ckpts::{render_ckpts, CkptsJson};
use crate::report::status::{self, Segment, StatusJson};
use crate::ssh::capture::human_limit;
use crate::ssh::{Session, SshError};
use std::time::Duration;

const PROBE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often `status --watch` refreshes (its help and the README say so).
pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// Run a probe script over one exec and return its stdout, at most `max` bytes of it (what the script
/// can print by construction, see [`probe::STATUS_OUTPUT_MAX`]); a remote failure is an error with the
/// remote's own words.
pub async fn run_probe(session: &Session, script: &str, max: usize) -> anyhow::Result<Vec<u8>> {
    let out = match session
        .exec_limited(&sh_command(script), None, Some(PROBE_TIMEOUT), max)
        .await
    {
        Err(SshError::OutputTooLarge { host, limit }) => anyhow::bail!(
            "refusing the probe's output from {host}: more than {} (something on the box prints on its own: \
             a ForceCommand in its sshd_config, or the login shell's rc file?)",
            human_limit(limit)
        ),
        r => r?,
    };
    if out.stdout.is_empty() && out.exit.as_code() != 0 {
        let err = String::from_utf8_lossy(&out.stderr);
        anyhow::bail!(
            "the probe failed on {} (exit {}): {}",
            session.host(),
            out.exit.as_code(),
            err.lines().last().unwrap_or("").trim()
        );
    }
    Ok(out.stdout)
}

pub fn status_inputs(target: &Target) -> StatusInputs {
    let s = &target.settings;
    StatusInputs {
        workdir: s.workdir.clone(),
        session: s.session.clone(),
        checkpoint_dir: s.checkpoint_dir.clone(),
        log_dir: s.log_dir.clone(),
        train_config: s.train_config.clone(),
        metrics_dir: s.metrics_dir.clone(),
        backend: s.backend.as_str().to_string(),
    }
}

pub async fn probe_ckpts(session: &Session, target: &Target) -> anyhow::Result<CkptsProbe> {
    let s = &target.settings;
    let out = run_probe(
        session,
        &probe::ckpts_script(&s.workdir, &s.checkpoint_dir),
        probe::CKPTS_OUTPUT_MAX,
    )
    .await?;
    probe::parse_ckpts(&out)
        .map_err(|e| anyhow::anyhow!("cannot read the checkpoint listing from {}: {e}", target.name))
}

pub async fn probe_status(session: &Session, target: &Target) -> anyhow::Result<StatusProbe> {
    let out = run_probe(
        session,
        &probe::status_script(&status_inputs(target)),
        probe::STATUS_OUTPUT_MAX,
    )
    .await?;
    probe::parse_status(&out).map_err(|e| anyhow::anyhow!("cannot read the status of {}: {e}", target.name))
}

/// The status probe with every checkpoint listed, for `check` (which counts them).
pub async fn probe_check(session: &Session, target: &Target) -> anyhow::Result<StatusProbe> {
    let out = run_probe(
        session,
        &probe::check_script(&status_inputs(target)),
        probe::CKPTS_OUTPUT_MAX,
    )
    .await?;
    probe::parse_status(&out).map_err(|e| anyhow::anyhow!("cannot read the status of {}: {e}", target.name))
}

// ---------------------------------------------------------------------------------------------
// ckpts

pub async fn ckpts(ctx: &Ctx, args: JsonHostArgs) -> anyhow::Result<u8> {
    let target = ctx.target(&args.host)?;
    let session = ctx.connect(&target).await?;
    let p = tokio::select! {
        r = probe_ckpts(&session, &target) => r?,
        _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
    };
    session.close().await;
    if !p.workdir_exists {
        eprintln!(
            "rtrain: note: the workdir {} does not exist on {}",
            target.settings.workdir, target.name
        );
    }
    let json = CkptsJson::build(&target.name, &p);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", render_ckpts(&json, &p));
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// check

pub async fn check(ctx: &Ctx, args: JsonHostArgs) -> anyhow::Result<u8> {
    let target = ctx.target(&args.host)?;
    let session = ctx.connect(&target).await?;
    let p = tokio::select! {
        r = probe_check(&session, &target) => r?,
        _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
    };
    session.close().await;
    let j = CheckJson::build(&target.name, &p);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        print!("{}", render_check(&j));
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// status

/// One host's answer: its JSON, the probe (for the human panel), or why it could not be asked.
struct HostStatus {
    json: StatusJson,
    probe: Option<StatusProbe>,
    error: Option<anyhow::Error>,
}

async fn status_of(ctx: &Ctx, target: &Target, session: Option<&Session>, history: bool) -> HostStatus {
    let fail = |e: anyhow::Error| HostStatus {
        json: StatusJson::unreachable(&target.name, &target.settings.session),
        probe: None,
        error: Some(e),
    };
    let owned;
    let session = match session {
        Some(s) => s,
        None => match ctx.connect(target).await {
            Ok(s) => {
                owned = s;
                &owned
            }
            Err(e) => return fail(e),
        },
    };
    match probe_status(session, target).await {
        Ok(p) => {
            let mut json = StatusJson::build(&target.name, &target.settings.session, &p);
            json.apply_stall_after(target.settings.stall_after);
            if history {
                json.progress.history = Some(status::history(&p));
            }
            HostStatus {
                json,
                probe: Some(p),
                error: None,
            }
        }
        Err(e) => {
            let mut st = fail(e);
            st.json.reachable = !session.is_closed();
            st
        }
    }
}

fn json_with_error(st: &HostStatus) -> serde_json::Value {
    let mut v = serde_json::to_value(&st.json).unwrap_or(serde_json::Value::Null);
    if let (Some(e), Some(obj)) = (&st.error, v.as_object_mut()) {
        obj.insert("error".into(), serde_json::Value::String(e.to_string()));
    }
    v
}

/// The hosts `status` asks: those named, or with `--all` every host of rtrain's config.
fn host_names(ctx: &Ctx, args: &StatusArgs) -> Result<Vec<String>, CommandError> {
    let names: Vec<String> = if args.all {
        ctx.config.hosts.keys().cloned().collect()
    } else {
        args.hosts.clone()
    };
    if names.is_empty() {
        let why = if args.all {
            format!(
                "no hosts in {}: add some under `hosts:`",
                ctx.paths.rtrain_config.display()
            )
        } else {
            "name a host (or use --all)".to_string()
        };
        return Err(CommandError::Usage(why));
    }
    Ok(names)
}

pub async fn status(ctx: &Ctx, args: StatusArgs) -> anyhow::Result<u8> {
    let names = host_names(ctx, &args)?;
    let several = names.len() > 1 || args.all;
    let (targets, bad) = resolve_all(ctx, &names, several, args.json)?;
    let unresolved = || {
        bad.iter().map(|(name, why)| HostStatus {
            json: StatusJson::unreachable(name, &ctx.config.settings_for(name).session),
            probe: None,
            error: Some(CommandError::Usage(why.clone()).into()),
        })
    };

    // --watch keeps one connection per host open and re-probes over it.
    let mut sessions: Vec<Option<Session>> = Vec::new();
    if args.watch {
        let conns = tokio::select! {
            c = futures::future::join_all(targets.iter().map(|t| ctx.connect(t))) => c,
            _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
        };
        sessions = conns.into_iter().map(|r| r.ok()).collect();
    }
    let mut first = true;
    // --notify: what each host's run was at the previous refresh (id, state, stalled).
    let mut seen: Vec<Option<(String, RunState, bool)>> = vec![None; targets.len()];
    loop {
        let asked = futures::future::join_all(
            targets
                .iter()
                .zip(sessions.iter().map(Option::as_ref).chain(std::iter::repeat(None)))
                .map(|(t, s)| status_of(ctx, t, s, args.history)),
        );
        // Ctrl-C is an interruption (exit 130), also between refreshes of --watch.
        let results: Vec<HostStatus> = tokio::select! {
            r = asked => r,
            _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
        };
        if args.notify {
            for ((t, st), prev) in targets.iter().zip(&results).zip(seen.iter_mut()) {
                if st.probe.is_some() {
                    notify_change(ctx, t, &st.json, prev);
                }
            }
        }
        let unresolved: Vec<HostStatus> = unresolved().collect();
        if args.json {
            print_round(
                ctx,
                &args,
                first,
                &json_document(&names, &bad, &results, &unresolved, several, args.watch)?,
                &[],
            );
        } else {
            let panel: Vec<Segment> = results.iter().flat_map(|st| render_status(st, several)).collect();
            print_round(ctx, &args, first, "", &panel);
        }
        first = false;
        if !args.watch {
            if !args.json {
                for r in &results {
                    if let Some(e) = &r.error {
                        eprintln!("rtrain: {}: {e}", r.json.host);
                    }
                }
            }
            return Ok(worst_exit_code(results.iter().chain(&unresolved)));
        }
        tokio::select! {
            _ = tokio::time::sleep(WATCH_INTERVAL) => {},
            _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
        }
        reconnect_dropped(ctx, &targets, &mut sessions).await?;
    }
}

/// One refresh on stdout: on a terminal `--watch` redraws in place, elsewhere refreshes are
/// separated by an empty line (JSON documents by nothing: one per line).
fn print_round(ctx: &Ctx, args: &StatusArgs, first: bool, out: &str, panel: &[Segment]) {
    use std::io::Write;
    if args.watch && ctx.env.fancy && !args.json {
        print!("\x1b[H\x1b[2J");
    } else if !first && !args.json {
        println!();
    }
    print!("{out}");
    print_segments(panel, ctx.env.fancy);
    let _ = std::io::stdout().flush();
}

/// (name, why) of the hosts named that did not resolve.
type Unresolved = Vec<(String, String)>;

/// The named hosts resolved. A name that cannot be resolved (e.g. unknown to every config and to
/// DNS) is a usage error: alone, it is the command's error; among several hosts, it is said once
/// on stderr (not with `--json`), that host gets no row (and a JSON entry with its `error`), and the
/// others are still asked. Returns the targets and the (name, why) of those that did not resolve.
fn resolve_all(ctx: &Ctx, names: &[String], several: bool, json: bool) -> anyhow::Result<(Vec<Target>, Unresolved)> {
    let mut targets = Vec::new();
    let mut bad: Vec<(String, String)> = Vec::new();
    for n in names {
        match ctx.target(n) {
            Ok(t) => targets.push(t),
            Err(e) if several => {
                if !json {
                    eprintln!("rtrain: {e}");
                }
                bad.push((n.clone(), e.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((targets, bad))
}

/// `status --json`: one document (an array with several hosts) in the order the hosts were named;
/// with `--watch`, on one line per refresh, for `jq` and friends.
fn json_document(
    names: &[String],
    bad: &[(String, String)],
    results: &[HostStatus],
    unresolved: &[HostStatus],
    several: bool,
    watch: bool,
) -> anyhow::Result<String> {
    let mut all: Vec<&HostStatus> = Vec::new();
    let (mut ok, mut no) = (results.iter(), unresolved.iter());
    for n in names {
        let next = if bad.iter().any(|(b, _)| b == n) {
            no.next()
        } else {
            ok.next()
        };
        all.extend(next);
    }
    let vals: Vec<serde_json::Value> = all.into_iter().map(json_with_error).collect();
    let v = if several {
        serde_json::Value::Array(vals)
    } else {
        vals.into_iter().next().unwrap()
    };
    let mut out = if watch {
        serde_json::to_string(&v)?
    } else {
        serde_json::to_string_pretty(&v)?
    };
    out.push('\n');
    Ok(out)
}

/// The exit code of a `status` that asked several hosts: the worst of their errors.
fn worst_exit_code<'a>(statuses: impl Iterator<Item = &'a HostStatus>) -> u8 {
    statuses
        .filter_map(|r| r.error.as_ref())
        .map(super::exit_code_for)
        .max()
        .unwrap_or(0)
}

/// `status --watch`: reconnect any host whose connection dropped, for the next round (a host that
/// cannot be reached now is tried again at the next one).
async fn reconnect_dropped(ctx: &Ctx, targets: &[Target], sessions: &mut [Option<Session>]) -> anyhow::Result<()> {
    for (t, s) in targets.iter().zip(sessions.iter_mut()) {
        if s.as_ref().is_none_or(|s| s.is_closed()) {
            *s = match ctx.connect(t).await {
                Ok(s) => Some(s),
                Err(e) if super::exit_code_for(&e) == 130 => return Err(e),
                Err(_) => None,
            };
        }
    }
    Ok(())
}

/// `status --watch --notify`: an alert when a run seen running is seen ended, or starts stalling.
/// Only changes seen by this watch count, so a run that had ended before it started says nothing.
fn notify_change(ctx: &Ctx, t: &Target, j: &StatusJson, prev: &mut Option<(String, RunState, bool)>) {
    use crate::config::NotifyEvent;
    let Some(r) = &j.run else { return };
    if let Some((id, state, stalled)) = prev.as_ref() {
        if *id == r.id && *state == RunState::Running {
            let ev = match r.state {
                RunState::Finished => Some(NotifyEvent::Finished),
                RunState::Failed => Some(NotifyEvent::Failed),
                RunState::Stopped => Some(NotifyEvent::Stopped),
                RunState::Lost => Some(NotifyEvent::Lost),
                RunState::Running => (r.stalled && !stalled).then_some(NotifyEvent::Stalled),
                RunState::Pending => None,
            };
            if let Some(ev) = ev {
                super::wait::notify(ctx, t, j, ev);
            }
        }
    }
    *prev = Some((r.id.clone(), r.state, r.stalled));
}

fn render_status(st: &HostStatus, several: bool) -> Vec<Segment> {
    status::render_status(&st.json, st.probe.as_ref(), several)
}

/// Print the panel: on a terminal the progress is an indicatif bar mirroring the remote step/total
/// (drawn once and left in place), elsewhere a plain-text bar.
fn print_segments(segments: &[Segment], fancy: bool) {
    use std::io::Write;
    let mut out = std::io::stdout();
    for seg in segments {
        match seg {
            Segment::Text(t) => {
                let _ = out.write_all(t.as_bytes());
            }
            Segment::Bar { step, total, msg } if fancy => {
                let _ = out.flush();
                let style =
                    indicatif::ProgressStyle::with_template("  [{bar:40.cyan/blue}] {pos}/{len} {percent:>3}% {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                        .progress_chars("█▉▊▋▌▍▎▏ ");
                let pb =
                    indicatif::ProgressBar::with_draw_target(Some(*total), indicatif::ProgressDrawTarget::stdout());
                pb.set_style(style);
                pb.set_message(msg.clone());
                pb.set_position((*step).min(*total));
                pb.abandon();
            }
            Segment::Bar { step, total, msg } => {
                let pct = if *total > 0 {
                    (*step as f64 / *total as f64 * 100.0).min(100.0)
                } else {
                    0.0
                };
                let filled = ((pct / 100.0) * 20.0).round() as usize;
                let _ = writeln!(
                    out,
                    "  [{}{}] {step}/{total} {pct:>3.0}% {msg}",
                    "#".repeat(filled),
                    "-".repeat(20 - filled.min(20))
                );
            }
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::probe::{CkptsProbe, DirState, RunRecord};
    use crate::train::gpu::GpuReport;
    use crate::train::human::fmt_rate;
    use crate::train::progress::pace_tests::{resume_log, swinging_log, up_to};
    use crate::train::progress::summarize_log;

    /// A status probe of a running run whose log tail is `log`.
    fn probe(log: &str) -> StatusProbe {
        StatusProbe {
            ckpts: CkptsProbe {
                now: Some(100_000),
                workdir_exists: true,
                workdir_abs: Some(b"/w".to_vec()),
                dir_state: DirState::Present,
                dir_arg: b"outputs".to_vec(),
                dir_abs: Some(b"/w/outputs".to_vec()),
                entries: Vec::new(),
                checkpoints: Vec::new(),
                disk: None,
                disk_of: None,
            },
            tmux_installed: true,
            session_exists: Some(true),
            session_backend: Some("tmux".into()),
            available_backends: vec!["tmux".into()],
            run: Some(RunRecord {
                slurm: None,
                id: "r1".into(),
                command: Some("make train".into()),
                started_at: Some("2026-11-29T01:53:00Z".into()),
                pid: Some(42),
                log: Some("/w/logs/a.log".into()),
                exit_present: false,
                exit_code: None,
                stopped: false,
                alive: Some(true),
                is_wrapper: Some(true),
                group_alive: None,
                state: RunState::Running,
                backend: "tmux".into(),
                format: Some(2),
            }),
            log: None,
            log_summary: summarize_log(log.as_bytes(), false),
            trainer_state: None,
            gpus: GpuReport::default(),
            train_config: None,
            metrics: None,
            logind: None,
        }
    }

    fn status_text(p: &StatusProbe) -> String {
        let st = HostStatus {
            json: StatusJson::build("box", "training", p),
            probe: Some(p.clone()),
            error: None,
        };
        render_status(&st, false)
            .into_iter()
            .map(|s| match s {
                Segment::Text(t) => t,
                Segment::Bar { msg, .. } => msg + "\n",
            })
            .collect()
    }

    /// `status` and `check` showed 0.31 and 0.17 s/step on the same run: they must read one pace
    /// from the same facts, in the same words.
    /// Regression: the stand-in trainer (like a real one with buffered stdout) prints several loss
    /// lines at once after one bar redraw; `top`'s chart went down and up again because they all
    /// got that one step.
    #[test]
    fn regression_history_spreads_buffered_loss_lines_back_one_logging_interval_each() {
        let log = " 30%|###  | 30/100 [00:03<00:07, 10.0it/s]\n 50%|#####| 50/100 [00:05<00:05, 10.0it/s]\n\
                   {'loss': 2.2}\n{'loss': 2.1}\n{'loss': 2.0}\n";
        let mut p = probe(log);
        p.run.as_mut().unwrap().started_at = None;
        let ts = crate::train::trainer_state::parse_trainer_state(
            br#"{"logging_steps": 10, "log_history": [{"loss": 3.0, "step": 10}, {"loss": 2.5, "step": 20}]}"#,
        )
        .unwrap();
        p.trainer_state = Some(("checkpoint-20".into(), ts));
        let h = status::history(&p);
        let got: Vec<(Option<u64>, Option<f64>)> = h.iter().map(|h| (h.step, h.loss)).collect();
        assert_eq!(
            got,
            [
                (Some(10), Some(3.0)),
                (Some(20), Some(2.5)),
                (Some(30), Some(2.2)),
                (Some(40), Some(2.1)),
                (Some(50), Some(2.0))
            ]
        );
    }

    #[test]
    fn status_and_check_agree_on_the_pace() {
        let resume = resume_log();
        let logs = [
            swinging_log(199),
            swinging_log(200),
            resume.clone(),
            up_to(&resume, "1501/4500"),
            up_to(&resume, "1520/4500"),
        ];
        for log in &logs {
            let p = probe(log);
            let status = StatusJson::build("box", "training", &p).progress.seconds_per_step;
            let check = CheckJson::build("box", &p).report;
            assert_eq!(status, check.inputs.seconds_per_step);
            let (s, c) = (status_text(&p), crate::report::check::render_report("box", &check));
            match status {
                Some(sps) => {
                    let words = fmt_rate(sps);
                    assert!(s.contains(&words) && c.contains(&words), "{words}\n{s}\n{c}");
                }
                None => {
                    assert!(!s.contains("it/s") && !s.contains("s/it"), "{s}");
                    assert!(c.contains("pace:              unknown"), "{c}");
                }
            }
        }
    }

    /// Regression: the first `status` after a resume showed `3842110.53 steps/s  ETA 0 s`.
    #[test]
    fn regression_status_right_after_a_resume_shows_no_rate_and_no_eta() {
        let resume = resume_log();
        for needle in ["1501/4500", "1502/4500", "1503/4500"] {
            let text = status_text(&probe(&up_to(&resume, needle)));
            assert!(!text.contains("it/s") && !text.contains("ETA"), "{needle}: {text}");
        }
        let later = status_text(&probe(&resume));
        assert!(later.contains("4.00 s/it"), "{later}");
    }

    /// Every key of a JSON document, nested ones included (array elements are walked).
    fn keys(v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    out.insert(k.clone());
                    keys(v, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }

    /// The README's section of one command: from its `### \`rtrain NAME` heading to the next.
    fn readme_section(name: &str) -> String {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let start = readme
            .find(&format!("### `rtrain {name}"))
            .unwrap_or_else(|| panic!("no README section for {name}"));
        let rest = &readme[start + 4..];
        rest[..rest.find("\n### ").unwrap_or(rest.len())].to_string()
    }

    fn undocumented(name: &str, doc: &serde_json::Value) -> Vec<String> {
        let section = readme_section(name);
        let mut all = std::collections::BTreeSet::new();
        keys(doc, &mut all);
        all.into_iter()
            .filter(|k| !section.contains(&format!("\"{k}\"")))
            .collect()
    }

    /// Regression: the README's "stable" field lists lacked fields the program prints
    /// (`progress.epoch`, `progress.resumed_at_step`, `session.tmux_installed`). Every field of
    /// every JSON view, with every optional part present, is named in its command's section.
    #[test]
    fn regression_every_json_field_the_program_prints_is_in_the_readme() {
        use crate::report::ckpts::CkptJson;
        use crate::report::status::{DiskJson, LatestCheckpointJson, ProgressJson, RunJson, SessionJson};
        use crate::train::checkpoints::Layout;
        use crate::train::gpu::Gpu;
        let status = HostStatus {
            json: StatusJson {
                host: "box".into(),
                reachable: true,
                session: SessionJson {
                    name: "training".into(),
                    exists: Some(true),
                    tmux_installed: Some(true),
                    backend: Some("tmux".into()),
                    available_backends: Some(vec!["tmux".into()]),
                },
                run: Some(RunJson {
                    reason: None,
                    slurm: None,
                    id: "r1".into(),
                    state: RunState::Running,
                    pid: Some(1),
                    started_at: Some("2026-11-29T01:53:00Z".into()),
                    exit_code: Some(0),
                    log: Some("l".into()),
                    command: Some("c".into()),
                    backend: "tmux".into(),
                    silent_seconds: Some(1),
                    stalled: false,
                }),
                progress: ProgressJson {
                    step: Some(1),
                    total: Some(2),
                    seconds_per_step: Some(1.0),
                    eta_seconds: Some(1.0),
                    loss: Some(1.0),
                    loss_step: Some(1),
                    loss_from: Some("log".into()),
                    loss_source: Some("log".into()),
                    epoch: Some(0.5),
                    resumed_at_step: Some(1),
                    history: Some(vec![crate::train::trainer_state::HistoryPoint {
                        step: Some(1),
                        loss: Some(1.0),
                        eval_loss: Some(1.0),
                        learning_rate: Some(1e-5),
                    }]),
                },
                latest_checkpoint: Some(LatestCheckpointJson {
                    name: "checkpoint-1".into(),
                    step: Some(1),
                    age_seconds: Some(1),
                    of_current_run: Some(true),
                }),
                gpus: Some(vec![Gpu {
                    index: Some(0),
                    name: Some("A100".into()),
                    util_percent: Some(1),
                    mem_used_mib: Some(1),
                    mem_total_mib: Some(2),
                }]),
                disk: Some(DiskJson {
                    path: "/".into(),
                    free_bytes: Some(1),
                    total_bytes: Some(2),
                }),
            },
            probe: None,
            error: Some(anyhow::anyhow!("why")),
        };
        let ckpts = CkptsJson {
            host: "box".into(),
            dir: "/w/outputs".into(),
            dir_state: DirState::Present,
            checkpoints: vec![CkptJson {
                name: "checkpoint_1".into(),
                path: "/w/outputs/checkpoints/checkpoint_1".into(),
                step: Some(1),
                bytes: Some(1),
                mtime: Some("2026-11-29T01:53:00Z".into()),
                complete: true,
                latest: true,
                layout: Layout::Accelerate,
                save_index: Some(1),
            }],
            total_bytes: Some(1),
            free_bytes: Some(1),
        };
        let inputs = crate::train::risk::RiskInputs {
            save_steps: Some(500),
            save_total_limit: Some(3),
            max_steps: Some(4500),
            current_step: Some(1520),
            seconds_per_step: Some(4.0),
            seconds_per_step_source: Some("the progress bar".into()),
            checkpoint_bytes: Some(1 << 30),
            free_bytes: Some(1 << 40),
            existing_checkpoints: 3,
            since_last_checkpoint_seconds: Some(80),
            running: true,
            finished: false,
            job_seconds_left: None,
        };
        let check = CheckJson {
            host: "box".into(),
            report: crate::train::risk::assess(&inputs),
            backend: crate::report::check::BackendCheck {
                name: Some("nohup".into()),
                terminal: Some(false),
                available: vec!["nohup".into()],
                killed_at_logout: Some(true),
                findings: vec!["why".into()],
            },
        };
        assert!(check.report.current.is_some() && !check.report.alternatives.is_empty());
        let mut missing = Vec::new();
        for (name, doc) in [
            ("status", json_with_error(&status)),
            ("ckpts", serde_json::to_value(&ckpts).unwrap()),
            ("check", serde_json::to_value(&check).unwrap()),
        ] {
            missing.extend(undocumented(name, &doc).into_iter().map(|k| format!("{name}: {k}")));
        }
        assert!(missing.is_empty(), "JSON fields the README does not name: {missing:?}");
    }
}
