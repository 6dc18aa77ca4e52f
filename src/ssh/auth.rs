//! Authentication as OpenSSH's client does it: the methods of PreferredAuthentications that
//! ssh_config leaves on and the server accepts, in order. Public keys live here (the agent's keys,
//! then IdentityFile keys or the default key names; RSA signs with rsa-sha2-512/256, since
//! OpenSSH 9 refuses ssh-rsa); the methods a person answers are in `auth::interactive`.

use super::certificate::validity;
use super::endpoint::Endpoint;
use super::handler::ClientHandler;
use super::{classify, ConnectOptions, Prompter, SshError};
use russh::client::{AuthResult, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{Certificate, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::MethodSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod interactive;

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
pub fn identity_candidates(target: &Endpoint) -> Vec<PathBuf> {
    if !target.ssh.identity_files.is_empty() {
        return target.ssh.identity_files.clone();
    }
    DEFAULT_KEYS.iter().map(|n| target.home.join(".ssh").join(n)).collect()
}

/// The agent to ask, as OpenSSH picks it from IdentityAgent: `none`, `SSH_AUTH_SOCK` (the
/// caller's), a legacy `$VAR` naming another environment variable, or a socket path.
fn agent_socket(target: &Endpoint, opts: &ConnectOptions) -> Option<PathBuf> {
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

/// What one connection attempt tried, for the error message when nothing worked.
pub(crate) struct Attempts {
    pub(crate) tried: Vec<String>,
    /// A method needed a person (password, one-time code) and there was no terminal to ask.
    pub(crate) needed_a_person: bool,
    /// What the server said it accepts, as it last said so.
    pub(crate) server_accepts: Vec<String>,
}

impl Attempts {
    pub(crate) fn note(&mut self, what: String) {
        self.tried.push(what);
    }
}

/// A method OpenSSH's client knows and rtrain implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    PublicKey,
    KeyboardInteractive,
    Password,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::PublicKey => "publickey",
            Method::KeyboardInteractive => "keyboard-interactive",
            Method::Password => "password",
        }
    }

    fn from_name(name: &str) -> Option<Method> {
        match name {
            "publickey" => Some(Method::PublicKey),
            "keyboard-interactive" => Some(Method::KeyboardInteractive),
            "password" => Some(Method::Password),
            _ => None,
        }
    }
}

/// One line of the plan: a method, whether it will be tried, and why (for `rtrain hosts HOST`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMethod {
    pub method: String,
    pub enabled: bool,
    pub why: String,
}

/// OpenSSH's default PreferredAuthentications, minus what it has and rtrain does not
/// (gssapi-with-mic, hostbased: both off by default in OpenSSH too).
const DEFAULT_PREFERRED: &[&str] = &["publickey", "keyboard-interactive", "password"];

/// The methods to try, in order, as OpenSSH picks them: PreferredAuthentications (or its
/// default), minus those switched off by PubkeyAuthentication, KbdInteractiveAuthentication,
/// PasswordAuthentication, and minus the asking ones when NumberOfPasswordPrompts is 0.
pub fn plan(cfg: &super::ssh_config::HostConfig) -> Vec<PlannedMethod> {
    let (names, order_why): (Vec<String>, &str) = match &cfg.preferred_authentications {
        Some(p) => (p.clone(), "PreferredAuthentications"),
        None => (
            DEFAULT_PREFERRED.iter().map(|s| s.to_string()).collect(),
            "OpenSSH's default order",
        ),
    };
    let prompts = cfg.number_of_password_prompts.unwrap_or(3);
    let mut out: Vec<PlannedMethod> = Vec::new();
    for name in names {
        if out.iter().any(|p| p.method == name) {
            continue;
        }
        let (enabled, why) = match Method::from_name(&name) {
            None => (false, "not supported by rtrain".to_string()),
            Some(m) => {
                let (flag, keyword) = match m {
                    Method::PublicKey => (cfg.pubkey_authentication, "PubkeyAuthentication"),
                    Method::KeyboardInteractive => (cfg.kbd_interactive_authentication, "KbdInteractiveAuthentication"),
                    Method::Password => (cfg.password_authentication, "PasswordAuthentication"),
                };
                if flag == Some(false) {
                    (false, format!("{keyword} no"))
                } else if m != Method::PublicKey && prompts == 0 {
                    (false, "NumberOfPasswordPrompts 0".to_string())
                } else if m == Method::PublicKey {
                    (true, format!("{order_why}; agent keys, then IdentityFile keys"))
                } else {
                    (
                        true,
                        format!("{order_why}; asked on the terminal, up to {prompts} time(s), never stored"),
                    )
                }
            }
        };
        out.push(PlannedMethod {
            method: name,
            enabled,
            why,
        });
    }
    out
}

