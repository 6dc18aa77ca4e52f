//! A real `ssh-agent` for tests of agent authentication. Killed on Drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A real ssh-agent, killed on Drop.
pub struct Agent {
    _dir: tempfile::TempDir,
    pub sock: PathBuf,
    child: Child,
}

impl Agent {
    pub fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent");
        // The socket file appears at bind(), before listen(): only a connect that succeeds means
        // ssh-add can talk to it. Under load that took more than the 2 s once allowed here.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "ssh-agent did not listen on {} within 30 s",
                sock.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Agent { _dir: dir, sock, child }
    }
    /// An agent holding a new `kind` key (made outside any client home, so only the agent has it)
    /// that `sshd` accepts.
    pub fn with_key_for(sshd: &crate::support::Sshd, kind: &str, name: &str) -> Agent {
        let agent = Agent::start();
        let key = sshd.dir.path().join(name);
        crate::support::keygen(&key, kind, "");
        sshd.authorize(&key.with_extension("pub"));
        agent.add(&key);
        agent
    }

    pub fn add(&self, key: &Path) {
        let st = Command::new("ssh-add")
            .arg("-q")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.sock)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
