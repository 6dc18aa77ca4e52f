//! `up`, `stop`, `logs`, `resume` against a real box: real sshd, real tmux (or GNU screen, or plain
//! nohup: the lifecycle tests run once per backend from one body, see `per_backend!`), and the
//! stand-in trainer (docker/gpu-box/project/train.py) in a workdir whose name would break naive quoting.

use crate::support::*;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);
/// A workdir name with spaces, quotes and a command substitution: nothing may execute it.
const WORKDIR: &str = "runs/it's a \"$(touch PWNED)\" dir";
const FAST: &str =
    "python3 train.py config/training_config.yaml --seconds-per-step 0.02 --save-steps 10 --max-steps 40";

/// A box with the demo project in WORKDIR, and rtrain configured to run `command` there.
fn project(command: &str) -> Project {
    project_with(Sshd::start(), command)
}

/// The same on a box where `auto` picks `kind`'s backend.
fn project_on(kind: Kind, command: &str) -> Project {
    project_with(kind.sshd(), command)
}

fn project_with(sshd: Sshd, command: &str) -> Project {
    Project::builder(command)
        .on(sshd)
        .workdir(WORKDIR)
        .session("my run's session")
        .build()
}

impl Project {
    /// Running and past its first steps (the trainer, not just the wrapper, is up).
    fn wait_training(&self, limit: Duration) {
        let start = Instant::now();
        loop {
            let v = self.status();
            if v["run"]["state"] == "running" && v["progress"]["step"].as_u64().is_some_and(|s| s > 0) {
                return;
            }
            assert!(start.elapsed() < limit, "the trainer never made progress: {v:#}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn run_dirs(&self) -> usize {
        std::fs::read_dir(self.dir.join(".rtrain/runs"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn no_injection(&self) {
        for base in [&self.sshd.remote_home, &self.dir, &self.dir.join("runs")] {
            assert!(
                !base.join("PWNED").exists(),
                "a quoted $(...) ran in {}",
                base.display()
            );
        }
    }
}

crate::per_backend! {
fn up_launches_once_and_the_run_finishes_with_its_output_in_the_log(kind) {
    let p = project_on(kind, &format!("{FAST} --max-steps 60"));
    let ran = p.rtrain(&["up", "box"]);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stdout_str().contains("launched run"), "{ran}");
    // auto says what it picked when it is not tmux, once, in one line.
    let note = ran.stderr.lines().filter(|l| l.contains("using")).count();
    assert_eq!(note, usize::from(kind != Kind::Tmux), "{ran}");
    let ran = p.rtrain(&["up", "box"]);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(
        ran.stdout_str().contains("already active"),
        "second up must start nothing: {ran}"
    );
    assert_eq!(p.run_dirs(), 1);
    let v = p.wait_state("finished", T);
    assert_eq!(v["run"]["exit_code"], 0, "{v:#}");
    assert_eq!(v["run"]["backend"], kind.name(), "{v:#}");
    assert_eq!(v["session"]["backend"], kind.name(), "{v:#}");
    assert_eq!(v["session"]["exists"], kind.has_session(), "{v:#}");
    assert!(v["run"]["log"].as_str().unwrap().contains("/logs/training_"), "{v:#}");
    // stdout (dict lines) and stderr (tqdm bar) both reached the log; \r redraws are collapsed.
    let log = p.log_text();
    assert!(log.contains("'train_runtime'"), "{log}");
    assert!(log.contains("60/60"), "{log}");
    assert!(!log.contains('\r'));
    let raw = p.rtrain(&["logs", "box", "-n", "all", "--raw"]);
    assert!(raw.stdout.contains(&b'\r'), "--raw keeps the carriage returns");
    // A later up starts a new run (the old one finished).
    let ran = p.rtrain(&["up", "box"]);
    assert!(ran.stdout_str().contains("launched run"), "{ran}");
    assert_eq!(p.run_dirs(), 2);
    p.no_injection();
}
}

crate::per_backend! {
fn ten_concurrent_ups_start_exactly_one_run(kind) {
    let p = project_on(kind, &format!("{FAST} --max-steps 400"));
    let children: Vec<_> = (0..10)
        .map(|_| {
            let mut cmd = p.c.rtrain();
            cmd.args(["up", "box"]);
            std::thread::spawn(move || run_with_timeout(&mut cmd, T))
        })
        .collect();
    let results: Vec<Ran> = children.into_iter().map(|h| h.join().unwrap()).collect();
    let launched = results
        .iter()
        .filter(|r| r.stdout_str().contains("launched run"))
        .count();
    let active = results
        .iter()
        .filter(|r| r.stdout_str().contains("already active"))
        .count();
    for r in &results {
        assert_eq!(r.code, 0, "{r}");
    }
    assert_eq!((launched, active), (1, 9));
    assert_eq!(p.run_dirs(), 1);
    assert_eq!(p.status()["run"]["backend"], kind.name());
    let ran = p.rtrain(&["stop", "box", "--force"]);
    assert_eq!(ran.code, 0, "{ran}");
}
}

#[test]
fn a_crash_is_failed_with_the_traceback_in_the_log_and_logs_f_exits_1() {
    let p = project(&format!("{FAST} --crash-at-step 15"));
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    let follow = p.rtrain(&["logs", "box", "-f", "-n", "all"]);
    assert_eq!(follow.code, 1, "{follow}");
    assert!(follow.stdout_str().contains("Traceback"), "{follow}");
    assert!(follow.stderr.contains("failed"), "{follow}");
    let v = p.wait_state("failed", T);
    assert_eq!(v["run"]["exit_code"], 1);
    let ran = p.rtrain(&["status", "box"]);
    assert!(
        ran.stdout_str().contains("Traceback") || ran.stdout_str().contains("Error"),
        "failed runs show their last log lines: {ran}"
    );
}

#[test]
fn logs_follow_prints_until_the_run_finishes_and_exits_0() {
    let p = project(FAST);
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    let follow = p.rtrain(&["logs", "box", "-f", "-n", "all"]);
    assert_eq!(follow.code, 0, "{follow}");
    let text = follow.stdout_str();
    assert!(text.contains("'train_runtime'") && text.contains("40/40"), "{text}");
    assert!(follow.stderr.contains("finished"), "{follow}");
}

#[test]
fn stop_sends_sigint_first_and_the_trainer_exits_cleanly() {
    let p = project(&format!("{FAST} --max-steps 100000"));
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    p.wait_training(T);
    let ran = p.rtrain(&["stop", "box", "--timeout", "30"]);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stdout_str().contains("after SIGINT"), "{ran}");
    let v = p.wait_state("stopped", T);
    assert_eq!(v["run"]["exit_code"], 130, "{v:#}");
    assert!(p.log_text().contains("KeyboardInterrupt"));
    // The tmux session stays.
    assert_eq!(v["session"]["exists"], true);
    let ran = p.rtrain(&["stop", "box"]);
    assert!(ran.stdout_str().contains("no active run"), "{ran}");
}

crate::per_backend! {
fn stop_escalates_to_sigterm_when_sigint_is_ignored(kind) {
    let p = project_on(kind, &format!("{FAST} --max-steps 100000 --ignore-sigint"));
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    p.wait_training(T);
    let ran = p.rtrain(&["stop", "box", "--timeout", "2"]);
    assert!(ran.stdout_str().contains("after SIGTERM"), "{ran}");
    assert_eq!(
        ran.stdout_str().contains(&format!("the {} session stays", kind.name())),
        kind.has_session(),
        "{ran}"
    );
    let v = p.wait_state("stopped", T);
    assert_eq!(v["run"]["exit_code"], 143, "{v:#}");
}
}

crate::per_backend! {
fn a_run_killed_from_outside_is_lost_and_up_starts_a_new_one(kind) {
    let p = project_on(kind, &format!("{FAST} --max-steps 100000"));
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    let v = p.wait_state("running", T);
    let pid = v["run"]["pid"].as_u64().unwrap();
    // kill -9 the wrapper and everything in its process group (the trainer), as the OOM killer would.
    let st = std::process::Command::new("kill")
        .args(["-9", "--", &format!("-{pid}")])
        .status()
        .unwrap();
    assert!(st.success());
    let v = p.wait_state("lost", T);
    assert_eq!(v["run"]["backend"], kind.name(), "{v:#}");
    let ran = p.rtrain(&["up", "box"]);
    assert!(ran.stdout_str().contains("launched run"), "{ran}");
    p.rtrain(&["stop", "box", "--force"]);
}
}

crate::per_backend! {
fn resume_after_a_crash_picks_the_newest_complete_checkpoint_and_edits_one_line(kind) {
    let p = project_on(kind, FAST);
    // Crash at step 25: checkpoints 10 and 20 are complete.
    assert_eq!(
        p.rtrain(&["up", "box", "--", &format!("{FAST} --crash-at-step 25")])
            .code,
        0
    );
    p.wait_state("failed", T);
    let out = p.dir.join("outputs");
    // A newer half-written checkpoint and a leftover tmp-checkpoint must never be chosen.
    std::fs::create_dir_all(out.join("checkpoint-30")).unwrap();
    std::fs::write(out.join("checkpoint-30/model.safetensors"), b"half").unwrap();
    std::fs::create_dir_all(out.join("tmp-checkpoint-40")).unwrap();
    std::fs::write(out.join("tmp-checkpoint-40/trainer_state.json"), b"{}").unwrap();
    let cfg_path = p.dir.join("config/training_config.yaml");
    let before = std::fs::read_to_string(&cfg_path).unwrap();

    let dry = p.rtrain(&["resume", "box", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry}");
    assert!(
        dry.stdout_str().contains("checkpoint-20") && dry.stdout_str().contains("+ "),
        "{dry}"
    );
    assert_eq!(
        std::fs::read_to_string(&cfg_path).unwrap(),
        before,
        "--dry-run changes nothing"
    );

    let ran = p.rtrain(&["resume", "box"]);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stdout_str().contains("checkpoint-20"), "{ran}");
    let after = std::fs::read_to_string(&cfg_path).unwrap();
    let changed: Vec<(&str, &str)> = before.lines().zip(after.lines()).filter(|(a, b)| a != b).collect();
    assert_eq!(changed.len(), 1, "exactly one line changes:\n{before}\n---\n{after}");
    assert!(
        changed[0].1.trim_start().starts_with("resume_from_checkpoint:") && changed[0].1.contains("checkpoint-20"),
        "{changed:?}"
    );
    assert_eq!(before.lines().count(), after.lines().count());
    assert_eq!(
        std::fs::read_to_string(cfg_path.with_extension("yaml.bak")).unwrap(),
        before,
        "a .bak of the old config"
    );

    p.wait_state("finished", T);
    let log = p.log_text();
    assert!(
        log.contains("skip to saved global_step 20"),
        "the relaunched trainer continued from step 20:\n{log}"
    );
    assert_eq!(p.status()["run"]["backend"], kind.name(), "resume relaunched on the run's backend");
    p.no_injection();
}
}

#[test]
fn resume_refuses_while_a_run_is_active_and_leaves_the_config_alone() {
    let p = project(&format!("{FAST} --max-steps 100000"));
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    let v = p.wait_state("running", T);
    assert!(v["run"]["id"].is_string());
    // Wait for a complete checkpoint so resume has something to choose.
    let start = Instant::now();
    while !p.dir.join("outputs/checkpoint-10/trainer_state.json").exists() {
        assert!(start.elapsed() < T, "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    let cfg_path = p.dir.join("config/training_config.yaml");
    let before = std::fs::read_to_string(&cfg_path).unwrap();
    let ran = p.rtrain(&["resume", "box"]);
    assert_eq!(ran.code, 1, "{ran}");
    assert!(
        ran.stderr.contains("a run is active") && ran.stderr.contains("stop it first"),
        "{ran}"
    );
    assert_eq!(std::fs::read_to_string(&cfg_path).unwrap(), before);
    p.rtrain(&["stop", "box", "--force"]);
}

#[test]
fn up_with_backend_tmux_on_a_box_without_tmux_says_so_and_starts_nothing() {
    let p = project_on(Kind::Screen, FAST);
    let ran = p.rtrain(&["up", "box", "--backend", "tmux"]);
    assert_eq!(ran.code, 1, "{ran}");
    assert!(
        ran.stderr.contains("tmux not found on box") && ran.stderr.contains("apt install tmux"),
        "{ran}"
    );
    assert_eq!(ran.stderr.lines().count(), 1, "{ran}");
    assert_eq!(p.run_dirs(), 0);
}

#[test]
fn up_in_a_missing_workdir_is_a_clear_error() {
    let p = project(FAST);
    std::fs::remove_dir_all(&p.dir).unwrap();
    let ran = p.rtrain(&["up", "box"]);
    assert_eq!(ran.code, 1, "{ran}");
    assert!(ran.stderr.contains("does not exist on box"), "{ran}");
    assert!(!p.dir.exists(), "nothing created");
}

#[test]
fn status_progress_advances_and_check_reports_the_measured_checkpoint_interval() {
    // 0.1 s a step and a checkpoint every 30 steps: one every 3 s, that is 0.05 min.
    let p = project(
        "python3 train.py config/training_config.yaml --seconds-per-step 0.1 --save-steps 30 --max-steps 100000",
    );
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    p.wait_training(T);
    let step1 = p.status()["progress"]["step"].as_u64().unwrap();
    let start = Instant::now();
    let v = loop {
        let v = p.status();
        let step2 = v["progress"]["step"].as_u64().unwrap();
        if step2 > step1 {
            break v;
        }
        assert!(
            start.elapsed() < T,
            "the step must advance between status calls: still {step2} after {step1}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(v["progress"]["total"], 100000);
    let sps = v["progress"]["seconds_per_step"].as_f64().unwrap();
    // 0.1 s of sleep plus the trainer's own work, on a machine that may be busy.
    assert!((0.09..0.2).contains(&sps), "seconds per step {sps}");
    // The pace as the box's own clock shows it: the time between two saves, 30 steps apart
    // (trainer_state.json is written last in a save). Read at once: rotation removes old ones.
    let saved_at = |step: u32| {
        let f = p.dir.join(format!("outputs/checkpoint-{step}/trainer_state.json"));
        let start = Instant::now();
        loop {
            if let Ok(m) = std::fs::metadata(&f) {
                return m.modified().unwrap();
            }
            assert!(start.elapsed() < T, "no checkpoint-{step}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let t30 = saved_at(30);
    let t60 = saved_at(60);
    let gap_minutes = t60.duration_since(t30).unwrap().as_secs_f64() / 60.0;
    // Never faster than its sleeps: 30 steps × 0.1 s = 3 s = 0.05 min.
    assert!(gap_minutes >= 0.05 * 0.95, "{gap_minutes} min between saves");
    let ran = p.rtrain(&["check", "box", "--json"]);
    assert_eq!(ran.code, 0, "{ran}");
    let c: serde_json::Value = serde_json::from_slice(&ran.stdout).unwrap();
    assert_eq!(c["host"], "box");
    assert_eq!(c["inputs"]["save_steps"], 30, "{c:#}");
    // From the training config (trainer_state.json does not record it).
    assert_eq!(c["inputs"]["save_total_limit"], 3, "{c:#}");
    assert!(c["inputs"]["checkpoint_bytes"].as_u64().unwrap() > 0, "{c:#}");
    let measured = c["inputs"]["seconds_per_step"].as_f64().unwrap();
    assert!((0.09..0.2).contains(&measured), "{c:#}");
    // What check predicts against what the box did: a load spike may sit in one measurement and
    // not the other, hence the wide margin; a wrong formula (a factor 60, the wrong step count) is
    // far outside it. And it is at least what the trainer's sleeps alone take.
    let interval = c["current"]["interval_minutes"].as_f64().unwrap();
    assert!(
        (interval / gap_minutes - 1.0).abs() < 0.5 && interval >= 0.05 * 0.95,
        "check says a checkpoint every {interval} min; the box saved 30 steps apart {gap_minutes} min apart: {c:#}"
    );
    let alts: Vec<u64> = c["alternatives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["save_steps"].as_u64().unwrap())
        .collect();
    for want in [30, 100, 250, 500] {
        assert!(alts.contains(&want), "alternatives {alts:?} lack {want}");
    }
    // The ~15-minute suggestion follows from the measured pace: 900 s / s-per-step.
    let target = c["alternatives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["targets_15_minutes"] == true)
        .expect("a 15-minute row");
    let minutes = target["interval_minutes"].as_f64().unwrap();
    assert!((13.0..17.0).contains(&minutes), "{target}");
    // And at the pace the box showed, that many steps do take about 15 minutes.
    let at_box_pace = target["save_steps"].as_f64().unwrap() * gap_minutes / 30.0;
    assert!(
        (9.0..21.0).contains(&at_box_pace),
        "{at_box_pace} min at the box's pace: {target}"
    );
    let human = p.rtrain(&["check", "box"]);
    assert!(human.stdout_str().contains("every 30 steps"), "{human}");
    p.rtrain(&["stop", "box", "--force"]);
}
