//! `rtrain up`, `stop`, `logs` and `resume`: the run's lifecycle, each a script of remote::run sent
//! over one exec (resume: list, read the config, then launch under the same lock as `up`).

use super::resilient::StatusLine;
use super::{attach, probe, CommandError, Ctx};
use crate::cli::{LogsArgs, ResumeArgs, StopArgs, UpArgs};
use crate::config::Target;
use crate::remote::backend::{self, Choice};
use crate::remote::probe as rprobe;
use crate::remote::quote;
use crate::remote::run::{self, FileEdit, LaunchSpec, LogStart, RunError, RunState, StopOutcome, UpOutcome};
use crate::report::check::check_inputs;
use crate::report::facts::checkpoint_is_of_current_run;
use crate::report::status::StatusJson;
use crate::ssh::capture::HeadTail;
use crate::ssh::link::Link;
use crate::ssh::session::STDERR_KEPT;
use crate::ssh::Session;
use crate::train::progress::CrCollapser;
use crate::train::train_config;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWrite;

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// A remote::run error, said with the host's name.
fn run_error(target: &Target, e: RunError) -> anyhow::Error {
    match e {
        RunError::BackendMissing { backend, available } => backend_missing(target, &backend, &available),
        RunError::WorkdirMissing { path } => anyhow::anyhow!(
            "the working directory {path} does not exist on {} (create it, or set `workdir` for this host in rtrain's config)",
            target.name
        ),
        RunError::NoRun => anyhow::anyhow!("no run has been launched on {} (in {}) yet", target.name, target.settings.workdir),
        other => anyhow::anyhow!("{}: {other}", target.name),
    }
}

/// The box lacks the backend asked for (`none`: auto found none), said with what it does offer.
pub(super) fn backend_missing(target: &Target, backend: &str, available: &[String]) -> anyhow::Error {
    let Some(b) = backend::by_name(backend) else {
        if backend == "none" {
            return anyhow::anyhow!(
                "nothing on {} can keep a run alive: it has neither tmux, GNU screen nor setsid and nohup (install one: `sudo apt install tmux`)",
                target.name
            );
        }
        return anyhow::anyhow!(
            "the run on {} was launched with {backend:?}, a backend this rtrain does not know: update rtrain",
            target.name
        );
    };
    let instead = match available.first() {
        Some(other) => format!(
            ", or choose another backend (`--backend {other}`; {} has {})",
            target.name,
            available.join(", ")
        ),
        None => String::new(),
    };
    anyhow::anyhow!(
        "{} not found on {}: install it with `{}`{instead}",
        b.name(),
        target.name,
        b.install_hint()
    )
}

/// Run a lifecycle script and return its stdout as text (results are `@rtrain key=value` lines).
async fn run_script(session: &Session, script: &str, timeout: Duration) -> anyhow::Result<String> {
    run_script_stdin(session, script, None, timeout).await
}

