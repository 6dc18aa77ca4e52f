//! A real single-node Slurm cluster on this machine (munged, slurmctld, slurmd from Debian's `slurm-wlm` and
//! `munge`), started once per test process and shared by every Slurm test: starting one per test would cost the
//! 15-minute suite budget, and the scheduler is the thing under test, so it must be the real one. Accounting is
//! off (as on many clusters), `MinJobAge` short so the tests can see the scheduler forget a job. Stopped when the
//! test process exits (atexit). A missing package fails loudly; it never skips.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Seconds the scheduler keeps a finished job visible to `squeue`/`scontrol` (slurm.conf `MinJobAge`).
pub const MIN_JOB_AGE: u64 = 10;

/// The shared cluster. `conf` is what client commands need in `SLURM_CONF` (the login node's sessions get it
/// through the test sshd's SetEnv).
pub struct Slurm {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub node: String,
    /// How long it took from the first daemon to an idle node.
    pub startup: Duration,
}

static CLUSTER: OnceLock<Slurm> = OnceLock::new();
static DAEMONS: Mutex<Vec<Child>> = Mutex::new(Vec::new());

extern "C" fn stop_daemons() {
    // The jobs first: their processes belong to slurmstepd, which outlives a stopped slurmd.
    if let Some(c) = CLUSTER.get() {
        let _ = c.cmd("scancel").args(["-u", &super::current_user()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let out = c.cmd("squeue").args(["-h", "-o", "%i"]).output();
            if matches!(&out, Ok(o) if o.stdout.is_empty()) || out.is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    if let Ok(mut ds) = DAEMONS.lock() {
        // slurmd last started, first stopped: it must not outlive the controller it reports to for long.
        // SIGTERM first: slurmctld then reaps its slurmscriptd, which a SIGKILL leaves behind as a zombie.
        while let Some(mut c) = ds.pop() {
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn need(program: &str, package: &str) {
    assert!(
        Path::new(program).exists(),
        "{program} not found: the Slurm tests need a real scheduler. Run the README's test command (it installs \
         {package}), or `apt-get install slurm-wlm munge`"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The node line `slurmd -C` prints for this machine (its real CPUs and memory), with the address the daemons
/// reach it at.
fn node_line() -> (String, String) {
    let out = Command::new("/usr/sbin/slurmd").arg("-C").output().expect("slurmd -C");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("NodeName="))
        .unwrap_or_else(|| panic!("slurmd -C printed no NodeName line: {text}"))
        .to_string();
    let name = line["NodeName=".len()..].split_whitespace().next().unwrap().to_string();
    (name, format!("{line} NodeAddr=127.0.0.1 State=UNKNOWN"))
}

fn spawn(cmd: &mut Command, what: &str) {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    DAEMONS.lock().unwrap().push(child);
}

impl Slurm {
    /// The cluster, started on first use.
    pub fn get() -> &'static Slurm {
        CLUSTER.get_or_init(Slurm::start)
    }

    fn start() -> Slurm {
        need("/usr/sbin/munged", "munge");
        need("/usr/sbin/slurmctld", "slurm-wlm");
        need("/usr/sbin/slurmd", "slurm-wlm");
        // Kept for the whole process: the daemons' state, logs and sockets live here.
        let dir = tempfile::Builder::new()
            .prefix("rtrain-slurm-")
            .tempdir()
            .unwrap()
            .keep();
        for d in ["state", "spool", "munge", "log"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("munge"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let key: Vec<u8> = (0..128).map(|_| rand_byte()).collect();
        let key_path = dir.join("munge/munge.key");
        std::fs::write(&key_path, key).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (node, node_line) = node_line();
        let user = super::current_user();
        let d = dir.display();
        let conf = dir.join("slurm.conf");
        std::fs::write(
            &conf,
            format!(
                "ClusterName=rtraintest\nSlurmctldHost={node}(127.0.0.1)\nSlurmUser={user}\nSlurmdUser={user}\n\
                 SlurmctldPort={ctld}\nSlurmdPort={slurmd}\nAuthType=auth/munge\nAuthInfo=socket={d}/munge/socket\n\
                 StateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\nSlurmctldPidFile={d}/slurmctld.pid\n\
                 SlurmdPidFile={d}/slurmd.pid\nSlurmctldLogFile={d}/log/slurmctld.log\nSlurmdLogFile={d}/log/slurmd.log\n\
                 ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n\
                 AccountingStorageType=accounting_storage/none\nJobCompType=jobcomp/none\nMpiDefault=none\n\
                 SchedulerType=sched/backfill\nSelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n\
                 MinJobAge={MIN_JOB_AGE}\nKillWait=5\nReturnToService=2\n{node_line}\n\
                 PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
                ctld = free_port(),
                slurmd = free_port(),
            ),
        )
        .unwrap();
        // SAFETY: registering a plain extern "C" function with no captured state.
        unsafe { libc::atexit(stop_daemons) };
        let t0 = Instant::now();
        spawn(
            Command::new("/usr/sbin/munged")
                .arg("-F")
                .arg("-f")
                .arg(format!("--socket={d}/munge/socket"))
                .arg(format!("--key-file={}", key_path.display()))
                .arg(format!("--pid-file={d}/munge/munged.pid"))
                .arg(format!("--log-file={d}/log/munged.log"))
                .arg(format!("--seed-file={d}/munge/seed")),
            "munged",
        );
        wait_for(
            "munged's socket",
            Duration::from_secs(20),
            || dir.join("munge/socket").exists(),
            &dir,
        );
        spawn(
            Command::new("/usr/sbin/slurmctld").args(["-D", "-i", "-f"]).arg(&conf),
            "slurmctld",
        );
        spawn(Command::new("/usr/sbin/slurmd").args(["-D", "-f"]).arg(&conf), "slurmd");
        let cluster = Slurm {
            dir: dir.clone(),
            conf,
            node,
            startup: Duration::ZERO,
        };
        wait_for(
            "an idle Slurm node",
            Duration::from_secs(60),
            || {
                let out = cluster.cmd("sinfo").args(["-h", "-o", "%T"]).output();
                matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == "idle")
            },
            &dir,
        );
        let startup = t0.elapsed();
        eprintln!(
            "slurm: a single-node cluster ({}) was idle after {startup:?}",
            cluster.node
        );
        Slurm { startup, ..cluster }
    }

    /// A Slurm client command (`squeue`, `scontrol` ...) pointed at this cluster.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// stdout of a client command that must succeed.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self.cmd(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The job's state as squeue shows it (`PENDING`, `RUNNING`...), or None once the scheduler forgot it.
    pub fn squeue_state(&self, job: &str) -> Option<String> {
        let out = self.cmd("squeue").args(["-h", "-j", job, "-o", "%T"]).output().unwrap();
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !s.is_empty()).then_some(s)
    }

    /// The environment a login-node session needs (for the test sshd's SetEnv).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("SLURM_CONF".to_string(), self.conf.display().to_string())]
    }

    /// The controller's and the node daemon's logs (attach them to assertion messages).
    pub fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join("log").join(f)).unwrap_or_default();
        format!(
            "\n--- slurmctld.log ---\n{}\n--- slurmd.log ---\n{}",
            tail(&read("slurmctld.log"), 40),
            tail(&read("slurmd.log"), 40)
        )
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn rand_byte() -> u8 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish() as u8
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool, dir: &Path) {
    let deadline = Instant::now() + limit;
    while !ok() {
        if Instant::now() > deadline {
            let log = |f: &str| std::fs::read_to_string(dir.join("log").join(f)).unwrap_or_default();
            panic!(
                "no {what} after {limit:?}\n--- munged.log ---\n{}\n--- slurmctld.log ---\n{}\n--- slurmd.log ---\n{}",
                log("munged.log"),
                log("slurmctld.log"),
                log("slurmd.log")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
