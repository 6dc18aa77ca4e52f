//! One SSH connection: `connect_once` (TCP, ProxyCommand or jump hosts; handshake with host-key
//! verification; authentication — each under its own timeout, since russh has none) and command
//! execution on it.

use super::capture::{HeadTail, Limited};
use super::endpoint::{Endpoint, Route};
use super::handler::{ClientHandler, Closed};
use super::known_hosts;
use super::proxy::ProxyCommandStream;
use super::{auth, classify, ConnectOptions, Prompter, SshError};
use russh::client::{self, Handle};
use russh::keys::{Algorithm, EcdsaCurve};
use russh::ChannelMsg;
use std::borrow::Cow;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// An authenticated connection, with the jump-host sessions it runs through (connected first at
/// index 0). They live and close with it, so callers never deal with hops.
pub struct Session {
    handle: Handle<ClientHandler>,
    host: String,
    hops: Vec<(String, Handle<ClientHandler>)>,
    closed: tokio::sync::watch::Receiver<Option<Closed>>,
    auth: auth::AuthOutcome,
    /// This end's address of a direct TCP connection: once the machine no longer has it (the
    /// laptop roamed), the connection is dead whatever keepalives say.
    local_addr: Option<std::net::SocketAddr>,
}

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteExit {
    Code(u32),
    Signal(String),
}

impl RemoteExit {
    /// The status a local shell would report: the code, or 128 + the signal number.
    pub fn as_code(&self) -> u8 {
        match self {
            RemoteExit::Code(c) => (*c).min(255) as u8,
            RemoteExit::Signal(name) => 128u8.saturating_add(signal_number(name)),
        }
    }
}

fn signal_number(name: &str) -> u8 {
    match name.trim_start_matches("SIG") {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "ABRT" => 6,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => 0,
    }
}

/// What [`Session::exec`] keeps of stdout at most: its users (run scripts, `push`/`pull` manifests of up to
/// some hundred thousand files) print far less; a box printing more is refused, not believed.
pub const EXEC_STDOUT_MAX: usize = 64 << 20;
/// What [`Session::exec`] keeps of stderr: this much of its beginning and as much of its end, where error
/// messages and rtrain's marker lines are.
pub const STDERR_KEPT: usize = 64 << 10;

#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit: RemoteExit,
}

/// Host-key algorithms ordered so that a type already in known_hosts is negotiated first, as
/// OpenSSH does; otherwise a server with an ed25519 key and a known RSA entry would look new.
fn preferred_host_key_algorithms(known_types: &[String]) -> Vec<Algorithm> {
    let default: Vec<Algorithm> = russh::Preferred::DEFAULT.key.to_vec();
    let family = |a: &Algorithm| -> String {
        match a {
            Algorithm::Rsa { .. } => "ssh-rsa".into(),
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            } => "ecdsa-sha2-nistp256".into(),
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP384,
            } => "ecdsa-sha2-nistp384".into(),
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP521,
            } => "ecdsa-sha2-nistp521".into(),
            other => other.to_string(),
        }
    };
    let mut out: Vec<Algorithm> = Vec::new();
    for t in known_types {
        for a in &default {
            if &family(a) == t && !out.contains(a) {
                out.push(a.clone());
            }
        }
    }
    for a in default {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

pub(crate) async fn tcp_connect(
    host: &str,
    port: u16,
    timeout: Duration,
    display: &str,
) -> Result<TcpStream, SshError> {
    let unreachable = |reason: String| SshError::Unreachable {
        host: display.to_string(),
        reason,
    };
    let attempt = async {
        let addrs: Vec<_> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| unreachable(format!("cannot resolve {host}: {e}")))?
            .collect();
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(format!("{addr}: {e}")),
            }
        }
        Err(unreachable(last.unwrap_or_else(|| format!("no address for {host}"))))
    };
    let stream = tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| SshError::Timeout {
            host: display.to_string(),
            stage: "TCP connect",
            secs: timeout.as_secs(),
        })??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The russh client configuration for a target: keepalives decide liveness, large windows for
