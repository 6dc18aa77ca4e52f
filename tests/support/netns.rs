//! A network of our own: two network namespaces (the laptop and the box) joined by a veth pair,
//! so that faults happen in the kernel's own TCP stack rather than in a userspace proxy. The
//! addresses come from the documentation range 192.0.2.0/24 and exist only on the veth ends
//! inside the namespaces, with no default route: nothing is ever sent outside this machine.
//!
//! Faults: loss (up to 100 %, a black hole) and duplication by netfilter, delay and jitter by
//! holding packets in an NFQUEUE (this machine's kernel, like many CI kernels, is built without
//! `sch_netem`, and netfilter is everywhere), the link set down, the client's address changed
//! (roaming). The sshd restart and a stopped client are the test's, with [`NetNs::run_in`].
//!
//! Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for `setns`), `ip` (iproute2) and `iptables`; without
//! them it panics with the reason, never skips. Everything is removed on drop, also when the test
//! failed; namespaces left behind by a test binary that was killed are removed by the next one.

use super::sshd::{current_user, keygen, Client, Sshd};
use rtrain::config::{self, Target};
use rtrain::ssh::link::{Link, ReconnectPolicy};
use rtrain::ssh::NoPrompt;
use std::future::Future;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

// The kernel interfaces (setns, nfnetlink_queue) exist only on Linux; elsewhere (the Mac compile
// check) the rest still type-checks and any use panics with the reason.
#[cfg(target_os = "linux")]
pub use super::netns_kernel::{delay_queue, enter};
#[cfg(not(target_os = "linux"))]
pub use absent::{delay_queue, enter};

#[cfg(not(target_os = "linux"))]
mod absent {
    use super::Shape;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};

    pub fn enter(path: &str) {
        panic!("network namespaces are Linux-only: cannot enter {path}");
    }

    pub fn delay_queue(_: Arc<Mutex<Shape>>, _: Arc<AtomicBool>, _: u64, _: std::sync::mpsc::Sender<()>) {
        panic!("the NFQUEUE delay line is Linux-only");
    }
}
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SERVER_ADDR: &str = "192.0.2.1";
pub const CLIENT_ADDR: &str = "192.0.2.2";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// How the link misbehaves, per direction (an RTT is twice `delay`), like netem's options.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Shape {
    pub delay: Duration,
    /// Each packet's delay is drawn uniformly from `delay ± jitter` (so packets may be reordered,
    /// as with netem).
    pub jitter: Duration,
    /// Probability that a packet is dropped, 0..=1.
    pub loss: f64,
    /// Probability that a packet is sent twice, 0..=1.
    pub duplicate: f64,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

pub struct NetNs {
    pub client: String,
    pub server: String,
    veth_client: String,
    veth_server: String,
    client_addr: Mutex<String>,
    shape: Arc<Mutex<Shape>>,
    queues: Mutex<Vec<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>>,
}

/// `ip ARGS` (or any command) that must work; its stderr in the panic.
fn must(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}; install iproute2 and iptables (scripts/test.sh does)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &[&str]) -> String {
    must(Command::new("ip").args(args))
}

