//! The soak: `attach` (in a local tmux), `logs -f` of a fast-growing log and `forward` carrying a
//! steady byte stream, all at once against the stand-in trainer, through a seeded series of random
//! kernel-level faults (tests/support/netns.rs). Afterwards: the log and the forwarded stream
//! compared by SHA-256 with their sources, the trainer's pid unchanged and its SIGHUP count zero,
//! and the time each fault took to recover from. The integration suite runs a short one,
//! `bench/soak.sh N` a long one.

use super::bg::Bg;
use super::netns::{NetRig, Rng, Shape, Side};
use super::sshd::{rtrain_bin, run_with_timeout};
use super::term::LocalTerm;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);
/// Each fault must be recovered from within this long, or the soak fails.
const RECOVERY_LIMIT: Duration = Duration::from_secs(45);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    BadLink,
    BlackHole,
    LinkDown,
    Roam,
    SshdRestart,
    ClientStopped,
}

impl Fault {
    const ALL: [Fault; 6] = [
        Fault::BadLink,
        Fault::BlackHole,
        Fault::LinkDown,
        Fault::Roam,
        Fault::SshdRestart,
        Fault::ClientStopped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::BadLink => "bad link (delay, jitter, loss, duplication)",
            Fault::BlackHole => "black hole (100 % loss)",
            Fault::LinkDown => "link down",
            Fault::Roam => "address changed (roaming)",
            Fault::SshdRestart => "sshd killed and restarted",
            Fault::ClientStopped => "client stopped (SIGSTOP)",
        }
    }
}

/// How long faults last: short in the suite, as the issue describes them in the long run.
#[derive(Debug, Clone, Copy)]
pub struct Durations {
    pub outage: (u64, u64),
    pub stopped: (u64, u64),
}

pub const SHORT: Durations = Durations {
    outage: (1_000, 4_000),
    stopped: (1_000, 4_000),
};
pub const LONG: Durations = Durations {
    outage: (2_000, 10_000),
    stopped: (5_000, 30_000),
};

pub struct SoakReport {
    pub seed: u64,
    /// Per fault: its kind, how long it lasted, and the recovery time after it ended.
    pub faults: Vec<(Fault, Duration, Duration)>,
    pub log_bytes: usize,
    pub log_source_bytes: usize,
    pub log_same: bool,
    pub forward_bytes: u64,
    pub forward_same: bool,
    pub forward_connections: u64,
    pub pid_before: String,
    pub pid_after: String,
    pub sighups: u32,
    pub attach_shown: usize,
    pub reconnects: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

impl SoakReport {
    pub fn table(&self) -> String {
        let mut out = format!(
            "soak: {} faults, seed {} (rerun with --seed {})\n\n| fault | count | recovery p50 | p95 | max |\n|---|---|---|---|---|\n",
            self.faults.len(),
            self.seed,
            self.seed
        );
        let row = |name: &str, rec: &mut Vec<Duration>| {
            rec.sort();
            format!(
                "| {name} | {} | {} | {} | {} |\n",
                rec.len(),
                secs(percentile(rec, 0.5)),
                secs(percentile(rec, 0.95)),
                secs(rec.last().copied().unwrap_or_default())
            )
        };
        for kind in Fault::ALL {
            let mut rec: Vec<Duration> = self.faults.iter().filter(|f| f.0 == kind).map(|f| f.2).collect();
            if !rec.is_empty() {
                out += &row(kind.name(), &mut rec);
            }
        }
        let mut all: Vec<Duration> = self.faults.iter().map(|f| f.2).collect();
        out += &row("**all**", &mut all);
        let lost = |a: usize, b: usize| if a == b { 0 } else { a.abs_diff(b) };
        out += &format!(
            "\nlogs -f: {} bytes of {} in the log, {} lost or duplicated, SHA-256 {}\n",
            self.log_bytes,
            self.log_source_bytes,
            if self.log_same {
                0
            } else {
                lost(self.log_bytes, self.log_source_bytes).max(1)
            },
            if self.log_same { "equal" } else { "DIFFERENT" },
        );
        out += &format!(
            "forward: {} bytes over {} connections, SHA-256 {} the source's\n",
            self.forward_bytes,
            self.forward_connections,
            if self.forward_same {
                "equal to"
            } else {
                "DIFFERENT from"
            },
        );
        out += &format!(
            "trainer: pid {} before, {} after; SIGHUPs received: {}\nattach showed the session after {} of {} faults; rtrain logs -f reconnected {} times\n",
            self.pid_before,
            self.pid_after,
            self.sighups,
            self.attach_shown,
            self.faults.len(),
            self.reconnects
        );
        out
    }