/// log throughput.
pub fn client_config(opts: &ConnectOptions, known_types: &[String]) -> client::Config {
    let preferred = russh::Preferred {
        key: Cow::Owned(preferred_host_key_algorithms(known_types)),
        ..Default::default()
    };
    client::Config {
        keepalive_interval: Some(opts.keepalive_interval),
        keepalive_max: opts.keepalive_max,
        inactivity_timeout: None,
        nodelay: true,
        window_size: 16 * 1024 * 1024,
        maximum_packet_size: 65535,
        channel_buffer_size: 256,
        preferred,
        ..Default::default()
    }
}

/// One connection attempt: TCP (or ProxyCommand, or each jump host in turn), handshake (host key
/// verified before anything else), authentication. Never retries; the caller's link loop decides
/// about that, and goes through the same hops by calling this again.
pub async fn connect_once(
    target: &Endpoint,
    opts: &ConnectOptions,
    prompter: Arc<dyn Prompter>,
) -> Result<Session, SshError> {
    connect_via(target, opts, prompter, &target.name).await
}

type Connecting<'a> = Pin<Box<dyn Future<Output = Result<Session, SshError>> + Send + 'a>>;

/// Reach `target` its own way. Recursive (boxed) because a jump host may itself be reached
/// through jump hosts or a ProxyCommand; `goal` is the host the user asked for, for messages.
fn connect_via<'a>(
    target: &'a Endpoint,
    opts: &'a ConnectOptions,
    prompter: Arc<dyn Prompter>,
    goal: &'a str,
) -> Connecting<'a> {
    Box::pin(async move {
        let display = target.name.clone();
        match &target.route {
            Route::Direct => {
                let stream = tcp_connect(&target.ssh.host_name, target.port, opts.connect_timeout, &display).await?;
                let local = stream.local_addr().ok();
                Ok(connect_over(stream, target, opts, prompter)
                    .await?
                    .with_local_addr(local))
            }
            Route::Command(command) => {
                let (stream, watch) = ProxyCommandStream::spawn(command).map_err(|e| SshError::Unreachable {
                    host: display.clone(),
                    reason: format!("ProxyCommand `{command}`: {e}"),
                })?;
                match connect_over(stream, target, opts, prompter).await {
                    Ok(session) => Ok(session),
                    // The command's own words say more than "connection lost" (`nc: ... refused`).
                    Err(SshError::Disconnected { .. } | SshError::Protocol { .. }) => {
                        let said = watch.last_words().await;
                        let said = if said.is_empty() {
                            "it closed the connection".to_string()
                        } else {
                            format!("it said: {said}")
                        };
                        Err(SshError::Unreachable {
                            host: display,
                            reason: format!("ProxyCommand `{command}` did not give an SSH connection; {said}"),
                        })
                    }
                    Err(e) => Err(e),
                }
            }
            Route::Jump(hop) => {
                let hop_opts = hop_options(opts, hop);
                let hop_session = connect_via(hop, &hop_opts, prompter.clone(), goal)
                    .await
                    .map_err(|e| e.at_jump_host(&hop.name, goal))?;
                let channel = hop_session
                    .open_direct_tcpip(&target.ssh.host_name, target.port, opts.connect_timeout, &display)
                    .await?;
                let mut session = connect_over(channel.into_stream(), target, opts, prompter).await?;
                let Session {
                    handle,
                    host,
                    mut hops,
                    local_addr,
                    ..
                } = hop_session;
                hops.push((host, handle));
                session.hops = hops;
                // Our end of the first hop's TCP connection is the one that can go away.
                session.local_addr = local_addr;
                Ok(session)
            }
        }
    })
}

/// A jump host's own ssh_config (ConnectTimeout, ServerAlive*) applies to it, as it would in the
/// `ssh` OpenSSH runs for that hop; what it does not set comes from the caller's options.
fn hop_options(opts: &ConnectOptions, hop: &Endpoint) -> ConnectOptions {
    let connect_timeout = hop.ssh.connect_timeout.unwrap_or(opts.connect_timeout);
    ConnectOptions {
        keepalive_interval: hop.ssh.server_alive_interval.unwrap_or(opts.keepalive_interval),
        keepalive_max: hop
            .ssh
            .server_alive_count_max
            .map(|m| (m as usize).max(1))
            .unwrap_or(opts.keepalive_max),
        connect_timeout,
        handshake_timeout: hop.ssh.connect_timeout.unwrap_or(opts.handshake_timeout),
        agent_socket: opts.agent_socket.clone(),
    }
}

