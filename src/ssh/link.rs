//! Keeps one host usable through dropped networks and laptop sleep: notices that the session died
//! (russh keepalives, or a ping after the machine slept or rtrain was stopped) and builds a new one
//! with backoff and jitter, telling the caller what happens through [`LinkEvent`]s. Never prints.
//!
//! One attempt is still `connect_once`'s business (timeouts, host key, authentication); this module
//! only decides when to attempt, and never retries what retrying cannot fix (auth, host keys).

use super::endpoint::{Endpoint, Route};
use super::session::{self, Session};
use super::{connect_once, ConnectOptions, Prompter, SshError};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long russh takes to declare a silent server dead. It sends a keepalive each time `interval`
/// passes without receiving anything, and gives up when that timer fires with `max` keepalives
/// already unanswered (russh 0.65, `client::Session::run_inner`): after `(max + 1) × interval` of
/// silence. OpenSSH counts ServerAliveCountMax the same way. `max` must be at least 1 (russh treats
/// 0 as "never give up"; `config::Target::keepalive` never returns 0).
pub fn detection_time(interval: Duration, max: usize) -> Duration {
    interval.saturating_mul(max as u32 + 1)
}

/// Linux's retransmission timeout for a smoothed round trip `rtt` with variation `rttvar`:
/// `rtt + max(4 × rttvar, 200 ms)` (`tcp_rto_min`). Each further loss of the same segment doubles it.
pub fn linux_rto(rtt: Duration, rttvar: Duration) -> Duration {
    rtt + (rttvar * 4).max(Duration::from_millis(200))
}

/// How many times in a row one TCP segment may be lost before keepalives `interval × max` call a
/// live but bad link dead. The worst case is the keepalive itself (sent `interval` into a
/// silence) or its answer being lost: after `k` losses it arrives `rto × (2^k − 1) + rtt` later,
/// and the link survives if that is still inside [`detection_time`]. The chance of a false alarm
/// per segment is then about `loss^(k + 1)`.
pub fn tolerated_losses(interval: Duration, max: usize, rtt: Duration, rto: Duration) -> u32 {
    let budget = detection_time(interval, max);
    let mut k = 0u32;
    while k < 16 {
        let stalled = interval + rto.saturating_mul((1u32 << (k + 1)) - 1) + rtt;
        if stalled >= budget {
            break;
        }
        k += 1;
    }
    k
}

/// Whether this machine no longer has `local` (the address our end of a connection uses): binding
/// to it fails with EADDRNOTAVAIL once it was removed, when the laptop roamed to another network
/// or a VPN went down. A TCP connection from a vanished address is dead without a single RST, and
/// keepalives would take their full detection time to say so; this takes one system call.
pub fn address_gone(local: std::net::SocketAddr) -> bool {
    let mut any_port = local;
    any_port.set_port(0);
    if local.ip().is_loopback() || local.ip().is_unspecified() {
        return false;
    }
    matches!(
        std::net::UdpSocket::bind(any_port),
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL)
    )
}

/// How often [`address_gone`] is asked: it bounds how long after roaming the old session is given
/// up, and so how soon the link is back on the new address.
pub const ADDRESS_CHECK: Duration = Duration::from_millis(250);

/// When and how long to retry.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// The pause after the first failed attempt; it doubles with each failure up to `max_delay`.
    pub initial_delay: Duration,
    /// Cap on the pause between attempts. Kept low: it bounds how long after the network returns
    /// the link is back, and a TCP connect attempt costs nearly nothing.
    pub max_delay: Duration,
    /// Each pause is drawn from `[(1 - jitter) × d, d]`, so clients that lost the same network do
    /// not come back in lockstep. 0 disables jitter; values are clamped to 0..=1.
    pub jitter: f64,
    /// A session that lived this long resets the backoff: its loss is a new incident, whereas a
    /// session that dies right away (a flapping link) keeps the longer pauses.
    pub healthy_after: Duration,
    /// Stop retrying after this long, counted from the loss. `None`: retry until cancelled.
    pub give_up_after: Option<Duration>,
    /// How long a ping may take, after a wake-up or [`Link::probe_now`], before the session is
    /// presumed dead.
    pub probe_timeout: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            jitter: 0.3,
            healthy_after: Duration::from_secs(30),
            give_up_after: None,
            probe_timeout: Duration::from_secs(2),
        }
    }
}

