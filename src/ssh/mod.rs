//! The SSH layer: resolve, authenticate, verify the host key, run commands. It never prints or
//! prompts; it asks its caller through [`Prompter`].

pub mod auth;
pub mod certificate;
pub mod endpoint;
pub mod handler;
pub mod known_hosts;
pub mod link;
pub mod proxy;
pub mod session;
pub mod ssh_config;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use endpoint::{Endpoint, Route};
pub use session::{connect_once, ExecOutput, Session};

/// Who a login question is for, and why it is asked now.
#[derive(Debug, Clone)]
pub struct LoginQuestion {
    pub user: String,
    pub host: String,
    /// 1 for the first try; later tries follow a refusal ("Permission denied, please try again").
    pub attempt: u32,
}

/// One server question in a keyboard-interactive round; `echo` false means "do not show the answer".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KbdPrompt {
    pub text: String,
    pub echo: bool,
}

/// One keyboard-interactive round as the server sent it (name and instruction may be empty).
#[derive(Debug, Clone)]
pub struct KbdRound {
    pub question: LoginQuestion,
    pub name: String,
    pub instruction: String,
    pub prompts: Vec<KbdPrompt>,
}

/// Decisions the SSH layer cannot make alone. Implemented by the terminal UI, by tests, and by a
/// non-interactive implementation that answers "no" to everything.
///
/// The login questions have defaults ("no one to ask") so that a prompter written for keys alone
/// still compiles and behaves like a script without a terminal.
pub trait Prompter: Send + Sync {
    /// The passphrase for an encrypted private key, or None when no one can be asked.
    fn passphrase(&self, key_path: &Path) -> Option<String>;
    /// A login password (asked without echo), or None when no one can be asked. Never stored.
    fn password(&self, _question: &LoginQuestion) -> Option<String> {
        None
    }
    /// The answers to one keyboard-interactive round, one per prompt in order, or None when no
    /// one can be asked.
    fn keyboard_interactive(&self, _round: &KbdRound) -> Option<Vec<String>> {
        None
    }
    /// Something the person should read before the next question (why rtrain asks again).
    fn notice(&self, _text: &str) {}
    /// The question asked last went unanswered past [`Prompter::answer_timeout`] and is given up:
    /// undo what asking changed (a terminal left without echo).
    fn abandon(&self) {}
    /// How long to wait for a person's answer before giving up on the login. sshd gives up after
    /// its LoginGraceTime (120 s by default), so waiting longer would only hang.
    fn answer_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }
    /// Whether to trust and record a host key seen for the first time. `None`: no one can be asked.
    fn confirm_new_host_key(
        &self,
        host: &str,
        key_type: &str,
        fingerprint: &str,
        other_types: &[String],
    ) -> Option<bool>;
}

/// A prompter for scripts and CI: nobody to ask.
pub struct NoPrompt;

impl Prompter for NoPrompt {
    fn passphrase(&self, _key_path: &Path) -> Option<String> {
        None
    }
    fn confirm_new_host_key(&self, _: &str, _: &str, _: &str, _: &[String]) -> Option<bool> {
        None
    }
}

