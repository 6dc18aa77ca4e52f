//! The resilient link over a real sshd behind the fault-injecting proxy: a dead link is noticed
//! within the keepalive budget and comes back soon after the network does; what retrying cannot
//! fix (host key, authentication) stops at once; Ctrl-C and the give-up limit are honoured.
//! Keepalives are 500 ms × 2 so that all of this takes seconds.

use crate::support::*;
use rtrain::config::{self, Target};
use rtrain::ssh::link::{detection_time, Link, LinkError, LinkEvent, ReconnectPolicy};
use rtrain::ssh::{ConnectOptions, NoPrompt, Session, SshError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const KEEPALIVE: Duration = Duration::from_millis(500);
const KEEPALIVE_MAX: usize = 2;

fn opts(keepalive: Duration) -> ConnectOptions {
    ConnectOptions {
        keepalive_interval: keepalive,
        keepalive_max: KEEPALIVE_MAX,
        connect_timeout: Duration::from_secs(3),
        handshake_timeout: Duration::from_secs(5),
        agent_socket: None,
    }
}

/// sshd, the proxy in front of it, and a client whose `box` goes through the proxy.
struct Rig {
    sshd: Sshd,
    proxy: Proxy,
    client: Client,
}

impl Rig {
    fn new() -> Rig {
        let sshd = Sshd::start();
        let proxy = Proxy::start(sshd.port);
        let client = proxy.client_for(&sshd);
        Rig { sshd, proxy, client }
    }

    fn target(&self) -> Target {
        let paths = config::Paths::resolve(self.client.home.path().to_path_buf(), None, None, current_user());
        config::resolve_target("box", &config::ConfigFile::default(), &paths, false).unwrap()
    }

    fn link(&self, keepalive: Duration, policy: ReconnectPolicy) -> Link {
        Link::new(self.target(), opts(keepalive), Arc::new(NoPrompt), policy)
    }

    /// Kill every sshd session process and the listener; `restart` brings it back.
    fn stop_sshd(&mut self) {
        tokio::task::block_in_place(|| self.sshd.stop());
    }

    fn restart_sshd(&mut self) {
        tokio::task::block_in_place(|| self.sshd.restart());
    }
}

async fn works(session: &Session, sshd: &Sshd) {
    let out = session
        .exec("echo ok", None, Some(Duration::from_secs(10)))
        .await
        .unwrap_or_else(|e| panic!("exec on the session failed: {e}\n--- sshd log\n{}", sshd.log()));
    assert_eq!(out.stdout, b"ok\n");
}

async fn dead_within(link: &Link, limit: Duration) -> (String, Duration) {
    let start = Instant::now();
    let reason = tokio::time::timeout(limit, link.wait_dead())
        .await
        .unwrap_or_else(|_| panic!("the session was not declared dead within {limit:?}"));
    (reason, start.elapsed())
}

/// `reconnect` running in its own task, its events streamed back as they happen.
struct Reconnecting {
    events: mpsc::UnboundedReceiver<(Instant, LinkEvent)>,
    seen: Vec<(Instant, LinkEvent)>,
    task: tokio::task::JoinHandle<(Link, Result<Arc<Session>, LinkError>)>,
}

fn reconnect(mut link: Link, cancel: CancellationToken) -> Reconnecting {
    let (tx, events) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let r = link
            .reconnect(&cancel, |e| {
                let _ = tx.send((Instant::now(), e));
            })
            .await;
        (link, r)
    });
    Reconnecting {
        events,
        seen: Vec::new(),
        task,
    }
}

impl Reconnecting {
    fn retries(&self) -> usize {
        self.seen
            .iter()
            .filter(|(_, e)| matches!(e, LinkEvent::Retrying { .. }))
            .count()
    }