/// Exponential backoff with a cap and jitter; the schedule of pauses between attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: f64,
    next: Duration,
}

impl Backoff {
    pub fn new(policy: &ReconnectPolicy) -> Backoff {
        let initial = policy.initial_delay.min(policy.max_delay);
        Backoff {
            initial,
            max: policy.max_delay,
            jitter: policy.jitter.clamp(0.0, 1.0),
            next: initial,
        }
    }

    /// The next pause before jitter: `initial`, doubling on each call, never above the cap.
    pub fn next_base(&mut self) -> Duration {
        let d = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        d
    }

    /// The next pause, jittered.
    pub fn next_delay(&mut self) -> Duration {
        jittered(self.next_base(), self.jitter, random_unit())
    }

    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// A session that lived `lived` was lost: start over if it had been healthy.
    pub fn on_lost(&mut self, lived: Duration, healthy_after: Duration) {
        if lived >= healthy_after {
            self.reset();
        }
    }
}

/// `base` shortened by up to `jitter × base`, `r` being uniform in 0..1. Never longer than `base`,
/// so the cap stays a promise.
pub fn jittered(base: Duration, jitter: f64, r: f64) -> Duration {
    base.mul_f64(1.0 - jitter.clamp(0.0, 1.0) * r.clamp(0.0, 1.0))
}

/// What happens to the link, for a one-line status.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// The session is gone (or the caller abandoned it); reconnecting starts now.
    Lost { reason: String },
    /// Attempt `attempt` did not get a session; the next starts in `next_in`. `since`: time since
    /// the loss.
    Retrying {
        attempt: u32,
        since: Duration,
        next_in: Duration,
        last_error: String,
    },
    /// A new session is up, `after` the loss.
    Restored { after: Duration },
}

/// Why [`Link::reconnect`] stopped without a session.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The caller's cancellation token fired (Ctrl-C).
    #[error("interrupted")]
    Cancelled,
    /// `ReconnectPolicy::give_up_after` passed.
    #[error("gave up reconnecting to {host} after {} s: {last}", after.as_secs())]
    GaveUp {
        host: String,
        after: Duration,
        last: SshError,
    },
    /// A failure retrying cannot fix: authentication, host key, protocol.
    #[error(transparent)]
    Fatal(SshError),
}

impl LinkError {
    /// DESIGN.md's exit code: 130 interrupted, 3 unreachable, else the SSH failure's own.
    pub fn exit_code(&self) -> u8 {
        match self {
            LinkError::Cancelled => 130,
            LinkError::GaveUp { .. } => 3,
            LinkError::Fatal(e) => e.exit_code(),
        }
    }
}

/// Two clocks read at one instant: `awake` stops while the machine sleeps, `total` does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockReading {
    pub awake: Duration,
    pub total: Duration,
}

