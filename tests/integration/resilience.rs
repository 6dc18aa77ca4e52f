//! Surviving the network, end to end: `logs -f`, `attach` and `forward` through the
//! fault-injecting proxy, with black holes, resets, an sshd restart, a suspended client and a
//! changed host key. Keepalives are 500 ms × 2 so a dead link is noticed in about 1.5 s.

use crate::support::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

/// A Python writer: `lines_per_s` lines a second for `secs` seconds, flushed, to stdout.
pub const WRITER: &str = r#"import sys, time
rate, secs = float(sys.argv[1]), float(sys.argv[2])
start = time.time(); i = 0
while time.time() - start < secs:
    sys.stdout.write("line %07d %s\n" % (i, "x" * (i % 50)))
    sys.stdout.flush()
    i += 1
    next_at = start + i / rate
    delay = next_at - time.time()
    if delay > 0:
        time.sleep(delay)
"#;

/// A box where `auto` picks `kind` (tmux for [`Rig::new`]), reached through a fault-injecting
/// proxy, keepalives 500 ms, with [`WRITER`] in its workdir.
pub(crate) struct Rig {
    pub sshd: Sshd,
    pub proxy: Proxy,
    pub c: Client,
}

impl Rig {
    fn new() -> Rig {
        Rig::on(Kind::Tmux)
    }

    pub fn on(kind: Kind) -> Rig {
        let sshd = kind.sshd();
        let proxy = Proxy::start(sshd.port);
        let c = proxy.client_for(&sshd);
        c.write_rtrain_config("defaults:\n  workdir: ~/work dir\n  keepalive: 500ms\n");
        std::fs::create_dir_all(sshd.remote_home.join("work dir")).unwrap();
        std::fs::write(sshd.remote_home.join("work dir/writer.py"), WRITER).unwrap();
        Rig { sshd, proxy, c }
    }

    pub fn rtrain(&self, args: &[&str]) -> Ran {
        run_with_timeout(self.c.rtrain().args(args), T)
    }

    pub fn status(&self) -> serde_json::Value {
        let st = self.rtrain(&["status", "box", "--json"]);
        assert_eq!(st.code, 0, "{st}");
        serde_json::from_slice(&st.stdout).unwrap()
    }

    /// Start a run through rtrain itself (through the proxy, while it passes).
    pub fn up(&self, command: &str) -> serde_json::Value {
        let ran = self.rtrain(&["up", "box", "--", command]);
        assert_eq!(ran.code, 0, "{ran}");
        self.status()
    }

    fn remote_log(&self, status: &serde_json::Value) -> PathBuf {
        PathBuf::from(status["run"]["log"].as_str().expect("log path"))
    }

    /// `script` in a local tmux terminal, with `$RTRAIN` and the client's environment.
    pub fn term(&self, script: &str) -> LocalTerm {
        let mut env = self.c.env_pairs();
        env.push(("RTRAIN".into(), rtrain_bin().display().to_string()));
        LocalTerm::start(&["sh".to_string(), "-c".to_string(), script.to_string()], &env)
    }
}

pub fn assert_same_bytes(local: &[u8], remote: &Path) {
    let want = std::fs::read(remote).unwrap();
    if local != want.as_slice() {
        let at = local
            .iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(local.len().min(want.len()));
        panic!(
            "local output ({} bytes) differs from the remote log ({} bytes) at byte {at}: local {:?} remote {:?}",
            local.len(),
            want.len(),
            String::from_utf8_lossy(&local[at.saturating_sub(40)..(at + 40).min(local.len())]),
            String::from_utf8_lossy(&want[at.saturating_sub(40)..(at + 40).min(want.len())]),
        );
    }
}

