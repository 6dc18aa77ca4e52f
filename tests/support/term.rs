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
    pub fn start(argv: &[String], env: &[(String, String)]) -> LocalTerm {
        let dir = tempfile::Builder::new().prefix("rtrain-term-").tempdir().unwrap();
        let t = LocalTerm { dir };
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
        ]);
        for (k, v) in env {
            cmd.arg("-e").arg(format!("{k}={v}"));
        }
        // Keep the pane after the command exits so its last words and status can be read.
        cmd.args(argv);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "local tmux failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.tmux()
            .args(["set-option", "-t", "t", "remain-on-exit", "on"])
            .output()
            .unwrap();
        t
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
