//! Real network failure, in the kernel: rtrain in one network namespace, a real sshd in another,
//! a veth pair between them (tests/support/netns.rs), and default keepalive settings. A black
//! hole and a link set down are declared dead within 6 s; after roaming the link is back within
//! 2 s of the new address; an sshd restart and a client stopped for 30 s are survived byte for
//! byte; and a 20-fault soak (tests/support/soak.rs) loses nothing. Needs root; fails loudly
//! without it.

use crate::resilience::{assert_same_bytes, WRITER};
use crate::support::netns::{on, NetRig};
use crate::support::*;
use rtrain::ssh::link::{Link, LinkEvent};
use rtrain::ssh::Session;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The goal of issue 17 with default settings.
const DEAD_WITHIN: Duration = Duration::from_millis(6_000);
const T: Duration = Duration::from_secs(60);

/// The rig with the demo writer in the box's workdir.
fn rig() -> NetRig {
    let rig = NetRig::new();
    std::fs::create_dir_all(rig.sshd.remote_home.join("work dir")).unwrap();
    std::fs::write(rig.sshd.remote_home.join("work dir/writer.py"), WRITER).unwrap();
    rig
}

async fn works(session: &Session) {
    let out = session
        .exec("echo ok", None, Some(Duration::from_secs(20)))
        .await
        .unwrap_or_else(|e| panic!("exec on the session failed: {e}"));
    assert_eq!(out.stdout, b"ok\n");
}

/// Connect, prove the session works, and hand the link back.
fn connected(rt: &tokio::runtime::Runtime, mut link: Link) -> Link {
    on(rt, async move {
        let s = link.session().await.expect("first connect");
        works(&s).await;
        link
    })
}

/// How long after now the link is declared dead, and why.
fn dead_after(rt: &tokio::runtime::Runtime, link: Link, from: Instant) -> (Link, String, Duration) {
    on(rt, async move {
        let reason = tokio::time::timeout(Duration::from_secs(20), link.wait_dead())
            .await
            .expect("the session was not declared dead within 20 s");
        (link, reason, from.elapsed())
    })
}

/// Reconnect, returning the link, the time from `from` to `Restored`, and the events.
fn restored(rt: &tokio::runtime::Runtime, mut link: Link, from: Instant) -> (Link, Duration, Vec<LinkEvent>) {
    on(rt, async move {
        let cancel = CancellationToken::new();
        let mut events = Vec::new();
        let mut at = None;
        let r = tokio::time::timeout(
            Duration::from_secs(30),
            link.reconnect(&cancel, |e| {
                if matches!(e, LinkEvent::Restored { .. }) {
                    at = Some(from.elapsed());
                }
                events.push(e);
            }),
        )
        .await;
        let Ok(r) = r else {
            panic!("not reconnected within 30 s: {events:?}")
        };
        let s = r.unwrap_or_else(|e| panic!("reconnect failed: {e}; {events:?}"));
        works(&s).await;
        (link, at.expect("no Restored event"), events)
    })
}

#[test]
fn a_black_hole_is_declared_dead_within_6_s_and_the_link_returns_after_it() {
    let rig = rig();
    let rt = rig.client_runtime();
    let link = connected(&rt, rig.link());
    rig.net.black_hole(true);
    let (link, reason, took) = dead_after(&rt, link, Instant::now());
    eprintln!("black hole declared dead after {took:?}: {reason}");
    assert!(took <= DEAD_WITHIN, "declared dead only after {took:?}: {reason}");
    assert!(reason.contains("keepalive"), "{reason}");
    rig.net.black_hole(false);
    let (_link, back, _) = restored(&rt, link, Instant::now());
    assert!(
        back < Duration::from_secs(5),
        "back {back:?} after the black hole ended"
    );
}

