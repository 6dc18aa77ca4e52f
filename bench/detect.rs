//! Both halves of issue 17's detection goal, side by side in one run, in the kernel's network
//! (two namespace pairs, tests/support/netns.rs), with DEFAULT settings: how long after the
//! network goes silent a session is declared dead (goal: ≤ 6 s in the worst case), and how many
//! times a healthy but bad link — 300 ms RTT, 50 ms jitter, 3 % loss each way — is wrongly
//! declared dead (goal: 0 in 10 minutes).
//!
//! `bench/detect.sh [MINUTES] [TRIALS]` (= `cargo bench --bench detect -- --minutes M --trials N`).
//! Under `cargo test` it runs one trial and 20 s of bad link, so it cannot rot. Needs root.

#[path = "../tests/support/mod.rs"]
mod support;

use rtrain::ssh::link::{detection_time, LinkEvent};
use std::time::{Duration, Instant};
use support::netns::{on, NetRig, Rng, Shape};
use tokio_util::sync::CancellationToken;

const DEAD_GOAL: Duration = Duration::from_secs(6);

fn main() {
    let args = support::bench_args::BenchArgs::from_env();
    let full = args.full();
    let minutes: f64 = args.value("--minutes").unwrap_or(if full { 10.0 } else { 20.0 / 60.0 });
    let trials: usize = args.value("--trials").unwrap_or(if full { 20 } else { 1 });
    let seed = args.seed();
    let bad_for = Duration::from_secs_f64(minutes * 60.0);
    let (dead, alarms) = std::thread::scope(|s| {
        let dead = s.spawn(|| detection(trials.max(1), seed));
        let alarms = s.spawn(|| false_alarms(bad_for));
        (dead.join().unwrap(), alarms.join().unwrap())
    });
    let mut sorted = dead.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let max = *sorted.last().unwrap();
    let (interval, count) = (rtrain::config::DEFAULT_KEEPALIVE, rtrain::config::DEFAULT_KEEPALIVE_MAX);
    println!(
        "detection benchmark ({}), seed {seed}: keepalive {interval:?} × {count} (dead after {:?} of silence)",
        if full {
            "default settings"
        } else {
            "smoke run under cargo test"
        },
        detection_time(interval, count),
    );
    println!("| measure | result | goal |");
    println!("|---|---|---|");
    println!(
        "| black hole declared dead ({} trials) | median {:.2} s, max {:.2} s | ≤ {} s |",
        dead.len(),
        median.as_secs_f64(),
        max.as_secs_f64(),
        DEAD_GOAL.as_secs()
    );
    println!(
        "| false alarms on 300 ms RTT ± 50 ms, 3 % loss each way, {:.1} min | {} | 0 |",
        bad_for.as_secs_f64() / 60.0,
        alarms.0.len()
    );
    for a in &alarms.0 {
        println!("  false alarm: {a}");
    }
    let (alarms, mut pings) = alarms;
    pings.sort();
    if let (Some(lo), Some(hi)) = (pings.first(), pings.last()) {
        println!(
            "  the bad link's round trips ({} pings): min {:.0} ms, median {:.0} ms, max {:.0} ms",
            pings.len(),
            lo.as_secs_f64() * 1e3,
            pings[pings.len() / 2].as_secs_f64() * 1e3,
            hi.as_secs_f64() * 1e3
        );
    }
    let ok = max <= DEAD_GOAL && alarms.is_empty();
    std::process::exit(if ok { 0 } else { 1 });
}

/// Black holes at random points of the keepalive cycle: time from the fault to "dead".
fn detection(trials: usize, seed: u64) -> Vec<Duration> {
    let rig = NetRig::new();
    let rt = rig.client_runtime();
    let mut rng = Rng::new(seed);
    let mut link = on(&rt, {
        let mut link = rig.link();
        async move {
            link.session().await.expect("connect");
            link
        }
    });
    let mut out = Vec::new();
    for _ in 0..trials {
        // Let the link settle into its keepalive rhythm, then strike at a random phase of it.
        std::thread::sleep(Duration::from_millis(1_000 + rng.below(1_000)));
        rig.net.black_hole(true);
        let from = Instant::now();
        let (l, took) = on(&rt, async move {
            let _ = tokio::time::timeout(Duration::from_secs(30), link.wait_dead()).await;
            (link, from.elapsed())
        });
        out.push(took);
        rig.net.black_hole(false);
        link = on(&rt, async move {
            let mut link = l;
            link.reconnect(&CancellationToken::new(), |_| {})
                .await
                .expect("reconnect after the black hole");
            link
        });
    }
    out
}

/// A bad but working link for `d`: every loss of the session counts, with its reason. A small
/// command every few seconds keeps it in use, as `status --watch` would.
fn false_alarms(d: Duration) -> (Vec<String>, Vec<Duration>) {
    let rig = NetRig::new();
    rig.net.shape(Shape {
        delay: Duration::from_millis(150),
        jitter: Duration::from_millis(25),
        loss: 0.03,
        duplicate: 0.0,
    });
    let rt = rig.client_runtime();
    let mut link = rig.link();
    on(&rt, async move {
        let mut alarms = Vec::new();
        let mut pings = Vec::new();
        let end = tokio::time::Instant::now() + d;
        let mut session = link.session().await.expect("connect over the bad link");
        while tokio::time::Instant::now() < end {
            let dead = link.wait_dead();
            tokio::select! {
                reason = dead => {
                    alarms.push(reason);
                    session = link
                        .reconnect(&CancellationToken::new(), |e| {
                            if let LinkEvent::Restored { after } = e {
                                eprintln!("reconnected after {after:?}");
                            }
                        })
                        .await
                        .expect("reconnect over the bad link");
                }
                () = tokio::time::sleep(Duration::from_secs(3)) => {
                    // One ping is one round trip: proof that the link is as slow as it should be.
                    let t = Instant::now();
                    if session.handle().send_ping().await.is_ok() {
                        pings.push(t.elapsed());
                    }
                    let _ = session.exec("true", None, Some(Duration::from_secs(30))).await;
                }
            }
        }
        (alarms, pings)
    })
}
