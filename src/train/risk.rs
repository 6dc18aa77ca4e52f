//! The `rtrain check` model: how much training a crash would lose and whether the checkpoints
//! still to come fit on the disk, computed from what was measured on the box (step rate,
//! checkpoint size, free space), with alternatives for save_steps. Unknown inputs stay unknown
//! and are reported as such; nothing is filled in from constants.

use crate::train::checkpoints::{Checkpoint, Layout};
use crate::train::human::{fmt_bytes, fmt_duration};
use crate::train::progress::LogSummary;
use serde::Serialize;

/// A crash loses everything since the last checkpoint; beyond this that is a lot of GPU time.
const LONG_INTERVAL_MINUTES: f64 = 60.0;
/// The interval the suggested save_steps aims at.
const TARGET_MINUTES: f64 = 15.0;
/// The fixed save_steps values every report compares.
const STANDARD_SAVE_STEPS: [u64; 3] = [100, 250, 500];

/// What was measured or configured; every field may be unknown.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RiskInputs {
    pub save_steps: Option<u64>,
    pub save_total_limit: Option<u64>,
    pub max_steps: Option<u64>,
    pub current_step: Option<u64>,
    pub seconds_per_step: Option<f64>,
    /// Where seconds_per_step came from ("progress bar", "checkpoint times").
    pub seconds_per_step_source: Option<String>,
    /// Size of one checkpoint (the newest complete one).
    pub checkpoint_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    /// `checkpoint-N` directories already there, which save_total_limit rotation counts.
    pub existing_checkpoints: u64,
    pub since_last_checkpoint_seconds: Option<i64>,
    /// The run is going on (a stale last checkpoint only matters then).
    pub running: bool,
    /// The run ended with exit 0: nothing more to save, so nothing at risk.
    pub finished: bool,
    /// Seconds until the scheduler ends the run's job (a Slurm job's time limit less its elapsed time): work
    /// past the last checkpoint before then is lost at the limit (a restart resumes from that checkpoint).
    pub job_seconds_left: Option<u64>,
}

/// The outlook for one save_steps value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Projection {
    pub save_steps: u64,
    pub interval_minutes: Option<f64>,
    /// The step the projection starts from: the current one; `None` when that is unknown, and then so is
    /// everything counted from it (never from an assumed step 0: issue 19).
    pub from_step: Option<u64>,
    /// Saves still to come, the final save at max_steps included.
    pub checkpoints_to_write: Option<u64>,
    /// The most checkpoints on disk at once (rotation deletes only after the next save).
    pub peak_checkpoints: Option<u64>,
    /// Disk space needed beyond what the existing checkpoints already use.
    pub disk_needed_bytes: Option<u64>,
    pub fits: Option<bool>,
    pub is_current: bool,
    /// The value chosen to give about 15 minutes between checkpoints at the measured pace.
    pub targets_15_minutes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    Ok,
    Warn,
    Danger,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskReport {
    pub level: RiskLevel,
    pub inputs: RiskInputs,
    /// The projection for the configured save_steps, when it is known.
    pub current: Option<Projection>,
    pub minutes_since_last_checkpoint: Option<f64>,
    pub minutes_to_next_checkpoint: Option<f64>,
    pub alternatives: Vec<Projection>,
    /// Problems found, worst first.
    pub findings: Vec<String>,
    /// Inputs that were not available, in words.
    pub unknown: Vec<String>,
    /// Minutes until the scheduler ends the job (its time limit), for a job that has one.
    pub minutes_to_job_end: Option<f64>,
    /// The run is over (finished, or no steps left and not running): nothing is at risk, and
    /// there is nothing to propose.
    pub finished: bool,
}

/// Saves still to come from `from` to `max`: every multiple of `save_steps`, plus the final save
/// the Trainer makes at max_steps when that is not a multiple.
fn saves_remaining(save_steps: u64, from: u64, max: u64) -> u64 {
    if max <= from || save_steps == 0 {
        return 0;
    }
    let multiples = max / save_steps - from / save_steps;
    multiples + u64::from(!max.is_multiple_of(save_steps))
}

