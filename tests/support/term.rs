//! A local terminal for interactive tests: a private tmux server running one command in a pane,
//! driven with send-keys and read with capture-pane, as a person at a keyboard would.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub struct LocalTerm {
    dir: tempfile::TempDir,
}

impl LocalTerm {
    /// Start `argv` in a 120x40 pane with the given environment (nothing else inherited but PATH).
    /// Everything the pane prints is also recorded (see [`LocalTerm::output`]) from its first byte.
    pub fn start(argv: &[String], env: &[(String, String)]) -> LocalTerm {
        let dir = tempfile::Builder::new().prefix("rtrain-term-").tempdir().unwrap();
        let t = LocalTerm { dir };
        let envs: Vec<String> = env
            .iter()
            .flat_map(|(k, v)| ["-e".to_string(), format!("{k}={v}")])
            .collect();
        // The pane starts idle so that the recording and remain-on-exit are in place before the
        // command runs: nothing it prints, however early or brief, can be missed.
        let mut cmd = t.tmux();
        cmd.args([
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "120",
            "-y",
            "40",
        ])
        .args(&envs)
        .args(["sleep", "100000"]);
        t.ok(&mut cmd, "new-session");
        // Keep the pane after the command exits so its last words and status can be read.
        t.ok(
            t.tmux().args(["set-option", "-t", "t", "remain-on-exit", "on"]),
            "set-option",
        );
        let log = t.output_path().display().to_string();
        t.ok(
            t.tmux().args(["pipe-pane", "-t", "t", &format!("exec cat >> '{log}'")]),
            "pipe-pane",
        );
        t.ok(
            t.tmux().args(["respawn-pane", "-k", "-t", "t"]).args(&envs).args(argv),
            "respawn-pane",
        );
        t
    }

    fn ok(&self, cmd: &mut Command, what: &str) {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "local tmux {what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn output_path(&self) -> PathBuf {
        self.dir.path().join("output")
    }

    /// Every byte the pane's command printed so far, escape sequences included: unlike the
    /// screen, it keeps what a redraw replaced a moment later.
    pub fn output(&self) -> Vec<u8> {
        std::fs::read(self.output_path()).unwrap_or_default()
    }

    /// Wait until the pane's command has printed `needle` (at any time since it started, even if
    /// the screen no longer shows it); panics with the screen on timeout.
    pub fn wait_output(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !String::from_utf8_lossy(&self.output()).contains(needle) {
            if start.elapsed() > limit {
                panic!(
                    "the terminal was never sent {needle:?} within {limit:?}; the screen shows:\n{}",
                    self.capture()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.env("TMUX_TMPDIR", self.socket_dir()).env_remove("TMUX");
        c
    }

    pub fn capture(&self) -> String {
        let out: Output = self.tmux().args(["capture-pane", "-p", "-t", "t"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn send_keys(&self, keys: &[&str]) {
        let st = self.tmux().args(["send-keys", "-t", "t"]).args(keys).status().unwrap();
        assert!(st.success());
    }

    /// Type literal text (no key-name interpretation).
    pub fn type_text(&self, text: &str) {
        let st = self.tmux().args(["send-keys", "-t", "t", "-l", text]).status().unwrap();
        assert!(st.success());
    }

    /// Wait until the screen contains `needle`; panics with the screen on timeout.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let screen = self.capture();
            if screen.contains(needle) {
                return screen;
            }
            if start.elapsed() > limit {
                panic!("screen never showed {needle:?} within {limit:?}; it shows:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until the screen no longer contains `needle` (e.g. a status line a redraw replaces).
    pub fn wait_gone(&self, needle: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let screen = self.capture();
            if !screen.contains(needle) {
                return screen;
            }
            if start.elapsed() > limit {
                panic!("screen still shows {needle:?} after {limit:?}:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pane's command has exited: its status.
    pub fn exit_status(&self) -> Option<i32> {
        let out = self
            .tmux()
            .args(["display-message", "-p", "-t", "t", "#{pane_dead} #{pane_dead_status}"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let mut it = text.split_whitespace();
        match (it.next(), it.next()) {
            (Some("1"), Some(code)) => code.parse().ok(),
            _ => None,
        }
    }

    pub fn wait_exit(&self, limit: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(code) = self.exit_status() {
                return code;
            }
            if start.elapsed() > limit {
                panic!("the command did not exit within {limit:?}; screen:\n{}", self.capture());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pane's process id (the command started in it).
    pub fn pane_pid(&self) -> u32 {
        let out = self
            .tmux()
            .args(["display-message", "-p", "-t", "t", "#{pane_pid}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}

impl Drop for LocalTerm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- local terminal screen ----\n{}", self.capture());
        }
        let _ = self.tmux().arg("kill-server").output();
    }
}