/// What trying one method came to.
pub(crate) enum Step {
    Success,
    /// Not in: the server's new list of acceptable methods, when it sent one.
    Failed(Option<Vec<String>>),
}

pub(crate) fn method_names(set: &MethodSet) -> Vec<String> {
    set.iter().map(|m| <&'static str>::from(m).to_string()).collect()
}

/// Everything a method needs to talk to the server and the person.
pub(crate) struct Ctx<'a> {
    pub(crate) host: String,
    pub(crate) user: String,
    pub(crate) limit: Duration,
    pub(crate) prompter: Arc<dyn Prompter>,
    pub(crate) target: &'a Endpoint,
    pub(crate) prompts: u32,
}

impl Ctx<'_> {
    pub(crate) fn timeout_err(&self) -> SshError {
        SshError::Timeout {
            host: self.host.clone(),
            stage: "authentication",
            secs: self.limit.as_secs(),
        }
    }
}

/// How a login went, for `-v`: what the server first said it accepts, and the methods that got
/// the user in (several when the server demands more than one, as `AuthenticationMethods` can).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthOutcome {
    pub offered: Vec<String>,
    pub used: Vec<String>,
}

/// Authenticate as OpenSSH's client does: ask with "none" first (the answer lists what the server
/// accepts), then each method of the plan the server accepts, in the plan's order, following the
/// server's new list after each refusal (so `AuthenticationMethods publickey,password` works).
pub async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    target: &Endpoint,
    opts: &ConnectOptions,
    prompter: Arc<dyn Prompter>,
) -> Result<AuthOutcome, SshError> {
    let ctx = Ctx {
        host: target.name.clone(),
        user: target.user.clone(),
        limit: opts.handshake_timeout,
        prompter,
        target,
        prompts: target.ssh.number_of_password_prompts.unwrap_or(3),
    };
    let mut attempts = Attempts {
        tried: Vec::new(),
        needed_a_person: false,
        server_accepts: Vec::new(),
    };
    let mut accepts = match tokio::time::timeout(ctx.limit, handle.authenticate_none(&ctx.user)).await {
        Err(_) => return Err(ctx.timeout_err()),
        Ok(Err(e)) => return Err(classify(&ctx.host, e)),
        Ok(Ok(AuthResult::Success)) => {
            return Ok(AuthOutcome {
                offered: Vec::new(),
                used: vec!["none".into()],
            })
        }
        Ok(Ok(AuthResult::Failure { remaining_methods, .. })) => method_names(&remaining_methods),
    };
    let mut outcome = AuthOutcome {
        offered: accepts.clone(),
        used: Vec::new(),
    };
    for planned in plan(&target.ssh).into_iter().filter(|p| p.enabled) {
        if !accepts.contains(&planned.method) {
            continue;
        }
        let step = match Method::from_name(&planned.method) {
            Some(Method::PublicKey) => publickey(handle, &ctx, opts, &mut attempts).await?,
            Some(Method::Password) => interactive::password(handle, &ctx, &mut attempts).await?,
            Some(Method::KeyboardInteractive) => interactive::keyboard_interactive(handle, &ctx, &mut attempts).await?,
            None => continue,
        };
        match step {
            Step::Success => {
                outcome.used.push(planned.method.clone());
                return Ok(outcome);
            }
            Step::Failed(Some(list)) => {
                // A partial success (the method counted, the server wants another one too) shows
                // as a new list without the method just used.
                if list != accepts && !list.contains(&planned.method) {
                    outcome.used.push(planned.method.clone());
                }
                accepts = list
            }
            Step::Failed(None) => {}
        }
        if handle.is_closed() {
            break;
        }
    }
    attempts.server_accepts = accepts;
    Err(auth_failed(target, attempts))
}

