//! The rough edges a new user hit (issue 10, section 3), each pinned through the real binary:
//! an unknown host name, Ctrl-C, help texts.

use crate::support::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const UNKNOWN: &str =
    "rtrain: unknown host nosuchhost: not in ~/.ssh/config or rtrain's config, and DNS has no such name\n";

/// Regression: `rtrain status nosuchhost` said "cannot reach" twice (a row on stdout and a line on
/// stderr), exit 3, as if the network were down.
#[test]
fn regression_an_unknown_host_is_said_once_as_a_usage_error() {
    let c = Client::bare();
    for args in [
        &["status", "nosuchhost"][..],
        &["status", "--json", "nosuchhost"],
        &["ckpts", "nosuchhost"],
        &["exec", "nosuchhost", "--", "true"],
    ] {
        let ran = run_with_timeout(c.rtrain().args(args), LIMIT);
        assert_eq!(ran.code, 2, "{args:?}: {ran}");
        assert_eq!(ran.stdout_str(), "", "{args:?}: {ran}");
        assert_eq!(ran.stderr, UNKNOWN, "{args:?}: {ran}");
    }
    // An alias of ~/.ssh/config whose HostName does not resolve is an outage, not a typo.
    c.write_ssh_config("Host typo-free\n  HostName nosuchhost\n");
    let ran = run_with_timeout(c.rtrain().args(["status", "typo-free"]), LIMIT);
    assert_eq!(ran.code, 3, "{ran}");
    assert_eq!(ran.stdout_str(), "", "the reason is said once, on stderr: {ran}");
    assert_eq!(ran.stderr.lines().count(), 1, "{ran}");
}

#[test]
fn an_unknown_host_among_several_leaves_the_others_answered() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let human = run_with_timeout(c.rtrain().args(["status", "nosuchhost", "box"]), LIMIT);
    assert_eq!(human.code, 2, "{human}");
    assert_eq!(human.stderr, UNKNOWN, "{human}");
    let out = human.stdout_str();
    assert!(
        out.starts_with("box  "),
        "box still answers, nosuchhost has no row: {human}"
    );
    assert!(!out.contains("nosuchhost"), "{human}");

    let json = run_with_timeout(c.rtrain().args(["status", "--json", "nosuchhost", "box"]), LIMIT);
    assert_eq!(json.code, 2, "{json}");
    assert_eq!(json.stderr, "", "{json}");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{json}");
    assert_eq!(rows[0]["host"], "nosuchhost");
    assert_eq!(rows[0]["reachable"], false);
    assert_eq!(rows[0]["error"], UNKNOWN.trim_end().trim_start_matches("rtrain: "));
    assert_eq!(rows[1]["host"], "box");
    assert_eq!(rows[1]["reachable"], true, "{json}");
}

/// Regression: `hosts --json` spelled the policy `"AcceptNew"` for the host and `"accept-new"` for
/// its jump hosts; OpenSSH's spelling (what `ssh -G` prints) for both.
#[test]
fn regression_hosts_json_spells_strict_host_key_checking_as_openssh() {
    let c = Client::bare();
    c.write_ssh_config(
        "Host gpu\n  HostName 10.0.0.7\n  ProxyJump bastion\n  StrictHostKeyChecking accept-new\n\
         Host bastion\n  HostName 10.0.0.1\n  StrictHostKeyChecking yes\n\
         Host plain\n  HostName 10.0.0.8\n",
    );
    let policy = |host: &str| {
        let ran = run_with_timeout(c.rtrain().args(["hosts", "--json", host]), LIMIT);
        assert_eq!(ran.code, 0, "{ran}");
        serde_json::from_slice::<serde_json::Value>(&ran.stdout).unwrap()
    };
    let v = policy("gpu");
    assert_eq!(v["strict_host_key_checking"], "accept-new", "{v}");
    assert_eq!(v["jump_hosts"][0]["strict_host_key_checking"], "yes", "{v}");
    assert_eq!(policy("plain")["strict_host_key_checking"], "ask");
    assert_eq!(policy("bastion")["strict_host_key_checking"], "yes");
}

