//! Issue 11, protecting the work on a real trainer: live loss, stop at a checkpoint, never resume
//! from a deleted checkpoint, stalls noticed. Real sshd, real tmux, and the stand-in trainer
//! (docker/gpu-box/project/train.py), which buffers its stdout and dies on SIGINT like a Hugging
//! Face Trainer, so these tests see what a real run does.

use crate::support::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
const TRAIN: &str = "python3 train.py config/training_config.yaml";

/// A box with the demo project in `~/proj`, rtrain running `command` there; `extra` is more YAML
/// under `defaults:` (indented two spaces).
fn project(command: &str, extra: &str) -> Project {
    Project::builder(command).extra(extra).build()
}

/// The same, reached through the fault-injecting proxy.
fn project_via_proxy(command: &str, extra: &str) -> Project {
    Project::builder(command).extra(extra).through_proxy().build()
}

/// `rtrain ARGS` of the project's client, in the background.
fn bg(p: &Project, args: &[&str]) -> Bg {
    let mut cmd = p.c.rtrain();
    cmd.args(args);
    Bg::spawn(cmd)
}

fn checkpoint_step(v: &serde_json::Value) -> Option<u64> {
    v["latest_checkpoint"]["step"].as_u64()
}

fn running(v: &serde_json::Value) -> bool {
    v["run"]["state"] == "running"
}

/// Regression (issue 11 §1): the trainer's stdout is a pipe, so Python block-buffered the dict
/// lines and `status` showed `"loss": null` for most of the run. With PYTHONUNBUFFERED=1 in the
/// run's environment the loss is there a few logging steps in. No checkpoint is saved, so the loss
/// can only come from the log; buffered, 8 KiB of dict lines would take the whole run.
#[test]
fn regression_the_loss_is_in_status_long_before_the_run_ends() {
    let p = project(
        &format!("{TRAIN} --max-steps 400 --seconds-per-step 0.05 --logging-steps 5 --save-steps 100000"),
        "",
    );
    let ran = p.rtrain(&["up", "box"]);
    assert_eq!(ran.code, 0, "{ran}");
    let v = p.wait_status("a loss, or the end of the run", T, |v| {
        !v["progress"]["loss"].is_null() || !running(v)
    });
    assert!(running(&v), "the run ended before any loss showed: {v:#}");
    let step = v["progress"]["step"].as_u64().unwrap();
    assert!(step < 200, "the loss showed only at step {step} of 400: {v:#}");
    assert_eq!(v["progress"]["loss_from"], "log", "{v:#}");
    let loss_step = v["progress"]["loss_step"].as_u64().unwrap();
    assert!(loss_step.is_multiple_of(5) && loss_step <= step, "{v:#}");
    let human = p.rtrain(&["status", "box"]);
    assert!(human.stdout_str().contains("loss "), "{human}");
    assert_eq!(p.rtrain(&["stop", "box", "--force"]).code, 0);
}

/// Until a dict line reaches the log (here: `env:` sets PYTHONUNBUFFERED to "" so the trainer's
/// stdout stays buffered), the loss comes from the newest complete checkpoint's trainer_state.json,
/// and `status` says which step and which checkpoint.
#[test]
fn without_a_loss_line_status_takes_the_loss_from_the_newest_checkpoint_and_says_so() {
    let p = project(
        &format!("{TRAIN} --max-steps 4000 --seconds-per-step 0.02 --logging-steps 20 --save-steps 20"),
        "  env:\n    PYTHONUNBUFFERED: ''\n",
    );
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    let v = p.wait_status("a loss from a checkpoint", T, |v| {
        !v["progress"]["loss"].is_null() || !running(v)
    });
    assert!(running(&v), "{v:#}");
    let from = v["progress"]["loss_from"].as_str().unwrap().to_string();
    assert!(
        from.starts_with("checkpoint-"),
        "the loss must come from a checkpoint: {v:#}"
    );
    let ckpt_step: u64 = from["checkpoint-".len()..].parse().unwrap();
    assert_eq!(v["progress"]["loss_step"].as_u64(), Some(ckpt_step), "{v:#}");
    // Another checkpoint may have come meanwhile: the form, not the number.
    let human = p.rtrain(&["status", "box"]).stdout_str();
    assert!(
        human.contains(" (step ") && human.contains(", from checkpoint-"),
        "{human}"
    );
    assert!(
        !p.log_text().contains("{'loss'"),
        "with PYTHONUNBUFFERED='' no dict line may have reached the log yet"
    );
    assert_eq!(p.rtrain(&["stop", "box", "--force"]).code, 0);
}

