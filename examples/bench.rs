//! Benchmarks against real sshd boxes on 127.0.0.1 (not timed tests: numbers to compare).
//!
//!   cargo build --release && cargo run --release --example bench -- [exec|status|status-all|all]
//!
//! exec:       `rtrain exec box -- true` vs OpenSSH `ssh box true`, median of 20 each
//! status:     `rtrain status box` vs `ssh box true`, median of 20 each
//! status-all: `rtrain status --all` over 16 boxes vs over 1, median of 10 each
//! logs:       `rtrain logs box -n all --raw` of a 256 MiB log vs `ssh box cat LOG`, median of 5 each
//! pull:       `rtrain pull` of a 1 GiB checkpoint vs `scp -r` and `rsync -a` of it, one run each
//!             (not part of `all`: it moves 3 GiB through a shared machine)
//! push:       `rtrain push` of a 5,000-file project with nothing changed (median of 5), then with
//!             one file changed
//! scale:      `rtrain status box` and `rtrain ckpts box` against 1, 100, 1,000 and 10,000 Hugging Face
//!             checkpoints (issue 17: status must not grow, ckpts at 1,000 ≤ 0.5 s), median of 5 each
//!             (3 at 10,000)

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_n(n: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm-up: page cache, first-connection costs
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn must(cmd: &mut Command) {
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// OpenSSH's client with the same config, key and known_hosts as rtrain's hermetic client.
fn openssh(c: &Client, host: &str, remote: &str) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.arg("-F")
        .arg(c.ssh_dir().join("config"))
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            c.ssh_dir().join("known_hosts").display()
        ))
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", host, remote])
        .stdin(Stdio::null());
    cmd
}

/// CPU time (user + system) used so far by this process's waited-for children.
fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn bench_exec() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let r = time_n(20, || must(c.rtrain().args(["exec", "box", "--", "true"])));
    let o = time_n(20, || must(&mut openssh(&c, "box", "true")));
    println!(
        "exec:   rtrain exec box -- true  median {}   ssh box true  median {}   ratio {:.2}",
        ms(r),
        ms(o),
        r.as_secs_f64() / o.as_secs_f64()
    );
}

fn bench_status() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let r = time_n(20, || must(c.rtrain().args(["status", "box"])));
    let o = time_n(20, || must(&mut openssh(&c, "box", "true")));
    println!(
        "status: rtrain status box        median {}   ssh box true  median {}   ratio {:.2}",
        ms(r),
        ms(o),
        r.as_secs_f64() / o.as_secs_f64()
    );
}

