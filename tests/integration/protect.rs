//! Issue 11, protecting the work on a real trainer: live loss, stop at a checkpoint, never resume
//! from a deleted checkpoint, stalls noticed. Real sshd, real tmux, and the stand-in trainer
//! (docker/gpu-box/project/train.py), which buffers its stdout and dies on SIGINT like a Hugging
//! Face Trainer, so these tests see what a real run does.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);
const TRAIN: &str = "python3 train.py config/training_config.yaml";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

struct Project {
    _sshd: Sshd,
    c: Client,
    #[allow(dead_code)]
    dir: PathBuf,
}

impl Project {
    /// A box with the demo project in `~/proj`, rtrain running `command` there; `extra` is more
    /// YAML under `defaults:` (indented two spaces).
    fn new(command: &str, extra: &str) -> Project {
        let sshd = Sshd::start();
        let c = Client::for_box(&sshd);
        let dir = sshd.remote_home.join("proj");
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/gpu-box/project"),
            &dir,
        );
        c.write_rtrain_config(&format!(
            "defaults:\n  workdir: ~/proj\n  command: {}\n{extra}",
            serde_json::to_string(command).unwrap()
        ));
        Project { _sshd: sshd, c, dir }
    }

    fn rtrain(&self, args: &[&str]) -> Ran {
        run_with_timeout(self.c.rtrain().args(args), T)
    }

    fn status(&self) -> serde_json::Value {
        let ran = self.rtrain(&["status", "box", "--json"]);
        assert_eq!(ran.code, 0, "{ran}");
        serde_json::from_slice(&ran.stdout).unwrap()
    }

    /// Poll `status --json` until `ok` holds; panics with the last answer and the log after `limit`.
    fn wait_status(&self, what: &str, limit: Duration, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let v = self.status();
            if ok(&v) {
                return v;
            }
            if start.elapsed() > limit {
                panic!("never {what}: {v:#}\n--- log\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log_text(&self) -> String {
        self.rtrain(&["logs", "box", "-n", "all"]).stdout_str()
    }
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
    let p = Project::new(
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
    let p = Project::new(
        &format!("{TRAIN} --max-steps 2000 --seconds-per-step 0.02 --logging-steps 5 --save-steps 20"),
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
    let human = p.rtrain(&["status", "box"]).stdout_str();
    assert!(human.contains(&format!("from {from})")), "{human}");
    assert!(
        !p.log_text().contains("{'loss'"),
        "with PYTHONUNBUFFERED='' no dict line may have reached the log yet"
    );
    assert_eq!(p.rtrain(&["stop", "box", "--force"]).code, 0);
}