/// The projection for one save_steps value.
pub fn project(inputs: &RiskInputs, save_steps: u64) -> Projection {
    let from = inputs.current_step;
    let to_write = inputs
        .max_steps
        .zip(from)
        .map(|(m, from)| saves_remaining(save_steps, from, m));
    let existing = inputs.existing_checkpoints;
    let peak = to_write.map(|k| match (k, inputs.save_total_limit) {
        (0, _) => existing,
        (k, None) => existing + k,
        (k, Some(limit)) => (existing + k).min(existing.max(limit) + 1),
    });
    let needed = match (peak, inputs.checkpoint_bytes) {
        (Some(p), Some(size)) => Some(p.saturating_sub(existing).saturating_mul(size)),
        _ => None,
    };
    Projection {
        save_steps,
        interval_minutes: inputs.seconds_per_step.map(|sps| save_steps as f64 * sps / 60.0),
        from_step: from,
        checkpoints_to_write: to_write,
        peak_checkpoints: peak,
        disk_needed_bytes: needed,
        fits: match (needed, inputs.free_bytes) {
            (Some(n), Some(free)) => Some(n <= free),
            _ => None,
        },
        is_current: inputs.save_steps == Some(save_steps),
        targets_15_minutes: false,
    }
}

/// save_steps giving about 15 minutes at `seconds_per_step`, rounded to two significant digits.
pub fn save_steps_for_minutes(seconds_per_step: f64, minutes: f64) -> Option<u64> {
    if !(seconds_per_step.is_finite() && seconds_per_step > 0.0) {
        return None;
    }
    let raw = minutes * 60.0 / seconds_per_step;
    if raw < 1.0 {
        return Some(1);
    }
    let magnitude = 10f64.powi((raw.log10().floor() as i32 - 1).max(0));
    Some(((raw / magnitude).round() * magnitude).max(1.0) as u64)
}

/// Seconds per step from the two newest complete checkpoints that carry a step, by their
/// modification times: a measurement that needs no progress bar.
pub fn seconds_per_step_from_checkpoints(checkpoints: &[Checkpoint]) -> Option<f64> {
    let mut timed: Vec<(u64, i64)> = checkpoints
        .iter()
        .filter(|c| c.complete && c.layout != Layout::Accelerate)
        .filter_map(|c| Some((c.step?, c.mtime?)))
        .collect();
    timed.sort();
    let (&(s2, t2), &(s1, t1)) = (timed.last()?, timed.get(timed.len().checked_sub(2)?)?);
    (s2 > s1 && t2 > t1).then(|| (t2 - t1) as f64 / (s2 - s1) as f64)
}

/// The run's pace: the one estimate `status` and `check` both show.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    pub seconds_per_step: f64,
    /// In words, for `check`: "the progress bar" or "checkpoint times".
    pub source: &'static str,
}

/// The pace from what a probe saw: measured on the progress bar's updates in the log (see
/// [`crate::train::progress::summarize_log`], which also refuses a rate it cannot trust after a
/// resume); failing that, from the times of the two newest complete checkpoints written by this
/// run (`run_started`, epoch seconds on the box's clock, when known), since an older one's time
/// would count the pause before a resume as training.
pub fn pace(log: &LogSummary, checkpoints: &[Checkpoint], run_started: Option<i64>) -> Option<Pace> {
    if let Some(s) = log.seconds_per_step.filter(|s| s.is_finite() && *s > 0.0) {
        return Some(Pace {
            seconds_per_step: s,
            source: "the progress bar",
        });
    }
    let this_run: Vec<Checkpoint> = checkpoints
        .iter()
        // Strictly after: times are whole seconds, and the checkpoint a resume starts from may
        // have been written in the second the new run started.
        .filter(|c| run_started.is_none_or(|t| c.mtime.is_some_and(|m| m > t)))
        .cloned()
        .collect();
    seconds_per_step_from_checkpoints(&this_run).map(|s| Pace {
        seconds_per_step: s,
        source: "checkpoint times",
    })
}