    pub fn clean(&self) -> bool {
        self.log_same
            && self.forward_same
            && self.pid_before == self.pid_after
            && self.sighups == 0
            && self.attach_shown == self.faults.len()
    }
}

/// The forwarded stream's byte at `i`: position-dependent, so a lost or repeated byte shows.
fn pattern(i: u64) -> u8 {
    (i % 251) as u8 ^ ((i / 251) % 256) as u8
}

/// The service behind `forward`, on the box's localhost: sends the pattern from the offset the
/// client asks for, about 256 KiB/s, until the connection breaks.
fn serve(listener: TcpListener, stop: Arc<AtomicBool>) {
    listener.set_nonblocking(true).unwrap();
    while !stop.load(Ordering::SeqCst) {
        let Ok((mut conn, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let stop = stop.clone();
        std::thread::spawn(move || {
            conn.set_nonblocking(false).unwrap();
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            while conn.read_exact(&mut b).is_ok() && b[0] != b'\n' {
                line.push(b[0]);
            }
            let Ok(mut at) = String::from_utf8_lossy(&line).trim().parse::<u64>() else {
                return;
            };
            let mut chunk = vec![0u8; 8192];
            while !stop.load(Ordering::SeqCst) {
                for (k, c) in chunk.iter_mut().enumerate() {
                    *c = pattern(at + k as u64);
                }
                if conn.write_all(&chunk).is_err() {
                    return;
                }
                at += chunk.len() as u64;
                std::thread::sleep(Duration::from_millis(30));
            }
        });
    }
}

/// The client of `forward`: reads the stream through the local port, resuming at its own count
/// after each broken connection. Records when it last received anything.
struct Reader {
    received: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    last: Arc<Mutex<Instant>>,
    hash: Arc<Mutex<Sha256>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    fn start(rig: &NetRig, port: u16) -> Reader {
        let received = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let last = Arc::new(Mutex::new(Instant::now()));
        let hash = Arc::new(Mutex::new(Sha256::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let path = format!("/run/netns/{}", rig.net.client);
        let (r, c, l, h, s) = (
            received.clone(),
            connections.clone(),
            last.clone(),
            hash.clone(),
            stop.clone(),
        );
        let thread = std::thread::spawn(move || {
            super::netns::enter(&path);
            let mut buf = vec![0u8; 65536];
            while !s.load(Ordering::SeqCst) {
                let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) else {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                conn.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
                if conn
                    .write_all(format!("{}\n", r.load(Ordering::SeqCst)).as_bytes())
                    .is_err()
                {
                    continue;
                }
                while !s.load(Ordering::SeqCst) {
                    match conn.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            h.lock().unwrap().update(&buf[..n]);
                            r.fetch_add(n as u64, Ordering::SeqCst);
                            *l.lock().unwrap() = Instant::now();
                        }
                        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        }
                        Err(_) => break,
                    }
                }
            }
        });
        Reader {
            received,
            connections,
            last,
            hash,
            stop,
            thread: Some(thread),
        }
    }

    fn last(&self) -> Instant {
        *self.last.lock().unwrap()
    }

    /// Stop; whether what arrived is, byte for byte, the start of the source's stream.
    fn finish(&mut self) -> (u64, bool) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let n = self.received.load(Ordering::SeqCst);
        let mut want = Sha256::new();
        let mut chunk = Vec::with_capacity(1 << 16);
        let mut i = 0u64;
        while i < n {
            chunk.clear();
            let end = (i + (1 << 16)).min(n);
            chunk.extend((i..end).map(pattern));
            want.update(&chunk);
            i = end;
        }
        let got = self.hash.lock().unwrap().clone().finalize();
        (n, got == want.finalize())
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

fn run_field(rig: &NetRig, field: &str) -> String {
    let st = run_with_timeout(&mut rig.rtrain(&["status", "box", "--json"]), T);
    assert_eq!(st.code, 0, "{st}");
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap_or_else(|_| panic!("{st}"));
    match &v["run"][field] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn len(path: &Path) -> usize {
    std::fs::metadata(path).map(|m| m.len() as usize).unwrap_or(0)
}

/// Run the soak: `faults` faults drawn from `seed`, lasting as `durations` says. Progress goes
/// to stderr, one line per fault.
pub fn soak(faults: usize, seed: u64, durations: Durations) -> SoakReport {
    let mut rig = NetRig::new();
    let work = rig.sshd.remote_home.join("work dir");
    super::copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/gpu-box/project"),
        &work,
    );
    let ran = run_with_timeout(
        &mut rig.rtrain(&[
            "up",
            "box",
            "--",
            "python3 train.py --max-steps 100000000 --seconds-per-step 0.01 --logging-steps 1 \
             --save-steps 100000000 --sighup-file sighups",
        ]),
        T,
    );
    assert_eq!(ran.code, 0, "{ran}");
    let pid_before = run_field(&rig, "pid");
    let log = PathBuf::from(run_field(&rig, "log"));

    // forward: the service in the box's namespace, the local port in the client's.
    let service = rig
        .net
        .run_in(Side::Server, || TcpListener::bind("127.0.0.1:0").unwrap());
    let remote_port = service.local_addr().unwrap().port();
    let stop_service = Arc::new(AtomicBool::new(false));
    let serving = {
        let stop = stop_service.clone();
        std::thread::spawn(move || serve(service, stop))
    };
    let local_port = rig.net.run_in(Side::Client, || {
        TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    });
    let forward = Bg::spawn(rig.rtrain(&["forward", "box", &format!("{local_port}:{remote_port}")]));
    forward.wait_stderr("forwarding", T);
    let mut reader = Reader::start(&rig, local_port);

    let follow = Bg::spawn(rig.rtrain(&["logs", "box", "-f", "-n", "all", "--raw"]));
    let mut env = rig.c.env_pairs();
    env.push(("RTRAIN".into(), rtrain_bin().display().to_string()));
    env.push(("NS".into(), rig.net.client.clone()));
    let term = LocalTerm::start(
        &[
            "sh".into(),
            "-c".into(),
            "exec ip netns exec \"$NS\" \"$RTRAIN\" attach box".into(),
        ],
        &env,
    );
    term.wait_for("[training", T);
    let attach_pid = term.pane_pid();
    let t0 = Instant::now();
    while follow.stdout_len() == 0 || reader.received.load(Ordering::SeqCst) == 0 {
        assert!(
            t0.elapsed() < T,
            "no output before the first fault: {}",
            follow.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut rng = Rng::new(seed);
    let mut results = Vec::new();
    let mut attach_shown = 0;
    let pick = |rng: &mut Rng, (lo, hi): (u64, u64)| Duration::from_millis(lo + rng.below(hi - lo + 1));
    for i in 0..faults {
        let kind = Fault::ALL[rng.below(Fault::ALL.len() as u64) as usize];
        let started = Instant::now();
        match kind {
            Fault::BadLink => {
                rig.net.shape(Shape {
                    delay: Duration::from_millis(20 + rng.below(200)),
                    jitter: Duration::from_millis(rng.below(40)),
                    loss: rng.below(6) as f64 / 100.0,
                    duplicate: rng.below(6) as f64 / 100.0,
                });
                std::thread::sleep(pick(&mut rng, durations.outage));
                rig.net.shape(Shape::default());
            }
            Fault::BlackHole => {
                rig.net.black_hole(true);
                std::thread::sleep(pick(&mut rng, durations.outage));
                rig.net.black_hole(false);
            }
            Fault::LinkDown => {
                rig.net.link(false);
                std::thread::sleep(pick(&mut rng, durations.outage));
                rig.net.link(true);
            }
            Fault::Roam => {
                rig.net.roam();
            }
            Fault::SshdRestart => rig.restart_sshd(),
            Fault::ClientStopped => {
                let pids = [follow.id(), forward.id(), attach_pid];
                for p in pids {
                    signal(p, "STOP");
                }
                std::thread::sleep(pick(&mut rng, durations.stopped));
                for p in pids {
                    signal(p, "CONT");
                }
            }
        }
        let ended = Instant::now();
        let lasted = ended - started;
        // Recovered when the log has been followed past where it was at the fault's end, the
        // stream has flowed since, and attach shows the session (no reconnect notice).
        let log_then = len(&log);
        let deadline = ended + RECOVERY_LIMIT;
        loop {
            let now = Instant::now();
            let logs_ok = follow.stdout_len() > log_then;
            let forward_ok = reader.last() > ended;
            let screen = term.capture();
            let screen_ok = screen.contains("[training") && !screen.contains("reconnecting");
            if logs_ok && forward_ok && screen_ok {
                break;
            }
            assert!(
                now < deadline,
                "fault {i} ({}) not recovered from within {RECOVERY_LIMIT:?} (seed {seed}): logs {logs_ok}, \
                 forward {forward_ok}, attach {}\n--- logs -f stderr\n{}\n--- forward stderr\n{}\n--- screen\n{}",
                kind.name(),
                screen_ok,
                follow.stderr(),
                forward.stderr(),
                term.capture()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        attach_shown += 1;
        let recovery = ended.elapsed();
        eprintln!(
            "soak fault {}/{faults}: {} for {}, recovered in {}",
            i + 1,
            kind.name(),
            secs(lasted),
            secs(recovery)
        );
        results.push((kind, lasted, recovery));
        // Let each fault start from a settled link.
        std::thread::sleep(Duration::from_millis(500));
    }

    let pid_after = run_field(&rig, "pid");
    let alive = Path::new(&format!("/proc/{pid_after}")).exists();
    let sighups = std::fs::read_to_string(work.join("sighups"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    // End the run, let logs -f print the rest and exit, then compare.
    let ran = run_with_timeout(&mut rig.rtrain(&["stop", "box", "--timeout", "20"]), T);
    assert_eq!(ran.code, 0, "{ran}");
    let mut follow = follow;
    // logs -f must end with the run.
    let _ = follow.wait(T);
    let (forward_bytes, forward_same) = reader.finish();
    stop_service.store(true, Ordering::SeqCst);
    let _ = serving.join();
    let local = follow.stdout();
    let source = std::fs::read(&log).unwrap();
    let reconnects = follow.stderr().matches("reconnected").count();
    drop(term);
    SoakReport {
        seed,
        faults: results,
        log_bytes: local.len(),
        log_source_bytes: source.len(),
        log_same: Sha256::digest(&local) == Sha256::digest(&source),
        forward_bytes,
        forward_same,
        forward_connections: reader.connections.load(Ordering::SeqCst),
        pid_before,
        pid_after: if alive {
            pid_after
        } else {
            format!("{pid_after} (gone)")
        },
        sighups,
        attach_shown,
        reconnects,
    }
}
