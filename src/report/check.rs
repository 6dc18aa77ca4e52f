//! `check`: the inputs of the risk model read from the status probe (through the same precedence
//! as `status`, see [`super::facts`]), the `check --json` document and the report people read.

use super::{facts, finite};
use crate::remote::backend;
use crate::remote::probe::{RunState, StatusProbe};
use crate::train::checkpoints::Layout;
use crate::train::human::{fmt_bytes, fmt_duration, fmt_rate};
use crate::train::risk::{self, RiskInputs, RiskLevel, RiskReport};
use serde::Serialize;
use std::fmt::Write as _;

/// The inputs of the `check` model, from what the status probe measured. Precedence: the running
/// trainer's own numbers (progress bar, trainer_state.json) over the training config file, which
/// may have been edited since the run started. Unlike `status`, an earlier run's trainer_state.json
/// still counts here: save_steps and save_total_limit are the project's, not the run's.
pub fn check_inputs(p: &StatusProbe) -> RiskInputs {
    let ts = p.trainer_state.as_ref().map(|(_, t)| t);
    let cfg = p.train_config.as_ref();
    let max_steps = facts::total_steps(p, ts);
    let save_steps = ts
        .and_then(|t| t.save_steps)
        .or(cfg.and_then(|c| c.effective_save_steps(max_steps)));
    let pace = facts::pace(p);
    let (seconds_per_step, source) = (pace.map(|p| p.seconds_per_step), pace.map(|p| p.source));
    let newest = p.ckpts.newest_complete();
    let hf = p
        .ckpts
        .checkpoints
        .iter()
        .filter(|c| c.layout == Layout::HuggingFace)
        .count();
    let existing = if hf > 0 {
        hf
    } else {
        p.ckpts.checkpoints.iter().filter(|c| !c.symlink).count()
    };
    RiskInputs {
        save_steps,
        save_total_limit: ts
            .and_then(|t| t.save_total_limit)
            .or(cfg.and_then(|c| c.save_total_limit)),
        max_steps,
        current_step: facts::current_step(p, ts),
        seconds_per_step: finite(seconds_per_step),
        seconds_per_step_source: source.map(str::to_string),
        checkpoint_bytes: newest.filter(|c| !c.symlink).and_then(|c| c.bytes),
        free_bytes: p.ckpts.disk.as_ref().map(|d| d.free_bytes),
        existing_checkpoints: existing as u64,
        since_last_checkpoint_seconds: newest.and_then(|c| facts::age_seconds(p, c)),
        running: facts::run_is(p, RunState::Running),
        finished: facts::run_is(p, RunState::Finished),
        job_seconds_left: p
            .run
            .as_ref()
            .and_then(|r| r.slurm.as_ref())
            .and_then(|j| j.seconds_left()),
    }
}

/// `check --json`: the host, the report, and how the run is kept alive.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckJson {
    pub host: String,
    #[serde(flatten)]
    pub report: RiskReport,
    pub backend: BackendCheck,
}

/// What keeps the run alive on the box, and what could still end it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BackendCheck {
    /// The current run's backend as recorded, else the configured one as the box resolves it (`null`: the box
    /// offers none).
    pub name: Option<String>,
    /// The run has a terminal `attach` can join (tmux, screen); `null` when the backend is unknown.
    pub terminal: Option<bool>,
    /// The backends the box offers, in `auto`'s order.
    pub available: Vec<String>,
    /// logind kills the user's processes, the run's included, when the last SSH session closes
    /// (`KillUserProcesses=yes`); `null` when the probe did not ask.
    pub killed_at_logout: Option<bool>,
    /// One line per risk, with the way out.
    pub findings: Vec<String>,
}

impl BackendCheck {
    pub fn build(host: &str, p: &StatusProbe) -> BackendCheck {
        let name = p
            .run
            .as_ref()
            .map(|r| r.backend.clone())
            .or_else(|| p.session_backend.clone())
            .filter(|b| b != "none");
        let b = name.as_deref().and_then(backend::by_name);
        let mut findings = Vec::new();
        if let Some(w) = p.logind.as_ref().and_then(|l| l.warning(host)) {
            findings.push(w);
        }
        if b.is_some_and(|b| !b.has_terminal() && !b.tracks_its_own_run()) {
            findings.push(
                "nohup runs have no terminal: stdin is /dev/null and `attach` shows the log; a program that asks \
                 for input or needs a TTY fails (use --backend tmux or screen if the box has one)"
                    .to_string(),
            );
        }
        if name.is_none() {
            findings.push(format!("{host} offers no backend rtrain can start a run with"));
        }
        BackendCheck {
            terminal: b.map(|b| b.has_terminal()),
            name,
            available: p.available_backends.clone(),
            killed_at_logout: p.logind.as_ref().map(|l| l.kills_at_logout()),
            findings,
        }
    }
}

impl CheckJson {
    pub fn build(host: &str, p: &StatusProbe) -> CheckJson {
        CheckJson {
            host: host.to_string(),
            report: risk::assess(&check_inputs(p)),
            backend: BackendCheck::build(host, p),
        }
    }
}

/// The human report of `rtrain check`: the checkpoint report, then the backend's lines — except for a run
/// that is over, which stays one line unless the backend has a finding (it concerns the next run).
pub fn render_check(j: &CheckJson) -> String {
    let report = render_report(&j.host, &j.report);
    if j.report.finished && j.backend.findings.is_empty() {
        return report;
    }
    report + &render_backend(&j.backend)
}

