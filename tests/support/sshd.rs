//! A real OpenSSH `sshd` on 127.0.0.1 (or another loopback address, for hosts only reachable
//! through a jump host) at an ephemeral port, with its own host key, an authorized user key, and a
//! remote HOME and tmux socket directory of its own. Killed on Drop. A missing sshd fails the test
//! loudly; it never skips.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";

pub fn keygen(path: &Path, kind: &str, passphrase: &str) {
    let _ = std::fs::remove_file(path);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", passphrase, "-C", "rtrain-test", "-f"])
        .arg(path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    let st = cmd
        .status()
        .expect("ssh-keygen must be installed (apt-get install openssh-client)");
    assert!(st.success(), "ssh-keygen failed for {}", path.display());
}

pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A running sshd. `dir` holds its config, keys, log and the remote side's HOME.
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The remote `$HOME` the server gives sessions (SetEnv), so each box is isolated.
    pub remote_home: PathBuf,
    /// TMUX_TMPDIR of the box: each box has its own tmux server.
    pub tmux_dir: PathBuf,
    /// SCREENDIR of the box (mode 700): each box has its own screen sockets.
    pub screen_dir: PathBuf,
    pub host_key: PathBuf,
    pub user: String,
    pub extra_config: String,
    /// Extra environment for every session (SetEnv), e.g. a PATH without tmux.
    pub extra_env: Vec<(String, String)>,
    /// The only address it listens on. Linux routes all of 127/8 to lo, so 127.0.0.2 is a host a
    /// client reaches only when told to (by a jump host, a ProxyCommand).
    pub listen: String,
    /// sshd's LogLevel: DEBUG1 shows what a jump host forwards (`direct-tcpip ... target`).
    pub log_level: String,
    /// Lines written before the defaults, so they win (sshd keeps a keyword's first value):
    /// `PasswordAuthentication yes`, `UsePAM yes`.
    pub auth_config: String,
    /// The sshd to run: a symlink named after a test PAM service (sshd names its PAM service
    /// after its program name), or None for [`SSHD`].
    pub program: Option<PathBuf>,
    child: Option<Child>,
    /// Directories that live as long as the box (the PATH of [`Sshd::start_without`]).
    keep: Vec<tempfile::TempDir>,
}

/// How to start a box beyond the defaults.
#[derive(Debug, Clone)]
pub struct SshdOptions {
    pub listen: String,
    pub log_level: String,
    pub extra_config: String,
    pub extra_env: Vec<(String, String)>,
    pub auth_config: String,
    pub program: Option<PathBuf>,
}

impl Default for SshdOptions {
    fn default() -> Self {
        SshdOptions {
            listen: "127.0.0.1".into(),
            log_level: "VERBOSE".into(),
            extra_config: String::new(),
            extra_env: Vec::new(),
            auth_config: String::new(),
            program: None,
        }
    }
}

impl Sshd {
    pub fn start() -> Sshd {
        Self::start_with("")
    }

    /// Start with extra sshd_config lines (e.g. `MaxAuthTries 2`).
    pub fn start_with(extra_config: &str) -> Sshd {
        Self::start_opts(SshdOptions {
            extra_config: extra_config.to_string(),
            ..SshdOptions::default()
        })
    }

    /// A box that listens only on `listen` (e.g. "127.0.0.2").
    pub fn start_on(listen: &str) -> Sshd {
        Self::start_opts(SshdOptions {
            listen: listen.to_string(),
            ..SshdOptions::default()
        })
    }

    /// A box whose sessions get extra environment (e.g. a PATH without tmux).
    pub fn start_with_env(extra_env: &[(&str, &str)]) -> Sshd {
        Self::start_opts(SshdOptions {
            extra_env: extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..SshdOptions::default()
        })
    }

