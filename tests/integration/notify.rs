//! Issue 14: `rtrain wait` and notifications, on real parts: a real sshd, real tmux, the run
//! wrapper's own curl posting to a local HTTP receiver, the fault proxy for a black hole, and a
//! private D-Bus session bus for the desktop notification.

use crate::support::http::Receiver;
use crate::support::*;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(90);

/// A box with the demo project in `~/proj` (the trainer made fast), rtrain running `command`
/// there; `extra` is more YAML under `defaults:`.
fn project(command: &str, extra: &str, via_proxy: bool) -> Project {
    project_on(Sshd::start(), command, extra, via_proxy)
}

fn project_on(sshd: Sshd, command: &str, extra: &str, via_proxy: bool) -> Project {
    let b = Project::builder(command)
        .on(sshd)
        .extra(extra)
        .train_config("max_steps: 120", "max_steps: 12")
        .train_config("save_steps: 40", "save_steps: 5")
        .train_config("seconds_per_step: 4.0", "seconds_per_step: 0.1");
    if via_proxy {
        b.through_proxy().build()
    } else {
        b.build()
    }
}

impl Project {
    fn up(&self) -> String {
        let ran = self.rtrain(&["up", "box"]);
        assert_eq!(ran.code, 0, "{ran}");
        std::fs::read_to_string(self.dir.join(".rtrain/current"))
            .unwrap()
            .trim()
            .to_string()
    }

    fn run_dir(&self, id: &str) -> PathBuf {
        self.dir.join(".rtrain/runs").join(id)
    }

