//! Public-key authentication in OpenSSH's order: the agent's keys, then IdentityFile keys (or the
//! default key names). RSA signs with rsa-sha2-512/256, since OpenSSH 9 refuses ssh-rsa (SHA-1).

use super::session::{classify, ClientHandler};
use super::{ConnectOptions, Prompter, SshError};
use crate::config::Target;
use russh::client::{AuthResult, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// OpenSSH's default identities, in its order, used only when no IdentityFile is configured.
const DEFAULT_KEYS: &[&str] = &[
    "id_rsa",
    "id_ecdsa",
    "id_ecdsa_sk",
    "id_ed25519",
    "id_ed25519_sk",
    "id_xmss",
    "id_dsa",
];

/// Which files to try: the configured IdentityFiles, else the defaults that exist.
pub fn identity_candidates(target: &Target) -> Vec<PathBuf> {
    if !target.ssh.identity_files.is_empty() {
        return target.ssh.identity_files.clone();
    }
    DEFAULT_KEYS.iter().map(|n| target.home.join(".ssh").join(n)).collect()
}

/// The agent to ask, as OpenSSH picks it from IdentityAgent: `none`, `SSH_AUTH_SOCK` (the
/// caller's), a legacy `$VAR` naming another environment variable, or a socket path.
fn agent_socket(target: &Target, opts: &ConnectOptions) -> Option<PathBuf> {
    match target.ssh.identity_agent.as_deref() {
        Some(a) if a.eq_ignore_ascii_case("none") => None,
        Some(a) if a == "SSH_AUTH_SOCK" || a == "$SSH_AUTH_SOCK" => opts.agent_socket.clone(),
        Some(var) if var.starts_with('$') && !var.starts_with("${") => {
            std::env::var_os(&var[1..]).filter(|v| !v.is_empty()).map(PathBuf::from)
        }
        Some(path) => Some(PathBuf::from(path)),
        None => opts.agent_socket.clone(),
    }
}

/// The public half of an identity file: its `.pub`, or (like ssh, for IdentitiesOnly matching)
/// derived from the private key when that is not encrypted.
fn public_of_file(path: &Path) -> Option<PublicKey> {
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    russh::keys::load_public_key(PathBuf::from(pub_path)).ok().or_else(|| {
        russh::keys::load_secret_key(path, None)
            .ok()
            .map(|k| k.public_key().clone())
    })
}

struct Attempts {
    tried: Vec<String>,
}

impl Attempts {
    fn note(&mut self, what: String) {
        self.tried.push(what);
    }
}

pub async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    target: &Target,
    opts: &ConnectOptions,
    prompter: &dyn Prompter,
) -> Result<(), SshError> {
    let host = target.name.clone();
    let user = target.user.clone();
    let limit = opts.handshake_timeout;
    let timeout_err = || SshError::Timeout {
        host: host.clone(),
        stage: "authentication",
        secs: limit.as_secs(),
    };
    let mut attempts = Attempts { tried: Vec::new() };
    let mut offered: Vec<PublicKey> = Vec::new();

    // Decided once: RSA keys must sign with SHA-2 where the server allows it.
    let rsa_hash: Option<HashAlg> = match tokio::time::timeout(limit, handle.best_supported_rsa_hash()).await {
        Ok(Ok(Some(h))) => h,
        Ok(Ok(None)) => Some(HashAlg::Sha256),
        Ok(Err(e)) => return Err(classify(&host, e)),
        Err(_) => return Err(timeout_err()),
    };

    let candidates = identity_candidates(target);
    let wanted_publics: Vec<PublicKey> = candidates.iter().filter_map(|p| public_of_file(p)).collect();

    if let Some(sock) = agent_socket(target, opts) {
        match tokio::time::timeout(Duration::from_secs(5), AgentClient::connect_uds(&sock)).await {
            Ok(Ok(mut agent)) => {
                let ids = tokio::time::timeout(Duration::from_secs(5), agent.request_identities()).await;
                let keys: Vec<PublicKey> = match ids {
                    Ok(Ok(ids)) => ids
                        .into_iter()
                        .filter_map(|id| match id {
                            AgentIdentity::PublicKey { key, .. } => Some(key),
                            _ => None,
                        })
                        .collect(),
                    _ => {
                        attempts.note(format!("agent at {} (did not list its keys)", sock.display()));
                        Vec::new()
                    }
                };
                for key in keys {
                    // IdentitiesOnly: only agent keys that match a configured IdentityFile.
                    if target.ssh.identities_only && !wanted_publics.iter().any(|w| w.key_data() == key.key_data()) {
                        continue;
                    }
                    let hash = if key.algorithm().is_rsa() { rsa_hash } else { None };
                    let label = format!("agent key {}", key.fingerprint(HashAlg::Sha256));
                    let res = tokio::time::timeout(
                        limit,
                        handle.authenticate_publickey_with(&user, key.clone(), hash, &mut agent),
                    )
                    .await;
                    offered.push(key);
                    match res {
                        Err(_) => return Err(timeout_err()),
                        Ok(Ok(AuthResult::Success)) => return Ok(()),
                        Ok(Ok(AuthResult::Failure { .. })) => attempts.note(label),
                        Ok(Err(e)) => attempts.note(format!("{label} (agent error: {e})")),
                    }
                    if handle.is_closed() {
                        return Err(auth_failed(target, attempts));
                    }
                }
            }
            Ok(Err(e)) => attempts.note(format!("agent at {} unusable: {e}", sock.display())),
            Err(_) => attempts.note(format!("agent at {} did not answer", sock.display())),
        }
    }

    for path in candidates {
        if !path.exists() {
            continue;
        }
        if let Some(public) = public_of_file(&path) {
            if offered.iter().any(|o| o.key_data() == public.key_data()) {
                continue; // the agent already offered it
            }
        }
        let key = match load_key(&path, prompter, &mut attempts) {
            Some(k) => k,
            None => continue,
        };
        let hash = if key.algorithm().is_rsa() { rsa_hash } else { None };
        let label = format!("key {}", path.display());
        let with_hash = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        match tokio::time::timeout(limit, handle.authenticate_publickey(&user, with_hash)).await {
            Err(_) => return Err(timeout_err()),
            Ok(Ok(AuthResult::Success)) => return Ok(()),
            Ok(Ok(AuthResult::Failure { .. })) => attempts.note(label),
            Ok(Err(e)) => {
                if handle.is_closed() {
                    attempts.note(format!("{label} (server closed the connection: {e})"));
                    return Err(auth_failed(target, attempts));
                }
                attempts.note(format!("{label} ({e})"));
            }
        }
    }
    Err(auth_failed(target, attempts))
}