#[cfg(unix)]
fn clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec that clock_gettime only writes to.
    if unsafe { libc::clock_gettime(id, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl ClockReading {
    /// Linux: MONOTONIC stops during suspend, BOOTTIME does not. macOS: UPTIME_RAW stops, MONOTONIC
    /// does not. Elsewhere both are the same clock, so only stalls are seen, not sleep.
    pub fn now() -> ClockReading {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return ClockReading {
            awake: clock(libc::CLOCK_MONOTONIC),
            total: clock(libc::CLOCK_BOOTTIME),
        };
        #[cfg(target_vendor = "apple")]
        return ClockReading {
            awake: clock(libc::CLOCK_UPTIME_RAW),
            total: clock(libc::CLOCK_MONOTONIC),
        };
        #[allow(unreachable_code)]
        {
            let t = fallback_clock();
            ClockReading { awake: t, total: t }
        }
    }
}

#[allow(dead_code)]
fn fallback_clock() -> Duration {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}

/// A reason to doubt the link that keepalives cannot see in time: their timers run on the clock
/// that stops during sleep, so after waking from a night's sleep they would need their full
/// detection time again, and a stopped process (SIGSTOP) missed its keepalives altogether.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// The machine slept this long.
    Suspended(Duration),
    /// This process did not run for this long although the machine did (SIGSTOP, a debugger).
    Stalled(Duration),
}

/// Notices sleep and stalls by comparing clock readings taken about every `tick`.
#[derive(Debug, Clone)]
pub struct WakeDetector {
    tick: Duration,
    threshold: Duration,
    last: Option<ClockReading>,
}

impl WakeDetector {
    pub const TICK: Duration = Duration::from_secs(1);
    /// Above any scheduling delay worth a probe; a false alarm only costs one ping.
    pub const THRESHOLD: Duration = Duration::from_secs(2);

    pub fn new(tick: Duration, threshold: Duration) -> WakeDetector {
        WakeDetector {
            tick,
            threshold,
            last: None,
        }
    }

    /// Record a reading; report a gap since the previous one, if there was one.
    pub fn observe(&mut self, now: ClockReading) -> Option<Gap> {
        let last = self.last.replace(now)?;
        let awake = now.awake.saturating_sub(last.awake);
        let total = now.total.saturating_sub(last.total);
        let slept = total.saturating_sub(awake);
        if slept >= self.threshold {
            Some(Gap::Suspended(slept))
        } else if awake >= self.tick + self.threshold {
            Some(Gap::Stalled(awake))
        } else {
            None
        }
    }

    /// Forget the last reading (after time was spent elsewhere on purpose, e.g. probing).
    pub fn rearm(&mut self) {
        self.last = None;
    }

    /// Tick until a gap shows up.
    pub async fn next_gap(&mut self) -> Gap {
        if self.last.is_none() {
            self.last = Some(ClockReading::now());
        }
        loop {
            tokio::time::sleep(self.tick).await;
            if let Some(gap) = self.observe(ClockReading::now()) {
                return gap;
            }
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The current session and what watches it.
struct Current {
    session: Arc<Session>,
    since: Instant,
    /// Set (with the reason) once the session is dead.
    dead: watch::Receiver<Option<String>>,
    monitor: JoinHandle<()>,
}

impl Drop for Current {
    fn drop(&mut self) {
        self.monitor.abort();
    }
}

/// The connection to one target, replaced whenever it dies. See the module docs.
pub struct Link {
    target: Endpoint,
    opts: ConnectOptions,
    prompter: Arc<dyn Prompter>,
    policy: ReconnectPolicy,
    backoff: Backoff,
    current: Option<Current>,
    probe_now: Arc<Notify>,
}

impl Link {
    pub fn new(
        target: impl Into<Endpoint>,
        opts: ConnectOptions,
        prompter: Arc<dyn Prompter>,
        policy: ReconnectPolicy,
    ) -> Link {
        let backoff = Backoff::new(&policy);
        Link {
            target: target.into(),
            opts,
            prompter,
            policy,
            backoff,
            current: None,
            probe_now: Arc::new(Notify::new()),
        }
    }

    pub fn target(&self) -> &Endpoint {
        &self.target
    }

    pub fn policy(&self) -> &ReconnectPolicy {
        &self.policy
    }

    /// The session, if there is one not known to be dead. Never connects.
    pub fn current(&self) -> Option<Arc<Session>> {
        self.current
            .as_ref()
            .filter(|c| c.dead.borrow().is_none())
            .map(|c| c.session.clone())
    }

    /// The session, connecting once (no retry) if there is none yet: a first failure is the
    /// caller's to report as is. A session known to be dead is an error (`Disconnected`, exit 3);
    /// [`Link::reconnect`] replaces it.
    pub async fn session(&mut self) -> Result<Arc<Session>, SshError> {
        if let Some(cur) = &self.current {
            if let Some(reason) = cur.dead.borrow().clone() {
                return Err(SshError::Disconnected {
                    host: self.target.name.clone(),
                    reason,
                });
            }
            return Ok(cur.session.clone());
        }
        let session = connect_once(&self.target, &self.opts, self.prompter.clone()).await?;
        Ok(self.install(session))
    }

    /// Resolves with the reason once the current session is dead (at once if there is none). The
    /// future owns what it needs, so it can be raced against work that borrows the link.
    pub fn wait_dead(&self) -> impl Future<Output = String> + Send + 'static {
        let rx = self.current.as_ref().map(|c| c.dead.clone());
        async move {
            let Some(mut rx) = rx else {
                return "not connected".to_string();
            };
            let reason = rx.wait_for(|r| r.is_some()).await.map(|r| r.clone());
            // Err: the monitor went away because the link replaced or dropped this session.
            reason
                .ok()
                .flatten()
                .unwrap_or_else(|| "the session was replaced".to_string())
        }
    }

    /// Ping the current session now (within `probe_timeout`) instead of waiting for keepalives;
    /// it is declared dead if the ping goes unanswered. Done by itself after sleep or a stall;
    /// callers may ask too, e.g. when a command unexpectedly timed out.
    pub fn probe_now(&self) {
        self.probe_now.notify_one();
    }

    /// Abandon the current session (dead or not) and build a new one: attempts at growing
    /// intervals capped at `max_delay`, each a TCP connect that is handed to the SSH handshake as
    /// soon as it succeeds, so the link is back about `max_delay` after the network. Stops at once
    /// on a non-retryable error, on `cancel`, or after `give_up_after`. Events go to `on_event`
    /// (`Lost` first, unless there was no session yet; `Restored` last on success).
    pub async fn reconnect(
        &mut self,
        cancel: &CancellationToken,
        mut on_event: impl FnMut(LinkEvent),
    ) -> Result<Arc<Session>, LinkError> {
        let started = Instant::now();
        self.drop_current(&mut on_event);
        let deadline = self.policy.give_up_after.map(|d| started + d);
        let host = self.target.name.clone();
        let prompter: Arc<dyn Prompter> = Arc::new(OutagePrompter::new(self.prompter.clone(), &host));
        let stopped = |stop: Stop, last: Option<SshError>| match stop {
            Stop::Cancelled => LinkError::Cancelled,
            Stop::Deadline => LinkError::GaveUp {
                host: host.clone(),
                after: started.elapsed(),
                last: last.unwrap_or_else(|| no_answer(&host)),
            },
        };
        // TCP connects still waiting for an answer. A slow one is not abandoned when the next
        // attempt starts: on a link with a long round trip it may be the one that gets through.
        let mut probes: JoinSet<Result<TcpStream, SshError>> = JoinSet::new();
        let mut last_error: Option<SshError> = None;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let next_at = Instant::now() + self.backoff.next_delay();
            let connected = match self
                .attempt(&mut probes, &prompter, next_at, cancel, deadline, &mut last_error)
                .await
            {
                Ok(c) => c,
                Err(stop) => return Err(stopped(stop, last_error)),
            };
            match connected {
                Some(Ok(session)) => {
                    let session = self.install(session);
                    on_event(LinkEvent::Restored {
                        after: started.elapsed(),
                    });
                    return Ok(session);
                }
                Some(Err(e)) if !e.is_retryable() => return Err(LinkError::Fatal(e)),
                Some(Err(e)) => last_error = Some(e),
                None => {}
            }
            let now = Instant::now();
            on_event(LinkEvent::Retrying {
                attempt,
                since: now - started,
                next_in: next_at.saturating_duration_since(now),
                last_error: last_error.as_ref().map(|e| e.to_string()).unwrap_or_default(),
            });
            if let Err(stop) = until_stopped(cancel, deadline, tokio::time::sleep_until(next_at)).await {
                return Err(stopped(stop, last_error));
            }
        }
    }

    /// Forget the current session (dead or not), saying why it was lost.
    fn drop_current(&mut self, on_event: &mut impl FnMut(LinkEvent)) {
        if let Some(cur) = self.current.take() {
            self.backoff.on_lost(cur.since.elapsed(), self.policy.healthy_after);
            let reason = cur
                .dead
                .borrow()
                .clone()
                .unwrap_or_else(|| "reconnect requested".to_string());
            abandon(cur);
            on_event(LinkEvent::Lost { reason });
        }
    }

    /// One attempt: through a proxy, one full connect; directly, a new TCP probe (the slow ones of
    /// earlier attempts still count), then the handshake over the first probe that answers.
    /// `Ok(None)`: no TCP answer before `next_at`.
    async fn attempt(
        &self,
        probes: &mut JoinSet<Result<TcpStream, SshError>>,
        prompter: &Arc<dyn Prompter>,
        next_at: Instant,
        cancel: &CancellationToken,
        deadline: Option<Instant>,
        last_error: &mut Option<SshError>,
    ) -> Result<Option<Result<Session, SshError>>, Stop> {
        if uses_proxy(&self.target) {
            // The first hop is not ours to probe: one full attempt does it all.
            let r = until_stopped(
                cancel,
                deadline,
                connect_once(&self.target, &self.opts, prompter.clone()),
            )
            .await?;
            return Ok(Some(r));
        }
        let Some(stream) = self
            .first_tcp_answer(probes, next_at, cancel, deadline, last_error)
            .await?
        else {
            return Ok(None);
        };
        probes.abort_all();
        // Kept so the monitor can tell when this address goes away (roaming).
        let local = stream.local_addr().ok();
        let handshake = session::connect_over(stream, &self.target, &self.opts, prompter.clone());
        Ok(Some(
            until_stopped(cancel, deadline, handshake)
                .await?
                .map(|s| s.with_local_addr(local)),
        ))
    }

    /// Start a TCP probe, then wait until `next_at` for the first of the probes out to answer.
    async fn first_tcp_answer(
        &self,
        probes: &mut JoinSet<Result<TcpStream, SshError>>,
        next_at: Instant,
        cancel: &CancellationToken,
        deadline: Option<Instant>,
        last_error: &mut Option<SshError>,
    ) -> Result<Option<TcpStream>, Stop> {
        let (name, port, limit) = (
            self.target.ssh.host_name.clone(),
            self.target.port,
            self.opts.connect_timeout,
        );
        let display = self.target.name.clone();
        probes.spawn(async move { session::tcp_connect(&name, port, limit, &display).await });
        let mut failed = false;
        while !probes.is_empty() {
            tokio::select! {
                () = cancel.cancelled() => return Err(Stop::Cancelled),
                () = sleep_until(deadline) => return Err(Stop::Deadline),
                () = tokio::time::sleep_until(next_at) => break,
                Some(joined) = probes.join_next() => match joined {
                    Ok(Ok(s)) => return Ok(Some(s)),
                    Ok(Err(e)) => {
                        *last_error = Some(e);
                        failed = true;
                    }
                    Err(_) => {}
                },
            }
        }
        // Still waiting: an older failure would misdescribe a silent network.
        if !failed {
            *last_error = Some(no_answer(&self.target.name));
        }
        Ok(None)
    }

    fn install(&mut self, session: Session) -> Arc<Session> {
        let session = Arc::new(session);
        let (dead_tx, dead) = watch::channel(None);
        let monitor = tokio::spawn(monitor(
            session.clone(),
            dead_tx,
            self.probe_now.clone(),
            self.policy.probe_timeout,
        ));
        self.current = Some(Current {
            session: session.clone(),
            since: Instant::now(),
            dead,
            monitor,
        });
        session
    }
}

/// The person's side of one outage: they are asked at most once per question however many attempts
/// the outage takes (an attempt the network broke mid-login replays the answer given), and told
/// first why rtrain asks again. Answers live in memory until the outage ends, never anywhere else;
/// a question the server asks again after refusing an answer goes to the person again.
struct OutagePrompter {
    inner: Arc<dyn Prompter>,
    host: String,
    told: std::sync::atomic::AtomicBool,
    answers: std::sync::Mutex<Vec<(String, Vec<String>)>>,
}

impl OutagePrompter {
    fn new(inner: Arc<dyn Prompter>, host: &str) -> OutagePrompter {
        OutagePrompter {
            inner,
            host: host.to_string(),
            told: Default::default(),
            answers: Default::default(),
        }
    }

    fn remembered(&self, key: &str) -> Option<Vec<String>> {
        let answers = self.answers.lock().unwrap();
        answers.iter().find(|(k, _)| k == key).map(|(_, a)| a.clone())
    }

    fn remember(&self, key: String, answer: Vec<String>) {
        let mut answers = self.answers.lock().unwrap();
        answers.retain(|(k, _)| *k != key);
        answers.push((key, answer));
    }

    fn tell_once(&self, what: &str) {
        if !self.told.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.inner
                .notice(&format!("{} asks for {what} to reconnect", self.host));
        }
    }

    /// What a round asks for, in the words of the notice.
    fn what(round: &super::KbdRound) -> &'static str {
        let code = [
            "code",
            "otp",
            "token",
            "passcode",
            "one-time",
            "verification",
            "duo",
            "push",
        ];
        let text = round
            .prompts
            .iter()
            .map(|p| p.text.to_ascii_lowercase())
            .chain([round.name.to_ascii_lowercase(), round.instruction.to_ascii_lowercase()])
            .collect::<Vec<_>>()
            .join(" ");
        if code.iter().any(|w| text.contains(w)) {
            "a one-time code"
        } else if round.prompts.iter().any(|p| !p.echo) {
            "a password"
        } else {
            "an answer"
        }
    }
}