/// Remove namespaces of earlier test processes that are gone (killed before their Drop ran).
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("rtrain-").and_then(|r| r.split('-').next()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

impl NetNs {
    /// Two fresh namespaces, `192.0.2.2` (client) ↔ `192.0.2.1` (server) on a veth pair.
    pub fn new() -> NetNs {
        let uid = unsafe { libc::geteuid() };
        assert_eq!(
            uid, 0,
            "the namespace tests must run as root (they create network namespaces, which needs \
             CAP_NET_ADMIN): run the suite with sudo, as CI does"
        );
        remove_stale();
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let client = format!("rtrain-{pid}-{n}-c");
        let server = format!("rtrain-{pid}-{n}-s");
        // Interface names have at most 15 bytes and are per namespace, but the pair is created
        // in this one first.
        let tag = format!("{:x}", (pid as u64) << 8 | n as u64 & 0xff);
        let veth_client = format!("rtc{tag}");
        let veth_server = format!("rts{tag}");
        let out = Command::new("ip")
            .args(["netns", "add", &client])
            .output()
            .expect("`ip` not found: install iproute2 (scripts/test.sh does)");
        assert!(
            out.status.success(),
            "cannot create a network namespace ({}): the namespace tests need root with CAP_NET_ADMIN",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let net = NetNs {
            client,
            server,
            veth_client,
            veth_server,
            client_addr: Mutex::new(CLIENT_ADDR.to_string()),
            shape: Arc::new(Mutex::new(Shape::default())),
            queues: Mutex::new(Vec::new()),
        };
        ip(&["netns", "add", &net.server]);
        ip(&[
            "link",
            "add",
            &net.veth_client,
            "netns",
            &net.client,
            "type",
            "veth",
            "peer",
            "name",
            &net.veth_server,
            "netns",
            &net.server,
        ]);
        for (ns, dev, addr) in [
            (&net.client, &net.veth_client, CLIENT_ADDR),
            (&net.server, &net.veth_server, SERVER_ADDR),
        ] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        net
    }

    fn ns(&self, side: Side) -> &str {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }

    fn dev(&self, side: Side) -> &str {
        match side {
            Side::Client => &self.veth_client,
            Side::Server => &self.veth_server,
        }
    }

    /// Run `f` on a thread that has entered `side`'s namespace: sockets it opens and processes it
    /// starts (an sshd, an rtrain) live there.
    pub fn run_in<T: Send>(&self, side: Side, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.ns(side));
        std::thread::scope(|s| {
            s.spawn(|| {
                enter(&path);
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// `cmd` to be run inside `side`'s namespace (through `ip netns exec`), same environment.
    pub fn command(&self, side: Side, cmd: &Command) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.ns(side)])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        c.env_clear();
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        if let Some(d) = cmd.get_current_dir() {
            c.current_dir(d);
        }
        c.stdin(Stdio::null());
        c
    }

    fn iptables(&self, side: Side, args: &[&str]) {
        must(
            Command::new("ip")
                .args(["netns", "exec", self.ns(side), "iptables", "-w"])
                .args(args),
        );
    }

    /// 100 % loss both ways, silently (packets leave and vanish, as on a dead Wi-Fi).
    pub fn black_hole(&self, on: bool) {
        for side in [Side::Client, Side::Server] {
            let op = if on { "-I" } else { "-D" };
            let dev = self.dev(side).to_string();
            self.iptables(side, &[op, "INPUT", "-i", &dev, "-j", "DROP"]);
        }
    }

    /// The client's end of the link down or up.
    pub fn link(&self, up: bool) {
        let dev = self.dev(Side::Client).to_string();
        ip(&["-n", &self.client, "link", "set", &dev, if up { "up" } else { "down" }]);
    }

    /// Roaming: the client's address is deleted and a new one added, in that order and at once.
    /// Returns the new address.
    pub fn roam(&self) -> String {
        let mut cur = self.client_addr.lock().unwrap();
        let last: u8 = cur.rsplit('.').next().unwrap().parse().unwrap();
        let next = format!("192.0.2.{}", if last >= 250 { 2 } else { last + 1 });
        let dev = self.dev(Side::Client).to_string();
        ip(&["-n", &self.client, "addr", "del", &format!("{cur}/24"), "dev", &dev]);
        ip(&["-n", &self.client, "addr", "add", &format!("{next}/24"), "dev", &dev]);
        *cur = next.clone();
        next
    }

    /// One more address on `side`'s end of the link (from 192.0.2.0/24, like the others).
    pub fn add_address(&self, side: Side, addr: &str) {
        let dev = self.dev(side).to_string();
        ip(&["-n", self.ns(side), "addr", "add", &format!("{addr}/24"), "dev", &dev]);
    }

    pub fn client_addr(&self) -> String {
        self.client_addr.lock().unwrap().clone()
    }

    /// Make the link bad (both directions); [`Shape::default`] makes it good again.
    pub fn shape(&self, shape: Shape) {
        *self.shape.lock().unwrap() = shape;
        let mut queues = self.queues.lock().unwrap();
        if queues.is_empty() && shape != Shape::default() {
            for (i, side) in [Side::Client, Side::Server].into_iter().enumerate() {
                let stop = Arc::new(AtomicBool::new(false));
                let (ready_tx, ready) = std::sync::mpsc::channel();
                let path = format!("/run/netns/{}", self.ns(side));
                let (shape, stop2) = (self.shape.clone(), stop.clone());
                let seed = 0x5eed_0000 + i as u64 + ((std::process::id() as u64) << 16);
                let t = std::thread::spawn(move || {
                    enter(&path);
                    delay_queue(shape, stop2, seed, ready_tx)
                });
                ready.recv().expect("the delay queue did not start");
                // Everything leaving on the veth goes through the queue; the duplicate of TEE
                // below goes straight out (TEE does not send its clones through the table).
                let dev = self.dev(side).to_string();
                self.iptables(side, &["-A", "OUTPUT", "-o", &dev, "-j", "NFQUEUE", "--queue-num", "0"]);
                queues.push((stop, t));
            }
        }
        // Duplication: a clone of the packet sent to the peer by TEE, with a probability.
        for side in [Side::Client, Side::Server] {
            let _ = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    self.ns(side),
                    "iptables",
                    "-w",
                    "-t",
                    "mangle",
                    "-F",
                    "OUTPUT",
                ])
                .status();
            if shape.duplicate > 0.0 {
                let peer = match side {
                    Side::Client => SERVER_ADDR.to_string(),
                    Side::Server => self.client_addr(),
                };
                let dev = self.dev(side).to_string();
                let p = format!("{}", shape.duplicate.min(1.0));
                self.iptables(
                    side,
                    &[
                        "-t",
                        "mangle",
                        "-A",
                        "OUTPUT",
                        "-o",
                        &dev,
                        "-m",
                        "statistic",
                        "--mode",
                        "random",
                        "--probability",
                        &p,
                        "-j",
                        "TEE",
                        "--gateway",
                        &peer,
                    ],
                );
            }
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        for (stop, _) in self.queues.lock().unwrap().iter() {
            stop.store(true, Ordering::SeqCst);
        }
        for (_, t) in self.queues.lock().unwrap().drain(..) {
            let _ = t.join();
        }
        // Deleting a namespace takes its veth end, and with it the pair, along.
        for ns in [&self.client, &self.server] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// sshd in the server namespace at 192.0.2.1, a client for it, both on the default keepalives.
/// Fields drop in order: the box and its processes go before the namespaces.
pub struct NetRig {
    pub sshd: Sshd,
    pub c: Client,
    pub net: NetNs,
}

impl NetRig {
    pub fn new() -> NetRig {
        let net = NetNs::new();
        let sshd = net.run_in(Side::Server, || Sshd::start_on(SERVER_ADDR));
        let c = Client::bare();
        keygen(&c.key, "ed25519", "");
        sshd.authorize(&c.key.with_extension("pub"));
        c.write_ssh_config(&format!(
            "Host box\n  HostName {SERVER_ADDR}\n  Port {}\n  User {}\n  IdentityFile {}\n",
            sshd.port,
            sshd.user,
            c.key.display()
        ));
        c.trust(&sshd);
        c.write_rtrain_config("defaults:\n  workdir: ~/work dir\n");
        NetRig { sshd, c, net }
    }

    pub fn target(&self) -> Target {
        let paths = config::Paths::resolve(self.c.home.path().to_path_buf(), None, None, current_user());
        config::resolve_target("box", &config::ConfigFile::default(), &paths, false).unwrap()
    }

    /// A link with exactly what commands use: the target's keepalives, the default policy.
    pub fn link(&self) -> Link {
        let t = self.target();
        let opts = t.connect_options(None);
        Link::new(t, opts, Arc::new(NoPrompt), ReconnectPolicy::default())
    }

    /// A runtime whose worker threads live in the client namespace: run futures on it with [`on`].
    pub fn client_runtime(&self) -> tokio::runtime::Runtime {
        self.net.run_in(Side::Client, || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
        })
    }

    /// The real rtrain, run in the client namespace.
    pub fn rtrain(&self, args: &[&str]) -> Command {
        let mut cmd = self.c.rtrain();
        cmd.args(args);
        self.net.command(Side::Client, &cmd)
    }

    pub fn restart_sshd(&mut self) {
        let sshd = &mut self.sshd;
        self.net.run_in(Side::Server, || sshd.restart());
    }
}

/// Run `f` as a task of `rt` (so on its workers, in their namespace), wait for it here.
pub fn on<T: Send + 'static>(rt: &tokio::runtime::Runtime, f: impl Future<Output = T> + Send + 'static) -> T {
    rt.block_on(rt.spawn(f))
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// A small seeded generator (splitmix64): faults and delays are reproducible from a printed seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