/// Load a private key, asking for its passphrase (up to three tries, like ssh) when it is encrypted.
fn load_key(path: &Path, prompter: &dyn Prompter, attempts: &mut Attempts) -> Option<PrivateKey> {
    match russh::keys::load_secret_key(path, None) {
        Ok(k) => return Some(k),
        Err(russh::keys::Error::KeyIsEncrypted) => {}
        Err(e) => {
            attempts.note(format!("key {} (unreadable: {e})", path.display()));
            return None;
        }
    }
    for _ in 0..3 {
        let Some(pass) = super::blocking(|| prompter.passphrase(path)) else {
            attempts.note(format!(
                "key {} (encrypted; no terminal to ask for its passphrase — add it to ssh-agent)",
                path.display()
            ));
            return None;
        };
        match russh::keys::load_secret_key(path, Some(&pass)) {
            Ok(k) => return Some(k),
            Err(_) => continue,
        }
    }
    attempts.note(format!("key {} (wrong passphrase)", path.display()));
    None
}

fn auth_failed(target: &Target, attempts: Attempts) -> SshError {
    let tried = if attempts.tried.is_empty() {
        "no usable key".to_string()
    } else {
        attempts.tried.join(", ")
    };
    let hint = if attempts.tried.is_empty() {
        "; hint: create a key with ssh-keygen and install it with ssh-copy-id, or start ssh-agent".to_string()
    } else {
        String::new()
    };
    SshError::AuthFailed {
        host: target.name.clone(),
        user: target.user.clone(),
        tried,
        hint,
    }
}