fn bench_status_all() {
    let boxes: Vec<Sshd> = (0..16).map(|_| Sshd::start()).collect();
    let c = Client::for_boxes(&boxes, "");
    let rt: String = "hosts:\n".to_string() + &(0..boxes.len()).map(|i| format!("  b{i}: {{}}\n")).collect::<String>();
    c.write_rtrain_config(&rt);
    let one = time_n(10, || must(c.rtrain().args(["status", "b0"])));
    let cpu_before = children_cpu();
    let all = time_n(10, || must(c.rtrain().args(["status", "--all"])));
    // 11 runs (time_n warms up once): rtrain's own CPU per run, to tell its cost from the servers'.
    let client_cpu = (children_cpu() - cpu_before) / 11;
    println!(
        "status --all: 16 boxes median {}   1 box median {}   ratio {:.2}",
        ms(all),
        ms(one),
        all.as_secs_f64() / one.as_secs_f64()
    );
    println!(
        "         rtrain's own CPU per `status --all` run: {} (the rest of the wall time is the 16 sshd \
         servers and their probe scripts, which share this machine's cores)",
        ms(client_cpu)
    );
    // The same machine also runs the 16 servers: what does it cost OpenSSH to reach 16 at once?
    let ssh_one = time_n(10, || must(&mut openssh(&c, "b0", "true")));
    let ssh_all = time_n(10, || {
        let kids: Vec<_> = (0..16)
            .map(|i| {
                openssh(&c, &format!("b{i}"), "true")
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut k in kids {
            assert!(k.wait().unwrap().success());
        }
    });
    println!(
        "baseline: 16 parallel `ssh bN true` median {}   1 median {}   ratio {:.2}",
        ms(ssh_all),
        ms(ssh_one),
        ssh_all.as_secs_f64() / ssh_one.as_secs_f64()
    );
}

fn bench_logs() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    // A run whose log is 256 MiB of text lines, written at once.
    let ran = run_with_timeout(
        c.rtrain().args([
            "up",
            "box",
            "--",
            "yes 'step 123 loss 2.3456 lr 1e-4 some more text' | head -c 268435456",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(ran.code, 0, "{ran}");
    let log = ran
        .stdout_str()
        .lines()
        .find_map(|l| l.trim().strip_prefix("log:").map(|p| p.trim().to_string()))
        .expect("log path");
    let start = Instant::now();
    while std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) < 268_435_456 {
        assert!(start.elapsed() < Duration::from_secs(120), "log never reached 256 MiB");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let r = time_n(5, || must(c.rtrain().args(["logs", "box", "-n", "all", "--raw"])));
    let cat = format!("cat '{log}'");
    let o = time_n(5, || must(&mut openssh(&c, "box", &cat)));
    let mib = 256.0;
    println!(
        "logs:   rtrain logs -n all --raw  {:.0} MiB/s   ssh cat  {:.0} MiB/s   ratio {:.2}",
        mib / r.as_secs_f64(),
        mib / o.as_secs_f64(),
        o.as_secs_f64() / r.as_secs_f64()
    );
}

/// Incompressible bytes, so that no layer can make the transfer look cheaper than it is.
fn write_noise(path: &std::path::Path, len: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..len / buf.len() {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        f.write_all(&buf).unwrap();
    }
}

fn bench_pull() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    c.write_rtrain_config("defaults:\n  workdir: ~/work\n  checkpoint_dir: outputs\n");
    let ckpt = sshd.remote_home.join("work/outputs/checkpoint-1000");
    std::fs::create_dir_all(&ckpt).unwrap();
    let gib = 1usize << 30;
    write_noise(&ckpt.join("model.safetensors"), gib);
    std::fs::write(ckpt.join("config.json"), b"{}").unwrap();
    std::fs::write(ckpt.join("trainer_state.json"), b"{\"global_step\": 1000}").unwrap();
    let here = tempfile::tempdir().unwrap();
    let mib = gib as f64 / (1 << 20) as f64;
    // Warm the box's page cache, as a checkpoint just written would be.
    must(
        Command::new("cat")
            .arg(ckpt.join("model.safetensors"))
            .stdout(Stdio::null()),
    );
    let timed = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed()
    };
    let r = timed(&mut || {
        must(
            c.rtrain()
                .args(["pull", "box", "checkpoint-1000"])
                .arg(here.path().join("rtrain")),
        )
    });
    println!("rtrain pull: {:.1} s", r.as_secs_f64());
    let ssh_opts = |cmd: &mut Command| {
        cmd.arg("-F")
            .arg(c.ssh_dir().join("config"))
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                c.ssh_dir().join("known_hosts").display()
            ))
            .args(["-o", "BatchMode=yes"]);
    };
    let s = timed(&mut || {
        let mut cmd = Command::new("scp");
        ssh_opts(&mut cmd);
        // -O: the classic scp protocol, as the test sshd has no sftp subsystem; the remote
        // shell then reads the path, hence the quotes (the box's home has a space).
        cmd.arg("-Orq")
            .arg(format!("box:'{}'", ckpt.display()))
            .arg(here.path().join("scp"));
        must(&mut cmd)
    });
    let rsync = Command::new("rsync")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let y = rsync.then(|| {
        timed(&mut || {
            let ssh = format!(
                "ssh -F '{}' -o 'UserKnownHostsFile={}' -o BatchMode=yes",
                c.ssh_dir().join("config").display(),
                c.ssh_dir().join("known_hosts").display()
            );
            must(
                Command::new("rsync")
                    .args(["-a", "-e", &ssh])
                    // rsync 3.2.4+ passes the path to the box unsplit: no quotes here.
                    .arg(format!("box:{}/", ckpt.display()))
                    .arg(here.path().join("rsync")),
            )
        })
    });
    let rate = |d: Duration| mib / d.as_secs_f64();
    println!(
        "pull 1 GiB: rtrain pull {:.0} MiB/s ({:.1} s)   scp -r {:.0} MiB/s ({:.1} s)   rsync -a {}   rtrain/scp {:.2}",
        rate(r),
        r.as_secs_f64(),
        rate(s),
        s.as_secs_f64(),
        y.map(|d| format!("{:.0} MiB/s ({:.1} s)", rate(d), d.as_secs_f64()))
            .unwrap_or_else(|| "not installed".into()),
        rate(r) / rate(s)
    );
}