/// The server's answer to one public key or certificate: the step that ends the method (in, or a
/// partial success: the key was accepted and the server wants another method too), or `None` to
/// try the next key. A refusal is noted, and `last` keeps the server's newest list of methods.
fn judge(answer: AuthResult, label: String, attempts: &mut Attempts, last: &mut Option<Vec<String>>) -> Option<Step> {
    let AuthResult::Failure {
        remaining_methods,
        partial_success,
    } = answer
    else {
        return Some(Step::Success);
    };
    if partial_success {
        attempts.note(format!("{label} (accepted; the server wants another method too)"));
    } else {
        attempts.note(label);
    }
    *last = Some(method_names(&remaining_methods));
    partial_success.then(|| Step::Failed(last.clone()))
}

async fn publickey(
    handle: &mut Handle<ClientHandler>,
    ctx: &Ctx<'_>,
    opts: &ConnectOptions,
    attempts: &mut Attempts,
) -> Result<Step, SshError> {
    let target = ctx.target;
    let host = ctx.host.clone();
    let user = ctx.user.clone();
    let limit = ctx.limit;
    let timeout_err = || ctx.timeout_err();
    let mut offered: Vec<PublicKey> = Vec::new();
    let mut last: Option<Vec<String>> = None;

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
                let mut ids: Vec<AgentIdentity> = match ids {
                    Ok(Ok(ids)) => ids,
                    _ => {
                        attempts.note(format!("agent at {} (did not list its keys)", sock.display()));
                        Vec::new()
                    }
                };
                // As with files, a certificate goes before the bare keys (the sort is stable).
                ids.sort_by_key(|id| !matches!(id, AgentIdentity::Certificate { .. }));
                for id in ids {
                    let data = match &id {
                        AgentIdentity::PublicKey { key, .. } => key.key_data().clone(),
                        AgentIdentity::Certificate { certificate, .. } => certificate.public_key().clone(),
                    };
                    // IdentitiesOnly: only agent keys that match a configured IdentityFile.
                    if target.ssh.identities_only && !wanted_publics.iter().any(|w| *w.key_data() == data) {
                        continue;
                    }
                    let res = match id {
                        AgentIdentity::PublicKey { key, .. } => {
                            let hash = if key.algorithm().is_rsa() { rsa_hash } else { None };
                            let label = format!("agent key {}", key.fingerprint(HashAlg::Sha256));
                            let res = tokio::time::timeout(
                                limit,
                                handle.authenticate_publickey_with(&user, key.clone(), hash, &mut agent),
                            )
                            .await;
                            offered.push(key);
                            (label, res)
                        }
                        AgentIdentity::Certificate { certificate, .. } => {
                            let label = format!("agent certificate {:?}", certificate.key_id());
                            if let Err(why) = validity(&certificate, std::time::SystemTime::now()) {
                                attempts.note(format!("{label} ({why})"));
                                continue;
                            }
                            let hash = if certificate.algorithm().is_rsa() {
                                rsa_hash
                            } else {
                                None
                            };
                            let res = tokio::time::timeout(
                                limit,
                                handle.authenticate_certificate_with(&user, certificate, hash, &mut agent),
                            )
                            .await;
                            (label, res)
                        }
                    };
                    let (label, res) = res;
                    match res {
                        Err(_) => return Err(timeout_err()),
                        Ok(Ok(answer)) => {
                            if let Some(step) = judge(answer, label, attempts, &mut last) {
                                return Ok(step);
                            }
                        }
                        Ok(Err(e)) => attempts.note(format!("{label} (agent error: {e})")),
                    }
                    if handle.is_closed() {
                        return Ok(Step::Failed(last));
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
        let key = match load_key(&path, ctx.prompter.as_ref(), attempts) {
            Some(k) => k,
            None => continue,
        };
        let key = Arc::new(key);
        // As ssh: a key's certificates are offered before the bare key.
        for (cert_path, cert) in certificates_for(&path, &key, target) {
            let label = format!("certificate {}", cert_path.display());
            if let Err(why) = validity(&cert, std::time::SystemTime::now()) {
                attempts.note(format!("{label} ({why})"));
                continue;
            }
            let res = tokio::time::timeout(limit, handle.authenticate_openssh_cert(&user, key.clone(), cert)).await;
            match res {
                Err(_) => return Err(timeout_err()),
                Ok(Ok(answer)) => {
                    if let Some(step) = judge(answer, label, attempts, &mut last) {
                        return Ok(step);
                    }
                }
                Ok(Err(e)) => {
                    attempts.note(format!("{label} ({e})"));
                    if handle.is_closed() {
                        return Ok(Step::Failed(last));
                    }
                }
            }
        }
        let hash = if key.algorithm().is_rsa() { rsa_hash } else { None };
        let label = format!("key {}", path.display());
        let with_hash = PrivateKeyWithHashAlg::new(key, hash);
        match tokio::time::timeout(limit, handle.authenticate_publickey(&user, with_hash)).await {
            Err(_) => return Err(timeout_err()),
            Ok(Ok(answer)) => {
                if let Some(step) = judge(answer, label, attempts, &mut last) {
                    return Ok(step);
                }
            }
            Ok(Err(e)) => {
                if handle.is_closed() {
                    attempts.note(format!("{label} (server closed the connection: {e})"));
                    return Ok(Step::Failed(last));
                }
                attempts.note(format!("{label} ({e})"));
            }
        }
    }
    Ok(Step::Failed(last))
}

/// The certificates for the key in `path`: the `-cert.pub` beside it (as ssh loads it), then every
/// CertificateFile whose public key is this key. Unreadable files are skipped, as ssh does.
fn certificates_for(path: &Path, key: &PrivateKey, target: &Endpoint) -> Vec<(PathBuf, Certificate)> {
    let mut beside = path.as_os_str().to_owned();
    beside.push("-cert.pub");
    let mut files = vec![PathBuf::from(beside)];
    files.extend(target.ssh.certificate_files.iter().cloned());
    let mut out: Vec<(PathBuf, Certificate)> = Vec::new();
    for file in files {
        let Ok(cert) = russh::keys::load_openssh_certificate(&file) else {
            continue;
        };
        let mine = cert.public_key() == key.public_key().key_data();
        if mine && !out.iter().any(|(_, c)| c == &cert) {
            out.push((file, cert));
        }
    }
    out
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

fn auth_failed(target: &Endpoint, attempts: Attempts) -> SshError {
    let tried = if attempts.tried.is_empty() {
        "no usable key".to_string()
    } else {
        attempts.tried.join(", ")
    };
    let accepts = if attempts.server_accepts.is_empty() {
        String::new()
    } else {
        format!("; the server accepts {}", attempts.server_accepts.join(","))
    };
    let hint = if attempts.needed_a_person {
        format!(
            "{accepts}; hint: {} asks for a password or a one-time code and there is no terminal to ask: run rtrain \
             from a terminal, or load a key into ssh-agent (and install it with ssh-copy-id)",
            target.name
        )
    } else if attempts.tried.is_empty() {
        format!("{accepts}; hint: create a key with ssh-keygen and install it with ssh-copy-id, or start ssh-agent")
    } else {
        accepts
    };
    SshError::AuthFailed {
        host: target.name.clone(),
        user: target.user.clone(),
        tried,
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::ssh_config::HostConfig;

    fn tried(cfg: &HostConfig) -> Vec<String> {
        plan(cfg).into_iter().filter(|p| p.enabled).map(|p| p.method).collect()
    }

    #[test]
    fn default_order_is_openssh_s() {
        assert_eq!(
            tried(&HostConfig::default()),
            ["publickey", "keyboard-interactive", "password"]
        );
    }

    #[test]
    fn preferred_order_and_switches_decide_what_is_tried() {
        let cfg = HostConfig {
            preferred_authentications: Some(vec![
                "password".into(),
                "gssapi-with-mic".into(),
                "publickey".into(),
                "keyboard-interactive".into(),
                "password".into(),
            ]),
            kbd_interactive_authentication: Some(false),
            ..HostConfig::default()
        };
        assert_eq!(tried(&cfg), ["password", "publickey"]);
        let p = plan(&cfg);
        let why = |m: &str| p.iter().find(|x| x.method == m).unwrap().why.clone();
        assert_eq!(why("keyboard-interactive"), "KbdInteractiveAuthentication no");
        assert_eq!(why("gssapi-with-mic"), "not supported by rtrain");
        assert!(
            why("password").contains("PreferredAuthentications"),
            "{}",
            why("password")
        );
    }

    #[test]
    fn no_password_prompts_leaves_only_keys() {
        let cfg = HostConfig {
            number_of_password_prompts: Some(0),
            ..HostConfig::default()
        };
        assert_eq!(tried(&cfg), ["publickey"]);
        let cfg = HostConfig {
            pubkey_authentication: Some(false),
            ..HostConfig::default()
        };
        assert_eq!(tried(&cfg), ["keyboard-interactive", "password"]);
    }
}
