//! The ssh layer's own idea of a host: where it is, as whom, and how the byte stream to it is
//! obtained (directly, through jump hosts, or a ProxyCommand). rtrain's settings (workdir, session,
//! keepalive defaults) live in `config::Target`, which wraps one of these; the ssh layer never sees
//! them, so it depends on nothing above it.

use super::ssh_config::{HostConfig, StrictHostKeyChecking};
use std::path::PathBuf;
use std::time::Duration;

/// A HOST argument split into its parts: `[user@]host[:port]`, `[v6addr]:port` included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl HostSpec {
    /// Err: the whole message (`invalid host "x y": whitespace is not allowed`).
    pub fn parse(s: &str) -> Result<HostSpec, String> {
        let bad = |why: &str| format!("invalid host {s:?}: {why}");
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("whitespace is not allowed"));
        }
        if s.starts_with('-') {
            return Err(bad("a host name cannot start with '-'"));
        }
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => return Err(bad("empty user before '@'")),
            None => (None, s),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (addr, after) = inner.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            match after.strip_prefix(':') {
                Some(p) => (addr.to_string(), Some(p)),
                None if after.is_empty() => (addr.to_string(), None),
                None => return Err(bad("unexpected text after ']'")),
            }
        } else if rest.matches(':').count() == 1 {
            let (h, p) = rest.split_once(':').unwrap();
            (h.to_string(), Some(p))
        } else {
            (rest.to_string(), None)
        };
        if host.is_empty() {
            return Err(bad("empty host name"));
        }
        let port = match port {
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("port must be 1-65535"))?,
            ),
            None => None,
        };
        Ok(HostSpec { user, host, port })
    }
}

/// How the byte stream that SSH runs over is obtained.
#[derive(Debug, Clone)]
pub enum Route {
    /// A TCP connection to HostName:Port.
    Direct,
    /// A direct-tcpip channel through an SSH session to this jump host, itself reached its own way.
    Jump(Box<Endpoint>),
    /// The stdin/stdout of this local ProxyCommand (`%` tokens already expanded).
    Command(String),
}

/// One host as ssh resolved it (`ssh -G`), with its route.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The name the user typed (for messages).
    pub name: String,
    pub ssh: HostConfig,
    pub user: String,
    pub port: u16,
    /// How to reach it: directly, through jump hosts (each a full Endpoint), or a ProxyCommand.
    pub route: Route,
    /// The local home (where `~/.ssh` is).
    pub home: PathBuf,
    /// From `--accept-new-host-key`.
    pub accept_new_host_key: bool,
}

impl Endpoint {
    /// The jump hosts in connection order, the one connected first at index 0; empty when the
    /// host is reached directly or by ProxyCommand.
    pub fn hops(&self) -> Vec<&Endpoint> {
        let mut hops = Vec::new();
        let mut current = self;
        while let Route::Jump(hop) = &current.route {
            hops.push(hop.as_ref());
            current = hop;
        }
        hops.reverse();
        hops
    }

    /// `user@hostname:port`, as the resolved destination is shown to the user.
    pub fn destination(&self) -> String {
        if self.ssh.host_name.contains(':') {
            format!("{}@[{}]:{}", self.user, self.ssh.host_name, self.port)
        } else {
            format!("{}@{}:{}", self.user, self.ssh.host_name, self.port)
        }
    }

    pub fn strict_host_key_checking(&self) -> StrictHostKeyChecking {
        if self.accept_new_host_key {
            return StrictHostKeyChecking::AcceptNew;
        }
        self.ssh.strict_host_key_checking.unwrap_or(StrictHostKeyChecking::Ask)
    }

    pub fn connect_timeout(&self) -> Duration {
        self.ssh.connect_timeout.unwrap_or(Duration::from_secs(15))
    }
}
