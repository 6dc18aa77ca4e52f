//! Backends end to end: the backend a run was launched with is the one every later command uses;
//! `logs -f` is byte-exact across a black hole on every backend; `attach` on GNU screen (through a
//! local tmux terminal) shows the run, detaches with exit 0 and re-attaches after a black hole, and
//! on nohup shows the live log. Boxes without tmux (and screen) are a PATH without them.

use super::resilience::{assert_same_bytes, Rig};
use crate::support::*;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

impl Rig {
    /// A black hole until rtrain has noticed (`needle` on its stderr), then a little longer.
    fn outage(&self, seen: impl Fn() -> bool) {
        self.proxy.set_mode(Mode::BlackHole);
        let start = Instant::now();
        while !seen() {
            assert!(start.elapsed() < Duration::from_secs(20), "the drop was never noticed");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_secs(1));
        self.proxy.set_mode(Mode::Pass);
    }
}

crate::per_backend! {
/// The log arrives byte for byte across a dead link, whatever keeps the run alive.
fn logs_follow_is_byte_exact_across_a_black_hole(kind) {
    let rig = Rig::on(kind);
    let st = rig.up("python3 writer.py 1000 8");
    assert_eq!(st["run"]["backend"], kind.name(), "{st:#}");
    let log = std::path::PathBuf::from(st["run"]["log"].as_str().unwrap());
    let mut cmd = rig.c.rtrain();
    cmd.args(["logs", "box", "-f", "-n", "all", "--raw"]);
    let mut bg = Bg::spawn(cmd);
    bg.wait_stdout_past(0, T);
    rig.outage(|| bg.stderr().contains("reconnecting"));
    assert_eq!(bg.wait(T), 0, "{}", bg.stderr());
    assert!(bg.stderr().contains("reconnected"), "{}", bg.stderr());
    assert_same_bytes(&bg.stdout(), &log);
}
}

/// `up --backend` (and the config's `backend:`) choose; afterwards the run's recorded backend wins over
/// whatever the config says, for status, stop and attach alike.
#[test]
fn a_run_keeps_its_backend_whatever_the_config_says_later() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    std::fs::create_dir_all(sshd.remote_home.join("w")).unwrap();
    c.write_rtrain_config("defaults:\n  workdir: ~/w\n  backend: screen\n");
    let ran = run_with_timeout(
        c.rtrain().args(["up", "box", "--backend", "nohup", "--", "sleep 120"]),
        T,
    );
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stdout_str().contains("under nohup (no terminal)"), "{ran}");
    assert!(
        !ran.stderr.contains("using"),
        "an explicit choice is not announced: {ran}"
    );
    c.write_rtrain_config("defaults:\n  workdir: ~/w\n  backend: tmux\n");
    let st = run_with_timeout(c.rtrain().args(["status", "box", "--json"]), T);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["run"]["backend"], "nohup", "{v:#}");
    assert_eq!(v["session"]["backend"], "nohup", "{v:#}");
    assert_eq!(v["session"]["exists"], false, "{v:#}");
    // This machine also has Slurm (for the Slurm tests); auto never picks it, it is listed last.
    assert_eq!(
        v["session"]["available_backends"]
            .as_array()
            .map(|a| a.iter().filter(|b| *b != "slurm").cloned().collect::<Vec<_>>())
            .map(serde_json::Value::Array)
            .unwrap_or_default(),
        serde_json::json!(["tmux", "screen", "nohup"])
    );
    // No tmux session was made for it, nor a screen one.
    assert!(!sshd.sh("tmux ls").status.success());
    assert!(!String::from_utf8_lossy(&sshd.sh("screen -ls").stdout).contains(".training"));
    let stop = run_with_timeout(c.rtrain().args(["stop", "box", "--timeout", "5"]), T);
    assert_eq!(stop.code, 0, "{stop}");
    assert!(
        stop.stdout_str().contains("stopped run") && !stop.stdout_str().contains("session stays"),
        "{stop}"
    );
    // A config naming something else is refused with the choices.
    c.write_rtrain_config("defaults:\n  backend: systemd\n");
    let ran = run_with_timeout(c.rtrain().args(["status", "box"]), T);
    assert_eq!(ran.code, 2, "{ran}");
    assert!(
        ran.stderr.contains("defaults.backend") && ran.stderr.contains("auto, tmux, screen, nohup"),
        "{ran}"
    );
}