    pub fn start_opts(opts: SshdOptions) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} not found: the integration tests need a real OpenSSH server. Run the README's test command \
             (it installs openssh-server and tmux), or `apt-get install openssh-server tmux`"
        );
        let dir = tempfile::Builder::new().prefix("rtrain-sshd-").tempdir().unwrap();
        let remote_home = dir.path().join("remote home");
        let tmux_dir = dir.path().join("tmux");
        let screen_dir = dir.path().join("screen");
        std::fs::create_dir_all(&remote_home).unwrap();
        std::fs::create_dir_all(&tmux_dir).unwrap();
        std::fs::create_dir_all(&screen_dir).unwrap();
        std::fs::set_permissions(&screen_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        std::fs::create_dir_all("/run/sshd").ok(); // privilege separation directory, when root
        let host_key = dir.path().join("ssh_host_ed25519_key");
        keygen(&host_key, "ed25519", "");
        std::fs::write(dir.path().join("authorized_keys"), "").unwrap();
        let mut sshd = Sshd {
            port: 0,
            remote_home,
            tmux_dir,
            screen_dir,
            host_key,
            user: current_user(),
            extra_config: opts.extra_config,
            extra_env: opts.extra_env,
            listen: opts.listen,
            log_level: opts.log_level,
            auth_config: opts.auth_config,
            program: opts.program,
            child: None,
            keep: Vec::new(),
            dir,
        };
        sshd.spawn_on_free_port();
        sshd
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sshd.log")
    }

    /// The server's log so far (attach it to assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn authorize(&self, public_key_file: &Path) {
        let key = std::fs::read_to_string(public_key_file).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("authorized_keys"))
            .unwrap();
        writeln!(f, "{}", key.trim()).unwrap();
    }

    /// The host public key line as `ssh-ed25519 AAAA...`.
    pub fn host_public_key(&self) -> String {
        let text = std::fs::read_to_string(self.host_key.with_extension("pub")).unwrap();
        text.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
    }

    fn write_config(&self) {
        let cfg = format!(
            "{auth}Port {port}\nListenAddress {listen}\nHostKey {hk}\nPidFile {dir}/sshd.pid\nAuthorizedKeysFile {dir}/authorized_keys\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nUsePAM no\nStrictModes no\n\
             PermitRootLogin yes\nLogLevel {log_level}\nMaxStartups 100:30:200\nMaxSessions 100\n\
             SetEnv \"HOME={home}\" \"TMUX_TMPDIR={tmux}\" \"SCREENDIR={screen}\"{env}\n{extra}\n",
            auth = self.auth_config,
            port = self.port,
            listen = self.listen,
            log_level = self.log_level,
            hk = self.host_key.display(),
            dir = self.dir.path().display(),
            home = self.remote_home.display(),
            tmux = self.tmux_dir.display(),
            screen = self.screen_dir.display(),
            extra = self.extra_config,
            env = self.extra_env.iter().map(|(k, v)| format!(" \"{k}={v}\"")).collect::<String>(),
        );
        std::fs::write(self.dir.path().join("sshd_config"), cfg).unwrap();
    }

    fn spawn_on_free_port(&mut self) {
        for _ in 0..20 {
            self.port = free_port_on(&self.listen);
            if self.spawn() {
                return;
            }
        }
        panic!("sshd did not start after 20 tries; log:\n{}", self.log());
    }

    /// Start sshd on `self.port`; false when it could not listen there.
    fn spawn(&mut self) -> bool {
        self.write_config();
        let child = Command::new(self.program.as_deref().unwrap_or(Path::new(SSHD)))
            .arg("-D")
            .arg("-f")
            .arg(self.dir.path().join("sshd_config"))
            .arg("-E")
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sshd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return false;
            }
            if let Ok(mut s) = TcpStream::connect((self.listen.as_str(), self.port)) {
                s.set_read_timeout(Some(Duration::from_secs(2))).ok();
                let mut buf = [0u8; 64];
                if let Ok(n) = s.read(&mut buf) {
                    if buf[..n].starts_with(b"SSH-2.0-OpenSSH") {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    /// Kill the server and every connection it serves (sshd -D forks one process per connection,
    /// which a plain kill of the listener would leave running), as a crash or reboot would.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = c.id().to_string();
            let _ = Command::new("pkill").args(["-KILL", "-P", &pid]).status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same port with the same host key (an sshd restart).
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("sshd did not restart on port {}; log:\n{}", self.port, self.log());
    }

    /// Replace the host key (what a reinstalled server looks like), restarting the server.
    pub fn change_host_key(&mut self) {
        keygen(&self.host_key.clone(), "ed25519", "");
        self.restart();
    }

    /// Run a shell command on the "remote" box as its sessions would see it (same HOME and tmux dir).
    pub fn sh(&self, script: &str) -> std::process::Output {
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("HOME", &self.remote_home)
            .env("TMUX_TMPDIR", &self.tmux_dir)
            .env("SCREENDIR", &self.screen_dir)
            .output()
            .unwrap()
    }

    /// A box without `tools` (e.g. tmux, or tmux and screen): its sessions' PATH is a directory of
    /// symlinks to everything in /usr/bin and /bin but those, so `command -v` does not find them.
    pub fn start_without(tools: &[&str]) -> Sshd {
        let keep = tempfile::Builder::new().prefix("rtrain-bin-").tempdir().unwrap();
        let bin = keep.path().join("bin");
        bin_without(&bin, tools);
        let mut sshd = Sshd::start_with_env(&[("PATH", &bin.display().to_string())]);
        sshd.keep.push(keep);
        sshd
    }

    /// A box whose sessions find the shell script `script` as `tool`, first on their PATH, in place of the
    /// real one (for what the test machine cannot have for real, such as a running systemd-logind).
    pub fn start_with_stand_in(tool: &str, script: &str) -> Sshd {
        use std::os::unix::fs::PermissionsExt as _;
        let keep = tempfile::Builder::new().prefix("rtrain-bin-").tempdir().unwrap();
        let bin = keep.path().join("bin");
        bin_without(&bin, &[tool]);
        std::fs::write(bin.join(tool), script).unwrap();
        std::fs::set_permissions(bin.join(tool), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut sshd = Sshd::start_with_env(&[("PATH", &bin.display().to_string())]);
        sshd.keep.push(keep);
        sshd
    }

    /// A box without GNU coreutils: every BusyBox applet (Debian's `busybox`) stands first on its sessions'
    /// PATH in place of the real tool (ls, du, stat, head, base64, sh...), everything else as on a full box.
    pub fn start_busybox() -> Sshd {
        let busybox = Path::new("/usr/bin/busybox");
        assert!(
            busybox.exists(),
            "{} not found: the BusyBox box needs Debian's busybox (the README's test command installs it)",
            busybox.display()
        );
        let list = Command::new(busybox).arg("--list").output().unwrap();
        let applets: Vec<String> = String::from_utf8_lossy(&list.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert!(applets.iter().any(|a| a == "du"), "busybox --list has no du");
        let keep = tempfile::Builder::new().prefix("rtrain-bin-").tempdir().unwrap();
        let bin = keep.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for a in &applets {
            std::os::unix::fs::symlink(busybox, bin.join(a)).unwrap();
        }
        bin_without(&bin, &[]);
        let mut sshd = Sshd::start_with_env(&[("PATH", &bin.display().to_string())]);
        sshd.keep.push(keep);
        sshd
    }

    /// The process groups of every run recorded under the box's HOME (`.rtrain/runs/*/pid`) whose
    /// leader is still a run wrapper: a nohup run has no tmux or screen server to take it down.
    fn kill_runs(&self) {
        fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
            let Ok(rd) = std::fs::read_dir(dir) else { return };
            for e in rd.flatten() {
                let p = e.path();
                if e.file_name() == ".rtrain" {
                    for run in std::fs::read_dir(p.join("runs")).into_iter().flatten().flatten() {
                        out.push(run.path().join("pid"));
                    }
                } else if depth > 0 && e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&p, depth - 1, out);
                }
            }
        }
        let mut pids = Vec::new();
        walk(&self.remote_home, 4, &mut pids);
        for pid in pids.iter().filter_map(|p| std::fs::read_to_string(p).ok()) {
            let Ok(pid) = pid.trim().parse::<u32>() else { continue };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if pid > 1 && String::from_utf8_lossy(&cmdline).contains("/.rtrain/runs/") {
                let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
            }
        }
    }
}