    /// Wait until `n` attempts have failed.
    async fn retried(&mut self, n: usize, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.retries() < n {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) => self.seen.push(e),
                _ => panic!("only {} retries within {limit:?}: {:?}", self.retries(), self.events()),
            }
        }
    }

    fn events(&self) -> Vec<LinkEvent> {
        self.seen.iter().map(|(_, e)| e.clone()).collect()
    }

    async fn finish(mut self, limit: Duration) -> (Link, Result<Arc<Session>, LinkError>, Vec<(Instant, LinkEvent)>) {
        let (link, r) = tokio::time::timeout(limit, &mut self.task)
            .await
            .unwrap_or_else(|_| panic!("reconnect did not return within {limit:?}; events: {:?}", self.events()))
            .unwrap();
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
        (link, r, self.seen)
    }
}

fn restored_at(events: &[(Instant, LinkEvent)]) -> Instant {
    let (at, last) = events.last().expect("no events");
    assert!(matches!(last, LinkEvent::Restored { .. }), "last event: {last:?}");
    *at
}

fn assert_lost_first(events: &[(Instant, LinkEvent)]) {
    assert!(
        matches!(events.first(), Some((_, LinkEvent::Lost { .. }))),
        "the first event must be Lost: {events:?}"
    );
}

const LONG: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_black_hole_is_noticed_by_keepalives_and_recovers_soon_after_restore() {
    let rig = Rig::new();
    let mut link = rig.link(KEEPALIVE, ReconnectPolicy::default());
    let session = link.session().await.unwrap();
    works(&session, &rig.sshd).await;

    // Keepalives are answered on a healthy idle link: it must not be declared dead.
    assert!(
        tokio::time::timeout(detection_time(KEEPALIVE, KEEPALIVE_MAX) * 2, link.wait_dead())
            .await
            .is_err(),
        "a healthy idle link was declared dead"
    );

    rig.proxy.set_mode(Mode::BlackHole);
    let (reason, detected) = dead_within(&link, LONG).await;
    assert!(reason.contains("keepalive"), "{reason}");
    assert!(
        detected < Duration::from_secs(5),
        "detection took {detected:?}; keepalives allow {:?}",
        detection_time(KEEPALIVE, KEEPALIVE_MAX)
    );
    assert!(link.current().is_none());

    let mut r = reconnect(link, CancellationToken::new());
    r.retried(3, LONG).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restore = Instant::now();
    rig.proxy.set_mode(Mode::Pass);
    let (link, result, events) = r.finish(LONG).await;
    let session = result.unwrap_or_else(|e| panic!("{e}; events: {events:?}"));
    let recovery = restored_at(&events) - restore;
    assert!(recovery < Duration::from_secs(5), "back {recovery:?} after the network");
    assert_lost_first(&events);
    works(&session, &rig.sshd).await;
    assert!(link.current().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_recovers_after_connections_are_reset() {
    let rig = Rig::new();
    let mut link = rig.link(KEEPALIVE, ReconnectPolicy::default());
    works(&link.session().await.unwrap(), &rig.sshd).await;

    rig.proxy.set_mode(Mode::Reset);
    let (reason, detected) = dead_within(&link, LONG).await;
    assert!(
        detected < Duration::from_secs(2),
        "a reset took {detected:?} to notice ({reason})"
    );

    let mut r = reconnect(link, CancellationToken::new());
    r.retried(2, LONG).await;
    let restore = Instant::now();
    rig.proxy.set_mode(Mode::Pass);
    let (_link, result, events) = r.finish(LONG).await;
    let session = result.unwrap_or_else(|e| panic!("{e}; events: {events:?}"));
    assert!(restored_at(&events) - restore < Duration::from_secs(5));
    assert_lost_first(&events);
    works(&session, &rig.sshd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_recovers_after_the_port_refused_for_a_while() {
    let rig = Rig::new();
    let mut link = rig.link(KEEPALIVE, ReconnectPolicy::default());
    works(&link.session().await.unwrap(), &rig.sshd).await;

    rig.proxy.set_mode(Mode::Reset);
    dead_within(&link, LONG).await;
    rig.proxy.set_mode(Mode::Refuse);
    let before = rig.proxy.accepted();

    let mut r = reconnect(link, CancellationToken::new());
    r.retried(3, LONG).await;
    let refused = r.events().iter().any(|e| match e {
        LinkEvent::Retrying { last_error, .. } => last_error.contains("refused"),
        _ => false,
    });
    assert!(refused, "{:?}", r.events());
    let restore = Instant::now();
    rig.proxy.set_mode(Mode::Pass);
    let (_link, result, events) = r.finish(LONG).await;
    let session = result.unwrap_or_else(|e| panic!("{e}; events: {events:?}"));
    let recovery = restored_at(&events) - restore;
    assert!(
        recovery < Duration::from_secs(5),
        "back {recovery:?} after the port opened"
    );
    assert_eq!(
        rig.proxy.accepted(),
        before + 1,
        "one connection per successful attempt: the probe's TCP connection carries the session"
    );
    works(&session, &rig.sshd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_recovers_after_sshd_restarts() {
    let mut rig = Rig::new();
    let mut link = rig.link(KEEPALIVE, ReconnectPolicy::default());
    works(&link.session().await.unwrap(), &rig.sshd).await;

    rig.stop_sshd();
    dead_within(&link, Duration::from_secs(5)).await;
    let mut r = reconnect(link, CancellationToken::new());
    // The proxy still accepts, then resets: sshd is down behind it.
    r.retried(2, LONG).await;
    rig.restart_sshd();
    let (_link, result, events) = r.finish(LONG).await;
    let session = result.unwrap_or_else(|e| panic!("{e}; events: {events:?}\n{}", rig.sshd.log()));
    assert_lost_first(&events);
    works(&session, &rig.sshd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_changed_host_key_stops_reconnecting_at_once_with_exit_5() {
    let mut rig = Rig::new();
    let mut link = rig.link(KEEPALIVE, ReconnectPolicy::default());
    works(&link.session().await.unwrap(), &rig.sshd).await;

    tokio::task::block_in_place(|| rig.sshd.change_host_key());
    dead_within(&link, Duration::from_secs(5)).await;
    let before = rig.proxy.accepted();
    let start = Instant::now();
    let (_link, result, events) = reconnect(link, CancellationToken::new()).finish(LONG).await;
    let err = result.err().expect("a changed host key must not connect");
    assert!(
        matches!(err, LinkError::Fatal(SshError::HostKeyChanged { .. })),
        "{err}"
    );
    assert_eq!(err.exit_code(), 5);
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    assert_eq!(
        rig.proxy.accepted(),
        before + 1,
        "exactly one attempt; events: {events:?}"
    );
    assert!(
        !events.iter().any(|(_, e)| matches!(e, LinkEvent::Retrying { .. })),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_broken_authentication_stops_reconnecting_at_once_with_exit_4() {
    let mut rig = Rig::new();
    let mut link = rig.link(KEEPALIVE, ReconnectPolicy::default());
    works(&link.session().await.unwrap(), &rig.sshd).await;

    std::fs::write(rig.sshd.dir.path().join("authorized_keys"), "").unwrap();
    rig.restart_sshd();
    dead_within(&link, Duration::from_secs(5)).await;
    let before = rig.proxy.accepted();
    let start = Instant::now();
    let (_link, result, events) = reconnect(link, CancellationToken::new()).finish(LONG).await;
    let err = result.err().expect("a removed key must not authenticate");
    assert!(matches!(err, LinkError::Fatal(SshError::AuthFailed { .. })), "{err}");
    assert_eq!(err.exit_code(), 4);
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    assert_eq!(
        rig.proxy.accepted(),
        before + 1,
        "exactly one attempt; events: {events:?}"
    );
    assert!(
        !events.iter().any(|(_, e)| matches!(e, LinkEvent::Retrying { .. })),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_cancel_during_reconnect_returns_promptly_with_exit_130() {
    let rig = Rig::new();
    let mut link = rig.link(KEEPALIVE, ReconnectPolicy::default());
    works(&link.session().await.unwrap(), &rig.sshd).await;
    rig.proxy.set_mode(Mode::Reset);
    dead_within(&link, LONG).await;
    // A black hole: the attempt in flight is a TCP connect that will not complete by itself.
    rig.proxy.set_mode(Mode::BlackHole);

    let cancel = CancellationToken::new();
    let mut r = reconnect(link, cancel.clone());
    r.retried(2, LONG).await;
    let at = Instant::now();
    cancel.cancel();
    let (_link, result, _) = r.finish(LONG).await;
    assert!(at.elapsed() < Duration::from_millis(500), "took {:?}", at.elapsed());
    let err = result.err().expect("cancelled");
    assert!(matches!(err, LinkError::Cancelled), "{err}");
    assert_eq!(err.exit_code(), 130);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_gives_up_after_the_policy_limit_with_exit_3() {
    let rig = Rig::new();
    let limit = Duration::from_millis(1500);
    let policy = ReconnectPolicy {
        give_up_after: Some(limit),
        ..ReconnectPolicy::default()
    };
    let mut link = rig.link(KEEPALIVE, policy);
    works(&link.session().await.unwrap(), &rig.sshd).await;
    rig.proxy.set_mode(Mode::Reset);
    dead_within(&link, LONG).await;
    rig.proxy.set_mode(Mode::Refuse);

    let start = Instant::now();
    let (_link, result, events) = reconnect(link, CancellationToken::new()).finish(LONG).await;
    let took = start.elapsed();
    let err = result.err().expect("gave up");
    assert!(matches!(err, LinkError::GaveUp { .. }), "{err}");
    assert_eq!(err.exit_code(), 3);
    assert!(err.to_string().contains("refused"), "the last error is named: {err}");
    assert!(
        took >= limit && took < limit + Duration::from_secs(2),
        "gave up after {took:?}"
    );
    assert!(
        events
            .iter()
            .filter(|(_, e)| matches!(e, LinkEvent::Retrying { .. }))
            .count()
            >= 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_probe_now_finds_a_dead_link_without_waiting_for_keepalives() {
    let rig = Rig::new();
    let probe_timeout = Duration::from_secs(1);
    let policy = ReconnectPolicy {
        probe_timeout,
        ..ReconnectPolicy::default()
    };
    // Keepalives so slow they cannot be what notices: only the probe (as after a wake-up) can.
    let mut link = rig.link(Duration::from_secs(60), policy);
    works(&link.session().await.unwrap(), &rig.sshd).await;

    // Judged only after the probe's own timeout has passed, twice over: a probe that wrongly kills
    // a healthy link does so at the latest when its ping times out.
    link.probe_now();
    assert!(
        tokio::time::timeout(probe_timeout * 2 + Duration::from_millis(500), link.wait_dead())
            .await
            .is_err(),
        "a probe of a healthy link must not kill it"
    );
    assert!(link.current().is_some());

    rig.proxy.set_mode(Mode::BlackHole);
    link.probe_now();
    let (reason, detected) = dead_within(&link, Duration::from_secs(10)).await;
    assert!(reason.contains("ping"), "{reason}");
    assert!(detected < Duration::from_secs(4), "took {detected:?}");

    rig.proxy.set_mode(Mode::Pass);
    let (_link, result, events) = reconnect(link, CancellationToken::new()).finish(LONG).await;
    works(&result.unwrap_or_else(|e| panic!("{e}; {events:?}")), &rig.sshd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_first_connect_failure_is_returned_as_is_without_retrying() {
    let rig = Rig::new();
    rig.proxy.set_mode(Mode::Refuse);
    let mut link = rig.link(KEEPALIVE, ReconnectPolicy::default());
    let start = Instant::now();
    let err = link.session().await.err().expect("nothing listens");
    assert!(matches!(err, SshError::Unreachable { .. }), "{err}");
    assert_eq!(err.exit_code(), 3);
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    assert!(link.current().is_none());
}