#[test]
fn a_link_set_down_is_declared_dead_within_6_s_and_the_link_returns_when_it_is_up() {
    let rig = rig();
    let rt = rig.client_runtime();
    let link = connected(&rt, rig.link());
    rig.net.link(false);
    let (link, reason, took) = dead_after(&rt, link, Instant::now());
    eprintln!("link down declared dead after {took:?}: {reason}");
    assert!(took <= DEAD_WITHIN, "declared dead only after {took:?}: {reason}");
    rig.net.link(true);
    let (_link, back, _) = restored(&rt, link, Instant::now());
    assert!(back < Duration::from_secs(5), "back {back:?} after the link came up");
}

#[test]
fn after_roaming_to_a_new_address_the_link_is_back_within_2_s() {
    let rig = rig();
    let rt = rig.client_runtime();
    let link = connected(&rt, rig.link());
    let new = rig.net.roam();
    let from = Instant::now();
    let (link, reason, took) = dead_after(&rt, link, from);
    assert!(reason.contains("192.0.2.2"), "{reason}");
    let (link, back, events) = restored(&rt, link, from);
    eprintln!("roamed: dead after {took:?} ({reason}), back after {back:?}");
    assert!(
        back <= Duration::from_secs(2),
        "back only {back:?} after the new address: {events:?}"
    );
    let local = link.current().unwrap().local_addr().unwrap();
    assert_eq!(local.ip().to_string(), new);
}

#[test]
fn an_sshd_restart_is_noticed_at_once_and_the_link_returns() {
    let mut rig = rig();
    let rt = rig.client_runtime();
    let link = connected(&rt, rig.link());
    let from = Instant::now();
    rig.restart_sshd();
    let (link, reason, took) = dead_after(&rt, link, from);
    // The kernel answers for the killed sshd (FIN or RST): no keepalive budget needed.
    assert!(took < Duration::from_secs(3), "dead after {took:?}: {reason}");
    let (_link, back, _) = restored(&rt, link, Instant::now());
    assert!(back < Duration::from_secs(5), "back {back:?} after the restart");
}

#[test]
fn logs_follow_stopped_for_30_s_resumes_at_once_byte_for_byte() {
    let rig = rig();
    let ran = run_with_timeout(&mut rig.rtrain(&["up", "box", "--", "python3 writer.py 20 45"]), T);
    assert_eq!(ran.code, 0, "{ran}");
    let st = run_with_timeout(&mut rig.rtrain(&["status", "box", "--json"]), T);
    let status: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap_or_else(|_| panic!("{st}"));
    let log = std::path::PathBuf::from(status["run"]["log"].as_str().expect("log path"));
    let mut follow = Bg::spawn(rig.rtrain(&["logs", "box", "-f", "-n", "all", "--raw"]));
    follow.wait_stdout_past(200, T);
    follow.signal("STOP");
    let printed = follow.stdout().len();
    std::thread::sleep(Duration::from_secs(30)); // the fault itself: a laptop asleep for 30 s
    let written = std::fs::metadata(&log).unwrap().len() as usize;
    assert_eq!(follow.stdout().len(), printed, "rtrain printed while stopped");
    assert!(written > printed + 10_000, "the run did not write on: {written} bytes");
    follow.signal("CONT");
    let woke = Instant::now();
    follow.wait_stdout_past(written, Duration::from_secs(10));
    eprintln!("caught up {:?} after SIGCONT", woke.elapsed());
    assert!(woke.elapsed() < Duration::from_secs(6), "{}", follow.stderr());
    let code = follow.wait(T);
    assert_eq!(code, 0, "{}", follow.stderr());
    assert_same_bytes(&follow.stdout(), &log);
}

#[test]
fn soak_attach_logs_and_forward_through_20_random_faults_lose_nothing() {
    let seed = std::env::var("RTRAIN_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        });
    eprintln!("soak seed {seed} (RTRAIN_SOAK_SEED={seed} reruns it)");
    let report = crate::support::soak::soak(20, seed, crate::support::soak::SHORT);
    let table = report.table();
    eprintln!("{table}");
    assert!(report.clean(), "{table}");
}