/// Fills `bin` with symlinks to everything in /usr/bin and /bin except `without`.
pub fn bin_without(bin: &Path, without: &[&str]) {
    std::fs::create_dir_all(bin).unwrap();
    for dir in ["/usr/bin", "/bin"] {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let name = e.file_name();
            if !without.iter().any(|w| name == *w) && !bin.join(&name).exists() {
                let _ = std::os::unix::fs::symlink(e.path(), bin.join(&name));
            }
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // The box's runs, and its tmux and screen servers (if a test started them), go with it.
        self.kill_runs();
        let _ = self.sh(r"screen -ls 2>/dev/null | sed -n 's/^\t\([0-9][0-9]*\)\..*/\1/p' | xargs -r kill 2>/dev/null");
        let _ = Command::new("tmux")
            .arg("kill-server")
            .env("TMUX_TMPDIR", &self.tmux_dir)
            .stderr(Stdio::null())
            .status();
        self.stop();
        if std::thread::panicking() {
            eprintln!("---- sshd log ({}) ----\n{}", self.log_path().display(), self.log());
        }
    }
}

/// The rtrain binary under test: cargo's for integration tests, `RTRAIN_BIN` (or target/release)
/// for the benchmarks, which are examples and get no CARGO_BIN_EXE_.
pub fn rtrain_bin() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_rtrain") {
        return PathBuf::from(p);
    }
    std::env::var_os("RTRAIN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/rtrain"))
}