/// What the model could not measure, one line each.
fn unknowns(inputs: &RiskInputs) -> Vec<String> {
    [
        (
            inputs.save_steps.is_some(),
            "save_steps (not in trainer_state.json nor in the training config)",
        ),
        (
            inputs.max_steps.is_some(),
            "max_steps (no progress bar, trainer_state.json or training config gives it)",
        ),
        (
            inputs.current_step.is_some(),
            "the current step (no progress bar in the log, no step in a metrics file or trainer_state.json): the checkpoints still to write are unknown",
        ),
        (
            inputs.seconds_per_step.is_some(),
            "seconds per step (no progress bar rate and fewer than two timed checkpoints)",
        ),
        (
            inputs.checkpoint_bytes.is_some(),
            "checkpoint size (no complete checkpoint yet)",
        ),
        (inputs.free_bytes.is_some(), "free disk space (df gave nothing)"),
    ]
    .into_iter()
    .filter(|(known, _)| !known)
    .map(|(_, what)| what.to_string())
    .collect()
}

/// The standard save_steps, the current one and the ~15-minute one, each projected. A proposal past
/// the last step is no checkpoint at all before the end: proposals are clipped to the steps that remain
/// (the configured value is a fact and stays as it is).
fn alternatives(inputs: &RiskInputs, remaining: Option<u64>) -> Vec<Projection> {
    let clip = |s: u64| remaining.filter(|r| *r > 0).map_or(s, |r| s.min(r));
    let mut candidates: Vec<u64> = STANDARD_SAVE_STEPS.iter().map(|s| clip(*s)).collect();
    candidates.extend(inputs.save_steps);
    let target = inputs
        .seconds_per_step
        .and_then(|sps| save_steps_for_minutes(sps, TARGET_MINUTES));
    // Clipped, the target no longer gives 15 minutes: it is then just "to the end".
    let clipped_target = target.map(clip);
    let target = target.filter(|t| clipped_target == Some(*t));
    candidates.extend(clipped_target);
    candidates.sort_unstable();
    candidates.dedup();
    candidates
        .into_iter()
        .map(|s| Projection {
            targets_15_minutes: Some(s) == target,
            ..project(inputs, s)
        })
        .collect()
}

/// The dangers and the warnings about the current settings, in that order, and the level they make.
/// `minutes_to_next` is the next checkpoint's, `minutes_to_job_end` the scheduler's time limit's.
fn findings(
    inputs: &RiskInputs,
    current: Option<&Projection>,
    minutes_since: Option<f64>,
    minutes_to_next: Option<f64>,
    minutes_to_job_end: Option<f64>,
) -> (RiskLevel, Vec<String>) {
    let mut danger = Vec::new();
    let mut warn = Vec::new();
    if let (Some(end), Some(next)) = (minutes_to_job_end, minutes_to_next) {
        if next > end {
            warn.push(format!(
                "the job ends in {}; the next checkpoint is due in {} — it will be lost: lower save_steps or raise time",
                fmt_duration(end * 60.0),
                fmt_duration(next * 60.0)
            ));
        }
    }
    if let Some(p) = current {
        if p.fits == Some(false) {
            danger.push(format!(
                "the checkpoints still to come need {} more, but only {} is free",
                fmt_bytes(p.disk_needed_bytes.unwrap_or(0)),
                fmt_bytes(inputs.free_bytes.unwrap_or(0))
            ));
        }
        if let Some(m) = p.interval_minutes.filter(|m| *m > LONG_INTERVAL_MINUTES) {
            warn.push(format!(
                "a crash loses up to {} of training (one checkpoint every {})",
                fmt_duration(m * 60.0),
                fmt_duration(m * 60.0)
            ));
        }
        if let (Some(since), Some(interval)) = (minutes_since, p.interval_minutes) {
            if inputs.running && since > 2.0 * interval + 5.0 {
                warn.push(format!(
                    "no complete checkpoint for {}, although one is due every {}: saving may be failing",
                    fmt_duration(since * 60.0),
                    fmt_duration(interval * 60.0)
                ));
            }
        }
    }
    if inputs.save_total_limit.is_none() && current.is_some_and(|p| p.checkpoints_to_write.unwrap_or(0) > 0) {
        warn.push("save_total_limit is not set: no checkpoint is ever deleted".to_string());
    }
    let level = if !danger.is_empty() {
        RiskLevel::Danger
    } else if !warn.is_empty() {
        RiskLevel::Warn
    } else if current.is_none_or(|p| p.interval_minutes.is_none() || p.fits.is_none()) {
        RiskLevel::Unknown
    } else {
        RiskLevel::Ok
    };
    danger.extend(warn);
    (level, danger)
}