/// The known_hosts files used for one host, as ssh picks them.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownHostsFiles {
    /// UserKnownHostsFile (default `~/.ssh/known_hosts ~/.ssh/known_hosts2`); new keys go to the
    /// first. Empty with `UserKnownHostsFile none`.
    pub user: Vec<PathBuf>,
    /// GlobalKnownHostsFile (default `/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2`).
    pub global: Vec<PathBuf>,
}

impl KnownHostsFiles {
    pub fn for_endpoint(target: &Endpoint) -> KnownHostsFiles {
        let is_none = |p: &&PathBuf| p.as_os_str().eq_ignore_ascii_case("none");
        let user = if target.ssh.user_known_hosts_files.is_empty() {
            known_hosts::default_files(&target.home)
        } else {
            target
                .ssh
                .user_known_hosts_files
                .iter()
                .filter(|p| !is_none(p))
                .cloned()
                .collect()
        };
        let global = if target.ssh.global_known_hosts_files.is_empty() {
            vec![
                PathBuf::from("/etc/ssh/ssh_known_hosts"),
                PathBuf::from("/etc/ssh/ssh_known_hosts2"),
            ]
        } else {
            target
                .ssh
                .global_known_hosts_files
                .iter()
                .filter(|p| !is_none(p))
                .cloned()
                .collect()
        };
        KnownHostsFiles { user, global }
    }

    /// Every file to check, user files first, as ssh does.
    pub fn all(&self) -> Vec<PathBuf> {
        self.user.iter().chain(&self.global).cloned().collect()
    }
}

/// Handshake and authenticate over an already-open byte stream: TCP, a ProxyCommand's pipes, or a
/// direct-tcpip channel through a jump host.
pub async fn connect_over<S>(
    stream: S,
    target: &Endpoint,
    opts: &ConnectOptions,
    prompter: Arc<dyn Prompter>,
) -> Result<Session, SshError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let display = target.name.clone();
    let host = target.ssh.host_name.clone();
    let known = KnownHostsFiles::for_endpoint(target);
    let files = known.all();
    let record_in = known.user.first().cloned();
    let known_types = known_hosts::known_key_types(&files, &host, target.port).unwrap_or_default();
    let mut config = client_config(opts, &known_types);
    // Offer to take a host certificate only where a CA is trusted for this host: otherwise a server
    // with both would present a certificate that nothing here could verify.
    if !known_hosts::cert_authorities(&files, &host, target.port)
        .unwrap_or_default()
        .is_empty()
    {
        config.preferred.host_key_certificates = Cow::Owned(config.preferred.key.to_vec());
    }
    let config = Arc::new(config);
    let refusal = Arc::new(Mutex::new(None));
    let (closed_tx, closed) = tokio::sync::watch::channel(None);
    let handler = ClientHandler {
        host: host.clone(),
        port: target.port,
        display: display.clone(),
        files,
        record_in,
        policy: target.strict_host_key_checking(),
        prompter: prompter.clone(),
        refusal: refusal.clone(),
        closed: closed_tx,
    };
    let hs = opts.handshake_timeout;
    let handshake = tokio::time::timeout(hs, client::connect_stream(config, stream, handler)).await;
    let mut handle = match handshake {
        Err(_) => {
            return Err(SshError::Timeout {
                host: display,
                stage: "SSH handshake",
                secs: hs.as_secs(),
            })
        }
        Ok(Err(e)) => {
            if let Some(reason) = refusal.lock().unwrap().take() {
                return Err(reason);
            }
            return Err(classify(&display, e));
        }
        Ok(Ok(h)) => h,
    };
    let auth = match auth::authenticate(&mut handle, target, opts, prompter).await {
        // russh answers a login the network cut off with an empty refusal. That is a lost
        // connection, worth another attempt, not the server's "no" (which never retries).
        Err(SshError::AuthFailed { .. })
            if handle.is_closed() && closed.borrow().as_ref().is_none_or(|c| !c.by_server) =>
        {
            let reason = closed.borrow().as_ref().map_or_else(
                || "the connection was closed during login".to_string(),
                |c| format!("{} during login", c.reason),
            );
            return Err(SshError::Disconnected { host: display, reason });
        }
        r => r?,
    };
    Ok(Session {
        handle,
        host: display,
        hops: Vec::new(),
        closed,
        auth,
        local_addr: None,
    })
}