/// Errors callers branch on: each maps to one exit code of DESIGN.md.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot reach {host}: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("connection to {host} timed out during {stage} (after {secs} s)")]
    Timeout {
        host: String,
        stage: &'static str,
        secs: u64,
    },
    #[error("connection to {host} lost: {reason}")]
    Disconnected { host: String, reason: String },
    #[error("authentication to {user}@{host} failed (tried: {tried}){hint}")]
    AuthFailed {
        host: String,
        user: String,
        tried: String,
        hint: String,
    },
    #[error(
        "host key for {host} has CHANGED: the server offered {key_type} {fingerprint}, which does not match {lines}. \
         If the server was reinstalled, remove the old entry (ssh-keygen -R {lookup}) and connect again; otherwise someone may be intercepting the connection"
    )]
    HostKeyChanged {
        host: String,
        lookup: String,
        key_type: String,
        fingerprint: String,
        lines: String,
    },
    #[error("host key for {host} ({key_type} {fingerprint}) is REVOKED in {line}; refusing to connect")]
    HostKeyRevoked {
        host: String,
        key_type: String,
        fingerprint: String,
        line: String,
    },
    #[error(
        "host key for {host} is not known ({key_type} {fingerprint}){others}; refusing without a terminal to ask. \
         Verify the fingerprint, then rerun with --accept-new-host-key (or connect once with `ssh {host}`)"
    )]
    HostKeyUnknown {
        host: String,
        key_type: String,
        fingerprint: String,
        others: String,
    },
    #[error("host key for {host} ({key_type} {fingerprint}) was not accepted")]
    HostKeyRejected {
        host: String,
        key_type: String,
        fingerprint: String,
    },
    #[error("host key check for {host} failed: {reason}")]
    HostKeyCheck { host: String, reason: String },
    #[error("remote command on {host} timed out after {secs} s")]
    ExecTimeout { host: String, secs: u64 },
    #[error("SSH error with {host}: {reason}")]
    Protocol { host: String, reason: String },
    /// A failure at a jump host: the inner error names the hop, this names where we were going.
    /// (`inner` is part of the one-line message, so it is deliberately not a `#[source]`: `-v`
    /// would print it twice.)
    #[error("jump host {hop} (on the way to {target}): {inner}")]
    AtJumpHost {
        hop: String,
        target: String,
        inner: Box<SshError>,
    },
}

impl SshError {
    /// The exit code of DESIGN.md for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            SshError::Unreachable { .. } | SshError::Timeout { .. } | SshError::Disconnected { .. } => 3,
            SshError::AuthFailed { .. } => 4,
            SshError::HostKeyChanged { .. }
            | SshError::HostKeyRevoked { .. }
            | SshError::HostKeyUnknown { .. }
            | SshError::HostKeyRejected { .. }
            | SshError::HostKeyCheck { .. } => 5,
            SshError::ExecTimeout { .. } | SshError::Protocol { .. } => 1,
            SshError::AtJumpHost { inner, .. } => inner.exit_code(),
        }
    }

    /// The failure itself, looking through [`SshError::AtJumpHost`].
    pub fn root(&self) -> &SshError {
        match self {
            SshError::AtJumpHost { inner, .. } => inner.root(),
            other => other,
        }
    }

    /// Say that this happened at jump host `hop` on the way to `target` (once: the innermost hop
    /// that failed is the one named).
    pub fn at_jump_host(self, hop: &str, target: &str) -> SshError {
        match self {
            e @ SshError::AtJumpHost { .. } => e,
            e => SshError::AtJumpHost {
                hop: hop.to_string(),
                target: target.to_string(),
                inner: Box::new(e),
            },
        }
    }

    /// Whether trying again could help. Authentication and host-key failures never retry.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.root(),
            SshError::Unreachable { .. } | SshError::Timeout { .. } | SshError::Disconnected { .. }
        )
    }
}

/// Map a russh error after the TCP connection was up (login, session and attach all meet them).
pub fn classify(host: &str, e: russh::Error) -> SshError {
    use russh::Error as E;
    match e {
        E::Disconnect | E::HUP | E::ConnectionTimeout | E::KeepaliveTimeout | E::InactivityTimeout | E::SendError => {
            SshError::Disconnected {
                host: host.to_string(),
                reason: e.to_string(),
            }
        }
        E::IO(io) => SshError::Disconnected {
            host: host.to_string(),
            reason: io.to_string(),
        },
        other => SshError::Protocol {
            host: host.to_string(),
            reason: other.to_string(),
        },
    }
}

/// Per-connection knobs that do not come from ssh_config.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub keepalive_interval: Duration,
    pub keepalive_max: usize,
    pub connect_timeout: Duration,
    /// Limit for the SSH handshake and for authentication, each.
    pub handshake_timeout: Duration,
    /// `SSH_AUTH_SOCK` as seen by the caller (so tests can control it).
    pub agent_socket: Option<PathBuf>,
}

/// Run a blocking call (a terminal prompt) without starving other tasks: off the worker thread on
/// the multi-threaded runtime, inline on a current-thread runtime where that is impossible.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