#[test]
fn logs_follow_is_byte_exact_through_five_ten_second_black_holes() {
    let rig = Rig::new();
    // ~1000 lines/s for as long as the five outages take.
    let st = rig.up("python3 writer.py 1000 75");
    let log = rig.remote_log(&st);
    let mut cmd = rig.c.rtrain();
    cmd.args(["logs", "box", "-f", "-n", "all", "--raw"]);
    let mut bg = Bg::spawn(cmd);
    bg.wait_stdout_past(0, T); // following
    for round in 1..=5 {
        rig.proxy.set_mode(Mode::BlackHole);
        std::thread::sleep(Duration::from_secs(10));
        rig.proxy.set_mode(Mode::Pass);
        let before = bg.stdout().len();
        let start = Instant::now();
        while bg.stdout().len() == before {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "round {round}: output did not resume; stderr:\n{}",
                bg.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(bg.wait(Duration::from_secs(90)), 0, "{}", bg.stderr());
    assert!(bg.stderr().matches("reconnected").count() >= 5, "{}", bg.stderr());
    assert_same_bytes(&bg.stdout(), &log);
}

#[test]
fn logs_follow_survives_resets_and_an_sshd_restart() {
    let mut rig = Rig::new();
    let st = rig.up("python3 writer.py 500 12");
    let log = rig.remote_log(&st);
    let mut cmd = rig.c.rtrain();
    cmd.args(["logs", "box", "-f", "-n", "all", "--raw"]);
    let mut bg = Bg::spawn(cmd);
    bg.wait_stdout_past(0, T); // following
    rig.proxy.set_mode(Mode::Reset);
    std::thread::sleep(Duration::from_secs(1));
    rig.proxy.set_mode(Mode::Pass);
    bg.wait_stderr("reconnected", T);
    bg.wait_stdout_past(bg.stdout().len(), T); // following again
    rig.sshd.restart();
    assert_eq!(bg.wait(T), 0, "{}", bg.stderr());
    assert!(bg.stderr().matches("reconnected").count() >= 2, "{}", bg.stderr());
    assert_same_bytes(&bg.stdout(), &log);
}

#[test]
fn a_suspended_client_recovers_after_a_long_black_hole() {
    let rig = Rig::new();
    let st = rig.up("python3 writer.py 200 45");
    let log = rig.remote_log(&st);
    let mut cmd = rig.c.rtrain();
    cmd.args(["logs", "box", "-f", "-n", "all", "--raw"]);
    let mut bg = Bg::spawn(cmd);
    bg.wait_stdout_past(0, T); // following
                               // What a laptop lid does: the client stops, the network goes away, both come back.
    bg.signal("STOP");
    rig.proxy.set_mode(Mode::BlackHole);
    std::thread::sleep(Duration::from_secs(30));
    rig.proxy.set_mode(Mode::Pass);
    bg.signal("CONT");
    let before = bg.stdout().len();
    let start = Instant::now();
    while bg.stdout().len() <= before {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no output after SIGCONT; stderr:\n{}",
            bg.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(bg.wait(T), 0, "{}", bg.stderr());
    assert_same_bytes(&bg.stdout(), &log);
}

#[test]
fn a_host_key_changed_while_away_stops_with_exit_5_instead_of_retrying() {
    let mut rig = Rig::new();
    rig.up("python3 writer.py 100 60");
    let mut cmd = rig.c.rtrain();
    cmd.args(["logs", "box", "-f"]);
    let mut bg = Bg::spawn(cmd);
    bg.wait_stdout_past(0, T); // following
    let accepted = rig.proxy.accepted();
    rig.sshd.change_host_key();
    assert_eq!(bg.wait(Duration::from_secs(20)), 5, "{}", bg.stderr());
    assert!(bg.stderr().contains("CHANGED"), "{}", bg.stderr());
    assert!(
        rig.proxy.accepted() - accepted <= 2,
        "it kept retrying: {} connections",
        rig.proxy.accepted() - accepted
    );
    rig.rtrain(&["stop", "box", "--force"]); // refused too (changed key): the box's Drop ends the run
}

/// The retry count the attach status line shows ("attempt N"), if it shows one.
fn attempt_shown(screen: &str) -> Option<u32> {
    let at = screen.rfind("attempt ")? + "attempt ".len();
    let digits: String = screen[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// What every pane of the box's tmux session holds, scrollback included, wrapped lines joined.
fn every_pane(rig: &Rig) -> String {
    let panes = rig.sshd.sh("tmux list-panes -s -t '=training' -F '#{pane_id}'");
    let ids = String::from_utf8_lossy(&panes.stdout).into_owned();
    assert!(
        !ids.trim().is_empty(),
        "no panes: {:?}",
        String::from_utf8_lossy(&panes.stderr)
    );
    let mut all = String::new();
    for id in ids.split_whitespace() {
        let pane = rig.sshd.sh(&format!("tmux capture-pane -p -J -S -5000 -t '{id}'"));
        all += &format!("---- pane {id}\n{}", String::from_utf8_lossy(&pane.stdout));
    }
    all
}

#[test]
fn attach_reconnects_after_a_black_hole_and_the_run_never_notices() {
    let rig = Rig::new();
    let st = rig.up("python3 writer.py 5 300");
    let pid = st["run"]["pid"].clone();
    let term = rig.term("\"$RTRAIN\" attach box; echo \"EXIT=$?\"; sleep 60");
    term.wait_for("[training", T);
    rig.proxy.set_mode(Mode::BlackHole);
    let screen = term.wait_for("reconnecting", Duration::from_secs(15));
    // Typed while disconnected: must never reach a pane. The outage lasts until rtrain has been
    // through two more retries since, so the keys were read (and dropped) while it was reconnecting.
    let before = attempt_shown(&screen).unwrap_or(0);
    term.type_text("echo typed-while-away");
    term.send_keys(&["Enter"]);
    let start = Instant::now();
    while attempt_shown(&term.capture()).unwrap_or(0) < before + 2 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no retry after attempt {before}:\n{}",
            term.capture()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    rig.proxy.set_mode(Mode::Pass);
    // rtrain says it is back, then tmux's full redraw of the re-attached session replaces that
    // line within milliseconds: so the message is looked for in what the terminal was sent, not on
    // a screen sampled every 50 ms, which can miss it under load (keys typed before tmux has the
    // terminal may be flushed by it, as on any attach).
    term.wait_output("reconnected", Duration::from_secs(15));
    term.wait_gone("reconnected", Duration::from_secs(15));
    term.wait_for("[training", Duration::from_secs(15));
    // Re-attached: tmux redrew the screen, and input reaches the remote shell again.
    let windows = || {
        rig.sshd
            .sh("tmux list-windows -t '=training'")
            .stdout
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    };
    let had = windows();
    term.send_keys(&["C-b", "c"]); // a new window with a shell
    let start = Instant::now();
    while windows() <= had {
        assert!(start.elapsed() < T, "no new window:\n{}", term.capture());
        std::thread::sleep(Duration::from_millis(50));
    }
    term.type_text("echo back-$((20+22))");
    term.send_keys(&["Enter"]);
    term.wait_for("back-42", T);
    let st = rig.status();
    assert_eq!(st["run"]["pid"], pid, "the run was restarted");
    assert_eq!(st["run"]["state"], "running");
    // Replayed keys would land in the pane that was active on re-attach (the run's own window);
    // every pane is looked at, the shell's window 0 too.
    let panes = every_pane(&rig);
    assert!(
        !panes.contains("typed-while-away"),
        "keystrokes from the outage were replayed:\n{panes}"
    );
    term.send_keys(&["C-b", "d"]);
    term.wait_for("EXIT=0", T);
    rig.rtrain(&["stop", "box", "--force"]);
}

#[test]
fn ctrl_c_while_reconnecting_exits_130_and_restores_the_terminal() {
    let rig = Rig::new();
    let term = rig.term(
        "\"$RTRAIN\" attach box; echo \"EXIT=$?\"; stty -a | tr ' ' '\\n' | grep -x -e icanon -e -icanon; sleep 60",
    );
    term.wait_for("[training", T);
    rig.proxy.set_mode(Mode::BlackHole);
    term.wait_for("reconnecting", Duration::from_secs(15));
    term.send_keys(&["C-c"]);
    let screen = term.wait_for("EXIT=", Duration::from_secs(10));
    assert!(screen.contains("EXIT=130"), "{screen}");
    let screen = term.wait_for("icanon", Duration::from_secs(5));
    assert!(
        screen.lines().any(|l| l.trim() == "icanon"),
        "the terminal was left in raw mode:\n{screen}"
    );
}

#[test]
fn forward_keeps_listening_and_serves_new_clients_once_the_link_is_back() {
    let rig = Rig::new();
    // The "remote" service: an echo server on this machine, which is the box's localhost.
    let service = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let remote_port = service.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in service.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 1024];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let local = free_port();
    let mut cmd = rig.c.rtrain();
    cmd.args(["forward", "box", &format!("{local}:{remote_port}")]);
    let bg = Bg::spawn(cmd);
    bg.wait_stderr("forwarding", T);
    let echo = |msg: &str| -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", local)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(msg.as_bytes()).unwrap();
        let mut buf = vec![0u8; msg.len()];
        s.read_exact(&mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    };
    assert_eq!(echo("hello"), "hello");
    rig.proxy.set_mode(Mode::BlackHole);
    bg.wait_stderr("reconnecting", Duration::from_secs(15));
    rig.proxy.set_mode(Mode::Pass);
    bg.wait_stderr("reconnected", Duration::from_secs(15));
    assert_eq!(echo("again"), "again", "a new client works once the link is back");
}