/// [`run_script`] with bytes for the script's stdin (a config edit's content).
pub(super) async fn run_script_stdin(
    session: &Session,
    script: &str,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> anyhow::Result<String> {
    let out = session.exec(&run::sh_command(script), stdin, Some(timeout)).await?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.stderr.is_empty() {
        // Kept for the parser's error message when no result line came.
        text.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    Ok(text)
}

/// The command `up` launches: CMD after `--` (one word is a shell command line, as `command` in
/// the config; several words are each quoted, as `exec` does), else the configured command.
fn launch_command(target: &Target, cmd: &[String]) -> String {
    match cmd {
        [] => target.settings.command.clone(),
        [one] => one.clone(),
        words => quote::join(words),
    }
}

/// The run's environment: PYTHONUNBUFFERED=1 first (Python block-buffers print() into the log's
/// pipe, so dict lines with the loss would arrive in bursts or only at exit), then `env:` from the
/// config, which may override it.
fn run_env(target: &Target) -> Vec<(String, String)> {
    let mut env = vec![("PYTHONUNBUFFERED".to_string(), "1".to_string())];
    for (k, v) in &target.settings.env {
        env.retain(|(name, _)| name != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

/// What `up` and `resume` launch. `backend`: `up --backend`, else the config's; `inherit`: keep the
/// current run's recorded backend (a resume relaunches the run where it ran).
fn spec(
    target: &Target,
    command: String,
    edit: Option<FileEdit>,
    backend: Option<Choice>,
    inherit: bool,
) -> LaunchSpec {
    let s = &target.settings;
    let backend_arg_none = backend.is_none();
    let backend = backend.unwrap_or(s.backend);
    // A resume relaunches the run on its recorded backend, which only the box knows, whatever the config
    // says now: it carries every backend's variables (a Slurm run's batch files, say).
    let backend_vars = backend::ALL
        .iter()
        .filter(|b| inherit || backend == Choice::Only(b.name()))
        .flat_map(|b| b.launch_vars(target))
        .collect();
    LaunchSpec {
        backend_vars,
        workdir: s.workdir.clone(),
        session: s.session.clone(),
        backend,
        inherit_backend: inherit && backend_arg_none,
        command,
        log_dir: s.log_dir.clone(),
        env: run_env(target),
        edit,
        notify: notify_file(target),
    }
}

/// The run record's `notify` file for the host's box-side webhooks, if it has any.
pub(super) fn notify_file(target: &Target) -> Option<String> {
    let n = target.settings.notify.as_ref().filter(|n| !n.hooks().is_empty())?;
    Some(run::notify_file(&run::NotifySpec {
        host: target.name.clone(),
        hooks: n
            .hooks()
            .into_iter()
            .map(|(k, u)| (k.to_string(), u.to_string()))
            .collect(),
        events: crate::config::DEFAULT_NOTIFY_EVENTS
            .iter()
            .copied()
            .filter(|e| n.wants(*e))
            .map(|e| e.as_str().to_string())
            .collect(),
        checkpoint_dir: target.settings.checkpoint_dir.clone(),
    }))
}

/// What `auto` says when it did not get the first choice: `no tmux on gpu-box: using GNU screen`.
fn auto_note(host: &str, chosen: &str) -> String {
    let skipped: Vec<&str> = backend::ALL
        .iter()
        .map(|b| b.name())
        .take_while(|n| *n != chosen)
        .collect();
    let label = backend::by_name(chosen).map_or(chosen, |b| b.label());
    let without = match backend::by_name(chosen) {
        Some(b) if !b.has_terminal() => " (no terminal: attach shows the log)",
        _ => "",
    };
    format!("no {} on {host}: using {label}{without}", skipped.join(" or "))
}

/// Launch unless a run is active; returns whether a run was launched.
async fn launch(
    ctx: &Ctx,
    target: &Target,
    session: &Session,
    spec: LaunchSpec,
    refuse_if_active: bool,
) -> anyhow::Result<bool> {
    let text = run_script_stdin(session, &run::up_script(&spec), run::up_stdin(&spec), SCRIPT_TIMEOUT).await?;
    if run::up_says_no_webhook_client(&text) && !ctx.quiet {
        eprintln!(
            "rtrain: note: {} has neither curl nor wget: box-side notifications are off for this run \
             (`rtrain wait --notify` still tells you on this machine)",
            target.name
        );
    }
    match run::parse_up(&text).map_err(|e| run_error(target, e))? {
        UpOutcome::Launched { run, session, picked } => {
            if let Some(w) = run::up_logind(&text).warning(&target.name) {
                // Even with -q: the run is likely to die when this very session closes.
                eprintln!("rtrain: warning: {w}");
            }
            let b = backend::by_name(&run.backend);
            if picked.auto && !ctx.quiet && backend::ALL.first().map(|f| f.name()) != Some(run.backend.as_str()) {
                eprintln!("{}", auto_note(&target.name, &run.backend));
            }
            if !ctx.quiet {
                let how = match b {
                    Some(b) if b.has_terminal() => format!("in {} session {session:?}", b.name()),
                    _ => format!("under {} (no terminal)", run.backend),
                };
                match &run.job {
                    Some(job) => println!(
                        "submitted run {} on {} as {} job {job}",
                        run.id,
                        target.name,
                        b.map_or(run.backend.as_str(), |b| b.label())
                    ),
                    None => println!("launched run {} on {} (pid {}) {how}", run.id, target.name, run.pid),
                }
                println!("  command: {}", spec.command);
                println!("  log:     {}", run.log);
                println!(
                    "  next:    rtrain logs {0} -f · rtrain status {0} · rtrain attach {0}",
                    target.name
                );
            }
            Ok(true)
        }
        UpOutcome::AlreadyActive { run } => {
            if refuse_if_active {
                anyhow::bail!(
                    "a run is active on {} ({}, pid {}); stop it first: rtrain stop {}",
                    target.name,
                    run.id,
                    run.pid,
                    target.name
                );
            }
            if !ctx.quiet {
                let what = match &run.job {
                    Some(job) => format!(
                        "{} job {job}",
                        backend::by_name(&run.backend).map_or(run.backend.as_str(), |b| b.label())
                    ),
                    None => format!("pid {}", run.pid),
                };
                println!(
                    "a run is already active on {}: {} ({what}, started {}); nothing started",
                    target.name, run.id, run.started_at
                );
                println!("  log: {}", run.log);
            }
            Ok(false)
        }
    }
}

pub async fn up(ctx: &Ctx, args: UpArgs) -> anyhow::Result<u8> {
    let target = ctx.target(&args.host)?;
    let session = ctx.connect(&target).await?;
    let work = async {
        if args.resume {
            let resume = ResumeArgs {
                host: args.host.clone(),
                from: None,
                dry_run: false,
                force: false,
            };
            resume_on(ctx, &target, &session, &resume, Some(&args.cmd), args.backend).await
        } else {
            let command = launch_command(&target, &args.cmd);
            let edit = guard_resume(ctx, &target, &session, args.fresh).await?;
            launch(
                ctx,
                &target,
                &session,
                spec(&target, command, edit, args.backend, false),
                false,
            )
            .await
            .map(|_| 0)
        }
    };
    let code = tokio::select! {
        r = work => r?,
        _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
    };
    session.close().await;
    if args.attach {
        if !ctx.env.interactive {
            return Err(CommandError::Usage("--attach needs a terminal".into()).into());
        }
        let mut link = ctx.connected_link(&target).await?;
        return attach::attach_link(ctx, &target, &mut link).await;
    }
    Ok(code)
}

/// The training config's text, or `None` when the file does not exist.
async fn read_train_config(session: &Session, target: &Target) -> anyhow::Result<Option<String>> {
    let cfg_path = run::remote_path(&target.settings.workdir, &target.settings.train_config);
    let script = format!(
        "p={}; if [ -e \"$p\" ]; then exec cat -- \"$p\"; fi; exit 3",
        quote::quote_path(&cfg_path)
    );
    let out = session
        .exec(&run::sh_command(&script), None, Some(SCRIPT_TIMEOUT))
        .await?;
    match out.exit.as_code() {
        0 => {}
        3 => return Ok(None),
        _ => anyhow::bail!(
            "cannot read the training config {} on {}: {}",
            target.settings.train_config,
            target.name,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
    String::from_utf8(out.stdout)
        .map(Some)
        .map_err(|_| anyhow::anyhow!("the training config {} is not UTF-8", target.settings.train_config))
}

/// Before a plain `up`: a training config that resumes from a checkpoint which is gone (deleted by
/// `save_total_limit`) or cut off mid-save would start a run that dies at once, so nothing is
/// started; one that is complete is said. `fresh` sets it to null instead (under the launch lock,
/// with a `.bak`, as `resume` edits it).
async fn guard_resume(ctx: &Ctx, target: &Target, session: &Session, fresh: bool) -> anyhow::Result<Option<FileEdit>> {
    use crate::train::train_config::{parse_train_config, ResumeFrom};
    let text = match read_train_config(session, target).await {
        Ok(Some(text)) => text,
        Ok(None) => return Ok(None),
        // A config rtrain cannot read does not stop a plain launch (the trainer may not even use it).
        Err(e) if !fresh && e.downcast_ref::<crate::ssh::SshError>().is_none() => {
            if !ctx.quiet {
                eprintln!("rtrain: note: {e}; resume_from_checkpoint not checked");
            }
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let file = &target.settings.train_config;
    let from = parse_train_config(text.as_bytes()).resume_from();
    if fresh {
        if from == ResumeFrom::Nothing {
            return Ok(None);
        }
        let edit = train_config::edit_resume_to_null(&text)
            .map_err(|e| anyhow::anyhow!("cannot set resume_from_checkpoint in {file}: {e}"))?;
        if !ctx.quiet {
            println!("training from scratch: {file} line {}: {}", edit.line, edit.new.trim());
        }
        return Ok(Some(FileEdit {
            path: file.clone(),
            content: edit.text,
            backup: true,
            expect_sha256: Some(run::sha256_hex(text.as_bytes())),
        }));
    }
    let hint = "rtrain up --resume (newest complete checkpoint) or rtrain up --fresh (train from scratch)";
    let path = match from {
        ResumeFrom::Nothing => return Ok(None),
        ResumeFrom::Path(path) => path,
        ResumeFrom::Last => {
            // `true`: the Trainer takes the highest checkpoint-N in output_dir, complete or not.
            let listing = probe::probe_ckpts(session, target).await?;
            let last = listing
                .checkpoints
                .iter()
                .filter(|c| c.layout == crate::train::checkpoints::Layout::HuggingFace)
                .max_by_key(|c| c.step);
            match last {
                None => anyhow::bail!(
                    "{file} resumes from the last checkpoint (true), but there is none in {} on {}: rtrain up --fresh (train from scratch)",
                    listing.dir_display(),
                    target.name
                ),
                Some(c) if !c.complete => anyhow::bail!(
                    "{file} resumes from the last checkpoint (true), and the last one, {}, is incomplete on {} (no trainer_state.json: cut off mid-save): {hint}",
                    c.name,
                    target.name
                ),
                Some(c) => {
                    if !ctx.quiet {
                        println!("resuming from {} (the last checkpoint), as {file} says", c.name);
                    }
                    return Ok(None);
                }
            }
        }
    };
    let name = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(&path)
        .to_string();
    let script = run::checkpoint_state_script(&target.settings.workdir, &path);
    let state = run::parse_checkpoint_state(&run_script(session, &script, SCRIPT_TIMEOUT).await?)
        .map_err(|e| run_error(target, e))?;
    match state {
        run::CheckpointState::Complete => {
            if !ctx.quiet {
                println!("resuming from {name} ({path}), as {file} says");
            }
            Ok(None)
        }
        run::CheckpointState::Missing => {
            anyhow::bail!(
                "{file} resumes from {name}, which no longer exists on {}: {hint}",
                target.name
            )
        }
        run::CheckpointState::Incomplete => anyhow::bail!(
            "{file} resumes from {name}, which is incomplete on {} (no trainer_state.json: cut off mid-save): {hint}",
            target.name
        ),
    }
}

pub async fn stop(ctx: &Ctx, args: StopArgs) -> anyhow::Result<u8> {
    let target = ctx.target(&args.host)?;
    if args.at_checkpoint {
        return stop_at_checkpoint(ctx, &target, &args).await;
    }
    let session = ctx.connect(&target).await?;
    // What stopping now costs, said before acting; on a terminal, asked when it is more than a minute.
    let probed = tokio::select! {
        r = probe::probe_status(&session, &target) => r,
        _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
    };
    if let Ok(p) = &probed {
        if let Some(cost) = stop_cost(p) {
            if !ctx.quiet || ctx.env.interactive {
                eprintln!("{}", cost.line(&target.name));
            }
            if ctx.env.interactive && cost.seconds > 60 && !args.yes && !confirm(ctx, "stop it anyway?").await? {
                println!("nothing stopped; the run goes on");
                return Ok(1);
            }
        }
    }
    let code = signal_stop(ctx, &target, &session, &args, None).await?;
    session.close().await;
    Ok(code)
}

/// Ask a yes/no question on the terminal (default no); Ctrl-C while asking is an interruption.
async fn confirm(ctx: &Ctx, question: &str) -> anyhow::Result<bool> {
    use std::io::BufRead as _;
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let read = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    });
    let line = tokio::select! {
        r = read => r??,
        _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
    };
    Ok(matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// The work a stop would throw away: the time and steps since the newest complete checkpoint (or
/// since the run started, when that is later: a resumed run redoes nothing before its start).
#[derive(Debug, Clone, PartialEq)]
pub struct StopCost {
    pub seconds: i64,
    pub from_step: u64,
    pub to_step: Option<u64>,
    /// The checkpoint the work would go back to.
    pub checkpoint: Option<String>,
}

impl StopCost {
    pub fn line(&self, host: &str) -> String {
        let steps = match self.to_step {
            Some(to) => format!(" (steps {}–{to})", self.from_step),
            None => String::new(),
        };
        let lost = crate::train::fmt_duration(self.seconds.max(0) as f64);
        match &self.checkpoint {
            Some(c) => format!(
                "stopping now loses {lost} of work{steps} since {c}; rtrain stop {host} --at-checkpoint waits for the next one"
            ),
            None => format!(
                "stopping now loses {lost} of work{steps}: this run has no checkpoint yet; rtrain stop {host} --at-checkpoint waits for its first one"
            ),
        }
    }
}

/// The newest complete checkpoint the current run saved or resumed from: an earlier run's (a run
/// started from scratch next to old checkpoints) is not this run's work, nor a sign of its progress.
fn newest_of_run(p: &rprobe::StatusProbe) -> Option<&crate::train::checkpoints::Checkpoint> {
    p.ckpts
        .checkpoints
        .iter()
        .filter(|c| c.complete && checkpoint_is_of_current_run(p, &c.name))
        .max_by_key(|c| c.ordinal())
}

/// `None` when no run is running (nothing to lose) or the remote clock is unknown.
pub fn stop_cost(p: &rprobe::StatusProbe) -> Option<StopCost> {
    let run = p.run.as_ref().filter(|r| r.state == RunState::Running)?;
    let now = p.ckpts.now?;
    let started = run.started_at.as_deref().and_then(rprobe::rfc3339_epoch);
    let newest = newest_of_run(p);
    let to_step = p.log_summary.progress.as_ref().map(|b| b.step);
    let (since, from_step, checkpoint) = match (newest, newest.and_then(|c| c.mtime)) {
        (Some(c), Some(m)) if started.is_none_or(|s| m >= s) => (m, c.step.unwrap_or(0), Some(c.name.clone())),
        // The checkpoint this run resumed from: the work since the run started.
        (Some(c), _) => (
            started.unwrap_or(now),
            c.step.or(p.log_summary.resumed_at_step).unwrap_or(0),
            Some(c.name.clone()),
        ),
        (None, _) => (started?, p.log_summary.resumed_at_step.unwrap_or(0), None),
    };
    Some(StopCost {
        seconds: now - since,
        from_step,
        to_step: to_step.filter(|t| *t >= from_step),
        checkpoint,
    })
}

/// Signal the current run (stop_signal, then TERM, then KILL) and say how it ended. `after` is
/// the checkpoint `--at-checkpoint` waited for.
async fn signal_stop(
    ctx: &Ctx,
    target: &Target,
    session: &Session,
    args: &StopArgs,
    after: Option<&(String, u64)>,
) -> anyhow::Result<u8> {
    let first = &target.settings.stop_signal;
    let script = run::stop_script_with(&target.settings.workdir, args.timeout, args.force, first);
    // First signal, wait, SIGTERM, wait, SIGKILL: allow for both waits and some slack.
    let limit = Duration::from_secs(args.timeout.saturating_mul(2) + 60);
    let spinner = (!ctx.quiet && ctx.env.interactive).then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        let how = if args.force {
            "SIGKILL".to_string()
        } else {
            format!("SIG{first}, then SIGTERM after {} s", args.timeout)
        };
        pb.set_message(format!("stopping the run on {} ({how})…", target.name));
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    });
    let text = tokio::select! {
        r = run_script(session, &script, limit) => r,
        _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
    };
    if let Some(pb) = spinner {
        pb.finish_and_clear();
    }
    let text = text?;
    match run::parse_stop(&text).map_err(|e| run_error(target, e))? {
        StopOutcome::Stopped {
            id,
            signal,
            exit_code,
            backend,
        } => {
            let code = exit_code.map(|c| format!(", exit {c}")).unwrap_or_default();
            // The trainer ran on for at most a poll interval after the save: say so rather than "nothing lost".
            let saved = after
                .map(|(name, step)| format!(" right after {name} (step {step}), which is complete"))
                .unwrap_or_default();
            let stays = backend::by_name(&backend)
                .and_then(|b| b.after_stop())
                .map(|s| format!("; {s}"))
                .unwrap_or_default();
            println!(
                "stopped run {id} on {}{saved}, after {}{code}{stays}",
                target.name,
                signal.name()
            );
            if let Some((name, _)) = after {
                if !ctx.quiet {
                    println!("  next: rtrain resume {} (continues from {name})", target.name);
                }
            }
        }
        StopOutcome::NotRunning { id, state, exit_code } => {
            let code = exit_code.map(|c| format!(" (exit {c})")).unwrap_or_default();
            println!("no active run on {}: the last run {id} is {state}{code}", target.name);
        }
        StopOutcome::NoRun => println!("no run on {}: nothing to stop", target.name),
    }
    Ok(0)
}

/// One status probe over the resilient link: a drop (or a probe cut short by one) reconnects and
/// asks again; Ctrl-C gives up (130).
pub(super) async fn probe_on_link(
    ctx: &Ctx,
    target: &Target,
    link: &mut Link,
    status: &StatusLine,
) -> anyhow::Result<rprobe::StatusProbe> {
    loop {
        // A session that died between two probes (while the caller slept) is rebuilt, not an error.
        let session = match link.session().await {
            Ok(s) => s,
            Err(crate::ssh::SshError::Disconnected { .. }) => {
                let cancel = ctx.shutdown.child_token();
                link.reconnect(&cancel, |ev| status.event(&ev)).await?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let dead = link.wait_dead();
        let r = tokio::select! {
            r = probe::probe_status(&session, target) => Some(r),
            _ = dead => None,
            _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
        };
        match r {
            Some(Ok(p)) => return Ok(p),
            Some(Err(e)) if !retryable(&e) => return Err(e),
            _ => {}
        }
        drop(session);
        let cancel = ctx.shutdown.child_token();
        link.reconnect(&cancel, |ev| status.event(&ev)).await?;
    }
}

/// A dropped connection, or a probe whose output it cut short.
pub(super) fn retryable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<crate::ssh::SshError>()
            .is_some_and(|s| s.is_retryable())
            || c.to_string().contains("ended early")
    })
}

/// The step the next checkpoint is due at: the next multiple of save_steps after `newest`.
fn next_save_step(p: &rprobe::StatusProbe, newest: Option<u64>) -> Option<u64> {
    let check = check_inputs(p);
    // An earlier run's trainer_state.json may have saved at another interval.
    let own = p
        .trainer_state
        .as_ref()
        .filter(|(name, _)| checkpoint_is_of_current_run(p, name))
        .and_then(|(_, t)| t.save_steps);
    let from_config = p
        .train_config
        .as_ref()
        .and_then(|c| c.effective_save_steps(check.max_steps));
    let every = own.or(from_config).filter(|s| *s > 0)?;
    let base = newest.unwrap_or(0).max(check.current_step.unwrap_or(0));
    Some((base / every + 1) * every)
}

/// How long `--at-checkpoint` lets the trainer finish its save (rotation of older checkpoints
/// included) once the new checkpoint is complete, before stopping it anyway.
const SAVE_SETTLE_MAX: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_secs(1);

/// `stop --at-checkpoint`: poll until a complete checkpoint newer than the newest one at the
/// start appears (across drops: the resilient link), let the trainer move past it, then stop as
/// `stop` does. Ctrl-C or `--wait-timeout` leave the run alone; a run that ends by itself
/// meanwhile is reported as it ended.
async fn stop_at_checkpoint(ctx: &Ctx, target: &Target, args: &StopArgs) -> anyhow::Result<u8> {
    let mut link = ctx.connected_link(target).await?;
    let status = StatusLine::new(&target.name, false, ctx.env.interactive, ctx.quiet);
    let started = std::time::Instant::now();
    let spinner = (!ctx.quiet && ctx.env.interactive).then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    });
    let clear = |pb: &Option<indicatif::ProgressBar>| {
        if let Some(pb) = pb {
            pb.finish_and_clear();
        }
    };
    let mut baseline: Option<Option<u64>> = None;
    let mut said = String::new();
    let mut found: Option<((String, u64), std::time::Instant)> = None;
    let chosen = loop {
        let p = match probe_on_link(ctx, target, &mut link, &status).await {
            Ok(p) => p,
            Err(e) => {
                clear(&spinner);
                return Err(e);
            }
        };
        let Some(run) = &p.run else {
            clear(&spinner);
            println!("no run on {}: nothing to stop", target.name);
            return Ok(0);
        };
        let newest = newest_of_run(&p);
        let newest_step = newest.and_then(|c| c.step);
        if !matches!(run.state, RunState::Pending | RunState::Running) {
            clear(&spinner);
            let code = run.exit_code.map(|c| format!(" (exit {c})")).unwrap_or_default();
            if baseline.is_none() {
                println!(
                    "no active run on {}: the last run {} is {}{code}",
                    target.name, run.id, run.state
                );
                return Ok(0);
            }
            println!(
                "the run {} on {} ended by itself while waiting for a checkpoint: {}{code}; nothing was signalled",
                run.id, target.name, run.state
            );
            return Ok(if run.state == RunState::Finished { 0 } else { 1 });
        }
        let base = *baseline.get_or_insert(newest_step);
        let step = p.log_summary.progress.as_ref().map(|b| b.step);
        match (newest, newest_step) {
            (Some(c), Some(s)) if base.is_none_or(|b| s > b) => {
                let (_, seen) = found.get_or_insert_with(|| ((c.name.clone(), s), std::time::Instant::now()));
                // Stopped once the trainer has moved on: its save (and the rotation after it) is over.
                if step.is_some_and(|now| now > s) || seen.elapsed() > SAVE_SETTLE_MAX {
                    break (c.name.clone(), s);
                }
            }
            _ => {
                let next = next_save_step(&p, base);
                let eta = match (
                    next,
                    step,
                    StatusJson::build(&target.name, "", &p).progress.seconds_per_step,
                ) {
                    (Some(n), Some(st), Some(sps)) => {
                        format!(
                            ", about {}",
                            crate::train::fmt_duration(n.saturating_sub(st) as f64 * sps)
                        )
                    }
                    _ => String::new(),
                };
                let msg = match (step, next) {
                    (Some(st), Some(n)) => format!("waiting for the next checkpoint: step {st} → {n}{eta}"),
                    (Some(st), None) => format!("waiting for the next checkpoint (now at step {st})"),
                    _ => "waiting for the next checkpoint".to_string(),
                };
                match &spinner {
                    Some(pb) => pb.set_message(msg),
                    None if said.is_empty() && !ctx.quiet => {
                        eprintln!("{msg}");
                        said = msg;
                    }
                    None => {}
                }
            }
        }
        if let Some(limit) = args.wait_timeout {
            if started.elapsed() >= limit {
                clear(&spinner);
                anyhow::bail!(
                    "no new checkpoint on {} within {}; the run goes on (rtrain stop {} stops it now)",
                    target.name,
                    humantime::format_duration(limit),
                    target.name
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = ctx.shutdown.cancelled() => {
                clear(&spinner);
                return Err(CommandError::Interrupted.into());
            }
        }
    };
    clear(&spinner);
    // The stop itself, once, over the link (reconnecting first if it dropped just now).
    let session = loop {
        let s = link.session().await?;
        if !s.is_closed() {
            break s;
        }
        let cancel = ctx.shutdown.child_token();
        link.reconnect(&cancel, |ev| status.event(&ev)).await?;
    };
    signal_stop(ctx, target, &session, args, Some(&chosen)).await
}

/// Writes log bytes to stdout, either as they are (`--raw`) or with each `\r`-redrawn line reduced
/// to its final state. Plain blocking writes: stdout is ours alone, and a slow reader downstream
/// should slow the stream down.
struct LogSink {
    collapser: Option<CrCollapser>,
    received: u64,
}

impl LogSink {
    fn new(raw: bool) -> LogSink {
        LogSink {
            collapser: (!raw).then(CrCollapser::new),
            received: 0,
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        if let Some(c) = self.collapser.take() {
            if let Some(last) = c.finish() {
                out.write_all(&last)?;
                out.write_all(b"\n")?;
            }
        }
        out.flush()
    }
}

impl std::io::Write for LogSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut out = std::io::stdout().lock();
        match &mut self.collapser {
            None => out.write_all(data)?,
            Some(c) => {
                for line in c.feed(data) {
                    out.write_all(&line)?;
                    out.write_all(b"\n")?;
                }
            }
        }
        out.flush()?;
        self.received += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

impl AsyncWrite for LogSink {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(std::io::Write::write(self.get_mut(), buf))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(std::io::Write::flush(self.get_mut()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

pub fn parse_lines(s: &str) -> Result<Option<usize>, CommandError> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    s.parse::<usize>()
        .map(Some)
        .map_err(|_| CommandError::Usage(format!("-n takes a number of lines or `all`, not {s:?}")))
}

pub async fn logs(ctx: &Ctx, args: LogsArgs) -> anyhow::Result<u8> {
    let lines = parse_lines(&args.lines)?;
    if let Some(id) = &args.run {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(CommandError::Usage(format!("invalid run id {id:?}")).into());
        }
    }
    let target = ctx.target(&args.host)?;
    if args.follow {
        return follow(ctx, &target, &args, lines).await;
    }
    let session = ctx.connect(&target).await?;
    let script = run::logs_script(&target.settings.workdir, args.run.as_deref(), lines);
    let mut sink = LogSink::new(args.raw);
    // Only rtrain's header and trailer lines matter here, at the two ends: a flooding stderr is dropped between.
    let mut stderr_buf = HeadTail::new(STDERR_KEPT, STDERR_KEPT);
    let command = run::sh_command(&script);
    let result = tokio::select! {
        r = session.exec_streaming(&command, None, &mut sink, &mut stderr_buf, None) => r,
        _ = ctx.shutdown.cancelled() => {
            let _ = sink.finish();
            return Err(CommandError::Interrupted.into());
        }
    };
    sink.finish()?;
    result?;
    let err_bytes = stderr_buf.bytes();
    let err_text = String::from_utf8_lossy(&err_bytes);
    run::parse_log_header(&err_text).map_err(|e| run_error(&target, e))?;
    let trailer = run::parse_log_trailer(&err_text).map_err(|e| run_error(&target, e))?;
    session.close().await;
    if trailer.is_none() {
        anyhow::bail!("the log stream from {} ended early", target.name);
    }
    Ok(0)
}

/// `logs -f`: stream the log until the run ends, across reconnects. The byte offset delivered so
/// far is tracked, and after a reconnect the stream resumes at exactly that offset of the same
/// run's log, so the output is the remote file byte for byte: nothing lost, nothing twice.
async fn follow(ctx: &Ctx, target: &Target, args: &LogsArgs, lines: Option<usize>) -> anyhow::Result<u8> {
    let mut link = ctx.connected_link(target).await?;
    let code = follow_link(ctx, target, &mut link, args.raw, args.run.clone(), lines).await?;
    if let Some(s) = link.current() {
        drop(link);
        if let Ok(s) = Arc::try_unwrap(s) {
            s.close().await;
        }
    }
    Ok(code)
}

/// Where `logs -f` goes on after a cut stream: the run pinned by the first answer, and the first byte of the
/// log not yet printed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FollowCursor {
    run_id: Option<String>,
    start: LogStart,
}

impl FollowCursor {
    /// After an answer whose header (if it got that far) was `header` and which delivered `got` log bytes:
    /// continue right after the last byte printed. Without a header nothing was printed and nothing moves.
    fn advance(&mut self, header: Option<&run::LogHeader>, got: u64) {
        if let Some(h) = header {
            self.run_id = Some(h.id.clone());
            self.start = LogStart::Offset(h.start + got);
        }
    }
}

/// [`follow`] over a link that is already up (`attach` on a backend without a terminal uses it too):
/// `run_id` pins a run, `lines` where to start (`None`: the whole log).
pub(super) async fn follow_link(
    ctx: &Ctx,
    target: &Target,
    link: &mut Link,
    raw: bool,
    run_id: Option<String>,
    lines: Option<usize>,
) -> anyhow::Result<u8> {
    let status = StatusLine::new(&target.name, false, ctx.env.interactive, ctx.quiet);
    let mut sink = LogSink::new(raw);
    let mut cursor = FollowCursor {
        run_id,
        start: lines.map_or(LogStart::Offset(0), LogStart::LastLines),
    };
    let mut waited = String::new();
    let trailer = loop {
        let session = link.session().await?;
        let script = run::follow_script(&target.settings.workdir, cursor.run_id.as_deref(), cursor.start);
        let command = run::sh_command(&script);
        let mut stderr_buf = FollowStderr::new(std::mem::take(&mut waited), ctx.quiet);
        let before = sink.received;
        let dead = link.wait_dead();
        let outcome = tokio::select! {
            r = session.exec_streaming(&command, None, &mut sink, &mut stderr_buf, None) => match r {
                Ok(_) => None,
                Err(e) if e.is_retryable() => Some(e.to_string()),
                Err(e) => return Err(e.into()),
            },
            reason = dead => Some(reason),
            _ = ctx.shutdown.cancelled() => {
                let _ = sink.finish();
                return Err(CommandError::Interrupted.into());
            }
        };
        drop(session);
        waited = std::mem::take(&mut stderr_buf.said);
        let err_bytes = stderr_buf.kept.bytes();
        let err_text = String::from_utf8_lossy(&err_bytes);
        let header = run::parse_log_header(&err_text).map_err(|e| run_error(target, e))?;
        cursor.advance(header.as_ref(), sink.received - before);
        if outcome.is_none() {
            if let Some(t) = run::parse_log_trailer(&err_text).map_err(|e| run_error(target, e))? {
                break t;
            }
        }
        // The stream was cut (dead link, or a stream that ended without its trailer): reconnect.
        let cancel = ctx.shutdown.child_token();
        link.reconnect(&cancel, |ev| status.event(&ev)).await?;
    };
    sink.finish()?;
    let code = trailer.exit_code.map(|c| format!(" (exit {c})")).unwrap_or_default();
    eprintln!("rtrain: the run on {} {}{code}", target.name, trailer.state);
    Ok(if trailer.state == RunState::Finished { 0 } else { 1 })
}

/// The follow script's stderr: kept (head and tail) for the header and trailer, and read as it comes for
/// `waiting=` lines (a queued Slurm job), which are said at once, each change once, across reconnects too.
struct FollowStderr {
    kept: HeadTail,
    line: Vec<u8>,
    /// What was said last (`job 4711 to start (PENDING: Resources)`); empty once the run started.
    said: String,
    quiet: bool,
}

impl FollowStderr {
    fn new(said: String, quiet: bool) -> FollowStderr {
        FollowStderr {
            kept: HeadTail::new(STDERR_KEPT, STDERR_KEPT),
            line: Vec::new(),
            said,
            quiet,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.kept.push(data);
        for &b in data {
            if b != b'\n' {
                // Only the field lines matter here; a longer line is not one.
                if self.line.len() < 1024 {
                    self.line.push(b);
                }
                continue;
            }
            let line = String::from_utf8_lossy(&self.line).into_owned();
            self.line.clear();
            let Some(what) = line.strip_prefix("@rtrain waiting=") else {
                continue;
            };
            if what != self.said {
                if !what.is_empty() && !self.quiet {
                    eprintln!("rtrain: waiting for {what}");
                } else if !self.said.is_empty() && !self.quiet {
                    eprintln!("rtrain: the run started; following its log");
                }
                self.said = what.to_string();
            }
        }
    }
}

impl AsyncWrite for FollowStderr {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.get_mut().push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

pub async fn resume(ctx: &Ctx, args: ResumeArgs) -> anyhow::Result<u8> {
    let target = ctx.target(&args.host)?;
    let session = ctx.connect(&target).await?;
    let code = tokio::select! {
        r = resume_on(ctx, &target, &session, &args, None, None) => r?,
        _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
    };
    session.close().await;
    Ok(code)
}

/// Pick the checkpoint, prepare the config edit (or the resume command), then launch under the
/// lock; `cmd` is `up --resume`'s CMD, `backend` its `--backend` (else the run's own is kept).
async fn resume_on(
    ctx: &Ctx,
    target: &Target,
    session: &Session,
    args: &ResumeArgs,
    cmd: Option<&[String]>,
    backend: Option<Choice>,
) -> anyhow::Result<u8> {
    let listing = probe::probe_ckpts(session, target).await?;
    let chosen = resume_checkpoint(&listing, target, args)?;
    let path = String::from_utf8(listing.checkpoint_path(chosen))
        .map_err(|_| anyhow::anyhow!("the path of checkpoint {} is not valid UTF-8; rename it", chosen.name))?;
    let base_command = launch_command(target, cmd.unwrap_or(&[]));
    let Some((command, edit)) = resume_plan(session, target, args, chosen, &path, base_command).await? else {
        return Ok(0);
    };
    if args.dry_run {
        println!("would resume {} from {}", target.name, chosen.name);
        println!("would launch: {command}");
        return Ok(0);
    }
    if !ctx.quiet {
        println!("resuming from {} ({path})", chosen.name);
    }
    launch(ctx, target, session, spec(target, command, edit, backend, true), true).await?;
    Ok(0)
}

/// The checkpoint to resume from: `--from` (complete, unless `--force`), else the newest complete one.
fn resume_checkpoint<'a>(
    listing: &'a rprobe::CkptsProbe,
    target: &Target,
    args: &ResumeArgs,
) -> anyhow::Result<&'a crate::train::checkpoints::Checkpoint> {
    let Some(want) = &args.from else {
        return listing.newest_complete().ok_or_else(|| {
            anyhow::anyhow!(
                "no complete checkpoint in {} on {}: nothing to resume from",
                listing.dir_display(),
                target.name
            )
        });
    };
    let found = listing.checkpoints.iter().find(|c| {
        c.name == *want || String::from_utf8_lossy(&listing.checkpoint_path(c)) == want.trim_end_matches('/')
    });
    let c = found.ok_or_else(|| {
        let names: Vec<&str> = listing.checkpoints.iter().map(|c| c.name.as_str()).collect();
        anyhow::anyhow!(
            "no checkpoint {want:?} in {} on {} (there are: {})",
            listing.dir_display(),
            target.name,
            names.join(", ")
        )
    })?;
    if !c.complete && !args.force {
        anyhow::bail!(
            "checkpoint {} is incomplete (no trainer_state.json: it was probably cut off mid-save); use --force to resume from it anyway",
            c.name
        );
    }
    Ok(c)
}

/// What the relaunch runs: `resume_command` filled with the checkpoint, or the plain command with the
/// training config's `resume_from_checkpoint` edited (written under up's lock only if the file is still
/// what was read here). `None`: `--dry-run` has shown the config edit, nothing more to do.
async fn resume_plan(
    session: &Session,
    target: &Target,
    args: &ResumeArgs,
    chosen: &crate::train::checkpoints::Checkpoint,
    path: &str,
    base_command: String,
) -> anyhow::Result<Option<(String, Option<FileEdit>)>> {
    if let Some(template) = &target.settings.resume_command {
        return Ok(Some((run::resume_command(template, path), None)));
    }
    let file = &target.settings.train_config;
    let text = read_train_config(session, target).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "the training config {file} does not exist on {} (set `train_config`, or `resume_command`, in rtrain's config)",
            target.name
        )
    })?;
    let edit = train_config::edit_resume_from_checkpoint(&text, path)
        .map_err(|e| anyhow::anyhow!("cannot set resume_from_checkpoint in {file}: {e}"))?;
    if args.dry_run {
        println!(
            "would resume {} from {} (step {})",
            target.name,
            chosen.name,
            chosen.step.map(|s| s.to_string()).unwrap_or("?".into())
        );
        println!("--- {file}");
        println!("+++ {file} (line {})", edit.line);
        print!("{}", edit.diff());
        println!("would launch: {base_command}");
        return Ok(None);
    }
    let edit = FileEdit {
        path: file.clone(),
        content: edit.text,
        backup: true,
        expect_sha256: Some(run::sha256_hex(text.as_bytes())),
    };
    Ok(Some((base_command, Some(edit))))
}

#[cfg(test)]
mod follow_tests {
    //! The byte bookkeeping of `logs -f` over a model of the box's log script: a log that grows between
    //! attempts, answers cut at any byte (also before the header), delivered in any chunks.
    use super::*;
    use proptest::prelude::*;

    /// What the log script's `rt_range` start is for `start` on a log of `log.len()` bytes.
    fn script_start(log: &[u8], start: LogStart) -> u64 {
        match start {
            LogStart::Offset(o) => o.min(log.len() as u64),
            LogStart::LastLines(n) => {
                // `tail -n N`: the last N lines, a final line without its newline counting as one.
                let body = log.strip_suffix(b"\n").unwrap_or(log);
                let mut at = log.len();
                let mut seen = 0;
                for (i, b) in body.iter().enumerate().rev() {
                    if *b == b'\n' {
                        seen += 1;
                        if seen == n {
                            at = i + 1;
                            break;
                        }
                    }
                }
                if n == 0 {
                    log.len() as u64
                } else if seen < n {
                    0
                } else {
                    at as u64
                }
            }
        }
    }

    /// One reconnect: how far the log has grown (percent), where the answer is cut, the chunk sizes.
    type Attempt = (usize, Option<usize>, Vec<usize>);

    fn attempts() -> impl Strategy<Value = (Vec<u8>, Vec<Attempt>)> {
        (
            proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..600),
            // Per attempt: how far the log has grown (a fraction), where the answer is cut (None: before the
            // header), and the chunk sizes it arrives in.
            proptest::collection::vec(
                (
                    0usize..=100,
                    proptest::option::of(0usize..700),
                    proptest::collection::vec(1usize..64, 0..12),
                ),
                1..10,
            ),
        )
    }

    proptest! {
        #[test]
        fn any_cuts_and_chunks_print_every_byte_exactly_once((log, plan) in attempts(), lines in proptest::option::of(0usize..8)) {
            let first = lines.map_or(LogStart::Offset(0), LogStart::LastLines);
            let mut cursor = FollowCursor { run_id: None, start: first };
            let mut printed = Vec::new();
            let mut collapser = CrCollapser::new();
            let mut collapsed = Vec::new();
            let mut size = 0usize;
            let mut first_start = None;
            for (grow, cut, chunks) in plan.iter().chain(std::iter::once(&(100, Some(usize::MAX), vec![]))) {
                // The log only grows; the last attempt sees it whole and is not cut.
                size = size.max(log.len() * grow / 100);
                let visible = &log[..size];
                let start = script_start(visible, cursor.start);
                let header = cut.map(|_| run::LogHeader { id: "r1".into(), log: "l".into(), start });
                if header.is_some() {
                    // Where the first answer that got through began: the log from there on is what must be printed.
                    first_start.get_or_insert(start);
                }
                let sent = &visible[start as usize..];
                let sent = &sent[..cut.unwrap_or(0).min(sent.len())];
                let mut rest = sent;
                for c in chunks.iter().chain(std::iter::repeat(&64)) {
                    if rest.is_empty() {
                        break;
                    }
                    let (now, later) = rest.split_at((*c).min(rest.len()));
                    printed.extend_from_slice(now);
                    for l in collapser.feed(now) {
                        collapsed.extend_from_slice(&l);
                        collapsed.push(b'\n');
                    }
                    rest = later;
                }
                cursor.advance(header.as_ref(), sent.len() as u64);
            }
            let from = first_start.unwrap() as usize;
            prop_assert_eq!(&printed[..], &log[from..]);
            // The \r collapsing does not depend on where the chunks were cut either.
            if let Some(last) = collapser.finish() {
                collapsed.extend_from_slice(&last);
                collapsed.push(b'\n');
            }
            let mut whole = CrCollapser::new();
            let mut want = Vec::new();
            for l in whole.feed(&log[from..]) {
                want.extend_from_slice(&l);
                want.push(b'\n');
            }
            if let Some(last) = whole.finish() {
                want.extend_from_slice(&last);
                want.push(b'\n');
            }
            prop_assert_eq!(collapsed, want);
            prop_assert_eq!(cursor.run_id.as_deref(), Some("r1"));
        }
    }
}