impl Prompter for OutagePrompter {
    fn passphrase(&self, key_path: &std::path::Path) -> Option<String> {
        let key = format!("passphrase {}", key_path.display());
        if let Some(mut a) = self.remembered(&key) {
            return a.pop();
        }
        self.tell_once("a key's passphrase");
        let answer = self.inner.passphrase(key_path)?;
        self.remember(key, vec![answer.clone()]);
        Some(answer)
    }

    fn confirm_new_host_key(&self, host: &str, key_type: &str, fingerprint: &str, other: &[String]) -> Option<bool> {
        self.inner.confirm_new_host_key(host, key_type, fingerprint, other)
    }

    fn password(&self, q: &super::LoginQuestion) -> Option<String> {
        let key = format!("password {}@{}", q.user, q.host);
        if q.attempt == 1 {
            if let Some(mut a) = self.remembered(&key) {
                return a.pop();
            }
        }
        self.tell_once("a password");
        let answer = self.inner.password(q)?;
        self.remember(key, vec![answer.clone()]);
        Some(answer)
    }

    fn keyboard_interactive(&self, round: &super::KbdRound) -> Option<Vec<String>> {
        let key = format!(
            "kbd {}@{} {:?} {:?} {:?}",
            round.question.user, round.question.host, round.name, round.instruction, round.prompts
        );
        if round.question.attempt == 1 {
            if let Some(a) = self.remembered(&key) {
                return Some(a);
            }
        }
        self.tell_once(Self::what(round));
        let answer = self.inner.keyboard_interactive(round)?;
        self.remember(key, answer.clone());
        Some(answer)
    }