/// The human lines of [`BackendCheck`], after the checkpoint report.
fn render_backend(b: &BackendCheck) -> String {
    let mut s = String::new();
    let available = if b.available.is_empty() {
        "none".to_string()
    } else {
        b.available.join(", ")
    };
    let name = b.name.as_deref().unwrap_or("none");
    let _ = writeln!(s, "\n  backend:           {name} (the box offers: {available})");
    for f in &b.findings {
        let _ = writeln!(s, "  ! {f}");
    }
    s
}

fn or_unknown<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "unknown".to_string())
}

/// The human report of `rtrain check`: a line when the run is over, else the facts, the findings and
/// the table of alternatives.
pub fn render_report(host: &str, r: &RiskReport) -> String {
    if r.finished {
        return render_over(host, r);
    }
    let mut s = render_facts(host, r);
    for f in &r.findings {
        let _ = writeln!(s, "  ! {f}");
    }
    for u in &r.unknown {
        let _ = writeln!(s, "  ? unknown: {u}");
    }
    s + &render_alternatives(r)
}

fn render_over(host: &str, r: &RiskReport) -> String {
    let at = match (r.inputs.current_step, r.inputs.max_steps) {
        (Some(c), Some(m)) => format!(" at step {c} of {m}"),
        (Some(c), None) => format!(" at step {c}"),
        _ => String::new(),
    };
    format!("{host}: the run is over{at}: nothing is at risk\n")
}

/// The level, then what was measured and projected, a line each.
fn render_facts(host: &str, r: &RiskReport) -> String {
    let i = &r.inputs;
    let mut s = String::new();
    let level = match r.level {
        RiskLevel::Ok => "OK",
        RiskLevel::Warn => "WARNING",
        RiskLevel::Danger => "DANGER",
        RiskLevel::Unknown => "UNKNOWN",
    };
    let _ = writeln!(s, "{host}: checkpoint safety {level}");
    let pace = or_unknown(i.seconds_per_step, |x| {
        let src = i
            .seconds_per_step_source
            .as_deref()
            .map(|s| format!(", from {s}"))
            .unwrap_or_default();
        format!("{}{src}", fmt_rate(x))
    });
    let _ = writeln!(s, "  pace:              {pace}");
    let interval = match &r.current {
        Some(p) => format!(
            "every {} steps = {}",
            p.save_steps,
            or_unknown(p.interval_minutes, |m| fmt_duration(m * 60.0))
        ),
        None => "unknown (save_steps unknown)".to_string(),
    };
    let _ = writeln!(s, "  checkpoint:        {interval}");
    let _ = writeln!(
        s,
        "  last complete:     {}",
        or_unknown(i.since_last_checkpoint_seconds, |a| format!(
            "{} ago",
            fmt_duration(a as f64)
        ))
    );
    if let Some(m) = r.minutes_to_next_checkpoint {
        let _ = writeln!(s, "  next due in:       {}", fmt_duration(m * 60.0));
    }
    if let Some(m) = r.minutes_to_job_end {
        let _ = writeln!(s, "  job ends in:       {} (its time limit)", fmt_duration(m * 60.0));
    }
    let _ = writeln!(s, "  checkpoint size:   {}", or_unknown(i.checkpoint_bytes, fmt_bytes));
    let _ = writeln!(s, "  free disk:         {}", or_unknown(i.free_bytes, fmt_bytes));
    if let Some(p) = &r.current {
        let limit = or_unknown(i.save_total_limit, |l| l.to_string());
        match p.from_step {
            Some(from) => {
                let _ = writeln!(
                    s,
                    "  still to write:    {} checkpoint(s) from step {from} (save_total_limit {limit}, at most {} on disk)",
                    or_unknown(p.checkpoints_to_write, |n| n.to_string()),
                    or_unknown(p.peak_checkpoints, |n| n.to_string())
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "  still to write:    unknown: the current step is unknown (save_total_limit {limit})"
                );
            }
        }
        let fits = match p.fits {
            Some(true) => "fits",
            Some(false) => "DOES NOT FIT",
            None => "fit unknown",
        };
        let _ = writeln!(
            s,
            "  disk needed:       {} more, {fits}",
            or_unknown(p.disk_needed_bytes, fmt_bytes)
        );
    }
    s
}

/// The table of save_steps alternatives.
fn render_alternatives(r: &RiskReport) -> String {
    let i = &r.inputs;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n  {:>10}  {:>10}  {:>11}  {:>11}  {:>5}",
        "save_steps", "interval", "checkpoints", "disk needed", "fits"
    );
    for a in &r.alternatives {
        // A proposal clipped to the steps that remain: no checkpoint before the end but the last.
        let rest = match (i.max_steps, i.current_step) {
            (Some(m), Some(c)) => Some(m.saturating_sub(c)),
            _ => None,
        };
        let note = match (a.is_current, a.targets_15_minutes) {
            (true, _) => "  (current)",
            (false, true) => "  (~15 min)",
            _ if rest == Some(a.save_steps) => "  (the rest of the run)",
            _ => "",
        };
        let fits = match a.fits {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "?",
        };
        let _ = writeln!(
            s,
            "  {:>10}  {:>10}  {:>11}  {:>11}  {fits:>5}{note}",
            a.save_steps,
            or_unknown(a.interval_minutes, |m| fmt_duration(m * 60.0)),
            or_unknown(a.checkpoints_to_write, |n| n.to_string()),
            or_unknown(a.disk_needed_bytes, fmt_bytes),
        );
    }
    s
}