/// Assesses the run.
pub fn assess(inputs: &RiskInputs) -> RiskReport {
    let remaining = match (inputs.max_steps, inputs.current_step) {
        (Some(m), Some(c)) => Some(m.saturating_sub(c)),
        _ => None,
    };
    let minutes_since = inputs.since_last_checkpoint_seconds.map(|s| s as f64 / 60.0);
    if inputs.finished || (remaining == Some(0) && !inputs.running) {
        return RiskReport {
            level: RiskLevel::Ok,
            inputs: inputs.clone(),
            current: None,
            minutes_since_last_checkpoint: minutes_since,
            minutes_to_next_checkpoint: None,
            alternatives: Vec::new(),
            findings: Vec::new(),
            unknown: Vec::new(),
            minutes_to_job_end: None,
            finished: true,
        };
    }
    let current = inputs.save_steps.map(|s| project(inputs, s));
    let minutes_to_next = match (inputs.save_steps, inputs.current_step, inputs.seconds_per_step) {
        (Some(s), Some(c), Some(sps)) if s > 0 && inputs.max_steps.is_none_or(|m| c < m) => {
            Some((s - c % s) as f64 * sps / 60.0)
        }
        _ => None,
    };
    let minutes_to_job_end = inputs
        .job_seconds_left
        .filter(|_| inputs.running)
        .map(|s| s as f64 / 60.0);
    let (level, findings) = findings(
        inputs,
        current.as_ref(),
        minutes_since,
        minutes_to_next,
        minutes_to_job_end,
    );
    RiskReport {
        level,
        inputs: inputs.clone(),
        alternatives: alternatives(inputs, remaining),
        current,
        minutes_since_last_checkpoint: minutes_since,
        minutes_to_next_checkpoint: minutes_to_next,
        findings,
        unknown: unknowns(inputs),
        minutes_to_job_end,
        finished: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::check::render_report;
    use crate::train::checkpoints::{recognise, Entry, EntryKind};

    const GIB: u64 = 1 << 30;

    fn measured() -> RiskInputs {
        RiskInputs {
            save_steps: Some(500),
            save_total_limit: Some(3),
            max_steps: Some(4500),
            current_step: Some(1520),
            seconds_per_step: Some(4.0),
            seconds_per_step_source: Some("progress bar".into()),
            checkpoint_bytes: Some(3 * GIB),
            free_bytes: Some(48 * GIB),
            existing_checkpoints: 3,
            since_last_checkpoint_seconds: Some(80),
            running: true,
            finished: false,
            job_seconds_left: None,
        }
    }

    #[test]
    fn a_job_that_ends_before_its_next_checkpoint_loses_that_work() {
        // 32 min to the next checkpoint (see below); the job has 20 min left.
        let r = assess(&RiskInputs {
            job_seconds_left: Some(20 * 60),
            ..measured()
        });
        assert_eq!(r.level, RiskLevel::Warn);
        assert_eq!(r.minutes_to_job_end, Some(20.0));
        assert_eq!(
            r.findings,
            ["the job ends in 20 min; the next checkpoint is due in 32 min — it will be lost: lower save_steps or raise time"]
        );
        let text = render_report("gpu-box", &r);
        assert!(
            text.contains("  job ends in:       20 min (its time limit)\n"),
            "{text}"
        );
        // With time to spare, nothing is said, and nothing about a job at all without a limit.
        let fine = assess(&RiskInputs {
            job_seconds_left: Some(40 * 60),
            ..measured()
        });
        assert_eq!(
            (fine.level, fine.findings.len()),
            (RiskLevel::Ok, 0),
            "{:?}",
            fine.findings
        );
        assert!(!render_report("b", &assess(&measured())).contains("job ends"));
    }

    #[test]
    fn saves_remaining_counts_multiples_and_the_final_save() {
        assert_eq!(saves_remaining(40, 0, 120), 3, "the fixture run wrote 40, 80, 120");
        assert_eq!(
            saves_remaining(500, 1520, 4500),
            6,
            "2000, 2500, 3000, 3500, 4000, 4500"
        );
        assert_eq!(
            saves_remaining(1000, 1520, 4500),
            4,
            "2000, 3000, 4000 and the final 4500"
        );
        assert_eq!(saves_remaining(500, 4500, 4500), 0);
    }

    #[test]
    fn interval_disk_and_rotation_from_measured_numbers() {
        let r = assess(&measured());
        let p = r.current.clone().unwrap();
        let close = |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() < 1e-9);
        // 500 steps × 4 s = 2000 s = 33 min 20 s.
        assert!(close(p.interval_minutes, 33.0 + 1.0 / 3.0), "{:?}", p.interval_minutes);
        assert_eq!(p.checkpoints_to_write, Some(6));
        assert_eq!(
            p.peak_checkpoints,
            Some(4),
            "3 kept + the one being written before rotation"
        );
        assert_eq!(p.disk_needed_bytes, Some(3 * GIB));
        assert_eq!(p.fits, Some(true));
        assert_eq!(r.level, RiskLevel::Ok);
        assert!(r.unknown.is_empty());
        // Step 1520 of a 500-step interval: 480 steps to 2000, × 4 s = 1920 s = 32 min.
        assert!(
            close(r.minutes_to_next_checkpoint, 32.0),
            "{:?}",
            r.minutes_to_next_checkpoint
        );
    }

    #[test]
    fn without_rotation_every_checkpoint_stays_and_may_not_fit() {
        let r = assess(&RiskInputs {
            save_total_limit: None,
            free_bytes: Some(10 * GIB),
            ..measured()
        });
        let p = r.current.clone().unwrap();
        assert_eq!(p.peak_checkpoints, Some(9));
        assert_eq!(p.disk_needed_bytes, Some(18 * GIB));
        assert_eq!(p.fits, Some(false));
        assert_eq!(r.level, RiskLevel::Danger);
        assert!(r.findings[0].contains("18.0 GiB"), "{:?}", r.findings);
        assert!(r.findings.iter().any(|f| f.contains("save_total_limit is not set")));
    }

    #[test]
    fn alternatives_come_from_the_measured_pace_never_constants() {
        let alts = assess(&measured()).alternatives;
        let steps: Vec<u64> = alts.iter().map(|a| a.save_steps).collect();
        assert_eq!(
            steps,
            [100, 230, 250, 500],
            "900 s / 4 s per step = 225, two significant digits"
        );
        let t = alts.iter().find(|a| a.targets_15_minutes).unwrap();
        // 230 steps × 4 s = 920 s = 15 min 20 s.
        assert!(
            t.interval_minutes
                .is_some_and(|m| (m - (15.0 + 1.0 / 3.0)).abs() < 1e-9),
            "{:?}",
            t.interval_minutes
        );
        assert!(alts.iter().find(|a| a.save_steps == 500).unwrap().is_current);
        let slow = assess(&RiskInputs {
            seconds_per_step: Some(30.0),
            save_steps: Some(1000),
            ..measured()
        });
        assert_eq!(
            slow.alternatives.iter().map(|a| a.save_steps).collect::<Vec<_>>(),
            [30, 100, 250, 500, 1000]
        );
        assert_eq!(
            slow.level,
            RiskLevel::Warn,
            "1000 steps × 30 s is 8 h between checkpoints"
        );
        assert_eq!(save_steps_for_minutes(0.01, 15.0), Some(90_000));
        assert_eq!(save_steps_for_minutes(2000.0, 15.0), Some(1));
        assert_eq!(save_steps_for_minutes(0.0, 15.0), None);
    }

    #[test]
    fn unknown_inputs_stay_unknown_and_are_said() {
        let r = assess(&RiskInputs {
            save_steps: Some(500),
            ..RiskInputs::default()
        });
        let p = r.current.clone().unwrap();
        assert_eq!(
            (p.interval_minutes, p.checkpoints_to_write, p.disk_needed_bytes, p.fits),
            (None, None, None, None)
        );
        assert_eq!(r.level, RiskLevel::Unknown);
        assert_eq!(r.unknown.len(), 5);
        assert!(r
            .alternatives
            .iter()
            .all(|a| !a.targets_15_minutes && a.interval_minutes.is_none()));
        let none = assess(&RiskInputs::default());
        assert!(none.current.is_none());
        assert_eq!(none.level, RiskLevel::Unknown);
        let text = render_report("gpu-box", &none);
        assert!(
            text.contains("UNKNOWN") && text.contains("? unknown: save_steps"),
            "{text}"
        );
    }

    #[test]
    fn a_stale_last_checkpoint_while_running_is_flagged() {
        let r = assess(&RiskInputs {
            since_last_checkpoint_seconds: Some(3 * 3600),
            ..measured()
        });
        assert_eq!(r.level, RiskLevel::Warn);
        assert!(r.findings[0].contains("saving may be failing"));
        let finished = assess(&RiskInputs {
            since_last_checkpoint_seconds: Some(3 * 3600),
            running: false,
            ..measured()
        });
        assert_eq!(finished.level, RiskLevel::Ok);
    }

    #[test]
    fn pace_from_checkpoint_times() {
        let mk = |name: &str, mtime: i64, complete: bool| {
            let mut e = Entry::new(name, EntryKind::Dir);
            e.has_trainer_state = complete;
            e.mtime = Some(mtime);
            e
        };
        let c = recognise(&[
            mk("checkpoint-500", 1000, true),
            mk("checkpoint-1000", 3000, true),
            mk("checkpoint-1500", 9999, false),
        ]);
        assert_eq!(seconds_per_step_from_checkpoints(&c), Some(4.0));
        assert_eq!(seconds_per_step_from_checkpoints(&c[..1]), None);
    }

    #[test]
    fn rendered_report_shows_the_table() {
        let text = render_report("gpu-box", &assess(&measured()));
        assert!(text.contains("every 500 steps = 33 min"), "{text}");
        assert!(text.contains("(~15 min)") && text.contains("(current)"), "{text}");
        assert!(text.contains("3.0 GiB more, fits"), "{text}");
    }
}