    fn notice(&self, text: &str) {
        self.inner.notice(text)
    }

    fn abandon(&self) {
        self.inner.abandon()
    }

    fn answer_timeout(&self) -> Duration {
        self.inner.answer_timeout()
    }
}

/// ProxyJump/ProxyCommand targets: the TCP connection is not to the target, so no probe.
fn uses_proxy(target: &Endpoint) -> bool {
    !matches!(target.route, Route::Direct)
}

/// Why a reconnect stopped trying: the caller cancelled, or `give_up_after` passed.
enum Stop {
    Cancelled,
    Deadline,
}

/// `fut`, unless the caller cancels or the deadline passes first.
async fn until_stopped<T>(
    cancel: &CancellationToken,
    deadline: Option<Instant>,
    fut: impl Future<Output = T>,
) -> Result<T, Stop> {
    tokio::select! {
        () = cancel.cancelled() => Err(Stop::Cancelled),
        () = sleep_until(deadline) => Err(Stop::Deadline),
        r = fut => Ok(r),
    }
}

/// The error of a host that has not answered at all yet (a silent network, not a refusal).
fn no_answer(host: &str) -> SshError {
    SshError::Unreachable {
        host: host.to_string(),
        reason: "no answer yet".to_string(),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Close an abandoned session without waiting for it: if it is still up, its channels end now
/// rather than linger next to the new session.
fn abandon(cur: Current) {
    let session = cur.session.clone();
    drop(cur);
    tokio::spawn(async move {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            session
                .handle()
                .disconnect(russh::Disconnect::ByApplication, "reconnecting", "en"),
        )
        .await;
    });
}

/// Watches one session: records its end, and pings it when keepalives cannot be trusted to notice
/// in time (after sleep or a stall) or when asked to.
async fn monitor(
    session: Arc<Session>,
    dead: watch::Sender<Option<String>>,
    probe_now: Arc<Notify>,
    probe_timeout: Duration,
) {
    let mut wake = WakeDetector::new(WakeDetector::TICK, WakeDetector::THRESHOLD);
    let local = session.local_addr();
    let mut address_check = tokio::time::interval(ADDRESS_CHECK);
    address_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let why = tokio::select! {
            reason = session.closed() => {
                dead.send_replace(Some(reason));
                return;
            }
            _ = address_check.tick(), if local.is_some() => {
                let Some(addr) = local.filter(|a| address_gone(*a)) else { continue };
                dead.send_replace(Some(format!(
                    "this computer no longer has the address {} (the network changed)",
                    addr.ip()
                )));
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    session
                        .handle()
                        .disconnect(russh::Disconnect::ByApplication, "address gone", "en"),
                )
                .await;
                return;
            }
            gap = wake.next_gap() => match gap {
                Gap::Suspended(d) => format!("the computer slept for {}", secs(d)),
                Gap::Stalled(d) => format!("rtrain did not run for {}", secs(d)),
            },
            () = probe_now.notified() => "a liveness check".to_string(),
        };
        if let Err(reason) = ping(&session, probe_timeout).await {
            dead.send_replace(Some(format!("{reason} (after {why})")));
            // End it now, so every channel on it fails at once instead of after the keepalives.
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                session
                    .handle()
                    .disconnect(russh::Disconnect::ByApplication, "no answer", "en"),
            )
            .await;
            return;
        }
        wake.rearm();
    }
}

