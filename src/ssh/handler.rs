//! The russh client handler: it verifies the server's host key (or host certificate) against
//! known_hosts like OpenSSH, before any authentication, and records why the connection ended.
//! Its own file so that login (`auth`) and the session both use it without needing each other.

use super::known_hosts::{self, HostKeyStatus};
use super::ssh_config::StrictHostKeyChecking;
use super::{Prompter, SshError};
use russh::client;
use russh::keys::PublicKeyOrCertificate;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Verifies the server's host key against known_hosts like OpenSSH, before any authentication.
pub struct ClientHandler {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) display: String,
    pub(super) files: Vec<PathBuf>,
    /// The first UserKnownHostsFile; None with `UserKnownHostsFile none` (nowhere to record).
    pub(super) record_in: Option<PathBuf>,
    pub(super) policy: StrictHostKeyChecking,
    pub(super) prompter: Arc<dyn Prompter>,
    /// Why the key was refused, read by connect_once after russh reports a generic failure.
    pub(super) refusal: Arc<Mutex<Option<SshError>>>,
    /// Why the connection ended, once it has. The handler lives exactly as long as russh's
    /// connection task, so receivers also learn of an end that reported no reason (the sender drops).
    pub(super) closed: tokio::sync::watch::Sender<Option<Closed>>,
}

