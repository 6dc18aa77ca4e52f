//! A Lightning run under rtrain (issue 19), against a real sshd and tmux with the Lightning stand-in
//! (docker/gpu-box/project/lightning_train.py, faithful to the real capture in tests/fixtures/lightning/): its bars
//! count steps per epoch, its loss is in `lightning_logs/version_N/metrics.csv`, and `last.ckpt` has no step in
//! its name.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

struct Project {
    _sshd: Sshd,
    c: Client,
    dir: PathBuf,
}

impl Project {
    /// The demo project in `~/lt`, rtrain configured for a Lightning run: checkpoints under the workdir (the
    /// probe looks in `lightning_logs/*/checkpoints`), max_steps and save_steps in the training config (Lightning's
    /// bars do not say the run's total), resume through `--ckpt_path`.
    fn new(max_steps: u64, seconds_per_step: f64) -> Project {
        let sshd = Sshd::start();
        let c = Client::for_box(&sshd);
        let dir = sshd.remote_home.join("lt");
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/gpu-box/project"),
            &dir,
        );
        std::fs::write(
            dir.join("config/lightning.yaml"),
            format!(
                "training:\n  max_steps: {max_steps}\n  save_steps: 20\n  steps_per_epoch: 30\n  \
                 seconds_per_step: {seconds_per_step}\n  log_every: 5\n  flush_every: 5\n"
            ),
        )
        .unwrap();
        c.write_rtrain_config(
            "defaults:\n  workdir: ~/lt\n  checkpoint_dir: .\n  train_config: config/lightning.yaml\n  \
             command: python3 lightning_train.py config/lightning.yaml\n  \
             resume_command: python3 lightning_train.py config/lightning.yaml --ckpt_path {checkpoint}\n",
        );
        Project { _sshd: sshd, c, dir }
    }

    fn rtrain(&self, args: &[&str]) -> Ran {
        run_with_timeout(self.c.rtrain().args(args), T)
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let ran = self.rtrain(args);
        assert_eq!(ran.code, 0, "{ran}");
        serde_json::from_slice(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {ran}"))
    }

    fn status_until(&self, what: &str, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let v = self.json(&["status", "box", "--json"]);
            if ok(&v) {
                return v;
            }
            assert!(start.elapsed() < T, "never {what}: {v:#}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Status mid-run: the global step (past the first epoch of 30, so not the bar's count within the epoch), the total
/// from the config, the pace and ETA from the epoch bar, and the loss from metrics.csv with its step.
#[test]
fn status_of_a_lightning_run_shows_the_global_step_total_rate_eta_and_the_csv_loss() {
    let p = Project::new(100_000, 0.05);
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    let v = p.status_until("past the first epoch with a loss", |v| {
        v["run"]["state"] == "running"
            && v["progress"]["step"].as_u64().is_some_and(|s| s > 45)
            && v["progress"]["loss_source"] == "metrics_csv"
    });
    let pr = &v["progress"];
    let step = pr["step"].as_u64().unwrap();
    // The bar shows `Epoch 1: …| n/30`, n < 30: only the global step can be above 45.
    let on_disk = std::fs::read_to_string(p.dir.join("lightning_logs/version_0/metrics.csv")).unwrap();
    let last_row: Vec<&str> = on_disk.lines().last().unwrap().split(',').collect();
    let csv_step: u64 = last_row[1].parse().unwrap();
    // The file on disk is read after status, so it may have grown since: the status's own csv step is the bound.
    let loss_step = pr["loss_step"].as_u64().unwrap();
    assert!(step > loss_step, "the bar is ahead of the csv: {v:#}");
    assert!(csv_step >= loss_step, "{csv_step} vs {v:#}");
    assert!(step < csv_step + 40, "{step} is near the csv's step {csv_step}");
    assert_eq!(pr["total"], 100_000, "{v:#}");
    let sps = pr["seconds_per_step"].as_f64().unwrap();
    assert!((0.045..0.2).contains(&sps), "{v:#}");
    let eta = pr["eta_seconds"].as_f64().unwrap();
    assert!((eta - (100_000 - step) as f64 * sps).abs() < 1.0, "{v:#}");
    let loss = pr["loss"].as_f64().unwrap();
    assert!(loss > 0.0 && loss < 2.1, "{v:#}");
    assert!(pr["loss_step"].as_u64().unwrap() >= 44, "{v:#}");
    assert_eq!(
        pr["loss_step"].as_u64().unwrap() % 5,
        4,
        "Lightning's 0-based logging step: {v:#}"
    );
    assert!(pr["epoch"].as_f64().is_some_and(|e| e >= 1.0), "{v:#}");

    let ran = p.rtrain(&["status", "box"]);
    assert!(ran.stdout_str().contains("from metrics.csv"), "{ran}");
    assert_eq!(p.rtrain(&["stop", "box"]).code, 0);
}

/// `ckpts` and `check` give last.ckpt the step of the named checkpoint saved with it, `latest` is the named one,
/// and `check` counts the saves to come from the real step (issue 19: it said "from step 0").
#[test]
fn ckpts_and_check_give_last_ckpt_its_step_and_never_assume_step_0() {
    let p = Project::new(100_000, 0.05);
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    p.status_until("a second checkpoint", |v| {
        v["latest_checkpoint"]["step"].as_u64().is_some_and(|s| s >= 40)
    });
    assert_eq!(p.rtrain(&["stop", "box"]).code, 0);
    p.status_until("stopped", |v| v["run"]["state"] == "stopped");
    let c = p.json(&["ckpts", "box", "--json"]);
    let list = c["checkpoints"].as_array().unwrap();
    let got: Vec<(&str, Option<u64>, bool)> = list
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["step"].as_u64(),
                c["latest"].as_bool().unwrap(),
            )
        })
        .collect();
    let (named, last) = got.split_at(got.len() - 1);
    let newest = named.last().unwrap().1.unwrap();
    assert!(newest >= 40 && newest % 20 == 0, "{c:#}");
    for (i, (name, step, latest)) in named.iter().enumerate() {
        let s = 20 * (i as u64 + 1);
        assert_eq!((*step, *latest), (Some(s), s == newest), "{c:#}");
        assert!(name.ends_with(&format!("-step={s}.ckpt")), "{c:#}");
    }
    assert_eq!(last, [("last.ckpt", Some(newest), false)], "{c:#}");
    let s = p.json(&["status", "box", "--json"]);
    assert_eq!(s["latest_checkpoint"]["step"], newest, "{s:#}");
    assert_ne!(s["latest_checkpoint"]["name"], "last.ckpt", "{s:#}");

    let ck = p.json(&["check", "box", "--json"]);
    let at = ck["inputs"]["current_step"]
        .as_u64()
        .unwrap_or_else(|| panic!("{ck:#}"));
    assert!(at >= newest, "{ck:#}");
    assert_eq!(ck["current"]["from_step"], at, "{ck:#}");
    assert_eq!(ck["inputs"]["save_steps"], 20, "from the training config: {ck:#}");
    let text = p.rtrain(&["check", "box"]).stdout_str();
    assert!(text.contains(&format!("from step {at} ")), "{text}");
}