pub fn free_port() -> u16 {
    free_port_on("127.0.0.1")
}

pub fn free_port_on(addr: &str) -> u16 {
    TcpListener::bind((addr, 0)).unwrap().local_addr().unwrap().port()
}

/// A hermetic client side: its own HOME with `.ssh/config`, a user key and known_hosts, and an
/// rtrain config; `rtrain()` runs the real binary there with nothing from the caller's environment.
pub struct Client {
    pub home: tempfile::TempDir,
    pub key: PathBuf,
}

impl Client {
    /// A client whose key is authorized on `sshd`, which knows the host key, and where `box` is an
    /// ssh_config alias for the server.
    pub fn for_box(sshd: &Sshd) -> Client {
        let c = Client::bare();
        keygen(&c.key, "ed25519", "");
        sshd.authorize(&c.key.with_extension("pub"));
        c.write_ssh_config(&format!(
            "Host box\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n",
            sshd.port,
            sshd.user,
            c.key.display()
        ));
        c.trust(sshd);
        c
    }

    /// A client that knows several boxes as `b0`, `b1`, … (one key, authorized on each; each host
    /// key trusted), with `extra_ssh_config` appended to its ssh config.
    pub fn for_boxes(boxes: &[Sshd], extra_ssh_config: &str) -> Client {
        let c = Client::bare();
        keygen(&c.key, "ed25519", "");
        let mut cfg = String::new();
        for (i, b) in boxes.iter().enumerate() {
            b.authorize(&c.key.with_extension("pub"));
            c.trust(b);
            cfg += &format!(
                "Host b{i}\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n",
                b.port,
                b.user,
                c.key.display()
            );
        }
        c.write_ssh_config(&(cfg + extra_ssh_config));
        c
    }

    /// An empty client home (no key, no config, no known_hosts).
    pub fn bare() -> Client {
        let home = tempfile::Builder::new().prefix("rtrain-client-").tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
        std::fs::create_dir_all(home.path().join(".config/rtrain")).unwrap();
        let key = home.path().join(".ssh/id_test");
        Client { home, key }
    }

    pub fn ssh_dir(&self) -> PathBuf {
        self.home.path().join(".ssh")
    }

    pub fn write_ssh_config(&self, text: &str) {
        std::fs::write(self.ssh_dir().join("config"), text).unwrap();
    }

    pub fn write_rtrain_config(&self, text: &str) {
        std::fs::write(self.home.path().join(".config/rtrain/config.yaml"), text).unwrap();
    }

    /// Record the box's host key in known_hosts as `[ADDRESS]:PORT`.
    pub fn trust(&self, sshd: &Sshd) {
        let line = format!("[{}]:{} {}\n", sshd.listen, sshd.port, sshd.host_public_key());
        let path = self.ssh_dir().join("known_hosts");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(line.as_bytes()).unwrap();
    }

    pub fn known_hosts(&self) -> String {
        std::fs::read_to_string(self.ssh_dir().join("known_hosts")).unwrap_or_default()
    }

    /// The real rtrain binary with this HOME and a minimal environment (no agent, no terminal).
    pub fn rtrain(&self) -> Command {
        let mut cmd = Command::new(rtrain_bin());
        cmd.env_clear()
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("USER", current_user())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }
}

/// Output of a finished command, with a readable dump for assertion messages.
pub struct Ran {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Ran {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.elapsed,
            self.stdout_str(),
            self.stderr
        )
    }
}

/// Run with a hard limit so a hang fails the test instead of the whole suite.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Ran {
    run_watched(cmd, limit, |_| {})
}

/// [`run_with_timeout`], calling `watch` with the child's pid at every poll while it runs (to
/// sample what only a live process shows, such as its memory in /proc).
pub fn run_watched(cmd: &mut Command, limit: Duration, mut watch: impl FnMut(u32)) -> Ran {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        watch(child.id());
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("command {cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = t_out.join().unwrap();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
    Ran {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
        elapsed: start.elapsed(),
    }
}

impl Client {
    /// The environment `rtrain()` uses, as pairs (for starting rtrain inside a local terminal).
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        vec![
            ("HOME".into(), self.home.path().display().to_string()),
            (
                "XDG_CONFIG_HOME".into(),
                self.home.path().join(".config").display().to_string(),
            ),
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("USER".into(), current_user()),
            ("TERM".into(), "xterm-256color".into()),
            ("NO_COLOR".into(), "1".into()),
        ]
    }
}
