//! What the status probe's facts say, with one precedence per figure: the `status` panel, its JSON,
//! `check` and `stop` all read the pace, the total steps and "is this checkpoint this run's" from
//! here, so no two of them can disagree about the same run.

use crate::remote::probe::{rfc3339_epoch, RunState, StatusProbe};
use crate::train::checkpoints::Checkpoint;
use crate::train::risk;
use crate::train::trainer_state::TrainerState;

/// The step a dict line's loss belongs to, from the bar's last redraw before it. tqdm redraws at most
/// every 0.1 s, so a fast trainer's bar may show 197 when the Trainer logs at step 200: the loss is
/// logged at a multiple of `logging_steps`, so the next one up is the step (the bar never runs ahead).
pub fn logged_step(bar_step: u64, logging_steps: Option<u64>) -> u64 {
    match logging_steps.filter(|n| *n > 1) {
        Some(n) if !bar_step.is_multiple_of(n) => bar_step.div_ceil(n) * n,
        _ => bar_step,
    }
}

/// Whether the checkpoint `name` was written by the current run (or is the one it resumed from): saved at or
/// after the run's start. Without a run record there is nothing to mix up.
pub fn checkpoint_is_of_current_run(p: &StatusProbe, name: &str) -> bool {
    let Some(run) = &p.run else { return true };
    let Some(started) = run.started_at.as_deref().and_then(rfc3339_epoch) else {
        return true;
    };
    let ckpt = p.ckpts.checkpoints.iter().find(|c| c.name == name);
    let resumed_from = p
        .log_summary
        .resumed_at_step
        .zip(ckpt.and_then(|c| c.step))
        .is_some_and(|(r, s)| r.abs_diff(s) <= 1);
    resumed_from || ckpt.and_then(|c| c.mtime).is_some_and(|m| m >= started)
}

/// The trainer_state.json the probe read, with the name of its checkpoint, when that checkpoint is this
/// run's: an earlier run's (the current one failed at once, or has not saved yet) says nothing about this
/// run's progress or loss.
pub fn current_trainer_state(p: &StatusProbe) -> Option<&(String, TrainerState)> {
    p.trainer_state
        .as_ref()
        .filter(|(name, _)| checkpoint_is_of_current_run(p, name))
}

/// The pace `status` and `check` both use (one estimator, so they cannot disagree).
pub fn pace(p: &StatusProbe) -> Option<risk::Pace> {
    let started = p
        .run
        .as_ref()
        .and_then(|r| r.started_at.as_deref())
        .and_then(rfc3339_epoch);
    risk::pace(&p.log_summary, &p.ckpts.checkpoints, started)
}

/// The run's total steps. Precedence: the running trainer's own numbers (the progress bar, then
/// `ts`, its trainer_state.json) over the training config file, which may have been edited since the
/// run started.
pub fn total_steps(p: &StatusProbe, ts: Option<&TrainerState>) -> Option<u64> {
    p.log_summary
        .progress
        .as_ref()
        .map(|b| b.total)
        .or(ts.and_then(|t| t.max_steps))
        .or(p.train_config.as_ref().and_then(|c| c.max_steps))
}

/// The metrics file's loss when the file is this run's (written since the run started; any, without a run record).
pub fn current_metrics_loss(p: &StatusProbe) -> Option<&crate::train::lightning::CsvLoss> {
    let m = p.metrics.as_ref()?;
    let started = p
        .run
        .as_ref()
        .and_then(|r| r.started_at.as_deref())
        .and_then(rfc3339_epoch);
    let of_this_run = match (started, m.mtime) {
        (Some(s), Some(t)) => t >= s,
        (Some(_), None) => false,
        (None, _) => true,
    };
    m.loss.as_ref().filter(|_| of_this_run)
}

/// The run's global step, or `None` when nothing says it (never an assumed 0). Precedence: the Trainer's progress
/// bar (it counts global steps); else the highest of what a Lightning run shows: its epoch bar turned into a global
/// step, the step of the newest row of its metrics.csv (Lightning numbers the step being logged from 0, so that
/// many plus one are done) and the step of its newest checkpoint of this run; else trainer_state.json's.
pub fn current_step(p: &StatusProbe, ts: Option<&TrainerState>) -> Option<u64> {
    let sum = &p.log_summary;
    if let Some(b) = &sum.progress {
        return Some(b.step);
    }
    let from_bar = sum.epoch_bars.global_step();
    let from_csv = current_metrics_loss(p).and_then(|l| l.step).map(|s| s + 1);
    let from_ckpt = p
        .ckpts
        .newest_complete()
        .filter(|c| c.layout == crate::train::checkpoints::Layout::Lightning)
        .filter(|c| checkpoint_is_of_current_run(p, &c.name))
        .and_then(|c| c.step);
    [from_bar, from_csv, from_ckpt]
        .into_iter()
        .flatten()
        .max()
        .or(ts.and_then(|t| t.global_step))
}

/// The run record says the run is in `state`.
pub fn run_is(p: &StatusProbe, state: RunState) -> bool {
    p.run.as_ref().is_some_and(|r| r.state == state)
}

/// Seconds since `c` was saved, by the box's clock.
pub fn age_seconds(p: &StatusProbe, c: &Checkpoint) -> Option<i64> {
    match (p.ckpts.now, c.mtime) {
        (Some(now), Some(m)) => Some(now - m),
        _ => None,
    }
}

/// Running, and silent for `stall_after` or longer (a hang: NCCL, a dataloader deadlock, a full disk).
pub fn is_stalled(state: RunState, silent_seconds: Option<i64>, stall_after: std::time::Duration) -> bool {
    state == RunState::Running && silent_seconds.is_some_and(|s| s >= stall_after.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_belongs_to_the_logging_step_the_lagging_bar_had_not_drawn_yet() {
        assert_eq!(logged_step(197, Some(100)), 200);
        assert_eq!(logged_step(200, Some(100)), 200);
        assert_eq!(logged_step(197, None), 197);
        assert_eq!(logged_step(7, Some(1)), 7);
    }
}