fn bench_push() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    c.write_rtrain_config("defaults:\n  workdir: ~/work\n");
    let here = tempfile::tempdir().unwrap();
    let proj = here.path().join("proj");
    for i in 0..5000 {
        let f = proj.join(format!("pkg{}/mod{}/file{i}.py", i % 50, i % 7));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, format!("# file {i}\nprint({i})\n")).unwrap();
    }
    let push = || {
        let out = c
            .rtrain()
            .args(["push", "box"])
            .arg(&proj)
            .arg("--json")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = push();
    assert_eq!(first["sent_files"], 5000);
    let none = time_n(5, || assert_eq!(push()["sent_files"], 0));
    std::fs::write(proj.join("pkg0/mod0/file0.py"), "print('changed')\n").unwrap();
    let t = Instant::now();
    let one = push();
    let one_t = t.elapsed();
    println!(
        "push 5,000 files: nothing changed median {}   one file changed {} ({} file, {} bytes of content, {} bytes of tar)",
        ms(none),
        ms(one_t),
        one["sent_files"],
        one["sent_bytes"],
        one["stream_bytes"]
    );
}

/// `checkpoint-0`, `checkpoint-100`, …: `n` complete Hugging Face checkpoints (trainer_state.json and a
/// small weights file each) in `dir`, added to what is there.
fn fill_checkpoints(dir: &std::path::Path, from: usize, to: usize) {
    for i in from..to {
        let c = dir.join(format!("checkpoint-{}", i * 100));
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("model.safetensors"), [7u8; 1024]).unwrap();
        std::fs::write(
            c.join("trainer_state.json"),
            format!("{{\"global_step\": {}}}", i * 100),
        )
        .unwrap();
    }
}

fn bench_scale() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    c.write_rtrain_config("defaults:\n  workdir: ~/project\n");
    let out = sshd.remote_home.join("project/outputs");
    std::fs::create_dir_all(&out).unwrap();
    println!("scale: checkpoints  status median   ckpts median");
    let mut have = 0;
    for n in [1, 100, 1_000, 10_000] {
        fill_checkpoints(&out, have, n);
        have = n;
        let runs = if n >= 10_000 { 3 } else { 5 };
        let st = time_n(runs, || must(c.rtrain().args(["status", "box"])));
        let ck = time_n(runs, || must(c.rtrain().args(["ckpts", "box"])));
        println!("scale: {n:>11}  {:>13}  {:>13}", ms(st), ms(ck));
    }
}

fn main() {
    let what = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let bin = rtrain_bin();
    assert!(
        bin.exists(),
        "{} missing: run `cargo build --release` first (or set RTRAIN_BIN)",
        bin.display()
    );
    println!("rtrain binary: {}", bin.display());
    match what.as_str() {
        "exec" => bench_exec(),
        "status" => bench_status(),
        "status-all" => bench_status_all(),
        "logs" => bench_logs(),
        "pull" => bench_pull(),
        "push" => bench_push(),
        "scale" => bench_scale(),
        "all" => {
            bench_exec();
            bench_status();
            bench_status_all();
            bench_logs();
        }
        other => panic!("unknown benchmark {other:?}: exec, status, status-all, logs, pull, push, scale or all"),
    }
}