impl ClientHandler {
    fn decide(&self, key_text: &str) -> Result<bool, SshError> {
        let fail = |reason: String| SshError::HostKeyCheck {
            host: self.display.clone(),
            reason,
        };
        let fingerprint = known_hosts::fingerprint(key_text).map_err(|e| fail(e.to_string()))?;
        let key_type = key_text.split_whitespace().next().unwrap_or("?").to_string();
        let status =
            known_hosts::check(&self.files, &self.host, self.port, key_text).map_err(|e| fail(e.to_string()))?;
        let line_of = |l: &known_hosts::KnownLine| format!("{}:{}", l.file.display(), l.line);
        match status {
            HostKeyStatus::Known(_) => Ok(true),
            HostKeyStatus::Revoked(l) => Err(SshError::HostKeyRevoked {
                host: self.display.clone(),
                key_type,
                fingerprint,
                line: line_of(&l),
            }),
            HostKeyStatus::Changed { lines } => Err(SshError::HostKeyChanged {
                host: self.display.clone(),
                lookup: known_hosts::host_pattern_name(&self.host, self.port),
                key_type,
                fingerprint,
                lines: lines
                    .iter()
                    .map(|l| format!("{} ({} {})", line_of(l), l.key_type, l.fingerprint))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
            // OpenSSH treats a host known only by other key types as changed, not new: an attacker
            // must not get trusted just by offering a type we have no record of.
            HostKeyStatus::Unknown { other_types } if !other_types.is_empty() => Err(SshError::HostKeyChanged {
                host: self.display.clone(),
                lookup: known_hosts::host_pattern_name(&self.host, self.port),
                key_type,
                fingerprint,
                lines: format!("the known {} key(s) recorded for it", other_types.join(", ")),
            }),
            HostKeyStatus::Unknown { other_types } => {
                let accept = match self.policy {
                    // `no` from ssh_config still never accepts a changed key; it only records new ones,
                    // exactly as accept-new does.
                    StrictHostKeyChecking::AcceptNew | StrictHostKeyChecking::No => true,
                    StrictHostKeyChecking::Yes => false,
                    StrictHostKeyChecking::Ask => {
                        match self
                            .prompter
                            .confirm_new_host_key(&self.display, &key_type, &fingerprint, &other_types)
                        {
                            Some(true) => true,
                            Some(false) => {
                                return Err(SshError::HostKeyRejected {
                                    host: self.display.clone(),
                                    key_type,
                                    fingerprint,
                                })
                            }
                            None => false,
                        }
                    }
                };
                if !accept {
                    let others = if other_types.is_empty() {
                        String::new()
                    } else {
                        format!("; keys of other types are known for it: {}", other_types.join(", "))
                    };
                    return Err(SshError::HostKeyUnknown {
                        host: self.display.clone(),
                        key_type,
                        fingerprint,
                        others,
                    });
                }
                // Like ssh, a key that cannot be recorded is still accepted for this connection.
                if let Some(file) = &self.record_in {
                    known_hosts::append(file, &self.host, self.port, key_text).map_err(|e| fail(e.to_string()))?;
                }
                Ok(true)
            }
        }
    }
}

impl ClientHandler {
    /// A host certificate is trusted as OpenSSH trusts it: signed by a CA on a `@cert-authority`
    /// line whose patterns match this host, a host (not user) certificate naming this host among
    /// its principals (or naming none), within its validity window, with no critical options,
    /// and neither it nor its CA `@revoked`. Such a host needs no known_hosts line of its own.
    /// `Ok(None)`: trusted. `Ok(Some(key))`: no CA line trusts its signer, so, as OpenSSH does,
    /// the certified key is to be checked as a bare key (`type base64`).
    fn decide_certificate(&self, cert: &russh::keys::Certificate) -> Result<Option<String>, SshError> {
        use russh::keys::{HashAlg, PublicKey};
        let refuse = |reason: String| SshError::HostKeyCheck {
            host: self.display.clone(),
            reason: format!("its host certificate was refused: {reason}"),
        };
        let bad = |e: &dyn std::fmt::Display| refuse(e.to_string());
        let cert_key = PublicKey::new(cert.public_key().clone(), "");
        let cert_key_text = cert_key.to_openssh().map_err(|e| bad(&e))?;
        let ca_key = PublicKey::new(cert.signature_key().clone(), "");
        let ca_text = ca_key.to_openssh().map_err(|e| bad(&e))?;
        let ca_fp = ca_key.fingerprint(HashAlg::Sha256);
        for (what, text) in [("host key", &cert_key_text), ("certificate authority", &ca_text)] {
            if let Some(l) = known_hosts::revoked(&self.files, text).map_err(|e| bad(&e))? {
                return Err(refuse(format!(
                    "its {what} is @revoked in {}:{}",
                    l.file.display(),
                    l.line
                )));
            }
        }
        let authorities = known_hosts::cert_authorities(&self.files, &self.host, self.port).map_err(|e| bad(&e))?;
        let trusted: Vec<russh::keys::ssh_key::Fingerprint> = authorities
            .iter()
            .filter_map(|a| PublicKey::from_openssh(&a.key_openssh).ok())
            .map(|k| k.fingerprint(HashAlg::Sha256))
            .collect();
        if !trusted.contains(&ca_fp) {
            return Ok(Some(cert_key_text));
        }
        if cert.cert_type() != russh::keys::ssh_key::certificate::CertType::Host {
            return Err(refuse("it is a user certificate, not a host certificate".into()));
        }
        if let Err(why) = super::certificate::validity(cert, std::time::SystemTime::now()) {
            return Err(refuse(format!("the certificate is {why}")));
        }
        if cert.validate([&ca_fp]).is_err() {
            return Err(refuse(format!("its signature by {ca_fp} does not verify")));
        }
        let principals = cert.valid_principals();
        if !principals.is_empty() && !principals.iter().any(|p| p.eq_ignore_ascii_case(&self.host)) {
            return Err(refuse(format!(
                "it is for {}, not {}",
                principals.join(", "),
                self.host
            )));
        }
        if !cert.critical_options().is_empty() {
            return Err(refuse("it carries critical options rtrain does not know".into()));
        }
        Ok(None)
    }
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn disconnected(&mut self, reason: client::DisconnectReason<Self::Error>) -> Result<(), Self::Error> {
        let (reason, by_server, result) = match reason {
            client::DisconnectReason::ReceivedDisconnect(info) => (
                if info.message.is_empty() {
                    "the server closed the connection".to_string()
                } else {
                    format!("the server closed the connection: {}", info.message)
                },
                true,
                Ok(()),
            ),
            client::DisconnectReason::Error(e) => (close_reason(&e), false, Err(e)),
        };
        self.closed.send_replace(Some(Closed { reason, by_server }));
        result
    }

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let text = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key
                .to_openssh()
                .map_err(|e| russh::Error::from(russh::keys::Error::from(e)))?,
            PublicKeyOrCertificate::Certificate(cert) => match self.decide_certificate(cert) {
                Ok(None) => return Ok(true),
                Ok(Some(bare)) => bare,
                Err(e) => {
                    *self.refusal.lock().unwrap() = Some(e);
                    return Ok(false);
                }
            },
        };
        // The prompt may block on the terminal: keep it off the async worker.
        let decision = super::blocking(|| self.decide(&text));
        match decision {
            Ok(ok) => Ok(ok),
            Err(e) => {
                *self.refusal.lock().unwrap() = Some(e);
                Ok(false)
            }
        }
    }
}

/// How a connection ended: why, in words, and whether the server said goodbye (a disconnect
/// message) rather than the transport breaking under it.
#[derive(Debug, Clone)]
pub struct Closed {
    pub(super) reason: String,
    pub(super) by_server: bool,
}

/// Why russh ended a connection, in words for a status line.
fn close_reason(e: &russh::Error) -> String {
    match e {
        russh::Error::KeepaliveTimeout => "the server stopped answering keepalives".to_string(),
        russh::Error::InactivityTimeout => "nothing was received for too long".to_string(),
        russh::Error::IO(io) => io.to_string(),
        russh::Error::Disconnect | russh::Error::HUP => "the connection was closed".to_string(),
        other => other.to_string(),
    }
}
