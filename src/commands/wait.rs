//! `rtrain wait HOST...`: block until the current run on each host has ended, across dropped
//! connections and laptop sleep (the resilient link), then say how each ended, so that
//! `rtrain wait gpu-box && rtrain pull gpu-box` is a workflow. With `--notify`, the laptop also
//! raises a desktop and terminal alert for each event (ui::alert).

use super::resilient::StatusLine;
use super::run::probe_on_link;
use super::{CommandError, Ctx};
use crate::cli::WaitArgs;
use crate::config::{NotifyEvent, Target};
use crate::remote::run::RunState;
use crate::report::status::StatusJson;
use crate::ui::alert;
use std::time::{Duration, Instant};

/// How often the run's state is asked while it runs: one small probe over the kept-open link.
const POLL: Duration = Duration::from_secs(2);

/// How one host's wait ended.
enum End {
    /// The run ended; its status document (state finished, failed, stopped or lost).
    Ended(StatusJson),
    /// Nothing to wait for: no run, or the run had already ended before `wait` started.
    NoRun(StatusJson),
    /// Could not be reached at all (or some other error); the exit code comes from the error.
    Error(anyhow::Error),
}

/// The exit status for a set of ends: the worst connection code, else 1 when any run did not
/// finish with exit 0, else 0.
fn exit_code(ends: &[(String, End)]) -> u8 {
    ends.iter()
        .map(|(_, e)| match e {
            End::Ended(j) | End::NoRun(j) => match j.run.as_ref().map(|r| r.state) {
                Some(RunState::Finished) => 0,
                _ => 1,
            },
            End::Error(e) => super::exit_code_for(e),
        })
        .max()
        .unwrap_or(0)
}

pub async fn run(ctx: &Ctx, args: WaitArgs) -> anyhow::Result<u8> {
    let mut targets = Vec::new();
    for h in &args.hosts {
        targets.push(ctx.target(h)?);
    }
    let started = Instant::now();
    let all = futures::future::join_all(targets.iter().map(|t| async {
        let e = wait_one(ctx, t, &args).await;
        report(ctx, t, &e, &args);
        (t.name.clone(), e)
    }));
    let ends = tokio::select! {
        e = all => e,
        _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
        _ = sleep_or_forever(args.timeout) => {
            let limit = humantime::format_duration(args.timeout.unwrap_or_default());
            anyhow::bail!(
                "timed out after {limit} ({} s) waiting for {}; the runs go on",
                started.elapsed().as_secs(),
                args.hosts.join(", ")
            );
        }
    };
    Ok(exit_code(&ends))
}