async fn ping(session: &Session, limit: Duration) -> Result<(), String> {
    match tokio::time::timeout(limit, session.handle().send_ping()).await {
        Err(_) => Err(format!("no answer to a ping within {}", secs(limit))),
        // russh also answers Ok when the connection ended while waiting.
        Ok(_) if session.is_closed() => Err("the connection was closed".to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(())) => Ok(()),
    }
}

/// A number in [0, 1) that differs between calls and between processes: all jitter needs (it
/// only keeps many clients from retrying in step), without a random-number crate. std's
/// `RandomState` is seeded from the OS once per process and advanced for every instance.
pub fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    // The top 53 bits, as an f64 mantissa.
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ReconnectPolicy {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            jitter: 0.3,
            ..ReconnectPolicy::default()
        }
    }

    #[test]
    fn backoff_doubles_monotonically_up_to_the_cap() {
        let mut b = Backoff::new(&policy());
        let got: Vec<u64> = (0..8).map(|_| b.next_base().as_millis() as u64).collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
    }

    #[test]
    fn jittered_pauses_stay_within_bounds_and_under_the_cap() {
        let mut b = Backoff::new(&policy());
        for _ in 0..200 {
            let base = b.clone().next_base();
            let d = b.next_delay();
            assert!(d <= base, "{d:?} > {base:?}");
            assert!(d >= base.mul_f64(0.7), "{d:?} < 0.7 × {base:?}");
            assert!(d <= Duration::from_secs(1));
        }
        assert_eq!(jittered(Duration::from_secs(1), 0.3, 0.0), Duration::from_secs(1));
        assert_eq!(jittered(Duration::from_secs(1), 0.3, 1.0), Duration::from_millis(700));
        assert_eq!(
            jittered(Duration::from_secs(1), 5.0, 1.0),
            Duration::ZERO,
            "jitter is clamped"
        );
    }

    #[test]
    fn backoff_resets_only_after_a_healthy_session() {
        let healthy = Duration::from_secs(30);
        let mut b = Backoff::new(&policy());
        for _ in 0..5 {
            b.next_base();
        }
        b.on_lost(Duration::from_secs(3), healthy);
        assert_eq!(
            b.next_base(),
            Duration::from_secs(1),
            "a flapping link keeps its long pauses"
        );
        b.on_lost(Duration::from_secs(30), healthy);
        assert_eq!(b.next_base(), Duration::from_millis(100));
    }

    #[test]
    fn initial_delay_above_the_cap_is_capped() {
        let mut b = Backoff::new(&ReconnectPolicy {
            initial_delay: Duration::from_secs(5),
            ..policy()
        });
        assert_eq!(b.next_base(), Duration::from_secs(1));
    }

    #[test]
    fn detection_time_is_one_more_interval_than_keepalives_allowed() {
        assert_eq!(
            detection_time(Duration::from_millis(500), 2),
            Duration::from_millis(1500)
        );
        assert_eq!(detection_time(Duration::from_secs(3), 2), Duration::from_secs(9));
    }

    #[test]
    fn linux_rto_has_a_200_ms_floor_on_the_variation() {
        let ms = Duration::from_millis;
        assert_eq!(linux_rto(ms(300), ms(25)), ms(500));
        assert_eq!(linux_rto(ms(300), ms(100)), ms(700));
    }

    #[test]
    fn default_keepalives_tolerate_three_losses_in_a_row_on_a_300_ms_link() {
        let ms = Duration::from_millis;
        let (interval, max) = (crate::config::DEFAULT_KEEPALIVE, crate::config::DEFAULT_KEEPALIVE_MAX);
        assert!(detection_time(interval, max) <= Duration::from_secs(6));
        // 300 ms ± 50 ms: the worst round trip is 400 ms; Linux's RTO about 500 ms.
        let rto = linux_rto(ms(300), ms(50));
        // 1 s + 0.5 × 7 s + 0.4 s = 4.9 s < 5 s; a fourth loss would stall 8.9 s.
        assert_eq!(tolerated_losses(interval, max, ms(400), rto), 3);
        // The old default (3 s × 2, 9 s) tolerated no more: a shorter interval sends the keepalive
        // sooner and leaves more of the budget to retransmissions.
        assert_eq!(tolerated_losses(Duration::from_secs(3), 2, ms(400), rto), 3);
        // A link so slow that one retransmission alone outlasts the budget tolerates none.
        assert_eq!(
            tolerated_losses(interval, max, ms(4_000), linux_rto(ms(4_000), ms(0))),
            0
        );
    }

    #[test]
    fn an_address_this_machine_has_is_not_gone_and_one_it_lacks_is() {
        let here: std::net::SocketAddr = "127.0.0.1:22".parse().unwrap();
        assert!(!address_gone(here));
        // 192.0.2.0/24 is for documentation and assigned nowhere on a test machine.
        let elsewhere: std::net::SocketAddr = "192.0.2.77:5000".parse().unwrap();
        assert!(address_gone(elsewhere));
    }

    fn at(awake_ms: u64, total_ms: u64) -> ClockReading {
        ClockReading {
            awake: Duration::from_millis(awake_ms),
            total: Duration::from_millis(total_ms),
        }
    }

    fn detector() -> WakeDetector {
        WakeDetector::new(Duration::from_secs(1), Duration::from_secs(2))
    }

    #[test]
    fn regular_ticks_are_no_gap() {
        let mut w = detector();
        assert_eq!(w.observe(at(0, 0)), None, "the first reading only sets the baseline");
        assert_eq!(w.observe(at(1_000, 1_000)), None);
        assert_eq!(w.observe(at(2_900, 2_900)), None, "a late tick below the threshold");
        assert_eq!(
            w.observe(at(3_900, 5_800)),
            None,
            "1.9 s of sleep is below the threshold"
        );
    }

    #[test]
    fn suspend_shows_as_the_total_clock_running_ahead() {
        let mut w = detector();
        w.observe(at(10_000, 50_000));
        assert_eq!(
            w.observe(at(11_000, 3_651_000)),
            Some(Gap::Suspended(Duration::from_secs(3_600)))
        );
        assert_eq!(w.observe(at(12_000, 3_652_000)), None, "back to normal ticks");
    }

    #[test]
    fn stall_shows_as_a_long_awake_interval() {
        let mut w = detector();
        w.observe(at(0, 0));
        assert_eq!(w.observe(at(3_000, 3_000)), Some(Gap::Stalled(Duration::from_secs(3))));
        assert_eq!(w.observe(at(3_999, 3_999)), None);
    }

    #[test]
    fn clocks_going_backwards_are_not_a_gap_and_rearm_forgets() {
        let mut w = detector();
        w.observe(at(5_000, 5_000));
        assert_eq!(w.observe(at(4_000, 4_000)), None);
        w.rearm();
        assert_eq!(w.observe(at(100_000, 900_000)), None, "no baseline after rearm");
    }

    #[test]
    fn real_clocks_read_monotonically() {
        let a = ClockReading::now();
        let b = ClockReading::now();
        assert!(b.awake >= a.awake && b.total >= a.total);
        assert!(a.awake > Duration::ZERO);
    }

    #[test]
    fn exit_codes_follow_design() {
        assert_eq!(LinkError::Cancelled.exit_code(), 130);
        let gave_up = LinkError::GaveUp {
            host: "h".into(),
            after: Duration::from_secs(1),
            last: SshError::Unreachable {
                host: "h".into(),
                reason: "refused".into(),
            },
        };
        assert_eq!(gave_up.exit_code(), 3);
        let auth = LinkError::Fatal(SshError::AuthFailed {
            host: "h".into(),
            user: "u".into(),
            tried: "k".into(),
            hint: String::new(),
        });
        assert_eq!(auth.exit_code(), 4);
    }
}

#[cfg(test)]
mod jitter_tests {
    #[test]
    fn random_unit_stays_in_range_and_varies() {
        let xs: Vec<f64> = (0..1000).map(|_| super::random_unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)), "{xs:?}");
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((0.4..0.6).contains(&mean), "not spread over [0, 1): mean {mean}");
        let mut distinct = xs.clone();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        assert!(distinct.len() > 990, "{} distinct of 1000", distinct.len());
    }
}