/// `check`'s proposals and the shared pace (issue 10): tests apart from the model tests above.
#[cfg(test)]
mod edge_tests {
    use super::*;
    use crate::report::check::render_report;
    use crate::train::checkpoints::{recognise, Entry, EntryKind};

    /// The demo's run: 600 steps at 0.52 s per step, saving every 20.
    fn demo(current_step: u64) -> RiskInputs {
        RiskInputs {
            save_steps: Some(20),
            save_total_limit: None,
            max_steps: Some(600),
            current_step: Some(current_step),
            seconds_per_step: Some(0.52),
            seconds_per_step_source: Some("the progress bar".into()),
            checkpoint_bytes: Some(1 << 20),
            free_bytes: Some(1 << 40),
            existing_checkpoints: 5,
            since_last_checkpoint_seconds: Some(3),
            running: true,
            finished: false,
            job_seconds_left: None,
        }
    }

    /// Regression (issue 19): without a current step (a Lightning run whose bars rtrain did not read yet),
    /// `check` said "still to write: 12 checkpoint(s) from step 0".
    #[test]
    fn regression_an_unknown_step_is_never_step_0() {
        let r = assess(&RiskInputs {
            current_step: None,
            ..demo(0)
        });
        let p = r.current.as_ref().unwrap();
        assert_eq!(
            (p.from_step, p.checkpoints_to_write, p.peak_checkpoints),
            (None, None, None)
        );
        assert!(r
            .alternatives
            .iter()
            .all(|a| a.from_step.is_none() && a.checkpoints_to_write.is_none()));
        let text = render_report("box", &r);
        assert!(!text.contains("from step 0"), "{text}");
        assert!(
            text.contains("still to write:    unknown: the current step is unknown"),
            "{text}"
        );
        assert!(
            r.unknown.iter().any(|u| u.starts_with("the current step")),
            "{:?}",
            r.unknown
        );
        assert_eq!(assess(&demo(0)).current.unwrap().checkpoints_to_write, Some(30));
    }