    fn wait_exit_record(&self, id: &str, limit: Duration) {
        let start = Instant::now();
        while !self.run_dir(id).join("exit").exists() {
            assert!(start.elapsed() < limit, "run {id} never ended");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn notify_config(r: &Receiver, secret: &str) -> String {
    format!(
        "  notify:\n    webhook: {}\n    ntfy: {}\n    slack: {}\n",
        r.url(&format!("/hook/{secret}")),
        r.url("/ntfy/topic"),
        r.url("/slack/T000/B000")
    )
}

fn ps_ef() -> String {
    String::from_utf8_lossy(&Command::new("ps").arg("-ef").output().unwrap().stdout).into_owned()
}

const FAILING: &str = "echo 'step one'; sleep 3; printf 'boom \"quoted\" \\\\ back\\033]0;evil\\007\\n'; exit 3";

#[test]
fn a_run_that_fails_with_no_client_connected_posts_each_webhook_once_and_the_secret_is_never_in_ps() {
    let r = Receiver::start();
    let secret = "s3cr3t-token-4b1d";
    let p = project(FAILING, &notify_config(&r, secret), false);
    let id = p.up();
    // `up` has returned: no rtrain client is connected while the run runs and ends.
    let notify = p.run_dir(&id).join("notify");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&notify).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the notify file holds the URLs");
    assert!(std::fs::read_to_string(&notify).unwrap().contains(secret));
    // While the run runs and while curl posts (the receiver answers each post only after 700 ms).
    let start = Instant::now();
    let mut saw_poster = false;
    while r.requests().len() < 3 {
        let ps = ps_ef();
        assert!(!ps.contains(secret), "the secret is on a command line:\n{ps}");
        saw_poster |= ps.contains("curl");
        assert!(start.elapsed() < T, "only {:?}", r.requests());
        std::thread::sleep(Duration::from_millis(50));
    }
    let ps = ps_ef();
    assert!(!ps.contains(secret), "{ps}");
    assert!(saw_poster || ps.contains("curl"), "never saw curl running:\n{ps}");
    let got = r.requests();

    let by = |prefix: &str| {
        let v: Vec<_> = got.iter().filter(|q| q.path.starts_with(prefix)).collect();
        assert_eq!(v.len(), 1, "one post to {prefix}: {got:?}");
        v[0].clone()
    };
    let hook = by("/hook/");
    assert_eq!(hook.method, "POST");
    assert_eq!(hook.path, format!("/hook/{secret}"));
    assert_eq!(hook.header("content-type"), Some("application/json"));
    let j = hook.json();
    // Shown with --nocapture: the post of a run that crashed with no rtrain client connected.
    eprintln!("captured {} {}: {j}", hook.method, hook.path);
    assert_eq!(j["host"], "box");
    assert_eq!(j["run_id"], id.as_str());
    assert_eq!(j["event"], "failed");
    assert_eq!(j["exit_code"], 3);
    assert!(
        j["step"].is_null() && j["total"].is_null() && j["loss"].is_null(),
        "{j}"
    );
    let lines: Vec<&str> = j["last_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(lines.contains(&"step one"), "{lines:?}");
    // The hostile escape lost its control bytes; quotes and backslashes arrive as written.
    assert!(lines.contains(&"boom \"quoted\" \\ back]0;evil"), "{lines:?}");

    let ntfy = by("/ntfy/");
    let title = ntfy.header("title").unwrap_or_default();
    assert!(title.contains("box") && title.contains("failed"), "{title}");
    assert!(
        ntfy.body_str().starts_with(&format!("run {id} on box failed (exit 3)")),
        "{}",
        ntfy.body_str()
    );
    let slack = by("/slack/");
    let text = slack.json()["text"].as_str().unwrap().to_string();
    assert!(text.contains("failed (exit 3)") && text.contains("step one"), "{text}");

    // A second watcher afterwards changes nothing: still once per run.
    let ran = p.rtrain(&["wait", "box"]);
    assert_eq!(ran.code, 1, "{ran}");
    // A second post would follow the first ones within a second (each is answered after 700 ms).
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        assert_eq!(r.requests().len(), 3, "{:?}", r.requests());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(p.run_dir(&id).join("notify.log")).unwrap();
    assert_eq!(log.lines().count(), 3, "one line per webhook: {log}");
    // Nor is the secret in what rtrain printed.
    assert!(!ran.stdout_str().contains(secret) && !ran.stderr.contains(secret));
}

#[test]
fn the_trainer_finishing_posts_step_total_loss_and_the_latest_checkpoint() {
    let r = Receiver::start();
    let cfg = format!(
        "  notify:\n    webhook: {}\n    events: [failed, finished]\n",
        r.url("/hook")
    );
    let p = project("python3 train.py config/training_config.yaml", &cfg, false);
    let id = p.up();
    let got = r.wait_for(1, T);
    let j = got[0].json();
    assert_eq!(j["event"], "finished", "{j}");
    assert_eq!(j["run_id"], id.as_str());
    assert_eq!(j["exit_code"], 0);
    assert_eq!((j["step"].as_u64(), j["total"].as_u64()), (Some(12), Some(12)), "{j}");
    assert!(j["loss"].as_f64().is_some(), "{j}");
    // Saved every 5 steps: the last complete one is step 10.
    assert_eq!(j["latest_checkpoint"], "checkpoint-10", "{j}");
}

#[test]
fn a_stopped_run_is_not_posted_when_events_leave_it_out() {
    let r = Receiver::start();
    let cfg = format!("  notify:\n    webhook: {}\n    events: [failed]\n", r.url("/hook"));
    let p = project("sleep 60", &cfg, false);
    let id = p.up();
    let ran = p.rtrain(&["stop", "box", "--yes"]);
    assert_eq!(ran.code, 0, "{ran}");
    p.wait_exit_record(&id, T);
    // The wrapper is done with notifications once its log says so (none written: nothing wanted).
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        assert!(r.requests().is_empty(), "{:?}", r.requests());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!p.run_dir(&id).join("notified").exists());
}

#[test]
fn wait_sees_a_run_end_during_a_black_hole_and_exits_0_after_reconnecting() {
    let p = project("sleep 4; echo done", "", true);
    let id = p.up();
    let w = Bg::spawn({
        let mut c = p.c.rtrain();
        c.args(["wait", "box"]);
        c
    });
    let mut w = w;
    w.wait_stderr("waiting for run", T);
    let proxy = p.proxy.as_ref().unwrap();
    proxy.set_mode(Mode::BlackHole);
    p.wait_exit_record(&id, T);
    w.wait_stderr("lost", T);
    proxy.set_mode(Mode::Pass);
    let code = w.wait(T);
    assert_eq!(code, 0, "stdout: {}\nstderr: {}", w.stdout_text(), w.stderr());
    assert!(w.stderr().contains("reconnected to box"), "{}", w.stderr());
    assert!(
        w.stdout_text().contains(&format!("box: run {id} finished (exit 0)")),
        "{}",
        w.stdout_text()
    );
}

#[test]
fn wait_on_two_hosts_exits_1_when_one_fails_and_only_after_both_ended() {
    let boxes = [Sshd::start(), Sshd::start()];
    let c = Client::for_boxes(&boxes, "");
    c.write_rtrain_config(
        "defaults:\n  workdir: ~/w\nhosts:\n  b0:\n    command: sleep 1; exit 2\n  b1:\n    command: sleep 5\n",
    );
    for b in &boxes {
        std::fs::create_dir_all(b.remote_home.join("w")).unwrap();
    }
    for h in ["b0", "b1"] {
        let ran = run_with_timeout(c.rtrain().args(["up", h]), T);
        assert_eq!(ran.code, 0, "{ran}");
    }
    let ran = run_with_timeout(c.rtrain().args(["wait", "b0", "b1", "--json"]), T);
    assert_eq!(ran.code, 1, "{ran}");
    let docs: Vec<serde_json::Value> = ran
        .stdout_str()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 2, "{ran}");
    // One line per host as it ends: the failing one first.
    assert_eq!(docs[0]["host"], "b0");
    assert_eq!(docs[0]["run"]["state"], "failed");
    assert_eq!(docs[0]["run"]["exit_code"], 2);
    assert_eq!(docs[1]["host"], "b1");
    assert_eq!(docs[1]["run"]["state"], "finished");
}

#[test]
fn wait_exits_130_on_ctrl_c_and_leaves_the_run_alone() {
    let p = project("sleep 60", "", false);
    let id = p.up();
    let mut w = Bg::spawn({
        let mut c = p.c.rtrain();
        c.args(["wait", "box"]);
        c
    });
    w.wait_stderr("waiting for run", T);
    w.signal("INT");
    assert_eq!(w.wait(T), 130, "{}", w.stderr());
    assert!(!p.run_dir(&id).join("exit").exists(), "the run goes on");
}

#[test]
fn wait_timeout_gives_up_with_exit_1_and_the_run_goes_on() {
    let p = project("sleep 60", "", false);
    let id = p.up();
    let ran = p.rtrain(&["wait", "box", "--timeout", "2s"]);
    assert_eq!(ran.code, 1, "{ran}");
    assert!(ran.stderr.contains("timed out after 2s"), "{ran}");
    assert!(!p.run_dir(&id).join("exit").exists());
}

/// A private session bus (`dbus-daemon --session`) and `dbus-monitor` on it, recording the
/// `org.freedesktop.Notifications.Notify` calls.
struct Bus {
    daemon: Child,
    monitor: Child,
    address: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Bus {
    fn start() -> Bus {
        let dir = tempfile::tempdir().unwrap();
        let mut daemon = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon (Debian's `dbus`; scripts/test.sh installs it)");
        let mut line = String::new();
        std::io::BufReader::new(daemon.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.trim().to_string();
        assert!(address.starts_with("unix:"), "{address}");
        let log = dir.path().join("monitor.log");
        let monitor = Command::new("dbus-monitor")
            .args([
                "--address",
                &address,
                "interface='org.freedesktop.Notifications',member='Notify'",
            ])
            .stdout(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("dbus-monitor");
        let bus = Bus {
            daemon,
            monitor,
            address,
            log,
            _dir: dir,
        };
        // dbus-monitor has registered its match once it printed its own NameAcquired signal.
        let start = Instant::now();
        while !bus.log_text().contains("NameAcquired") {
            assert!(start.elapsed() < T, "dbus-monitor never started");
            std::thread::sleep(Duration::from_millis(50));
        }
        bus
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.monitor.kill();
        let _ = self.monitor.wait();
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[test]
fn wait_notify_raises_a_desktop_notification_on_a_real_session_bus() {
    let bus = Bus::start();
    let p = project("sleep 3; exit 4", "", false);
    let id = p.up();
    let mut cmd = p.c.rtrain();
    cmd.env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .args(["wait", "box", "--notify"]);
    let ran = run_with_timeout(&mut cmd, T);
    assert_eq!(ran.code, 1, "{ran}");
    let start = Instant::now();
    while !bus.log_text().contains("member=Notify") {
        assert!(start.elapsed() < T, "no Notify call on the bus: {}", bus.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = bus.log_text();
    assert!(log.contains("string \"rtrain\""), "the app name: {log}");
    assert!(log.contains("string \"rtrain: box failed\""), "the summary: {log}");
    assert!(
        log.contains(&format!("box: run {id} failed (exit 4)")),
        "the body: {log}"
    );
}

#[test]
fn notify_test_posts_a_test_event_from_the_box_and_says_which_channel_worked() {
    let r = Receiver::start();
    let secret = "t0p-s3cret";
    let cfg = format!("  notify:\n    webhook: {}\n", r.url(&format!("/hook/{secret}")));
    let p = project("true", &cfg, false);
    let bus = Bus::start();
    let mut cmd = p.c.rtrain();
    cmd.env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .args(["notify", "test", "box"]);
    let ran = run_with_timeout(&mut cmd, T);
    let got = r.wait_for(1, T);
    let j = got[0].json();
    assert_eq!(
        (j["event"].as_str(), j["host"].as_str()),
        (Some("test"), Some("box")),
        "{j}"
    );
    let out = ran.stdout_str();
    assert!(out.contains("webhook: sent from box with curl"), "{ran}");
    // The private bus has no notification server: the call is made, and its failure is said.
    assert!(out.contains("desktop: FAILED"), "{ran}");
    assert_eq!(ran.code, 1, "a channel failed: {ran}");
    assert!(
        bus.log_text().contains("string \"rtrain: box test\""),
        "{}",
        bus.log_text()
    );
    assert!(!out.contains(secret) && !ran.stderr.contains(secret), "{ran}");
}

#[test]
fn status_watch_notify_alerts_when_a_run_it_saw_running_ends() {
    let bus = Bus::start();
    let p = project("sleep 3; exit 0", "", false);
    let id = p.up();
    let mut cmd = p.c.rtrain();
    cmd.env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .args(["status", "box", "--watch", "--notify", "--json"]);
    let _w = Bg::spawn(cmd);
    let start = Instant::now();
    while !bus.log_text().contains("member=Notify") {
        assert!(start.elapsed() < T, "no Notify call on the bus: {}", bus.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = bus.log_text();
    assert!(log.contains("string \"rtrain: box finished\""), "{log}");
    assert!(log.contains(&format!("box: run {id} finished (exit 0)")), "{log}");
}

#[test]
fn up_says_when_the_box_has_neither_curl_nor_wget_and_the_run_still_runs() {
    // A PATH with everything of /usr/bin and /bin except curl and wget.
    let bin = tempfile::tempdir().unwrap();
    for dir in ["/usr/bin", "/bin"] {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let name = e.file_name();
            if name != "curl" && name != "wget" && !bin.path().join(&name).exists() {
                let _ = std::os::unix::fs::symlink(e.path(), bin.path().join(&name));
            }
        }
    }
    let sshd = Sshd::start_with_env(&[("PATH", &bin.path().display().to_string())]);
    let r = Receiver::start();
    let cfg = format!("  notify:\n    webhook: {}\n", r.url("/hook"));
    let p = project_on(sshd, "true", &cfg, false);
    let ran = p.rtrain(&["up", "box"]);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(
        ran.stderr
            .contains("box has neither curl nor wget: box-side notifications are off"),
        "{ran}"
    );
    let id = std::fs::read_to_string(p.dir.join(".rtrain/current")).unwrap();
    let log = p.run_dir(id.trim()).join("notify.log");
    let start = Instant::now();
    while !log.exists() {
        assert!(start.elapsed() < T, "the wrapper never noted why it sent nothing");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "none finished no-curl-or-wget\n"
    );
    assert!(r.requests().is_empty());
}
