//! rtrain (or any command) in the background with its output in files, so a test can watch what it
//! says, signal it and wait for it with a deadline. One copy for every test file: the integration
//! files and the soak each had their own.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct Bg {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    _dir: tempfile::TempDir,
}

impl Bg {
    pub fn spawn(mut cmd: Command) -> Bg {
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
        let child = cmd
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Bg {
            child,
            out,
            err,
            _dir: dir,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> Vec<u8> {
        std::fs::read(&self.out).unwrap_or_default()
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout()).into_owned()
    }

    /// How much it has written to stdout, without reading it (a fast-growing log can be large).
    pub fn stdout_len(&self) -> usize {
        std::fs::metadata(&self.out).map(|m| m.len() as usize).unwrap_or(0)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Its exit code once it has ended (`-1` when a signal ended it), or a panic after `limit`.
    pub fn wait(&mut self, limit: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "did not finish within {limit:?}\nstdout: {}\nstderr: {}",
                    self.stdout_text(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until stdout has grown past `len` bytes (output is flowing).
    pub fn wait_stdout_past(&self, len: usize, limit: Duration) {
        let start = Instant::now();
        while self.stdout_len() <= len {
            assert!(
                start.elapsed() < limit,
                "stdout did not grow past {len} bytes within {limit:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_stderr(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !self.stderr().contains(needle) {
            assert!(
                start.elapsed() < limit,
                "stderr never said {needle:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -SIG` to it alone (`"INT"` is what Ctrl-C in its terminal would send).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