    /// Regression: `check` proposed save_steps 1700 (15 minutes at 0.52 s per step) for a
    /// 600-step run.
    #[test]
    fn regression_proposals_never_exceed_the_steps_that_remain() {
        let r = assess(&demo(100));
        let steps: Vec<u64> = r.alternatives.iter().map(|a| a.save_steps).collect();
        assert_eq!(steps, [20, 100, 250, 500], "500 steps remain");
        assert!(
            r.alternatives.iter().all(|a| !a.targets_15_minutes),
            "clipped to the end, no value gives 15 minutes"
        );
        let text = render_report("demo-box", &r);
        assert!(!text.contains("1700") && !text.contains("(~15 min)"), "{text}");
        assert!(
            text.contains("  500  ") && text.contains("(the rest of the run)"),
            "{text}"
        );
        // With plenty of steps left nothing is clipped.
        let long = assess(&RiskInputs {
            max_steps: Some(100_000),
            ..demo(100)
        });
        let t = long.alternatives.iter().find(|a| a.targets_15_minutes).unwrap();
        assert_eq!(t.save_steps, 1700);
    }

    /// Regression: on a finished run `check` still said "checkpoint safety OK" over a table of
    /// alternatives.
    #[test]
    fn regression_a_finished_run_is_one_line_with_nothing_at_risk() {
        for inputs in [
            RiskInputs {
                running: false,
                finished: true,
                ..demo(600)
            },
            // Over without an exit record saying so: no steps left and not running.
            RiskInputs {
                running: false,
                ..demo(600)
            },
        ] {
            let r = assess(&inputs);
            assert!(r.finished);
            assert_eq!(r.level, RiskLevel::Ok);
            assert!(r.alternatives.is_empty() && r.findings.is_empty() && r.current.is_none());
            assert_eq!(
                render_report("demo-box", &r),
                "demo-box: the run is over at step 600 of 600: nothing is at risk\n"
            );
        }
        // Still writing its final checkpoint: not over yet.
        assert!(!assess(&demo(600)).finished);
    }