/// The seed's screen user sees the run where they expect it: `screen -ls` lists one session named
/// after rtrain's session, and each run is a window of it.
#[test]
fn on_screen_each_run_is_a_window_of_one_session_named_as_configured() {
    let rig = Rig::on(Kind::Screen);
    rig.up("echo first-run");
    let first = rig.status();
    assert_eq!(first["run"]["backend"], "screen");
    assert_eq!(first["session"]["exists"], true);
    let start = Instant::now();
    while rig.status()["run"]["state"] != "finished" {
        assert!(start.elapsed() < T, "the first run never finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    rig.up("sleep 60");
    let ls = String::from_utf8_lossy(&rig.sshd.sh("screen -ls").stdout).into_owned();
    assert_eq!(ls.matches(".training\t").count(), 1, "{ls}");
    let windows = rig.sshd.sh("screen -S training -Q windows");
    let windows = String::from_utf8_lossy(&windows.stdout).into_owned();
    assert_eq!(windows.matches("rtrain").count(), 2, "one window per run: {windows:?}");
    rig.rtrain(&["stop", "box", "--force"]);
}

#[test]
fn attach_on_screen_shows_the_run_detaches_with_0_and_reattaches_after_a_black_hole() {
    let rig = Rig::on(Kind::Screen);
    let st = rig.up("i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.5; done");
    let term = rig.term("\"$RTRAIN\" attach box; echo \"EXIT=$?\"; sleep 60");
    term.wait_for("tick-", T);
    rig.outage(|| term.capture().contains("reconnecting"));
    term.wait_output("reconnected", Duration::from_secs(20));
    // Re-attached: screen redraws the run's window, where the ticks go on.
    let seen = |screen: &str| {
        screen
            .split("tick-")
            .skip(1)
            .filter_map(|t| t.split_whitespace().next()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
    };
    let before = seen(&term.capture());
    let start = Instant::now();
    while seen(&term.capture()) <= before {
        assert!(
            start.elapsed() < T,
            "no new output after the reconnect:\n{}",
            term.capture()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // screen's own detach: C-a d (the local tmux's prefix is C-b, so it passes through).
    term.send_keys(&["C-a", "d"]);
    let screen = term.wait_for("EXIT=", T);
    assert!(
        screen.contains("the run goes on") && screen.contains("EXIT=0"),
        "{screen}"
    );
    assert!(
        !screen.contains("took it over"),
        "re-attaching to our own session is no takeover: {screen}"
    );
    let v = rig.status();
    assert_eq!(
        (v["run"]["state"].as_str(), &v["run"]["pid"]),
        (Some("running"), &st["run"]["pid"])
    );
    rig.rtrain(&["stop", "box", "--force"]);
}

#[test]
fn attach_on_nohup_says_there_is_no_terminal_and_shows_the_live_log() {
    let rig = Rig::on(Kind::Nohup);
    rig.up("i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.3; done");
    // The shell traps SIGINT (a handler, which its children do not inherit) so that it outlives Ctrl-C.
    let term = rig.term("trap : INT; \"$RTRAIN\" attach box; echo \"EXIT=$?\"; sleep 60");
    let screen = term.wait_for("tick-3", T);
    let said: Vec<&str> = screen.lines().filter(|l| l.contains("no terminal")).collect();
    assert_eq!(said.len(), 1, "{screen}");
    assert!(
        said[0].contains("backend nohup") || screen.contains("backend nohup"),
        "{screen}"
    );
    term.wait_for("tick-6", T);
    term.send_keys(&["C-c"]);
    term.wait_for("EXIT=130", T);
    assert_eq!(
        rig.status()["run"]["state"],
        "running",
        "leaving the log leaves the run alone"
    );
    rig.rtrain(&["stop", "box", "--force"]);
}

/// `screen -d -r`: a second attach takes the session over; the first terminal's rtrain ends as a detach
/// (the run goes on), and the second says, when it leaves, that it took the session over.
#[test]
fn a_second_attach_on_screen_takes_the_session_over_and_says_so() {
    let rig = Rig::on(Kind::Screen);
    rig.up("i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.5; done");
    let script = "\"$RTRAIN\" attach box; echo \"EXIT=$?\"; sleep 60";
    let first = rig.term(script);
    first.wait_for("tick-", T);
    let second = rig.term(script);
    second.wait_for("tick-", T);
    let screen = first.wait_for("EXIT=", T);
    assert!(
        screen.contains("the run goes on") && screen.contains("EXIT=0"),
        "{screen}"
    );
    second.send_keys(&["C-a", "d"]);
    let screen = second.wait_for("EXIT=", T);
    assert!(screen.contains("took it over") && screen.contains("EXIT=0"), "{screen}");
    assert_eq!(rig.status()["run"]["state"], "running");
    rig.rtrain(&["stop", "box", "--force"]);
}

/// What systemd-logind with `KillUserProcesses=yes` (and no exclusion for the test user, root by default)
/// answers, the way `loginctl show-session -p ...` and `show-user -p Linger` print it. A stand-in, because
/// the test machine's systemd is not PID 1: its real loginctl cannot reach a logind.
const KILLING_LOGINCTL: &str = "#!/bin/sh\ncase $1 in\n  show-session) printf 'KillUserProcesses=yes\\nKillOnlyUsers=\\nKillExcludeUsers=\\n' ;;\n  show-user) printf 'Linger=no\\n' ;;\n  *) echo \"loginctl stand-in: $*\" >&2; exit 1 ;;\nesac\n";

#[test]
fn up_warns_once_and_check_reports_a_logind_that_kills_runs_at_logout() {
    let sshd = Sshd::start_with_stand_in("loginctl", KILLING_LOGINCTL);
    let c = Client::for_box(&sshd);
    c.write_rtrain_config("defaults:\n  workdir: ~/w\n");
    std::fs::create_dir_all(sshd.remote_home.join("w")).unwrap();
    let user = current_user();
    let up = run_with_timeout(c.rtrain().args(["up", "box", "--", "sleep 30"]), T);
    assert_eq!(up.code, 0, "{up}");
    let err = &up.stderr;
    let warned: Vec<&str> = err.lines().filter(|l| l.contains("KillUserProcesses=yes")).collect();
    assert_eq!(warned.len(), 1, "{up}");
    assert!(warned[0].starts_with("rtrain: warning: logind on box"), "{up}");
    assert!(warned[0].contains(&format!("loginctl enable-linger {user}")), "{up}");
    assert!(warned[0].contains("systemd-run --user --scope"), "{up}");

    let check = run_with_timeout(c.rtrain().args(["check", "box"]), T);
    assert_eq!(check.code, 0, "{check}");
    let text = check.stdout_str();
    assert!(
        text.contains("backend:           tmux (the box offers: tmux, screen, nohup"),
        "{text}"
    );
    assert!(text.contains("! logind on box has KillUserProcesses=yes"), "{text}");
    let json = run_with_timeout(c.rtrain().args(["check", "box", "--json"]), T);
    let j: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(j["backend"]["killed_at_logout"], true, "{json}");
    assert_eq!(j["backend"]["name"], "tmux", "{json}");
    run_with_timeout(c.rtrain().args(["stop", "box", "--force"]), T);
}

/// A logind that keeps processes at logout (its default): no warning, nothing found.
#[test]
fn up_does_not_warn_when_logind_keeps_processes() {
    let sshd = Sshd::start_with_stand_in(
        "loginctl",
        &KILLING_LOGINCTL.replace("KillUserProcesses=yes", "KillUserProcesses=no"),
    );
    let c = Client::for_box(&sshd);
    c.write_rtrain_config("defaults:\n  workdir: ~/w\n");
    std::fs::create_dir_all(sshd.remote_home.join("w")).unwrap();
    let up = run_with_timeout(c.rtrain().args(["up", "box", "--", "sleep 30"]), T);
    assert_eq!(up.code, 0, "{up}");
    assert!(!up.stderr.contains("KillUserProcesses"), "{up}");
    let json = run_with_timeout(c.rtrain().args(["check", "box", "--json"]), T);
    let j: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(j["backend"]["killed_at_logout"], false, "{json}");
    assert_eq!(j["backend"]["findings"], serde_json::json!([]), "{json}");
    run_with_timeout(c.rtrain().args(["stop", "box", "--force"]), T);
}
