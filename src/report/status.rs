//! `status`: the `status --json` document (DESIGN.md "JSON": stable names, unknown is null), the
//! loss history `top` and `status --history` draw, and the panel people read.

use super::{facts, finite};
use crate::remote::probe::{LogSource, RunState, StatusProbe};
use crate::train::gpu::Gpu;
use crate::train::human::{fmt_age, fmt_bytes, fmt_duration, fmt_rate};
use crate::train::trainer_state::HistoryPoint;
use serde::Serialize;
use std::fmt::Write as _;

/// `status --json` (one host; several hosts make an array of these).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusJson {
    pub host: String,
    pub reachable: bool,
    pub session: SessionJson,
    pub run: Option<RunJson>,
    pub progress: ProgressJson,
    pub latest_checkpoint: Option<LatestCheckpointJson>,
    /// `[]`: no GPU (or no working driver); `null`: not known (host unreachable).
    pub gpus: Option<Vec<Gpu>>,
    pub disk: Option<DiskJson>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionJson {
    pub name: String,
    /// The session of `backend` exists; `false` for a backend without sessions (nohup) or one the box lacks.
    pub exists: Option<bool>,
    /// Added (kept for scripts from before backends: the box has tmux).
    pub tmux_installed: Option<bool>,
    /// Added: the backend whose session this is: the current run's, else the configured one (`auto`
    /// resolved on the box; `none` when it offers none).
    pub backend: Option<String>,
    /// Added: what the box offers, in `auto`'s order of preference (`tmux`, `screen`, `nohup`).
    pub available_backends: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunJson {
    pub id: String,
    pub state: RunState,
    pub pid: Option<u32>,
    pub started_at: Option<String>,
    pub exit_code: Option<i32>,
    pub log: Option<String>,
    pub command: Option<String>,
    /// Added: the backend the run was launched with: `tmux`, `screen` or `nohup`.
    pub backend: String,
    /// Added: seconds since the run's log last grew (its mtime against the remote clock).
    pub silent_seconds: Option<i64>,
    /// Added: running, and silent for `stall_after` or longer (a hang: NCCL, a dataloader deadlock, a full disk).
    pub stalled: bool,
    /// Added: how a run ended beyond its exit code (Slurm: `timeout`, `preempted`, `node_fail`, `out_of_memory`,
    /// `cancelled`); `null` otherwise.
    pub reason: Option<String>,
    /// Added: the Slurm job of a `backend: slurm` run; `null` on other backends.
    pub slurm: Option<SlurmJson>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlurmJson {
    pub job_id: String,
    /// The scheduler's state of the job (`PENDING`, `RUNNING`, ...) while it still knows the job.
    pub job_state: Option<String>,
    /// Why a pending job waits (`Resources`, `Priority`, ...).
    pub pending_reason: Option<String>,
    pub node: Option<String>,
    pub time_limit_seconds: Option<u64>,
    pub elapsed_seconds: Option<u64>,
    pub restarts: usize,
    pub max_restarts: Option<u32>,
    pub restart_reasons: Vec<String>,
}

impl SlurmJson {
    pub fn of(j: &crate::remote::slurm::SlurmRun) -> SlurmJson {
        SlurmJson {
            job_id: j.job_id.clone(),
            job_state: j.state().map(|s| s.name().to_string()),
            pending_reason: j
                .queue
                .as_ref()
                .filter(|_| j.is_pending())
                .and_then(|q| q.reason.clone()),
            node: j.node(),
            time_limit_seconds: j.time_limit_seconds(),
            elapsed_seconds: j.elapsed_seconds(),
            restarts: j.restarts.len(),
            max_restarts: j.max_restarts,
            restart_reasons: j.restarts.iter().map(|r| r.reason.clone()).collect(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProgressJson {
    pub step: Option<u64>,
    pub total: Option<u64>,
    pub seconds_per_step: Option<f64>,
    pub eta_seconds: Option<f64>,
    pub loss: Option<f64>,
    /// Added: the step `loss` belongs to (from the log, or from a checkpoint's log_history).
    pub loss_step: Option<u64>,
    /// Added: where `loss` came from: `log`, the checkpoint's name whose trainer_state.json had it, or the path of
    /// the metrics.csv.
    pub loss_from: Option<String>,
    /// Added: the kind of source of `loss`: `log`, `trainer_state` or `metrics_csv` (TensorBoard event files are
    /// not read yet).
    pub loss_source: Option<String>,
    /// Added.
    pub epoch: Option<f64>,
    /// Added: the bar jumped here from 0 (a resume); the rate is measured after the jump.
    pub resumed_at_step: Option<u64>,
    /// Added, only with `status --history`: the loss curve, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryPoint>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatestCheckpointJson {
    pub name: String,
    pub step: Option<u64>,
    pub age_seconds: Option<i64>,
    /// Added: saved by the current run (or the one it resumed from); `false`: an earlier run's, found in the
    /// checkpoint directory; `null` without a run record.
    pub of_current_run: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskJson {
    pub path: String,
    pub free_bytes: Option<u64>,
    pub total_bytes: Option<u64>,
}

impl StatusJson {
    /// A host that could not be reached: everything but the names is unknown.
    pub fn unreachable(host: &str, session: &str) -> StatusJson {
        StatusJson {
            host: host.to_string(),
            reachable: false,
            session: SessionJson {
                name: session.to_string(),
                exists: None,
                tmux_installed: None,
                backend: None,
                available_backends: None,
            },
            run: None,
            progress: ProgressJson::default(),
            latest_checkpoint: None,
            gpus: None,
            disk: None,
        }
    }

    /// Re-decide `run.stalled` with the host's `stall_after` ([`StatusJson::build`] uses the default).
    pub fn apply_stall_after(&mut self, stall_after: std::time::Duration) {
        if let Some(r) = &mut self.run {
            r.stalled = facts::is_stalled(r.state, r.silent_seconds, stall_after);
        }
    }

    pub fn build(host: &str, session: &str, p: &StatusProbe) -> StatusJson {
        let sum = &p.log_summary;
        // An earlier run's loss is never shown next to this run's state.
        let ts_entry = facts::current_trainer_state(p);
        let ts = ts_entry.map(|(_, t)| t);
        let bar = sum.progress.as_ref();
        let running = facts::run_is(p, RunState::Running);
        let step = facts::current_step(p, ts);
        let total = facts::total_steps(p, ts);
        let seconds_per_step = facts::pace(p).map(|p| p.seconds_per_step);
        let eta_seconds = if !running {
            None
        } else if bar.is_some() && sum.eta_seconds.is_some() {
            sum.eta_seconds
        } else {
            match (step, total, seconds_per_step) {
                (Some(s), Some(t), Some(sps)) => Some(t.saturating_sub(s) as f64 * sps),
                _ => None,
            }
        };
        // The log's own dict lines first; until one arrives (or when the trainer's stdout is buffered), the newest
        // loss the newest complete checkpoint of this run recorded.
        // The trainer's own number only: the config file may be overridden on the command line.
        let logging_steps = ts.and_then(|t| t.logging_steps);
        // A Lightning run: the newest row of its metrics.csv (with its real step), else the loss its epoch bar shows.
        let csv = facts::current_metrics_loss(p);
        let (loss, loss_step, loss_from, loss_source) = match (sum.loss, csv, sum.epoch_bars.loss, ts_entry) {
            (Some(l), ..) => (
                Some(l),
                sum.loss_step.map(|s| facts::logged_step(s, logging_steps)),
                Some("log".to_string()),
                Some("log"),
            ),
            (None, Some(c), ..) => (
                Some(c.loss),
                c.step,
                p.metrics
                    .as_ref()
                    .map(|m| String::from_utf8_lossy(&m.path).into_owned()),
                Some("metrics_csv"),
            ),
            (None, None, Some(l), _) => (
                Some(l),
                sum.epoch_bars.global_step(),
                Some("log".to_string()),
                Some("log"),
            ),
            (None, None, None, Some((name, t))) if t.last_loss.is_some() => {
                (t.last_loss, t.last_loss_step, Some(name.clone()), Some("trainer_state"))
            }
            _ => (None, None, None, None),
        };
        let latest_checkpoint = p.ckpts.newest_complete().map(|c| LatestCheckpointJson {
            name: c.name.clone(),
            step: c.step,
            age_seconds: facts::age_seconds(p, c),
            of_current_run: p.run.as_ref().map(|_| facts::checkpoint_is_of_current_run(p, &c.name)),
        });
        // Only the run's own log counts (see the probe script), so another run's output never hides a hang.
        let silent_seconds = match (p.ckpts.now, p.log.as_ref().and_then(|l| l.mtime)) {
            (Some(now), Some(m)) if p.log.as_ref().is_some_and(|l| l.source == LogSource::Record) => {
                Some((now - m).max(0))
            }
            _ => None,
        };
        StatusJson {
            host: host.to_string(),
            reachable: true,
            session: SessionJson {
                name: session.to_string(),
                exists: Some(p.session_exists.unwrap_or(false)),
                tmux_installed: Some(p.tmux_installed),
                backend: p.session_backend.clone(),
                available_backends: Some(p.available_backends.clone()),
            },
            run: p.run.as_ref().map(|r| RunJson {
                id: r.id.clone(),
                state: r.state,
                pid: r.pid,
                started_at: r.started_at.clone(),
                exit_code: r.exit_code,
                log: r.log.clone(),
                command: r.command.clone(),
                backend: r.backend.clone(),
                silent_seconds,
                stalled: facts::is_stalled(r.state, silent_seconds, crate::config::DEFAULT_STALL_AFTER),
                reason: r.slurm.as_ref().and_then(|j| j.reason()),
                slurm: r.slurm.as_ref().map(SlurmJson::of),
            }),
            progress: ProgressJson {
                step,
                total,
                seconds_per_step: finite(seconds_per_step),
                eta_seconds: finite(eta_seconds),
                loss: finite(loss),
                loss_step,
                loss_from,
                loss_source: loss_source.map(str::to_string),
                epoch: finite(
                    sum.epoch
                        .or(ts.and_then(|t| t.epoch))
                        .or(sum.epoch_bars.last.as_ref().map(|u| u.epoch as f64)),
                ),
                resumed_at_step: sum.resumed_at_step,
                history: None,
            },
            latest_checkpoint,
            gpus: Some(p.gpus.gpus.clone()),
            disk: Some(DiskJson {
                path: p.ckpts.disk_path_display(),
                free_bytes: p.ckpts.disk.as_ref().map(|d| d.free_bytes),
                total_bytes: p.ckpts.disk.as_ref().map(|d| d.total_bytes),
            }),
        }
    }
}

/// log printed after that checkpoint's last entry (the log tail alone when there is no checkpoint yet).
pub fn history(p: &StatusProbe) -> Vec<HistoryPoint> {
    let logging_steps = p.trainer_state.as_ref().and_then(|(_, t)| t.logging_steps);
    let mut out: Vec<HistoryPoint> = facts::current_trainer_state(p)
        .map(|(_, t)| t.history.clone())
        .unwrap_or_default();
    let last = out.iter().filter_map(|h| h.step).max();
    let mut logged: Vec<HistoryPoint> = p
        .log_summary
        .history
        .iter()
        .map(|h| HistoryPoint {
            step: h.step.map(|s| facts::logged_step(s, logging_steps)),
            ..*h
        })
        .collect();
    // A trainer whose stdout is buffered prints several loss lines at once, all after the same bar
    // redraw: the last of them is at that step, the ones before it one logging interval apart.
    if let Some(every) = logging_steps {
        let mut i = 0;
        while i < logged.len() {
            let mut j = i;
            while j + 1 < logged.len() && logged[j + 1].step == logged[i].step {
                j += 1;
            }
            if let Some(s) = logged[i].step {
                for (k, h) in logged[i..=j].iter_mut().enumerate() {
                    h.step = s.checked_sub((j - i - k) as u64 * every);
                }
            }
            i = j + 1;
        }
    }
    out.extend(
        logged
            .into_iter()
            .filter(|h| last.is_none() || h.step.is_some_and(|s| Some(s) > last)),
    );
    out
}

/// The status panel of one host: `j` and, when the host answered, the probe it was built from (for
/// what JSON does not carry: the log's tail and mtime).
pub fn render_status(j: &StatusJson, probe: Option<&StatusProbe>, several: bool) -> Vec<Segment> {
    let mut segs = Vec::new();
    let mut s = String::new();
    // Why a host could not be asked is said once, on stderr; among several hosts its row says
    // only that, so the others line up.
    let Some(p) = probe else {
        if several {
            let what = if j.reachable { "no answer" } else { "unreachable" };
            let _ = writeln!(s, "{}: {what} (see below)", j.host);
        }
        return vec![Segment::Text(s)];
    };
    let session = session_words(&j.session);
    let run = run_line(j, p);
    let _ = writeln!(s, "{}  {run}  {session}", j.host);
    let pr = &j.progress;
    if let (Some(step), Some(total)) = (pr.step, pr.total) {
        let mut line = String::new();
        if let Some(sps) = pr.seconds_per_step.filter(|s| *s > 0.0) {
            let _ = write!(line, "  {}", fmt_rate(sps));
        }
        if let Some(eta) = pr.eta_seconds {
            let _ = write!(line, "  ETA {}", fmt_duration(eta));
        }
        if let Some(loss) = pr.loss {
            let _ = write!(line, "  loss {loss:.4}{}", loss_origin(pr));
        }
        segs.push(Segment::Text(std::mem::take(&mut s)));
        segs.push(Segment::Bar {
            step,
            total,
            msg: line.trim_start().to_string(),
        });
    } else if let Some(step) = pr.step {
        // A Lightning run without max_steps in a config: its bars count epochs, so the run's total is unknown.
        let _ = write!(s, "  step {step} (total steps unknown)");
        if let Some(sps) = pr.seconds_per_step.filter(|s| *s > 0.0) {
            let _ = write!(s, "  {}", fmt_rate(sps));
        }
        if let Some(loss) = pr.loss {
            let _ = write!(s, "  loss {loss:.4}{}", loss_origin(pr));
        }
        s.push('\n');
    } else if let Some(loss) = pr.loss {
        let _ = writeln!(s, "  loss {loss:.4}{}", loss_origin(pr));
    }
    if p.log_summary.loss.is_some_and(|l| !l.is_finite()) {
        let _ = writeln!(s, "  ! the loss is not a number (diverged?)");
    }
    let _ = writeln!(s, "{}", checkpoint_line(j));
    hardware_lines(&mut s, j);
    last_log_lines(&mut s, j, p);
    segs.push(Segment::Text(s));
    segs
}

/// `run 20261129-… RUNNING (pid 42, since …)`, with how long it has been silent when it stalled.
fn run_line(j: &StatusJson, p: &StatusProbe) -> String {
    match &j.run {
        None => "no run yet".to_string(),
        Some(r) => {
            let mut line = format!("run {} {}", r.id, r.state.as_str().to_uppercase());
            if let (true, Some(silent)) = (r.stalled, r.silent_seconds) {
                let _ = write!(line, ", STALLED for {}", fmt_duration(silent as f64));
                if let Some(m) = p.log.as_ref().and_then(|l| l.mtime) {
                    let _ = write!(line, " (no output since {})", clock_time(m));
                }
            }
            if let Some(pid) = r.pid {
                if r.state == RunState::Running {
                    let _ = write!(line, " (pid {pid}");
                    if let Some(t) = &r.started_at {
                        let _ = write!(line, ", since {t}");
                    }
                    line.push(')');
                }
            }
            if let Some(c) = r.exit_code {
                if r.state != RunState::Running {
                    let why = r.reason.as_ref().map(|w| format!(", {w}")).unwrap_or_default();
                    let _ = write!(line, " (exit {c}{why})");
                }
            }
            if let Some(slurm) = p.run.as_ref().and_then(|r| r.slurm.as_ref()) {
                let _ = write!(line, "  {}", slurm.phrase());
            }
            line
        }
    }
}

/// `  latest checkpoint checkpoint-40 (3 min ago)`, and the work at risk when that is long ago.
fn checkpoint_line(j: &StatusJson) -> String {
    let Some(c) = &j.latest_checkpoint else {
        return "  no complete checkpoint yet".to_string();
    };
    let age = c.age_seconds.map(fmt_age).unwrap_or_else(|| "age unknown".into());
    let earlier = if c.of_current_run == Some(false) {
        ", from an earlier run"
    } else {
        ""
    };
    let mut line = format!("  latest checkpoint {} ({age}{earlier})", c.name);
    let running = j.run.as_ref().is_some_and(|r| r.state == RunState::Running);
    if let (true, Some(a)) = (running, c.age_seconds) {
        if a >= 15 * 60 {
            let _ = write!(
                line,
                " — work at risk: {} since last checkpoint",
                fmt_duration(a as f64)
            );
        }
    }
    line
}

/// One line per GPU, then the disk the checkpoints are on.
fn hardware_lines(s: &mut String, j: &StatusJson) {
    if let Some(gpus) = &j.gpus {
        for g in gpus {
            let util = g
                .util_percent
                .map(|u| format!("{u:.0}%"))
                .unwrap_or_else(|| "?%".into());
            let mem = match (g.mem_used_mib, g.mem_total_mib) {
                (Some(u), Some(t)) => format!("{u}/{t} MiB"),
                _ => "memory ?".into(),
            };
            let name = g.name.clone().unwrap_or_default();
            let idx = g.index.map(|i| i.to_string()).unwrap_or_else(|| "?".into());
            let _ = writeln!(s, "  GPU {idx} {name}  {util}  {mem}");
        }
    }
    if let Some(d) = &j.disk {
        if let (Some(free), Some(total)) = (d.free_bytes, d.total_bytes) {
            let _ = writeln!(s, "  disk {}: {} free of {}", d.path, fmt_bytes(free), fmt_bytes(total));
        }
    }
}

/// A failed or lost run: the last lines of its log say why.
fn last_log_lines(s: &mut String, j: &StatusJson, p: &StatusProbe) {
    let ended_badly = j
        .run
        .as_ref()
        .is_some_and(|r| matches!(r.state, RunState::Failed | RunState::Lost));
    if ended_badly {
        if let Some(log) = &p.log {
            let text = crate::train::progress::collapse_cr(&log.tail);
            let text = String::from_utf8_lossy(&text);
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let _ = writeln!(s, "  last log lines:");
            for l in &lines[lines.len().saturating_sub(8)..] {
                let _ = writeln!(s, "    {l}");
            }
        }
    }
}

/// `14:02` in the local time zone (libc's localtime_r, which honours TZ); with the date when it is
/// a day old or more.
fn clock_time(epoch: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(epoch);
    let t = epoch as libc::time_t;
    // SAFETY: localtime_r only writes the tm we own; a zeroed tm is a valid value of it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return "?".into();
    }
    let hm = format!("{:02}:{:02}", tm.tm_hour, tm.tm_min);
    if now - epoch >= 86_400 {
        format!("{}-{:02}-{:02} {hm}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday)
    } else {
        hm
    }
}

/// ` (step 40, from checkpoint-40)` when the loss is a checkpoint's, not the log's: the log has no
/// loss line yet, so the figure is older than the bar.
fn loss_origin(pr: &ProgressJson) -> String {
    if pr.loss_source.as_deref() == Some("metrics_csv") {
        return match pr.loss_step {
            Some(step) => format!(" (step {step}, from metrics.csv)"),
            None => " (from metrics.csv)".to_string(),
        };
    }
    match (pr.loss_from.as_deref(), pr.loss_step) {
        (Some("log") | None, _) => String::new(),
        (Some(ckpt), Some(step)) => format!(" (step {step}, from {ckpt})"),
        (Some(ckpt), None) => format!(" (from {ckpt})"),
    }
}

/// A line of the status panel: text, or the remote run's progress drawn as a bar.
pub enum Segment {
    Text(String),
    Bar { step: u64, total: u64, msg: String },
}
/// The session part of the panel: tmux's as before backends (`session "training"`), another backend's
/// named after it, and a backend the box lacks in capitals.
fn session_words(j: &SessionJson) -> String {
    let backend = j.backend.as_deref().unwrap_or("tmux");
    let installed = j
        .available_backends
        .as_ref()
        .is_none_or(|a| a.iter().any(|b| b == backend));
    let of = if backend == "tmux" {
        String::new()
    } else {
        format!(" ({backend})")
    };
    match (backend, j.exists) {
        ("none", _) => "NO tmux, screen OR nohup".to_string(),
        ("nohup", _) => "no session (nohup)".to_string(),
        _ if !installed || j.tmux_installed == Some(false) && backend == "tmux" => {
            format!("{backend} NOT INSTALLED")
        }
        (_, Some(true)) => format!("session {:?}{of}", j.name),
        _ => format!("no session {:?}{of}", j.name),
    }
}