async fn sleep_or_forever(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Say how a host ended: a line on stdout (or one JSON line with `--json`), and the alert.
fn report(ctx: &Ctx, t: &Target, e: &End, args: &WaitArgs) {
    let (json, line) = match e {
        End::Ended(j) => (serde_json::to_value(j).ok(), ended_line(j)),
        End::NoRun(j) => {
            let line = match &j.run {
                None => format!("{}: no run to wait for", j.host),
                Some(_) => format!("{} (before wait started)", ended_line(j)),
            };
            (serde_json::to_value(j).ok(), line)
        }
        End::Error(err) => {
            let mut v = serde_json::to_value(StatusJson::unreachable(&t.name, &t.settings.session)).ok();
            if let Some(obj) = v.as_mut().and_then(|v| v.as_object_mut()) {
                obj.insert("error".into(), serde_json::Value::String(err.to_string()));
            }
            (v, format!("{}: {err}", t.name))
        }
    };
    if args.json {
        if let Some(v) = json {
            println!("{}", serde_json::to_string(&v).unwrap_or_default());
        }
    } else if matches!(e, End::Error(_)) {
        eprintln!("rtrain: {line}");
    } else {
        println!("{line}");
    }
    if args.notify {
        if let End::Ended(j) = e {
            if let Some(ev) = j.run.as_ref().and_then(|r| event_of(r.state)) {
                notify(ctx, t, j, ev);
            }
        }
    }
}

fn event_of(state: RunState) -> Option<NotifyEvent> {
    match state {
        RunState::Finished => Some(NotifyEvent::Finished),
        RunState::Failed => Some(NotifyEvent::Failed),
        RunState::Stopped => Some(NotifyEvent::Stopped),
        RunState::Lost => Some(NotifyEvent::Lost),
        RunState::Running => None,
    }
}

/// One line: `gpu-box: run ID finished (exit 0) at step 120/120, loss 0.41`.
pub fn ended_line(j: &StatusJson) -> String {
    let Some(r) = &j.run else {
        return format!("{}: no run", j.host);
    };
    let mut s = format!("{}: run {} {}", j.host, r.id, r.state);
    if let Some(c) = r.exit_code {
        s += &format!(" (exit {c})");
    }
    if r.stalled {
        s += ", stalled";
    }
    if let (Some(step), Some(total)) = (j.progress.step, j.progress.total) {
        s += &format!(" at step {step}/{total}");
    }
    if let Some(l) = j.progress.loss {
        s += &format!(", loss {l:.4}");
    }
    if let Some(c) = &j.latest_checkpoint {
        s += &format!(", latest checkpoint {}", c.name);
    }
    s
}

/// The laptop-side alert for one event, if the host's `notify.events` wants it (all but
/// `checkpoint` by default, also without any `notify:` config).
pub fn notify(ctx: &Ctx, t: &Target, j: &StatusJson, ev: NotifyEvent) {
    let wanted = t
        .settings
        .notify
        .as_ref()
        .map_or_else(|| crate::config::DEFAULT_NOTIFY_EVENTS.contains(&ev), |n| n.wants(ev));
    if !wanted {
        return;
    }
    let title = format!("rtrain: {} {}", t.name, ev.as_str());
    let mut body = ended_line(j);
    if ev == NotifyEvent::Failed || ev == NotifyEvent::Lost {
        body += &format!(" — rtrain logs {}", t.name);
    }
    let _ = alert::raise(&title, &body, ctx.env.interactive);
}

/// Wait for the run current now on `t` to end.
async fn wait_one(ctx: &Ctx, t: &Target, args: &WaitArgs) -> End {
    let mut link = match ctx.connected_link(t).await {
        Ok(l) => l,
        Err(e) => return End::Error(e),
    };
    let status = StatusLine::new(&t.name, false, ctx.env.interactive, ctx.quiet);
    let mut watched: Option<String> = None;
    let mut said_stall = false;
    let mut newest_ckpt: Option<Option<String>> = None;
    loop {
        let p = match probe_on_link(ctx, t, &mut link, &status).await {
            Ok(p) => p,
            Err(e) => return End::Error(e),
        };
        let mut j = StatusJson::build(&t.name, &t.settings.session, &p);
        j.apply_stall_after(t.settings.stall_after);
        let Some(r) = j.run.clone() else {
            return End::NoRun(j);
        };
        let first = watched.is_none();
        let id = watched.get_or_insert_with(|| r.id.clone()).clone();
        if r.id != id {
            // Another run replaced the one being waited for (its record is still on the box).
            let e = anyhow::anyhow!(
                "the run {id} on {} was replaced by run {} before wait saw it end (rtrain logs {} --run {id})",
                t.name,
                r.id,
                t.name
            );
            return End::Error(e);
        }
        if r.state != RunState::Running {
            return if first { End::NoRun(j) } else { End::Ended(j) };
        }
        if first && !ctx.quiet && !args.json {
            eprintln!("waiting for run {} on {}…", r.id, t.name);
        }
        if args.notify {
            if r.stalled && !said_stall {
                notify(ctx, t, &j, NotifyEvent::Stalled);
            }
            let ck = j.latest_checkpoint.as_ref().map(|c| c.name.clone());
            if newest_ckpt.as_ref().is_some_and(|seen| *seen != ck) && ck.is_some() {
                notify(ctx, t, &j, NotifyEvent::Checkpoint);
            }
            newest_ckpt = Some(ck);
        }
        // A stall is said once per stall: a run that speaks again may stall again.
        said_stall = r.stalled;
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = ctx.shutdown.cancelled() => return End::Error(CommandError::Interrupted.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(host: &str, state: RunState, code: Option<i32>) -> StatusJson {
        let mut j = StatusJson::unreachable(host, "training");
        j.reachable = true;
        j.run = Some(crate::report::status::RunJson {
            id: "20260101-000000-abcd".into(),
            state,
            pid: None,
            started_at: None,
            exit_code: code,
            log: None,
            command: None,
            silent_seconds: None,
            stalled: false,
        });
        j
    }

    #[test]
    fn exit_code_is_zero_only_when_every_run_finished() {
        let fin = || ("a".to_string(), End::Ended(ended("a", RunState::Finished, Some(0))));
        assert_eq!(exit_code(&[fin(), fin()]), 0);
        let failed = ("b".to_string(), End::Ended(ended("b", RunState::Failed, Some(3))));
        assert_eq!(exit_code(&[fin(), failed]), 1);
        for s in [RunState::Stopped, RunState::Lost] {
            assert_eq!(exit_code(&[fin(), ("c".into(), End::Ended(ended("c", s, None)))]), 1);
        }
        let unreachable = (
            "d".to_string(),
            End::Error(
                crate::ssh::SshError::Timeout {
                    host: "d".into(),
                    stage: "connect",
                    secs: 1,
                }
                .into(),
            ),
        );
        assert_eq!(exit_code(&[fin(), unreachable]), 3);
    }

    #[test]
    fn the_line_says_state_and_exit() {
        let l = ended_line(&ended("gpu", RunState::Failed, Some(3)));
        assert_eq!(l, "gpu: run 20260101-000000-abcd failed (exit 3)");
    }
}