/// Issue 11 §2: the Hugging Face Trainer saves nothing on SIGINT, so `stop --at-checkpoint` waits
/// for the next complete checkpoint and stops right after it. The wait survives a dead network
/// (a black hole in the middle of it), and the stop comes before the trainer saves again.
#[test]
fn stop_at_checkpoint_waits_for_the_next_one_across_a_drop_and_loses_nothing() {
    let p = project_via_proxy(
        &format!("{TRAIN} --max-steps 5000 --seconds-per-step 0.05 --save-steps 100 --logging-steps 10"),
        "",
    );
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    let v = p.wait_status("a first checkpoint", T, |v| checkpoint_step(v).is_some() || !running(v));
    let before = checkpoint_step(&v).expect("a first checkpoint");
    let mut bg = bg(&p, &["stop", "box", "--at-checkpoint", "--timeout", "10"]);
    bg.wait_stderr("waiting for the next checkpoint", T);
    let proxy = p.proxy.as_ref().unwrap();
    proxy.set_mode(Mode::BlackHole);
    bg.wait_stderr("connection to box lost", T);
    proxy.set_mode(Mode::Pass);
    let code = bg.wait(T);
    let (out, err) = (bg.stdout_text(), bg.stderr());
    assert_eq!(code, 0, "--- stdout\n{out}\n--- stderr\n{err}");
    assert!(out.contains("stopped run") && out.contains("after SIGINT"), "{out}");
    let v = p.status();
    assert_eq!(v["run"]["state"], "stopped", "{v:#}");
    let saved = checkpoint_step(&v).unwrap();
    assert!(saved > before, "no newer checkpoint than {before}: {v:#}");
    assert!(
        out.contains(&format!(
            "right after checkpoint-{saved} (step {saved}), which is complete, after SIGINT"
        )),
        "{out}"
    );
    // Stopped before the next save was due: at most one save interval of steps after it.
    let last = v["progress"]["step"].as_u64().unwrap();
    assert!(
        last < saved + 100,
        "stopped at step {last}, long after checkpoint-{saved}"
    );
    assert!(
        p.log_text().contains("KeyboardInterrupt"),
        "the stand-in dies on SIGINT like the Trainer"
    );
}

/// `--wait-timeout` and Ctrl-C both abandon the wait and leave the run alone; `stop_signal: TERM`
/// then stops it with SIGTERM first.
#[test]
fn stop_at_checkpoint_gives_up_on_timeout_or_ctrl_c_and_leaves_the_run_alone() {
    let p = project(
        &format!("{TRAIN} --max-steps 100000 --seconds-per-step 0.05 --save-steps 100000"),
        "  stop_signal: TERM\n",
    );
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    p.wait_status("training", T, |v| v["progress"]["step"].as_u64().is_some_and(|s| s > 0));
    let ran = p.rtrain(&["stop", "box", "--at-checkpoint", "--wait-timeout", "2s"]);
    assert_eq!(ran.code, 1, "{ran}");
    assert!(
        ran.stderr
            .contains("no new checkpoint on box within 2s; the run goes on"),
        "{ran}"
    );
    assert!(running(&p.status()));

    let mut bg = bg(&p, &["stop", "box", "--at-checkpoint"]);
    bg.wait_stderr("waiting for the next checkpoint", T);
    bg.signal("INT");
    assert_eq!(bg.wait(T), 130, "{}", bg.stderr());
    std::thread::sleep(Duration::from_millis(500)); // nothing may be signalled after the 130 either
    assert!(running(&p.status()), "Ctrl-C must leave the run alone");

    let ran = p.rtrain(&["stop", "box"]);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stdout_str().contains("after SIGTERM"), "{ran}");
    assert!(ran.stderr.contains("this run has no checkpoint yet"), "{ran}");
    assert_eq!(p.status()["run"]["exit_code"], 143);
}