fn describe_open_failure(reason: &russh::ChannelOpenFailure) -> String {
    use russh::ChannelOpenFailure as F;
    match reason {
        F::ConnectFailed => "connection failed (refused, or no route from there)".into(),
        F::AdministrativelyProhibited => {
            "its sshd refused to forward (AllowTcpForwarding/PermitOpen in its sshd_config)".into()
        }
        F::ResourceShortage => "it is short of resources".into(),
        F::UnknownChannelType => "it does not support forwarding (direct-tcpip)".into(),
        F::Other { code, reason } => format!("{reason} (code {code})"),
    }
}

impl Session {
    pub fn host(&self) -> &str {
        &self.host
    }

    /// How the login to this host (not its jump hosts) went.
    pub fn auth(&self) -> &auth::AuthOutcome {
        &self.auth
    }

    /// Closed when the session or any jump host under it is (a dead hop is a dead link).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed() || self.hops.iter().any(|(_, h)| h.is_closed())
    }

    /// The jump hosts this session runs through, connected first at index 0.
    pub fn jump_hosts(&self) -> Vec<&str> {
        self.hops.iter().map(|(name, _)| name.as_str()).collect()
    }

    /// A tunnel from this host to `host:port` (what `ssh -W` asks for), for the next hop to run
    /// SSH over. `next` names the host being reached, for messages.
    pub async fn open_direct_tcpip(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
        next: &str,
    ) -> Result<russh::Channel<client::Msg>, SshError> {
        // The originator OpenSSH's `ssh -W` reports; the server only logs it.
        let open = self
            .handle
            .channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 65535);
        match tokio::time::timeout(timeout, open).await {
            Err(_) => Err(SshError::Timeout {
                host: next.to_string(),
                stage: "connect through jump host",
                secs: timeout.as_secs(),
            }),
            Ok(Err(russh::Error::ChannelOpenFailure(reason))) => Err(SshError::Unreachable {
                host: next.to_string(),
                reason: format!(
                    "jump host {} could not connect to {host}:{port}: {}",
                    self.host,
                    describe_open_failure(&reason)
                ),
            }),
            Ok(Err(e)) => Err(classify(&self.host, e).at_jump_host(&self.host, next)),
            Ok(Ok(c)) => Ok(c),
        }
    }

    /// Resolves once the connection has ended (keepalive timeout, reset, EOF, disconnect), with why.
    /// No polling: russh's connection task reports its end to our handler.
    pub async fn closed(&self) -> String {
        let mut rx = self.closed.clone();
        let reason = rx.wait_for(|r| r.is_some()).await.map(|r| r.clone());
        // Err: the connection task ended without telling why.
        reason
            .ok()
            .flatten()
            .map_or_else(|| "the connection was closed".to_string(), |c| c.reason)
    }

    /// Our address on a direct TCP connection (None through a ProxyCommand or jump host).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.local_addr
    }

    pub(crate) fn with_local_addr(mut self, addr: Option<std::net::SocketAddr>) -> Session {
        self.local_addr = addr;
        self
    }

    pub fn handle(&self) -> &Handle<ClientHandler> {
        &self.handle
    }

    pub async fn open_channel(&self, timeout: Duration) -> Result<russh::Channel<client::Msg>, SshError> {
        match tokio::time::timeout(timeout, self.handle.channel_open_session()).await {
            Err(_) => Err(SshError::Timeout {
                host: self.host.clone(),
                stage: "channel open",
                secs: timeout.as_secs(),
            }),
            Ok(Err(e)) => Err(classify(&self.host, e)),
            Ok(Ok(c)) => Ok(c),
        }
    }

    /// Run `command` (already quoted by the caller, see `remote::quote`), streaming its output into
    /// `out`/`err`, feeding `stdin` then EOF. The channel is read until it closes, whatever the
    /// caller's writers do, so the connection never stalls on a full channel queue.
    pub async fn exec_streaming<O, E>(
        &self,
        command: &str,
        stdin: Option<Vec<u8>>,
        out: &mut O,
        err: &mut E,
        timeout: Option<Duration>,
    ) -> Result<RemoteExit, SshError>
    where
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
    {
        self.exec_into(command, stdin, out, err, timeout, false).await
    }

    /// As [`Session::exec_streaming`]; with `stop_on_stdout_error`, a failed write to `out` (a
    /// [`Limited`] collector past its limit) closes the channel and ends the call at once, instead of
    /// draining what may be gigabytes more.
    async fn exec_into<O, E>(
        &self,
        command: &str,
        stdin: Option<Vec<u8>>,
        out: &mut O,
        err: &mut E,
        timeout: Option<Duration>,
        stop_on_stdout_error: bool,
    ) -> Result<RemoteExit, SshError>
    where
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
    {
        let open_timeout = Duration::from_secs(30);
        let channel = self.open_channel(open_timeout).await?;
        let host = self.host.clone();
        let run = async {
            channel
                .exec(true, command.as_bytes())
                .await
                .map_err(|e| classify(&host, e))?;
            let (mut read, write) = channel.split();
            let feeder = tokio::spawn(async move {
                if let Some(data) = stdin {
                    if !data.is_empty() {
                        write.data(&data[..]).await?;
                    }
                }
                write.eof().await?;
                Ok::<_, russh::Error>(write)
            });
            let mut exit = None;
            // Local write failures (a closed pipe) must not stop us draining the channel.
            let mut out_ok = true;
            let mut err_ok = true;
            while let Some(msg) = read.wait().await {
                match msg {
                    ChannelMsg::Data { data } if out_ok => {
                        out_ok = out.write_all(&data).await.is_ok();
                        if !out_ok && stop_on_stdout_error {
                            break;
                        }
                    }
                    ChannelMsg::ExtendedData { data, ext: 1 } if err_ok => {
                        err_ok = err.write_all(&data).await.is_ok();
                    }
                    ChannelMsg::ExitStatus { exit_status } => exit = Some(RemoteExit::Code(exit_status)),
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        exit = Some(RemoteExit::Signal(format!("{signal_name:?}")));
                    }
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
            let _ = out.flush().await;
            let _ = err.flush().await;
            if !out_ok && stop_on_stdout_error {
                // Tell the server we are done, so it stops sending (and stops the command).
                drop(read);
                if let Ok(Ok(Ok(write))) = tokio::time::timeout(Duration::from_secs(5), feeder).await {
                    let _ = write.close().await;
                }
                return Ok(RemoteExit::Signal("rtrain: output refused".into()));
            }
            if let Ok(Ok(write)) = feeder.await {
                drop(write);
            }
            exit.ok_or_else(|| SshError::Disconnected {
                host: host.clone(),
                reason: "the connection closed before the remote command reported its exit status".into(),
            })
        };
        match timeout {
            None => run.await,
            Some(t) => tokio::time::timeout(t, run).await.map_err(|_| SshError::ExecTimeout {
                host: self.host.clone(),
                secs: t.as_secs(),
            })?,
        }
    }

    /// Run a command and collect its output in memory, at most `max_stdout` bytes of stdout (more is
    /// [`SshError::OutputTooLarge`], and the channel is closed at once) and the first and last
    /// [`STDERR_KEPT`] bytes of its stderr.
    pub async fn exec_limited(
        &self,
        command: &str,
        stdin: Option<Vec<u8>>,
        timeout: Option<Duration>,
        max_stdout: usize,
    ) -> Result<ExecOutput, SshError> {
        let mut stdout = Limited::new(max_stdout);
        let mut stderr = HeadTail::new(STDERR_KEPT, STDERR_KEPT);
        let exit = self
            .exec_into(command, stdin, &mut stdout, &mut stderr, timeout, true)
            .await?;
        if stdout.is_over() {
            return Err(SshError::OutputTooLarge {
                host: self.host.clone(),
                limit: max_stdout,
            });
        }
        Ok(ExecOutput {
            stdout: stdout.into_inner(),
            stderr: stderr.bytes(),
            exit,
        })
    }

    /// Run a command and collect its output in memory (for scripts whose output is small), at most
    /// [`EXEC_STDOUT_MAX`] bytes of stdout.
    pub async fn exec(
        &self,
        command: &str,
        stdin: Option<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<ExecOutput, SshError> {
        self.exec_limited(command, stdin, timeout, EXEC_STDOUT_MAX).await
    }

    /// Say goodbye to the host, then to each jump host from the nearest outwards.
    pub async fn close(self) {
        let bye = |handle: Handle<ClientHandler>| async move {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                handle.disconnect(russh::Disconnect::ByApplication, "bye", "en"),
            )
            .await;
        };
        bye(self.handle).await;
        for (_, hop) in self.hops.into_iter().rev() {
            bye(hop).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::HashAlg;

    #[test]
    fn known_rsa_entry_puts_rsa_sha2_first() {
        let algs = preferred_host_key_algorithms(&["ssh-rsa".to_string()]);
        assert_eq!(
            algs[0],
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512)
            }
        );
        assert!(algs.contains(&Algorithm::Ed25519));
    }

    #[test]
    fn no_known_types_keeps_russh_default_order() {
        assert_eq!(
            preferred_host_key_algorithms(&[]),
            russh::Preferred::DEFAULT.key.to_vec()
        );
    }

    #[test]
    fn signal_exit_maps_like_a_shell() {
        assert_eq!(RemoteExit::Signal("TERM".into()).as_code(), 143);
        assert_eq!(RemoteExit::Code(3).as_code(), 3);
    }

    fn target_with(ssh_config: &str, host: &str) -> (tempfile::TempDir, crate::config::Target) {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
        std::fs::write(home.path().join(".ssh/config"), ssh_config).unwrap();
        let paths = crate::config::Paths::resolve(home.path().to_path_buf(), None, None, "me".into());
        let t = crate::config::resolve_target(host, &crate::config::ConfigFile::default(), &paths, false).unwrap();
        (home, t)
    }

    fn caller_options() -> ConnectOptions {
        ConnectOptions {
            keepalive_interval: Duration::from_secs(5),
            keepalive_max: 2,
            connect_timeout: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(15),
            agent_socket: Some(PathBuf::from("/agent")),
        }
    }

    #[test]
    fn a_jump_hosts_own_timeouts_and_keepalives_apply_to_it_else_the_callers() {
        let (_home, t) = target_with(
            "Host gpu\n  ProxyJump tuned,plain\nHost tuned\n  ConnectTimeout 3\n  ServerAliveInterval 7\n  \
             ServerAliveCountMax 0\n",
            "gpu",
        );
        let hops = t.hops();
        let tuned = hop_options(&caller_options(), hops[0]);
        assert_eq!(tuned.connect_timeout, Duration::from_secs(3));
        assert_eq!(tuned.handshake_timeout, Duration::from_secs(3));
        assert_eq!(tuned.keepalive_interval, Duration::from_secs(7));
        assert_eq!(tuned.keepalive_max, 1, "0 would never declare the link dead");
        let plain = hop_options(&caller_options(), hops[1]);
        assert_eq!(plain.connect_timeout, Duration::from_secs(15));
        assert_eq!(plain.keepalive_interval, Duration::from_secs(5));
        assert_eq!(plain.keepalive_max, 2);
        assert_eq!(plain.agent_socket, Some(PathBuf::from("/agent")));
    }

    #[test]
    fn known_hosts_none_means_no_file_and_defaults_follow_openssh() {
        let (_home, t) = target_with("Host a\n  UserKnownHostsFile none\n  GlobalKnownHostsFile none\n", "a");
        let files = KnownHostsFiles::for_endpoint(&t);
        assert!(files.user.is_empty() && files.global.is_empty(), "{files:?}");
        let (_home_b, t) = target_with("", "b");
        let files = KnownHostsFiles::for_endpoint(&t);
        assert_eq!(files.user.len(), 2);
        assert!(files.user[0].ends_with(".ssh/known_hosts") && files.user[0].starts_with(t.home.as_path()));
        assert_eq!(
            files.global,
            [
                PathBuf::from("/etc/ssh/ssh_known_hosts"),
                PathBuf::from("/etc/ssh/ssh_known_hosts2")
            ]
        );
    }
}