/// The real binary running in the background, its stdout collected as it comes.
struct Background {
    child: std::process::Child,
    out: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    fn start(cmd: &mut std::process::Command) -> Background {
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = out.clone();
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Background {
            child,
            out,
            reader: Some(reader),
        }
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    fn wait_for_output(&self, needle: &str, limit: Duration) {
        let start = std::time::Instant::now();
        while !self.stdout().contains(needle) {
            assert!(start.elapsed() < limit, "never printed {needle:?}: {}", self.stdout());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ctrl-C as a terminal sends it, then the exit code (within `limit`).
    fn interrupt(mut self, limit: Duration) -> (i32, String) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("still running {limit:?} after SIGINT: {}", self.stdout());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (status.code().unwrap_or(-1), err)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Regression: Ctrl-C ended `status --watch` with exit 0 (and `logs -f` with 130): both 130.
#[test]
fn regression_ctrl_c_ends_status_watch_and_logs_follow_with_130() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    c.write_rtrain_config("defaults:\n  workdir: \"~\"\n  command: \"while :; do echo tick; sleep 0.2; done\"\n");
    let watch = Background::start(c.rtrain().args(["status", "box", "--watch"]));
    watch.wait_for_output("box  ", LIMIT);
    let (code, err) = watch.interrupt(LIMIT);
    assert_eq!(code, 130, "status --watch: {err}");

    let up = run_with_timeout(c.rtrain().args(["up", "box"]), LIMIT);
    assert_eq!(up.code, 0, "{up}");
    let follow = Background::start(c.rtrain().args(["logs", "box", "-f"]));
    follow.wait_for_output("tick\n", LIMIT);
    let (code, err) = follow.interrupt(LIMIT);
    assert_eq!(code, 130, "logs -f: {err}");
    let stop = run_with_timeout(c.rtrain().args(["stop", "box", "--force"]), LIMIT);
    assert_eq!(stop.code, 0, "{stop}");
}

/// Every key of a JSON document, nested ones included.
fn json_keys(v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                out.insert(k.clone());
                json_keys(v, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| json_keys(v, out)),
        _ => {}
    }
}

/// `hosts --json` builds its documents inline, so its fields are checked against the README
/// through the binary (the other commands' views are checked in the unit tests).
#[test]
fn every_field_of_hosts_json_is_in_the_readme() {
    let c = Client::bare();
    c.write_ssh_config(
        "Host gpu\n  HostName 10.0.0.7\n  ProxyJump bastion\n  IdentityFile ~/.ssh/id_gpu\n\
         Host bastion\n  HostName 10.0.0.1\n  ProxyJump none\n\
         Host loop\n  ProxyJump loop2\nHost loop2\n  ProxyJump loop\n",
    );
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let at = readme.find("### `rtrain hosts").unwrap();
    let section = &readme[at + 4..];
    let section = &section[..section.find("\n## ").unwrap()];
    let mut keys = std::collections::BTreeSet::new();
    for args in [&["hosts", "--json"][..], &["hosts", "--json", "gpu"]] {
        let ran = run_with_timeout(c.rtrain().args(args), LIMIT);
        assert_eq!(ran.code, 0, "{ran}");
        json_keys(&serde_json::from_slice(&ran.stdout).unwrap(), &mut keys);
    }
    assert!(
        keys.contains("route_error") && keys.contains("global_known_hosts_files"),
        "{keys:?}"
    );
    let missing: Vec<_> = keys.iter().filter(|k| !section.contains(&format!("\"{k}\""))).collect();
    assert!(
        missing.is_empty(),
        "hosts --json fields the README does not name: {missing:?}"
    );
}

fn status_json(c: &Client) -> serde_json::Value {
    let ran = run_with_timeout(c.rtrain().args(["status", "box", "--json"]), LIMIT);
    assert_eq!(ran.code, 0, "{ran}");
    serde_json::from_slice(&ran.stdout).unwrap()
}

/// The highest `N.NN it/s` a human status panel shows, if any.
fn shown_rate(text: &str) -> Option<f64> {
    let at = text.find(" it/s")?;
    text[..at].rsplit(' ').next()?.parse().ok()
}

/// Regression: the first `status` right after `resume` showed `3842110.53 steps/s  ETA 0 s`. With
/// the stand-in trainer (whose bar jumps to the restored step as the Trainer's does), every
/// `status` from the relaunch on shows the real pace or none, until it is measured.
#[test]
fn regression_status_right_after_resume_never_shows_the_jump_as_a_pace() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let dir = sshd.remote_home.join("p");
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/gpu-box/project"),
        &dir,
    );
    // 0.05 s a step: 20 it/s, 360 steps to go after the resume from checkpoint-40.
    let cmd = "python3 train.py config/training_config.yaml --seconds-per-step 0.05 --save-steps 20 --max-steps 400";
    c.write_rtrain_config(&format!("defaults:\n  workdir: \"~/p\"\n  command: \"{cmd}\"\n"));
    let crash = format!("{cmd} --crash-at-step 45");
    let up = run_with_timeout(c.rtrain().args(["up", "box", "--", &crash]), LIMIT);
    assert_eq!(up.code, 0, "{up}");
    let start = std::time::Instant::now();
    while status_json(&c)["run"]["state"] != "failed" {
        assert!(
            start.elapsed() < LIMIT,
            "the first run never crashed: {}",
            status_json(&c)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let resumed = run_with_timeout(c.rtrain().args(["resume", "box"]), LIMIT);
    assert_eq!(resumed.code, 0, "{resumed}");
    assert!(resumed.stdout_str().contains("checkpoint-40"), "{resumed}");

    let start = std::time::Instant::now();
    let mut samples = 0;
    let measured = loop {
        let v = status_json(&c);
        let p = &v["progress"];
        if let (Some(step), Some(sps)) = (p["step"].as_u64(), p["seconds_per_step"].as_f64()) {
            assert!(sps >= 0.025, "{sps} s/step (real: 0.05) at step {step}: {v:#}");
            let eta = p["eta_seconds"].as_f64().unwrap();
            assert!(eta >= (400 - step) as f64 * 0.025, "ETA {eta} s at step {step}: {v:#}");
            if step > 40 && p["resumed_at_step"].as_u64().is_some() {
                break sps;
            }
        }
        let human = run_with_timeout(c.rtrain().args(["status", "box"]), LIMIT);
        if let Some(rate) = shown_rate(&human.stdout_str()) {
            assert!(rate <= 40.0, "status showed {rate} it/s (real: 20): {human}");
        }
        samples += 1;
        assert!(
            start.elapsed() < LIMIT,
            "the pace was never measured after the resume ({samples} samples): {v:#}"
        );
        if v["run"]["state"] != "running" && start.elapsed() > Duration::from_secs(5) {
            panic!("the resumed run ended before its pace was measured: {v:#}");
        }
    };
    assert!((0.04..0.25).contains(&measured), "{measured}");
    let stop = run_with_timeout(c.rtrain().args(["stop", "box", "--force"]), LIMIT);
    assert_eq!(stop.code, 0, "{stop}");
}

/// Regression: `check` proposed save_steps 1700 for a 600-step run, and on a finished run still
/// printed "checkpoint safety OK" over a table of alternatives.
#[test]
fn regression_check_clips_proposals_and_a_finished_run_is_one_line() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let dir = sshd.remote_home.join("p");
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/gpu-box/project"),
        &dir,
    );
    let cmd = "python3 train.py config/training_config.yaml --seconds-per-step 0.05 --save-steps 10 --max-steps 150";
    c.write_rtrain_config(&format!("defaults:\n  workdir: \"~/p\"\n  command: \"{cmd}\"\n"));
    let up = run_with_timeout(c.rtrain().args(["up", "box"]), LIMIT);
    assert_eq!(up.code, 0, "{up}");
    let start = std::time::Instant::now();
    while !dir.join("outputs/checkpoint-20/trainer_state.json").exists() {
        assert!(start.elapsed() < LIMIT, "no checkpoint-20");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ran = run_with_timeout(c.rtrain().args(["check", "box", "--json"]), LIMIT);
    assert_eq!(ran.code, 0, "{ran}");
    let v: serde_json::Value = serde_json::from_slice(&ran.stdout).unwrap();
    // About 6 s of the run are left: it is still going.
    assert_eq!(v["finished"], false, "{v:#}");
    let from = v["current"]["from_step"].as_u64().unwrap();
    for a in v["alternatives"].as_array().unwrap() {
        let s = a["save_steps"].as_u64().unwrap();
        assert!(
            s == 10 || s <= 150 - from,
            "save_steps {s} with {} steps left: {v:#}",
            150 - from
        );
    }
    while status_json(&c)["run"]["state"] != "finished" {
        assert!(start.elapsed() < LIMIT * 2, "the run never finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    let human = run_with_timeout(c.rtrain().args(["check", "box"]), LIMIT);
    assert_eq!(human.code, 0, "{human}");
    assert_eq!(
        human.stdout_str(),
        "box: the run is over at step 150 of 150: nothing is at risk\n",
        "{human}"
    );
    let ran = run_with_timeout(c.rtrain().args(["check", "box", "--json"]), LIMIT);
    let v: serde_json::Value = serde_json::from_slice(&ran.stdout).unwrap();
    assert_eq!(
        (v["finished"].as_bool(), v["level"].as_str()),
        (Some(true), Some("ok")),
        "{v:#}"
    );
    assert_eq!(v["alternatives"].as_array().map(Vec::len), Some(0), "{v:#}");
}
