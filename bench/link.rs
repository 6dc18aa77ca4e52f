//! Measures what the resilient link promises with DEFAULT settings, over a real sshd behind the
//! fault-injecting proxy: how long after the network goes silent the session is declared dead
//! (target ≤ 6 s), and how long after the network returns a working session is back (target:
//! median ≤ 1.5 s), both after a black hole and after a refusing port.
//!
//! Run `bench/link.sh [TRIALS]` (= `cargo bench --bench link -- --trials N`). Under `cargo test` it
//! runs one quick trial with short keepalives instead, so the benchmark cannot rot unnoticed.

#[path = "../tests/support/mod.rs"]
mod support;

use rtrain::config::{self, Target};
use rtrain::ssh::link::{detection_time, Link, ReconnectPolicy};
use rtrain::ssh::{NoPrompt, Session};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{current_user, Mode, Proxy, Sshd};
use tokio_util::sync::CancellationToken;

const DETECTION_TARGET: Duration = Duration::from_secs(6);
const RECOVERY_TARGET: Duration = Duration::from_millis(1500);
/// How long the network stays away once the loss was noticed.
const OUTAGE: Duration = Duration::from_secs(2);

fn main() {
    let args = support::bench_args::BenchArgs::from_env();
    let full = args.full();
    let trials: usize = args.value("--trials").unwrap_or(if full { 10 } else { 1 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ok = rt.block_on(run(full, trials.max(1)));
    std::process::exit(if ok { 0 } else { 1 });
}

async fn run(full: bool, trials: usize) -> bool {
    let sshd = Sshd::start();
    let proxy = Proxy::start(sshd.port);
    let client = proxy.client_for(&sshd);
    let paths = config::Paths::resolve(client.home.path().to_path_buf(), None, None, current_user());
    let target: Target = config::resolve_target("box", &config::ConfigFile::default(), &paths, false).unwrap();
    let mut opts = target.connect_options(None);
    if !full {
        opts.keepalive_interval = Duration::from_millis(500);
    }
    let policy = ReconnectPolicy::default();
    println!(
        "link benchmark ({}): keepalive {:?} × {} (dead after {:?}), backoff {:?}..{:?}, {} trial(s)",
        if full {
            "default settings"
        } else {
            "smoke run under cargo test"
        },
        opts.keepalive_interval,
        opts.keepalive_max,
        detection_time(opts.keepalive_interval, opts.keepalive_max),
        policy.initial_delay,
        policy.max_delay,
        trials
    );
    let mut link = Link::new(target, opts.clone(), Arc::new(NoPrompt), policy);
    let (mut detection, mut black_hole, mut refused) = (Vec::new(), Vec::new(), Vec::new());
    for trial in 1..=trials {
        works(&link.session().await.expect("connect")).await;
        // Lose the network at a random point of the keepalive cycle, as real losses do.
        let phase = opts.keepalive_interval.mul_f64(rtrain::ssh::link::random_unit());
        tokio::time::sleep(phase).await;

        set_mode(&proxy, Mode::BlackHole);
        let lost = Instant::now();
        let dead = link.wait_dead();
        tokio::time::timeout(Duration::from_secs(120), dead)
            .await
            .expect("never declared dead");
        let detected = lost.elapsed();
        let after_black_hole;
        (link, after_black_hole) = outage_then_restore(link, &proxy).await;

        // A refusing port: the box's sshd or the VPN is down, connects fail fast.
        set_mode(&proxy, Mode::Reset);
        tokio::time::timeout(Duration::from_secs(10), link.wait_dead())
            .await
            .expect("a reset was not noticed");
        set_mode(&proxy, Mode::Refuse);
        let after_refusal;
        (link, after_refusal) = outage_then_restore(link, &proxy).await;

        println!(
            "trial {trial:>2}: detection {:>6.2} s   recovery after black hole {:>5.2} s   after refusal {:>5.2} s",
            detected.as_secs_f64(),
            after_black_hole.as_secs_f64(),
            after_refusal.as_secs_f64()
        );
        detection.push(detected);
        black_hole.push(after_black_hole);
        refused.push(after_refusal);
    }
    let d = summary("detection (black hole → connection lost)", &mut detection);
    let b = summary("recovery (black hole ends → working session)", &mut black_hole);
    let r = summary("recovery (port opens → working session)", &mut refused);
    if !full {
        // Short keepalives: only sanity, the targets are for default settings.
        return d.max < Duration::from_secs(5) && b.max < Duration::from_secs(5) && r.max < Duration::from_secs(5);
    }
    let ok = d.max <= DETECTION_TARGET && b.median <= RECOVERY_TARGET && r.median <= RECOVERY_TARGET;
    println!(
        "targets: detection ≤ {:?} (every trial), recovery median ≤ {:?}: {}",
        DETECTION_TARGET,
        RECOVERY_TARGET,
        if ok { "met" } else { "MISSED" }
    );
    ok
}

/// With the link dead and the proxy failing, reconnect; after OUTAGE restore the network and time
/// how long until a command runs on the new session.
async fn outage_then_restore(mut link: Link, proxy: &Proxy) -> (Link, Duration) {
    let task = tokio::spawn(async move {
        let r = link.reconnect(&CancellationToken::new(), |_| {}).await;
        (link, r)
    });
    tokio::time::sleep(OUTAGE).await;
    set_mode(proxy, Mode::Pass);
    let restored = Instant::now();
    let (link, r) = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("not back within 60 s")
        .unwrap();
    let session = r.expect("reconnect failed");
    works(&session).await;
    (link, restored.elapsed())
}

fn set_mode(proxy: &Proxy, mode: Mode) {
    tokio::task::block_in_place(|| proxy.set_mode(mode));
}

async fn works(session: &Session) {
    let out = session
        .exec("true", None, Some(Duration::from_secs(10)))
        .await
        .expect("exec on the session");
    assert_eq!(out.exit.as_code(), 0);
}

struct Stats {
    median: Duration,
    max: Duration,
}

fn summary(what: &str, v: &mut [Duration]) -> Stats {
    v.sort();
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2
    };
    let (min, max) = (v[0], v[v.len() - 1]);
    println!(
        "{what:<48} min {:>5.2} s  median {:>5.2} s  max {:>5.2} s",
        min.as_secs_f64(),
        median.as_secs_f64(),
        max.as_secs_f64()
    );
    Stats { median, max }
}