    #[test]
    fn the_pace_is_the_logs_else_this_runs_own_checkpoint_times() {
        let mk = |name: &str, mtime: i64| {
            let mut e = Entry::new(name, EntryKind::Dir);
            e.has_trainer_state = true;
            e.mtime = Some(mtime);
            e
        };
        // Two checkpoints from before a stop, a day of pause, one from the resumed run.
        let c = recognise(&[
            mk("checkpoint-1000", 1000),
            mk("checkpoint-1500", 3000),
            mk("checkpoint-1520", 90_000),
        ]);
        let no_rate = LogSummary::default();
        assert_eq!(pace(&no_rate, &c, Some(89_900)), None, "one checkpoint of this run");
        let c2 = recognise(&[
            mk("checkpoint-1500", 3000),
            mk("checkpoint-1520", 90_000),
            mk("checkpoint-1540", 90_080),
        ]);
        assert_eq!(
            pace(&no_rate, &c2, Some(89_900)),
            Some(Pace {
                seconds_per_step: 4.0,
                source: "checkpoint times"
            })
        );
        // Without a run record every checkpoint counts, as before.
        assert_eq!(
            pace(&no_rate, &c, None).map(|p| p.seconds_per_step),
            Some(87_000.0 / 20.0)
        );
        let bar = LogSummary {
            seconds_per_step: Some(0.5),
            ..LogSummary::default()
        };
        assert_eq!(
            pace(&bar, &c2, Some(89_900)),
            Some(Pace {
                seconds_per_step: 0.5,
                source: "the progress bar"
            })
        );
    }
}