/// A run that ends by itself while `--at-checkpoint` waits is reported as it ended; nothing is
/// signalled.
#[test]
fn stop_at_checkpoint_says_how_a_run_ended_by_itself() {
    let p = project(
        &format!("{TRAIN} --max-steps 60 --seconds-per-step 0.05 --save-steps 100000"),
        "",
    );
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    let ran = p.rtrain(&["stop", "box", "--at-checkpoint"]);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(
        ran.stdout_str()
            .contains("ended by itself while waiting for a checkpoint: finished (exit 0)"),
        "{ran}"
    );
    assert_eq!(p.status()["run"]["state"], "finished");
}

/// A plain `stop` says what it throws away before it acts (without a terminal it goes on, so
/// scripts keep working), and SIGINT makes the stand-in die like the Trainer: a
/// KeyboardInterrupt, exit 130, no checkpoint saved on the way out.
#[test]
fn plain_stop_prints_what_it_costs_and_the_trainer_saves_nothing_on_sigint() {
    let p = project(
        &format!("{TRAIN} --max-steps 100000 --seconds-per-step 0.02 --save-steps 50"),
        "",
    );
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    p.wait_status("a checkpoint", T, |v| checkpoint_step(v).is_some());
    let ran = p.rtrain(&["stop", "box"]);
    assert_eq!(ran.code, 0, "{ran}");
    let err = &ran.stderr;
    assert!(
        err.contains("stopping now loses ") && err.contains(" of work (steps "),
        "{ran}"
    );
    assert!(
        err.contains("since checkpoint-") && err.contains("rtrain stop box --at-checkpoint waits for the next one"),
        "{ran}"
    );
    assert!(ran.stdout_str().contains("after SIGINT, exit 130"), "{ran}");
    let log = p.log_text();
    assert!(log.contains("KeyboardInterrupt"), "{log}");
    // Nothing saved on the way out: every checkpoint is a regular one (a multiple of save_steps).
    let names: Vec<String> = std::fs::read_dir(p.dir.join("outputs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.is_empty());
    for n in &names {
        let step: u64 = n.strip_prefix("checkpoint-").unwrap().parse().unwrap();
        assert!(step.is_multiple_of(50), "a save on SIGINT: {names:?}");
    }
}

fn set_resume(p: &Project, value: &str) {
    let path = p.dir.join("config/training_config.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("resume_from_checkpoint:"))
        .unwrap();
    let text = text.replace(line, &format!("  resume_from_checkpoint: {value}"));
    std::fs::write(&path, text).unwrap();
}

fn run_count(p: &Project) -> usize {
    std::fs::read_dir(p.dir.join(".rtrain/runs"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Regression (issue 11 §3): after `save_total_limit` deleted the checkpoint the config resumes
/// from, a plain `up` launched a run that died at once. Now `up` starts nothing and says what to
/// do; `--fresh` sets the key to null (with a .bak) and launches; a complete one is said.
#[test]
fn regression_up_never_launches_from_a_checkpoint_that_is_gone_or_incomplete() {
    let p = project(
        &format!("{TRAIN} --max-steps 30 --seconds-per-step 0.02 --save-steps 10"),
        "",
    );
    set_resume(&p, "outputs/checkpoint-120");
    let ran = p.rtrain(&["up", "box"]);
    assert_eq!(ran.code, 1, "{ran}");
    assert!(
        ran.stderr.contains(
            "config/training_config.yaml resumes from checkpoint-120, which no longer exists on box: \
             rtrain up --resume (newest complete checkpoint) or rtrain up --fresh (train from scratch)"
        ),
        "{ran}"
    );
    assert_eq!(run_count(&p), 0, "nothing may be started");

    let ran = p.rtrain(&["up", "box", "--fresh"]);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stdout_str().contains("launched run"), "{ran}");
    let cfg = std::fs::read_to_string(p.dir.join("config/training_config.yaml")).unwrap();
    assert!(cfg.contains("\n  resume_from_checkpoint: null\n"), "{cfg}");
    let bak = std::fs::read_to_string(p.dir.join("config/training_config.yaml.bak")).unwrap();
    assert!(bak.contains("resume_from_checkpoint: outputs/checkpoint-120"), "{bak}");
    p.wait_status("finished", T, |v| v["run"]["state"] == "finished");

    // A complete checkpoint: said, and launched from.
    set_resume(&p, "outputs/checkpoint-20");
    let ran = p.rtrain(&["up", "box"]);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(
        ran.stdout_str()
            .contains("resuming from checkpoint-20 (outputs/checkpoint-20), as config/training_config.yaml says"),
        "{ran}"
    );
    p.wait_status("finished", T, |v| v["run"]["state"] == "finished");
    assert!(p.log_text().contains("will skip to saved global_step 20"));

    // Cut off mid-save: no trainer_state.json.
    std::fs::remove_file(p.dir.join("outputs/checkpoint-20/trainer_state.json")).unwrap();
    let runs = run_count(&p);
    let ran = p.rtrain(&["up", "box"]);
    assert_eq!(ran.code, 1, "{ran}");
    assert!(
        ran.stderr
            .contains("resumes from checkpoint-20, which is incomplete on box"),
        "{ran}"
    );
    assert_eq!(run_count(&p), runs);

    // `true`: the Trainer takes the highest checkpoint-N, complete or not.
    set_resume(&p, "true");
    let ran = p.rtrain(&["up", "box"]);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(
        ran.stdout_str()
            .contains("resuming from checkpoint-30 (the last checkpoint)"),
        "{ran}"
    );
    p.wait_status("finished", T, |v| {
        v["run"]["state"] == "finished" && run_count(&p) == runs + 1
    });
    std::fs::remove_file(p.dir.join("outputs/checkpoint-30/trainer_state.json")).unwrap();
    let ran = p.rtrain(&["up", "box"]);
    assert_eq!(ran.code, 1, "{ran}");
    assert!(
        ran.stderr.contains("the last one, checkpoint-30, is incomplete on box"),
        "{ran}"
    );
    assert_eq!(run_count(&p), runs + 1);
}

/// Regression (issue 11 §3): a run that failed at once was shown next to the previous run's loss
/// and progress. Progress, loss and last lines come from the current run's own log; the
/// checkpoint line comes from the directory and says it is an earlier run's.
#[test]
fn regression_status_never_mixes_a_failed_run_with_the_previous_runs_progress_and_loss() {
    let p = project(
        &format!("{TRAIN} --max-steps 30 --seconds-per-step 0.02 --save-steps 10"),
        "",
    );
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    let v = p.wait_status("finished", T, |v| v["run"]["state"] == "finished");
    assert!(!v["progress"]["loss"].is_null(), "{v:#}");
    // The next run dies before it prints a thing.
    std::thread::sleep(Duration::from_millis(1100)); // its start must be a later second than the checkpoints
    let ran = p.rtrain(&[
        "up",
        "box",
        "--",
        "echo 'ValueError: Cannot find a valid checkpoint' >&2; exit 1",
    ]);
    assert_eq!(ran.code, 0, "{ran}");
    let v = p.wait_status("failed", T, |v| v["run"]["state"] == "failed");
    assert!(v["progress"]["loss"].is_null(), "the previous run's loss: {v:#}");
    assert!(v["progress"]["step"].is_null(), "the previous run's progress: {v:#}");
    assert_eq!(v["latest_checkpoint"]["name"], "checkpoint-30", "{v:#}");
    assert_eq!(v["latest_checkpoint"]["of_current_run"], false, "{v:#}");
    let human = p.rtrain(&["status", "box"]).stdout_str();
    assert!(human.contains("from an earlier run"), "{human}");
    assert!(human.contains("ValueError: Cannot find a valid checkpoint"), "{human}");
    assert!(!human.contains("loss "), "{human}");
}

/// Issue 11 §4: a hung trainer (alive, silent: an NCCL hang, a dataloader deadlock) looked like a
/// working one. With `stall_after: 2s`, a run whose log stops growing is shown STALLED, with how
/// long and since when; JSON `run.silent_seconds` and `run.stalled`.
#[test]
fn a_hung_trainer_is_shown_stalled_after_stall_after() {
    let p = project(
        &format!("{TRAIN} --max-steps 1000 --seconds-per-step 0.05 --save-steps 100000 --hang-at-step 60"),
        "  stall_after: 2s\n",
    );
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    let v = p.wait_status("training", T, |v| v["progress"]["step"].as_u64().is_some_and(|s| s > 0));
    assert_eq!(v["run"]["stalled"], false, "a run that prints is not stalled: {v:#}");
    assert!(v["run"]["silent_seconds"].as_i64().is_some_and(|s| s < 2), "{v:#}");
    let v = p.wait_status("stalled", T, |v| v["run"]["stalled"] == true);
    assert_eq!(v["run"]["state"], "running", "{v:#}");
    assert!(v["run"]["silent_seconds"].as_i64().unwrap() >= 2, "{v:#}");
    assert_eq!(v["progress"]["step"], 59, "hung at step 60: {v:#}");
    let human = p.rtrain(&["status", "box"]).stdout_str();
    assert!(
        human.contains("RUNNING, STALLED for ") && human.contains(" (no output since "),
        "{human}"
    );
    assert_eq!(p.rtrain(&["stop", "box", "--force"]).code, 0);
}

/// Regression (issue 11 §5): `resume` put the whole new config on the exec command line, which
/// Linux refuses past 128 KiB for one argument; and a quoted `"resume_from_checkpoint"` key got a
/// duplicate appended. A 200 KiB config with a quoted key is now edited in place, on stdin.
#[test]
fn regression_resume_edits_a_200_kib_config_with_a_quoted_key_in_place() {
    let p = project(
        &format!("{TRAIN} --max-steps 30 --seconds-per-step 0.02 --save-steps 10"),
        "",
    );
    let path = p.dir.join("config/training_config.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        "  resume_from_checkpoint: null",
        "  \"resume_from_checkpoint\": null  # quoted",
    );
    let padding: String = (0..3000)
        .map(|i| format!("# padding line {i:05} {}\n", "x".repeat(48)))
        .collect();
    let original = format!("{text}{padding}");
    assert!(original.len() > 200 * 1024);
    std::fs::write(&path, &original).unwrap();
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    p.wait_status("finished", T, |v| v["run"]["state"] == "finished");

    let first = p.status()["run"]["id"].clone();
    let ran = p.rtrain(&["resume", "box"]);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stdout_str().contains("resuming from checkpoint-30"), "{ran}");
    let edited = std::fs::read_to_string(&path).unwrap();
    let ckpt = p.dir.join("outputs/checkpoint-30");
    // The path has a space ("remote home"), so it is single-quoted.
    let want_line = format!("  \"resume_from_checkpoint\": '{}'  # quoted", ckpt.display());
    let (old_lines, new_lines): (Vec<&str>, Vec<&str>) = (original.lines().collect(), edited.lines().collect());
    assert_eq!(old_lines.len(), new_lines.len(), "a line was added or lost");
    let changed: Vec<(&str, &str)> = old_lines
        .iter()
        .zip(&new_lines)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| (*a, *b))
        .collect();
    assert_eq!(
        changed,
        [("  \"resume_from_checkpoint\": null  # quoted", want_line.as_str())],
        "exactly that one line may change"
    );
    assert!(edited.ends_with('\n'));
    let bak = std::fs::read_to_string(p.dir.join("config/training_config.yaml.bak")).unwrap();
    assert!(bak == original, "the .bak must be the original");
    p.wait_status("the resumed run finished", T, |v| {
        v["run"]["state"] == "finished" && v["run"]["id"] != first
    });
    assert!(p.log_text().contains("will skip to saved global_step 30"));
}

/// On a terminal a stop that loses more than a minute asks first: `n` leaves the run alone
/// (exit 1), `y` stops it. The run's record says it started two minutes ago (no checkpoint yet),
/// so the loss is over a minute without a minute-long test.
#[test]
fn on_a_terminal_stop_asks_before_losing_more_than_a_minute() {
    let p = project(
        &format!("{TRAIN} --max-steps 100000 --seconds-per-step 0.05 --save-steps 100000"),
        "",
    );
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    let v = p.wait_status("training", T, |v| v["progress"]["step"].as_u64().is_some_and(|s| s > 0));
    let id = v["run"]["id"].as_str().unwrap().to_string();
    let two_min_ago = std::time::SystemTime::now() - Duration::from_secs(120);
    std::fs::write(
        p.dir.join(format!(".rtrain/runs/{id}/started_at")),
        format!("{}\n", humantime::format_rfc3339_seconds(two_min_ago)),
    )
    .unwrap();
    let script = format!("{} stop box; echo EXIT=$?; sleep 30", rtrain_bin().display());
    let mut env = p.c.env_pairs();
    env.retain(|(k, _)| k != "NO_COLOR");
    let term = LocalTerm::start(&["sh".into(), "-c".into(), script.clone()], &env);
    let screen = term.wait_for("stop it anyway? [y/N]", T);
    assert!(screen.contains("stopping now loses 2 min of work"), "{screen}");
    term.type_text("n");
    term.send_keys(&["Enter"]);
    let screen = term.wait_for("EXIT=1", T);
    assert!(screen.contains("nothing stopped; the run goes on"), "{screen}");
    assert!(running(&p.status()), "answering n must leave the run alone");

    let term = LocalTerm::start(&["sh".into(), "-c".into(), script], &env);
    term.wait_for("stop it anyway? [y/N]", T);
    term.type_text("y");
    term.send_keys(&["Enter"]);
    let screen = term.wait_for("EXIT=0", T);
    assert!(screen.contains("after SIGINT"), "{screen}");
    assert_eq!(p.status()["run"]["state"], "stopped");
}

/// Found driving a real Trainer: after `up --fresh` next to an earlier run's checkpoint-1000,
/// `stop --at-checkpoint` waited for a checkpoint past step 1000 (and the cost line counted from
/// it). Only the current run's checkpoints count.
#[test]
fn regression_stop_at_checkpoint_ignores_an_earlier_runs_checkpoints() {
    let p = project(
        &format!("{TRAIN} --max-steps 1000 --seconds-per-step 0.001 --save-steps 1000"),
        "",
    );
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    p.wait_status("finished", T, |v| v["run"]["state"] == "finished");
    std::thread::sleep(Duration::from_millis(1100)); // the next run starts in a later second
    let cmd = format!("{TRAIN} --max-steps 100000 --seconds-per-step 0.05 --save-steps 40");
    assert_eq!(p.rtrain(&["up", "box", "--", &cmd]).code, 0);
    p.wait_status("training", T, |v| {
        running(v) && v["progress"]["step"].as_u64().is_some_and(|s| s > 0)
    });
    let ran = p.rtrain(&["stop", "box", "--at-checkpoint", "--wait-timeout", "30s"]);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(
        ran.stdout_str().contains("right after checkpoint-40 (step 40)"),
        "{ran}"
    );
}

/// A training config rtrain cannot read (here: not UTF-8) does not stop a plain `up`: the check
/// is skipped with a note; `--fresh`, which must edit it, refuses.
#[test]
fn an_unreadable_training_config_is_noted_not_fatal_for_a_plain_up() {
    let p = project("true", "");
    std::fs::write(p.dir.join("config/training_config.yaml"), b"training:\n  x: \xff\xfe\n").unwrap();
    let ran = p.rtrain(&["up", "box", "--fresh"]);
    assert_eq!(ran.code, 1, "{ran}");
    assert!(ran.stderr.contains("is not UTF-8"), "{ran}");
    let ran = p.rtrain(&["up", "box"]);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stderr.contains("resume_from_checkpoint not checked"), "{ran}");
    assert!(ran.stdout_str().contains("launched run"), "{ran}");
}