/// `resume` picks the newest step-named checkpoint (not last.ckpt), and the relaunched run continues from its step.
#[test]
fn resume_continues_a_lightning_run_from_its_newest_checkpoint() {
    let p = Project::new(100_000, 0.05);
    assert_eq!(p.rtrain(&["up", "box"]).code, 0);
    p.status_until("a second checkpoint", |v| {
        v["latest_checkpoint"]["step"].as_u64().is_some_and(|s| s >= 40)
    });
    assert_eq!(p.rtrain(&["stop", "box"]).code, 0);
    let v = p.status_until("stopped", |v| v["run"]["state"] == "stopped");
    let newest = v["latest_checkpoint"]["step"].as_u64().unwrap();
    let name = v["latest_checkpoint"]["name"].as_str().unwrap().to_string();
    assert!(name.ends_with(&format!("step={newest}.ckpt")), "{v:#}");

    let dry = p.rtrain(&["resume", "box", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry}");
    assert!(
        dry.stdout_str().contains(&name) && !dry.stdout_str().contains("last.ckpt"),
        "{dry}"
    );
    let ran = p.rtrain(&["resume", "box"]);
    assert_eq!(ran.code, 0, "{ran}");
    let v = p.status_until("running again past its checkpoint", |v| {
        v["run"]["state"] == "running" && v["progress"]["step"].as_u64().is_some_and(|s| s > newest)
    });
    assert!(v["run"]["command"].as_str().unwrap().contains("--ckpt_path"), "{v:#}");
    let log = p.rtrain(&["logs", "box", "-n", "all"]).stdout_str();
    assert!(
        log.contains("Restoring states from the checkpoint path at ") && log.contains(&name),
        "{log}"
    );
    assert_eq!(p.rtrain(&["stop", "box"]).code, 0);
}
