//! Fleet scale where latency is real (issue 17, section 5): `status --all` over 64 hosts, each
//! 50 ms of round trip away, against `status` of one of them. The hosts are 64 addresses of one
//! namespace behind a delayed link (tests/support/netns.rs), served by one sshd, so the figure is
//! about rtrain's concurrency and the round trips, not about 64 servers sharing this machine.
//!
//! `cargo bench --bench fleet -- [--hosts N] [--trials N]`. Under `cargo test`: 4 hosts, once.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::time::{Duration, Instant};
use support::netns::{NetNs, Shape, Side};
use support::{keygen, run_with_timeout, Client, Sshd, SshdOptions};

fn main() {
    let args = support::bench_args::BenchArgs::from_env();
    let full = args.full();
    let hosts: usize = args.value("--hosts").unwrap_or(if full { 64 } else { 4 }).clamp(1, 200);
    let trials: usize = args.value("--trials").unwrap_or(if full { 5 } else { 1 }).max(1);
    let net = NetNs::new();
    let addrs: Vec<String> = (0..hosts).map(|i| format!("192.0.2.{}", 10 + i)).collect();
    for a in &addrs {
        net.add_address(Side::Server, a);
    }
    let sshd = net.run_in(Side::Server, || {
        Sshd::start_opts(SshdOptions {
            listen: "0.0.0.0".into(),
            log_level: "ERROR".into(),
            ..SshdOptions::default()
        })
    });
    let c = Client::bare();
    keygen(&c.key, "ed25519", "");
    sshd.authorize(&c.key.with_extension("pub"));
    let mut ssh = String::new();
    let mut rt = String::from("hosts:\n");
    let mut known = std::fs::File::create(c.ssh_dir().join("known_hosts")).unwrap();
    for (i, a) in addrs.iter().enumerate() {
        ssh += &format!(
            "Host b{i}\n  HostName {a}\n  Port {}\n  User {}\n  IdentityFile {}\n",
            sshd.port,
            sshd.user,
            c.key.display()
        );
        rt += &format!("  b{i}: {{}}\n");
        writeln!(known, "[{a}]:{} {}", sshd.port, sshd.host_public_key()).unwrap();
    }
    c.write_ssh_config(&ssh);
    c.write_rtrain_config(&rt);
    net.shape(Shape {
        delay: Duration::from_millis(25),
        ..Shape::default()
    });
    let time = |args: &[&str]| -> Duration {
        let mut runs: Vec<Duration> = (0..trials + 1)
            .map(|_| {
                let mut cmd = c.rtrain();
                cmd.args(args);
                let start = Instant::now();
                let ran = run_with_timeout(&mut net.command(Side::Client, &cmd), Duration::from_secs(120));
                assert_eq!(ran.code, 0, "{ran}");
                start.elapsed()
            })
            .skip(1) // the first warms caches
            .collect();
        runs.sort();
        runs[runs.len() / 2]
    };
    let one = time(&["status", "b0"]);
    let all = time(&["status", "--all"]);
    let ratio = all.as_secs_f64() / one.as_secs_f64();
    println!(
        "fleet: `status --all` over {hosts} hosts at 50 ms RTT: median {:.0} ms; one host: median {:.0} ms; \
         ratio {ratio:.2} (goal ≤ 1.5), {trials} trial(s) each",
        all.as_secs_f64() * 1e3,
        one.as_secs_f64() * 1e3
    );
    // exit() runs no destructors: the box and the namespaces go first.
    drop(sshd);
    drop(c);
    drop(net);
    std::process::exit(if !full || ratio <= 1.5 { 0 } else { 1 });
}
