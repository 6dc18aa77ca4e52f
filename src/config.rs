//! rtrain's own YAML config (what SSH does not know: session, workdir, command…) and the
//! resolution of a HOST argument into a [`Target`]: rtrain host entry → `~/.ssh/config` alias →
//! literal `[user@]host[:port]`.

use crate::ssh::endpoint::{Endpoint, HostSpec, Route};
use crate::ssh::ssh_config::{self, HostConfig, ResolveContext};
use crate::ssh::ConnectOptions;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A config or usage problem: exit code 2, one clear line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}:{line}:{column}: {msg}")]
    Yaml {
        file: PathBuf,
        line: usize,
        column: usize,
        msg: String,
    },
    #[error("{file}: {msg}")]
    File { file: PathBuf, msg: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    SshConfig(#[from] ssh_config::SshConfigError),
    /// ProxyJump/ProxyCommand that cannot be followed: a loop, a bad hop, a bad token.
    #[error("cannot work out how to reach {host}: {msg}")]
    Route { host: String, msg: String },
    /// A name no config knows and DNS does not have: most likely a typo, so a usage error rather
    /// than an outage.
    #[error("unknown host {0}: not in ~/.ssh/config or rtrain's config, and DNS has no such name")]
    UnknownHost(String),
}

/// Settings that may appear under `defaults:` and under each host; every key is optional so a
/// host can override just one of them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub session: Option<String>,
    pub workdir: Option<String>,
    pub command: Option<String>,
    pub log_dir: Option<String>,
    pub checkpoint_dir: Option<String>,
    pub train_config: Option<String>,
    /// Where the trainer's metrics file is: a directory holding `metrics.csv`, or one holding Lightning's
    /// `version_N/` (or `lightning_logs/version_N/`) directories, the newest of which is read. Default: the
    /// workdir's and the checkpoint directory's `lightning_logs/`.
    pub metrics_dir: Option<String>,
    pub resume_command: Option<String>,
    #[serde(default, deserialize_with = "de_duration")]
    pub keepalive: Option<Duration>,
    /// How long `attach`, `logs -f` and `forward` keep reconnecting before giving up (default: never).
    #[serde(default, deserialize_with = "de_duration")]
    pub give_up_after: Option<Duration>,
    /// Environment variables for the run (added to, or overriding, `PYTHONUNBUFFERED=1`); a host's
    /// entries override the defaults' one by one.
    #[serde(default, deserialize_with = "de_env")]
    pub env: Option<BTreeMap<String, String>>,
    /// The first signal `stop` sends (then TERM, then KILL): `INT` (default), `USR1`, `TERM`, ...
    pub stop_signal: Option<String>,
    /// A running run silent this long is shown as stalled (default 10 min).
    #[serde(default, deserialize_with = "de_duration")]
    pub stall_after: Option<Duration>,
    /// Where to say that a run ended or stalled (a host's `notify:` replaces the defaults' whole).
    pub notify: Option<NotifyConfig>,
    /// What keeps a run alive: `auto` (default: tmux, else screen, else nohup), `tmux`, `screen`, `nohup`,
    /// `slurm` (never chosen by `auto`).
    pub backend: Option<String>,
    /// sbatch options for `backend: slurm`.
    pub slurm: Option<SlurmConfig>,
    /// The run's environment: `login` (default: the user's login shell's, as in a tmux pane) or `sh` (clean).
    pub shell: Option<String>,
    /// How long the login shell may take to give its environment (default 10 s, at most 30 s).
    #[serde(default, deserialize_with = "de_duration")]
    pub shell_timeout: Option<Duration>,
}

/// `slurm:`: the sbatch options of `backend: slurm` runs; a host's keys override the defaults' one by one.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    pub partition: Option<String>,
    /// sbatch's `--time`, e.g. `"04:00:00"` (quoted: YAML reads `04:00:00` unquoted as a number).
    pub time: Option<String>,
    pub gpus: Option<String>,
    pub cpus_per_task: Option<u32>,
    pub mem: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub extra_args: Option<Vec<String>>,
    /// The time-limit warning to the batch shell, `USR1@120` by default.
    pub signal: Option<String>,
    /// How many times the run continues after a time limit or a preemption (default 0).
    pub requeue: Option<u32>,
}

impl SlurmConfig {
    /// The options of a host: its keys, else the defaults'.
    pub fn resolve(defaults: Option<&SlurmConfig>, host: Option<&SlurmConfig>) -> crate::remote::slurm::SlurmOptions {
        let d = defaults.cloned().unwrap_or_default();
        let h = host.cloned().unwrap_or_default();
        let base = crate::remote::slurm::SlurmOptions::default();
        crate::remote::slurm::SlurmOptions {
            partition: h.partition.or(d.partition),
            time: h.time.or(d.time),
            gpus: h.gpus.or(d.gpus),
            cpus_per_task: h.cpus_per_task.or(d.cpus_per_task),
            mem: h.mem.or(d.mem),
            account: h.account.or(d.account),
            qos: h.qos.or(d.qos),
            extra_args: h.extra_args.or(d.extra_args).unwrap_or_default(),
            signal: h.signal.or(d.signal).unwrap_or(base.signal),
            requeue: h.requeue.or(d.requeue).unwrap_or(0),
        }
    }
}

/// `notify:`: box-side webhooks the run wrapper posts to when the run ends (no laptop needed), and
/// which events count, for them and for `wait --notify` / `status --watch --notify`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Generic webhook: a JSON document POSTed to this URL.
    pub webhook: Option<String>,
    /// An ntfy topic URL (`https://ntfy.sh/TOPIC`): a plain-text POST with a Title header.
    pub ntfy: Option<String>,
    /// A Slack incoming-webhook URL: `{"text": ...}`.
    pub slack: Option<String>,
    /// Which events to send (default: finished, failed, stopped, lost, stalled).
    pub events: Option<Vec<NotifyEvent>>,
}

/// What a notification is about. `lost`, `stalled` and `checkpoint` are only seen from the laptop
/// (a lost run's wrapper is gone, so the box cannot say it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyEvent {
    Finished,
    Failed,
    Stopped,
    Lost,
    Stalled,
    Checkpoint,
    /// `rtrain notify test`.
    Test,
}

impl NotifyEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Finished => "finished",
            NotifyEvent::Failed => "failed",
            NotifyEvent::Stopped => "stopped",
            NotifyEvent::Lost => "lost",
            NotifyEvent::Stalled => "stalled",
            NotifyEvent::Checkpoint => "checkpoint",
            NotifyEvent::Test => "test",
        }
    }
}

pub const DEFAULT_NOTIFY_EVENTS: &[NotifyEvent] = &[
    NotifyEvent::Finished,
    NotifyEvent::Failed,
    NotifyEvent::Stopped,
    NotifyEvent::Lost,
    NotifyEvent::Stalled,
];

impl NotifyConfig {
    pub fn wants(&self, ev: NotifyEvent) -> bool {
        ev == NotifyEvent::Test || self.events.as_deref().unwrap_or(DEFAULT_NOTIFY_EVENTS).contains(&ev)
    }

    /// The configured webhooks as (preset, URL): `json`, `ntfy` or `slack`.
    pub fn hooks(&self) -> Vec<(&'static str, &str)> {
        [("json", &self.webhook), ("ntfy", &self.ntfy), ("slack", &self.slack)]
            .into_iter()
            .filter_map(|(k, u)| u.as_deref().map(|u| (k, u)))
            .collect()
    }
}

/// A webhook URL rtrain can hand to curl's and wget's config input untouched: http(s), and no
/// byte that would need escaping there (quotes, backslashes, blanks, controls).
fn check_webhook_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err("must be an http:// or https:// URL".into());
    }
    if url
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '"' || c == '\\' || c == '\'')
    {
        return Err("must not contain blanks, quotes, backslashes or control characters (percent-encode them)".into());
    }
    Ok(())
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub defaults: Settings,
    #[serde(default)]
    pub hosts: BTreeMap<String, Settings>,
    #[serde(default)]
    pub push: PushConfig,
}

/// `push:` in rtrain's config: what `rtrain push` never sends, on top of `.gitignore`/`.ignore`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// gitignore-style patterns, relative to the pushed directory.
    #[serde(default)]
    pub exclude: Vec<String>,
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    match s {
        None => Ok(None),
        Some(s) => {
            let dur = humantime::parse_duration(s.trim())
                .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e} (try `5s`)")))?;
            if dur.is_zero() {
                return Err(serde::de::Error::custom("a duration here must be greater than zero"));
            }
            Ok(Some(dur))
        }
    }
}

/// `env:` values are strings to the shell; YAML numbers and booleans (`OMP_NUM_THREADS: 4`) are
/// taken as written rather than refused.
fn de_env<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        I(i64),
        F(f64),
        B(bool),
    }
    let m: Option<BTreeMap<String, Scalar>> = Option::deserialize(d)?;
    Ok(m.map(|m| {
        m.into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Scalar::S(s) => s,
                    Scalar::I(i) => i.to_string(),
                    Scalar::F(f) => f.to_string(),
                    Scalar::B(b) => b.to_string(),
                };
                (k, v)
            })
            .collect()
    }))
}

/// A name the POSIX shell accepts in `export NAME=...`.
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The signals `stop_signal` may name: the catchable ones trainers use to save or to stop.
/// Not HUP: the wrapper does not catch it (a closed window must end the run), so it would die unrecorded.
pub const STOP_SIGNALS: &[&str] = &["INT", "TERM", "QUIT", "USR1", "USR2"];

/// How long a running run may stay silent before `status` calls it stalled.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(600);

/// Keepalive interval when neither rtrain's config nor ssh_config sets one. With
/// [`DEFAULT_KEEPALIVE_MAX`], russh declares a silent server dead after 5 × 1 s = 5 s (see
/// `ssh::link::detection_time`): within the 6 s rtrain promises, yet a bad link must stall one
/// segment through four TCP retransmissions before it looks dead (`ssh::link::tolerated_losses`).
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(1);
/// Unanswered keepalives tolerated when ssh_config sets no ServerAliveCountMax.
pub const DEFAULT_KEEPALIVE_MAX: usize = 4;

/// How long `up` waits for the login shell's environment (a conda init on a slow NFS home takes seconds).
pub const DEFAULT_SHELL_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_SHELL_TIMEOUT: Duration = Duration::from_secs(30);

/// The effective settings for one host: defaults, then the host's overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSettings {
    pub session: String,
    pub workdir: String,
    pub command: String,
    pub log_dir: String,
    pub checkpoint_dir: String,
    pub train_config: String,
    /// Empty: not configured (the probe looks under `lightning_logs/`).
    pub metrics_dir: String,
    pub resume_command: Option<String>,
    pub keepalive: Duration,
    pub give_up_after: Option<Duration>,
    /// Defaults' `env`, then the host's (PYTHONUNBUFFERED=1 is added at launch unless set here).
    pub env: BTreeMap<String, String>,
    /// Without the `SIG` prefix, upper case.
    pub stop_signal: String,
    pub stall_after: Duration,
    pub notify: Option<NotifyConfig>,
    /// For new runs; a run's own backend is in its run record.
    pub backend: crate::remote::backend::Choice,
    /// The `slurm:` options, defaults' and host's merged key by key.
    pub slurm: crate::remote::slurm::SlurmOptions,
    pub shell: crate::remote::run::ShellMode,
    pub shell_timeout: Duration,
}

impl ConfigFile {
    /// Load the file. `explicit` is true when the user named it (`--config`/`RTRAIN_CONFIG`): then a
    /// missing file is an error; the default location may simply not exist yet.
    pub fn load(path: &Path, explicit: bool) -> Result<ConfigFile, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(ConfigFile::default()),
            Err(e) => {
                return Err(ConfigError::File {
                    file: path.to_path_buf(),
                    msg: e.to_string(),
                })
            }
        };
        let cfg = Self::parse(&text, path)?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
        if text.trim().is_empty() {
            return Ok(ConfigFile::default());
        }
        serde_yaml_ng::from_str(text).map_err(|e| {
            let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
            // serde_yaml_ng appends " at line X column Y" itself; the location is already in front.
            let msg = e.to_string();
            let msg = match msg.find(" at line ") {
                Some(i) => msg[..i].to_string(),
                None => msg,
            };
            ConfigError::Yaml {
                file: path.to_path_buf(),
                line,
                column,
                msg,
            }
        })
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let check = |scope: &str, s: &Settings| -> Result<(), ConfigError> {
            let bad = |key: &str, why: &str| ConfigError::File {
                file: path.to_path_buf(),
                msg: format!("{scope}.{key}: {why}"),
            };
            if let Some(name) = &s.session {
                validate_session_name(name).map_err(|why| bad("session", &why))?;
            }
            for (key, val) in [
                ("workdir", &s.workdir),
                ("command", &s.command),
                ("log_dir", &s.log_dir),
                ("checkpoint_dir", &s.checkpoint_dir),
                ("train_config", &s.train_config),
                ("metrics_dir", &s.metrics_dir),
            ] {
                if let Some(v) = val {
                    if v.trim().is_empty() {
                        return Err(bad(key, "must not be empty"));
                    }
                    if v.contains('\0') {
                        return Err(bad(key, "must not contain a NUL byte"));
                    }
                }
            }
            for (name, value) in s.env.iter().flatten() {
                if !valid_env_name(name) {
                    return Err(bad(
                        &format!("env.{name}"),
                        "is not a valid variable name (letters, digits and _, not starting with a digit)",
                    ));
                }
                if value.contains('\0') {
                    return Err(bad(&format!("env.{name}"), "must not contain a NUL byte"));
                }
            }
            if let Some(sig) = &s.stop_signal {
                let norm = normalize_signal(sig);
                if !STOP_SIGNALS.contains(&norm.as_str()) {
                    return Err(bad(
                        "stop_signal",
                        &format!("{sig:?} is not one of {}", STOP_SIGNALS.join(", ")),
                    ));
                }
            }
            if let Some(n) = &s.notify {
                for (key, url) in n.hooks() {
                    let key = if key == "json" { "webhook" } else { key };
                    check_webhook_url(url).map_err(|why| bad(&format!("notify.{key}"), &why))?;
                }
            }
            if let Some(b) = &s.backend {
                crate::remote::backend::Choice::parse(b).map_err(|why| bad("backend", &why))?;
            }
            if let Some(c) = &s.slurm {
                SlurmConfig::resolve(None, Some(c))
                    .check()
                    .map_err(|why| bad("slurm", &why))?;
            }
            if let Some(m) = &s.shell {
                crate::remote::run::ShellMode::parse(m).map_err(|why| bad("shell", &why))?;
            }
            if let Some(t) = s.shell_timeout {
                // `up` holds its lock while the login shell runs, and a lock older than 60 s is broken.
                if t > MAX_SHELL_TIMEOUT {
                    return Err(bad("shell_timeout", "must be at most 30s"));
                }
            }
            if let Some(t) = &s.resume_command {
                if !t.contains("{checkpoint}") {
                    return Err(bad("resume_command", "must contain {checkpoint}"));
                }
            }
            Ok(())
        };
        check("defaults", &self.defaults)?;
        for (name, s) in &self.hosts {
            check(&format!("hosts.{name}"), s)?;
        }
        Ok(())
    }

    /// Defaults, overridden by the host's entry when there is one.
    pub fn settings_for(&self, host: &str) -> HostSettings {
        let d = &self.defaults;
        let h = self.hosts.get(host);
        let pick = |f: fn(&Settings) -> &Option<String>, fallback: &str| -> String {
            h.and_then(|h| f(h).clone())
                .or_else(|| f(d).clone())
                .unwrap_or_else(|| fallback.to_string())
        };
        HostSettings {
            session: pick(|s| &s.session, "training"),
            workdir: pick(|s| &s.workdir, "~"),
            command: pick(|s| &s.command, "make train"),
            log_dir: pick(|s| &s.log_dir, "logs"),
            checkpoint_dir: pick(|s| &s.checkpoint_dir, "outputs"),
            train_config: pick(|s| &s.train_config, "config/training_config.yaml"),
            metrics_dir: pick(|s| &s.metrics_dir, ""),
            resume_command: h
                .and_then(|h| h.resume_command.clone())
                .or_else(|| d.resume_command.clone()),
            keepalive: h.and_then(|h| h.keepalive).or(d.keepalive).unwrap_or(DEFAULT_KEEPALIVE),
            give_up_after: h.and_then(|h| h.give_up_after).or(d.give_up_after),
            env: d
                .env
                .iter()
                .flatten()
                .chain(h.and_then(|h| h.env.as_ref()).into_iter().flatten())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            stop_signal: normalize_signal(
                h.and_then(|h| h.stop_signal.as_deref())
                    .or(d.stop_signal.as_deref())
                    .unwrap_or("INT"),
            ),
            stall_after: h
                .and_then(|h| h.stall_after)
                .or(d.stall_after)
                .unwrap_or(DEFAULT_STALL_AFTER),
            notify: h.and_then(|h| h.notify.clone()).or_else(|| d.notify.clone()),
            backend: crate::remote::backend::Choice::parse(&pick(|s| &s.backend, "auto"))
                .unwrap_or(crate::remote::backend::Choice::Auto),
            slurm: SlurmConfig::resolve(d.slurm.as_ref(), h.and_then(|h| h.slurm.as_ref())),
            shell: crate::remote::run::ShellMode::parse(&pick(|s| &s.shell, "login")).unwrap_or_default(),
            shell_timeout: h
                .and_then(|h| h.shell_timeout)
                .or(d.shell_timeout)
                .unwrap_or(DEFAULT_SHELL_TIMEOUT),
        }
    }
}

/// `sigusr1`, `SIGUSR1` and `USR1` all mean USR1.
pub fn normalize_signal(s: &str) -> String {
    let up = s.trim().to_ascii_uppercase();
    up.strip_prefix("SIG").map(str::to_string).unwrap_or(up)
}

/// tmux silently rewrites `.` and `:` in session names, after which `-t NAME` no longer finds
/// the session; refuse them up front instead (screen, whose names are `PID.NAME`, is spared a `.` too).
pub fn validate_session_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '.' | ':') || c.is_control()) {
        return Err(format!("{c:?} is not allowed in a tmux session name"));
    }
    Ok(())
}

/// OpenSSH sets no limit (a loop just forks ssh after ssh); real bastion chains are 1-3 hops.
pub const MAX_JUMP_HOPS: usize = 8;

/// Everything needed to connect to one host and act on it: the ssh endpoint, and rtrain's settings
/// for it. Reads of the endpoint's fields go through `Deref` (`target.name`, `target.ssh`), so a
/// `&Target` is an `&Endpoint` wherever the ssh layer asks for one.
#[derive(Debug, Clone)]
pub struct Target {
    pub endpoint: Endpoint,
    pub settings: HostSettings,
}

impl std::ops::Deref for Target {
    type Target = Endpoint;
    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl std::ops::DerefMut for Target {
    fn deref_mut(&mut self) -> &mut Endpoint {
        &mut self.endpoint
    }
}

impl From<Target> for Endpoint {
    fn from(t: Target) -> Endpoint {
        t.endpoint
    }
}

impl Target {
    /// Keepalive probe interval and how many may go unanswered: ssh_config's ServerAlive* win over
    /// rtrain's `keepalive`, as the user set them for this host on purpose.
    pub fn keepalive(&self) -> (Duration, usize) {
        let interval = self.ssh.server_alive_interval.unwrap_or(self.settings.keepalive);
        let max = self
            .ssh
            .server_alive_count_max
            .map(|m| m as usize)
            .unwrap_or(DEFAULT_KEEPALIVE_MAX);
        (interval, max.max(1))
    }

    /// What a command uses for this host: its keepalive (ssh_config over rtrain's config) and
    /// ConnectTimeout. One place, so the benchmark measures exactly what users get.
    pub fn connect_options(&self, agent_socket: Option<PathBuf>) -> ConnectOptions {
        let (interval, max) = self.keepalive();
        ConnectOptions {
            keepalive_interval: interval,
            keepalive_max: max,
            connect_timeout: self.connect_timeout(),
            // OpenSSH applies ConnectTimeout to the handshake too, so a host that accepts TCP and
            // then says nothing fails as fast as one that does not answer at all.
            handshake_timeout: self.ssh.connect_timeout.unwrap_or(Duration::from_secs(15)),
            agent_socket,
        }
    }
}

/// Where files live; taken from the environment once, so tests can point everything at temp dirs.
#[derive(Debug, Clone)]
pub struct Paths {
    pub home: PathBuf,
    pub ssh_config: PathBuf,
    pub rtrain_config: PathBuf,
    pub rtrain_config_explicit: bool,
    pub local_user: String,
}

impl Paths {
    pub fn resolve(
        home: PathBuf,
        config_dir: Option<PathBuf>,
        explicit_config: Option<PathBuf>,
        local_user: String,
    ) -> Paths {
        let config_dir = config_dir.unwrap_or_else(|| home.join(".config"));
        Paths {
            ssh_config: home.join(".ssh").join("config"),
            rtrain_config_explicit: explicit_config.is_some(),
            rtrain_config: explicit_config.unwrap_or_else(|| config_dir.join("rtrain").join("config.yaml")),
            home,
            local_user,
        }
    }

    /// `~/.ssh/config`'s answer for a destination, as `ssh -G` would give it.
    pub fn resolve_ssh(&self, spec: &HostSpec) -> Result<HostConfig, ConfigError> {
        let ctx = ResolveContext {
            home: &self.home,
            local_user: &self.local_user,
        };
        Ok(ssh_config::resolve(
            &self.ssh_config,
            &spec.host,
            spec.user.as_deref(),
            spec.port,
            &ctx,
        )?)
    }
}

/// Resolve HOST into a Target, the way OpenSSH would for the SSH part, jump hosts included.
pub fn resolve_target(
    name: &str,
    cfg: &ConfigFile,
    paths: &Paths,
    accept_new_host_key: bool,
) -> Result<Target, ConfigError> {
    let spec = HostSpec::parse(name).map_err(ConfigError::Invalid)?;
    let resolver = RouteResolver {
        goal: name,
        cfg,
        paths,
        accept_new_host_key,
    };
    resolver.resolve(name, &spec, None, &mut vec![name.to_string()], &mut Vec::new())
}

/// What the system resolver (getaddrinfo, as OpenSSH uses) says about a host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Found,
    /// The resolver answered that the name does not exist (EAI_NONAME).
    NoSuchName,
    /// Anything else (no network, a DNS timeout): not evidence of a typo.
    Failed,
}

pub fn dns_lookup(host: &str) -> Lookup {
    let Ok(name) = std::ffi::CString::new(host) else {
        return Lookup::NoSuchName;
    };
    // SAFETY: a zeroed addrinfo is the documented "no hints" value; getaddrinfo writes a list to
    // `res` only on success, which is freed once, right here.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_socktype = libc::SOCK_STREAM;
        let mut res: *mut libc::addrinfo = std::ptr::null_mut();
        match libc::getaddrinfo(name.as_ptr(), std::ptr::null(), &hints, &mut res) {
            0 => {
                libc::freeaddrinfo(res);
                Lookup::Found
            }
            libc::EAI_NONAME => Lookup::NoSuchName,
            _ => Lookup::Failed,
        }
    }
}

/// Refuses a HOST that nothing knows: not a host of rtrain's config, not a `Host` of
/// `~/.ssh/config` (by alias or by a pattern that gives it a HostName), reached directly (a jump
/// host or ProxyCommand may know names the laptop's DNS does not), and a name the resolver says
/// does not exist. Without this a typo would read as an outage (exit 3) after a connect attempt.
pub fn check_known(
    target: &Target,
    cfg: &ConfigFile,
    paths: &Paths,
    lookup: impl Fn(&str) -> Lookup,
) -> Result<(), ConfigError> {
    let spec = HostSpec::parse(&target.name).map_err(ConfigError::Invalid)?;
    if cfg.hosts.contains_key(&target.name)
        || cfg.hosts.contains_key(&spec.host)
        || !matches!(target.route, Route::Direct)
        || target.ssh.host_name != spec.host
    {
        return Ok(());
    }
    let ctx = ResolveContext {
        home: &paths.home,
        local_user: &paths.local_user,
    };
    if ssh_config::list_hosts(&paths.ssh_config, &ctx)?.contains(&spec.host) {
        return Ok(());
    }
    match lookup(&target.ssh.host_name) {
        Lookup::NoSuchName => Err(ConfigError::UnknownHost(spec.host)),
        Lookup::Found | Lookup::Failed => Ok(()),
    }
}

struct RouteResolver<'a> {
    goal: &'a str,
    cfg: &'a ConfigFile,
    paths: &'a Paths,
    accept_new_host_key: bool,
}

impl RouteResolver<'_> {
    /// One host of the route. `jump_override` is OpenSSH's `-J` given to the ssh it runs for a
    /// hop: the hops before it in the list, which replace that hop's own ProxyJump/ProxyCommand.
    /// `seen` holds (element, override) pairs being resolved: resolution is deterministic, so
    /// meeting one again is a loop for sure.
    fn resolve(
        &self,
        name: &str,
        spec: &HostSpec,
        jump_override: Option<&str>,
        shown: &mut Vec<String>,
        seen: &mut Vec<(String, Option<String>)>,
    ) -> Result<Target, ConfigError> {
        let ssh = self.paths.resolve_ssh(spec)?;
        let user = ssh.user.clone().unwrap_or_else(|| self.paths.local_user.clone());
        let port = ssh.port.unwrap_or(22);
        // rtrain's own host entry is found by the full name first (`gpu-box`), then by the bare host.
        let key = if self.cfg.hosts.contains_key(name) {
            name
        } else {
            spec.host.as_str()
        };
        let mut target = Target {
            endpoint: Endpoint {
                name: name.to_string(),
                ssh,
                user,
                port,
                route: Route::Direct,
                home: self.paths.home.clone(),
                accept_new_host_key: self.accept_new_host_key,
            },
            settings: self.cfg.settings_for(key),
        };
        let route_error = |msg: String| ConfigError::Route {
            host: self.goal.to_string(),
            msg,
        };
        let jump = match jump_override {
            Some(list) => Some(list.to_string()),
            None => target
                .ssh
                .proxy_jump
                .clone()
                .filter(|j| !j.eq_ignore_ascii_case("none")),
        };
        if let Some(list) = jump {
            let (earlier, last) = crate::ssh::proxy::split_jump_list(&list);
            let hop_spec =
                crate::ssh::proxy::parse_jump_host(last).map_err(|e| route_error(format!("ProxyJump: {e}")))?;
            let last = last.trim();
            shown.push(last.to_string());
            let key = (last.to_string(), earlier.map(str::to_string));
            let route = || shown.iter().rev().cloned().collect::<Vec<_>>().join(" -> ");
            if seen.contains(&key) {
                return Err(route_error(format!(
                    "ProxyJump loops ({}); give the jump host `ProxyJump none` in ~/.ssh/config, or leave it out of \
                     the block that sets ProxyJump (e.g. `Host * !{}`)",
                    route(),
                    hop_spec.host
                )));
            }
            if seen.len() >= MAX_JUMP_HOPS {
                return Err(route_error(format!(
                    "more than {MAX_JUMP_HOPS} jump hosts ({}); is there a loop in ~/.ssh/config?",
                    route()
                )));
            }
            seen.push(key);
            let hop = self.resolve(last, &hop_spec, earlier, shown, seen)?;
            seen.pop();
            shown.pop();
            target.route = Route::Jump(Box::new(hop.endpoint));
        } else if let (None, Some(command)) = (jump_override, target.ssh.proxy_command.as_deref()) {
            let key_alias = target.ssh.host_key_alias.as_deref().unwrap_or(&spec.host);
            let tokens = crate::ssh::proxy::CommandTokens {
                host_name: &target.ssh.host_name,
                port: target.port,
                user: &target.user,
                alias: &spec.host,
                key_alias,
            };
            let expanded = crate::ssh::proxy::expand_proxy_command(command, &tokens)
                .map_err(|e| route_error(format!("{name}: {e}")))?;
            target.route = Route::Command(expanded);
        }
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::run::ShellMode;

    fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
        let cfg = ConfigFile::parse(text, Path::new("/x/config.yaml"))?;
        cfg.validate(Path::new("/x/config.yaml"))?;
        Ok(cfg)
    }

    #[test]
    fn example_config_in_repo_loads_and_sets_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rtrain.example.yaml");
        let cfg = ConfigFile::load(&path, true).unwrap();
        let d = &cfg.defaults;
        // The example documents every key: each must be present there.
        assert!(d.session.is_some() && d.workdir.is_some() && d.command.is_some());
        assert!(d.log_dir.is_some() && d.checkpoint_dir.is_some() && d.train_config.is_some());
        assert!(d.keepalive.is_some());
        assert!(d.give_up_after.is_some());
        assert!(d.env.is_some() && d.stop_signal.is_some() && d.stall_after.is_some());
        assert!(!cfg.hosts.is_empty());
        assert!(cfg.hosts.values().any(|h| h.resume_command.is_some()));
        assert!(!cfg.push.exclude.is_empty());
    }

    #[test]
    fn host_overrides_defaults_key_by_key() {
        let cfg = parse("defaults:\n  session: s1\n  workdir: ~/a\nhosts:\n  gpu-box:\n    workdir: ~/llm finetune\n")
            .unwrap();
        let s = cfg.settings_for("gpu-box");
        assert_eq!(s.session, "s1");
        assert_eq!(s.workdir, "~/llm finetune");
        assert_eq!(s.command, "make train");
        assert_eq!(cfg.settings_for("other").workdir, "~/a");
    }

    #[test]
    fn notify_urls_must_be_http_and_safe_for_curl_config_and_a_host_replaces_the_defaults() {
        let load = |yaml: &str| {
            let c = ConfigFile::parse(yaml, Path::new("c.yaml")).unwrap();
            c.validate(Path::new("c.yaml")).map(|_| c)
        };
        let c = load("defaults:\n  notify:\n    ntfy: https://ntfy.sh/t\nhosts:\n  g:\n    notify:\n      webhook: http://h/x\n      events: [failed]\n").unwrap();
        let g = c.settings_for("g").notify.unwrap();
        assert_eq!(g.hooks(), vec![("json", "http://h/x")]);
        assert!(g.wants(NotifyEvent::Failed) && !g.wants(NotifyEvent::Finished));
        let d = c.settings_for("other").notify.unwrap();
        assert!(d.wants(NotifyEvent::Stalled) && !d.wants(NotifyEvent::Checkpoint));
        for bad in ["ftp://h/x", "https://h/a b", "https://h/\"x", "https://h/\\x"] {
            let e = load(&format!("defaults:\n  notify:\n    slack: '{bad}'\n")).unwrap_err();
            assert!(e.to_string().contains("notify.slack"), "{bad}: {e}");
        }
    }

    #[test]
    fn shell_is_login_by_default_and_a_host_may_choose_sh() {
        let cfg = parse("defaults:\n  shell_timeout: 3s\nhosts:\n  clean:\n    shell: sh\n").unwrap();
        let d = cfg.settings_for("other");
        assert_eq!((d.shell, d.shell_timeout), (ShellMode::Login, Duration::from_secs(3)));
        assert_eq!(cfg.settings_for("clean").shell, ShellMode::Sh);
        let none = parse("defaults:\n  workdir: ~/x\n").unwrap().settings_for("x");
        assert_eq!(
            (none.shell, none.shell_timeout),
            (ShellMode::Login, DEFAULT_SHELL_TIMEOUT)
        );
    }

    #[test]
    fn env_merges_key_by_key_and_stop_signal_and_stall_after_have_defaults() {
        let cfg = parse(
            "defaults:\n  env:\n    A: one\n    N: 4\n    B: true\nhosts:\n  g:\n    env:\n      A: \"it's two\"\n    stop_signal: sigusr1\n    stall_after: 90s\n",
        )
        .unwrap();
        let g = cfg.settings_for("g");
        let env: Vec<(&str, &str)> = g.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(env, [("A", "it's two"), ("B", "true"), ("N", "4")]);
        assert_eq!(
            (g.stop_signal.as_str(), g.stall_after),
            ("USR1", Duration::from_secs(90))
        );
        let o = cfg.settings_for("other");
        assert_eq!(o.env.get("A").map(String::as_str), Some("one"));
        assert_eq!((o.stop_signal.as_str(), o.stall_after), ("INT", DEFAULT_STALL_AFTER));
    }

    #[test]
    fn keepalive_parses_human_durations() {
        let cfg = parse("defaults:\n  keepalive: 500ms\n").unwrap();
        assert_eq!(cfg.defaults.keepalive, Some(Duration::from_millis(500)));
    }

    /// Each invalid fixture must fail with an error naming file:line:column (or the key).
    #[test]
    fn invalid_configs_name_file_line_and_column() {
        let cases: &[(&str, &str)] = &[
            (
                "defaults:\n  sesion: x\n",
                "/x/config.yaml:2:3: defaults: unknown field `sesion`",
            ),
            (
                "hosts:\n  a:\n    workdir: ~/x\n    colour: red\n",
                "/x/config.yaml:4:5: hosts.a: unknown field `colour`",
            ),
            ("defaults:\n  keepalive: soon\n", "/x/config.yaml:2:"),
            ("defaults: [1, 2]\n", "/x/config.yaml:1:"),
            ("defaults:\n  session: [a]\n", "/x/config.yaml:2:"),
            ("top: 1\n", "unknown field `top`"),
            ("defaults:\n  session: a.b\n", "defaults.session"),
            (
                "hosts:\n  x:\n    command: '  '\n",
                "hosts.x.command: must not be empty",
            ),
            ("defaults:\n  resume_command: make train\n", "must contain {checkpoint}"),
            ("defaults:\n  keepalive: 0s\n", "greater than zero"),
            ("defaults:\n  give_up_after: 0s\n", "greater than zero"),
            (
                "defaults:\n  env:\n    1X: a\n",
                "defaults.env.1X: is not a valid variable name",
            ),
            ("hosts:\n  a:\n    env:\n      'A;B': a\n", "hosts.a.env.A;B"),
            ("defaults:\n  env:\n    A: [1]\n", "/x/config.yaml:3:"),
            (
                "defaults:\n  stop_signal: KILL\n",
                "defaults.stop_signal: \"KILL\" is not one of",
            ),
            ("defaults:\n  stall_after: 0s\n", "greater than zero"),
            (
                "hosts:\n  a:\n    shell: bash\n",
                "hosts.a.shell: \"bash\" is not one of login, sh",
            ),
            (
                "defaults:\n  shell_timeout: 31s\n",
                "defaults.shell_timeout: must be at most 30s",
            ),
            ("defaults:\n  shell_timeout: 0s\n", "greater than zero"),
        ];
        assert!(!cases.is_empty());
        for (text, want) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(
                err.contains(want),
                "for {text:?}: got {err:?}, want it to contain {want:?}"
            );
        }
    }

    fn target_with(settings: HostSettings, ssh: HostConfig) -> Target {
        Target {
            endpoint: Endpoint {
                name: "box".into(),
                ssh,
                user: "me".into(),
                port: 22,
                route: Route::Direct,
                home: PathBuf::from("/home/me"),
                accept_new_host_key: false,
            },
            settings,
        }
    }

    #[test]
    fn default_keepalive_declares_a_dead_link_within_6_seconds() {
        let t = target_with(ConfigFile::default().settings_for("box"), HostConfig::default());
        let (interval, max) = t.keepalive();
        assert_eq!((interval, max), (Duration::from_secs(1), 4));
        assert!(crate::ssh::link::detection_time(interval, max) <= Duration::from_secs(6));
    }

    #[test]
    fn ssh_config_server_alive_options_win_over_rtrain_keepalive() {
        let settings = parse("defaults:\n  keepalive: 1s\n").unwrap().settings_for("box");
        let t = target_with(settings.clone(), HostConfig::default());
        assert_eq!(t.keepalive(), (Duration::from_secs(1), DEFAULT_KEEPALIVE_MAX));
        let ssh = HostConfig {
            server_alive_interval: Some(Duration::from_secs(15)),
            server_alive_count_max: Some(4),
            ..HostConfig::default()
        };
        assert_eq!(
            target_with(settings.clone(), ssh).keepalive(),
            (Duration::from_secs(15), 4)
        );
        let zero = HostConfig {
            server_alive_count_max: Some(0),
            ..HostConfig::default()
        };
        assert_eq!(
            target_with(settings, zero).keepalive().1,
            1,
            "0 would disable russh's check entirely"
        );
    }

    #[test]
    fn missing_default_config_is_empty_but_missing_explicit_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope.yaml");
        assert_eq!(ConfigFile::load(&p, false).unwrap(), ConfigFile::default());
        assert!(ConfigFile::load(&p, true).is_err());
    }

    #[test]
    fn host_specs_parse_like_openssh_destinations() {
        let p = |s| HostSpec::parse(s).unwrap();
        assert_eq!(
            p("box"),
            HostSpec {
                user: None,
                host: "box".into(),
                port: None
            }
        );
        assert_eq!(
            p("me@box:2222"),
            HostSpec {
                user: Some("me".into()),
                host: "box".into(),
                port: Some(2222)
            }
        );
        assert_eq!(
            p("[::1]:22"),
            HostSpec {
                user: None,
                host: "::1".into(),
                port: Some(22)
            }
        );
        assert_eq!(
            p("::1"),
            HostSpec {
                user: None,
                host: "::1".into(),
                port: None
            }
        );
        for bad in ["", "a b", "-oProxyCommand=x", "box:0", "box:99999", "@box", "[::1"] {
            assert!(HostSpec::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    /// A temp HOME with this ~/.ssh/config, and the resolved route for `host`.
    fn route(ssh_config: &str, host: &str) -> Result<Target, ConfigError> {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
        std::fs::write(home.path().join(".ssh/config"), ssh_config).unwrap();
        let paths = Paths::resolve(home.path().to_path_buf(), None, None, "me".into());
        resolve_target(host, &ConfigFile::default(), &paths, false)
    }

    /// The route as `name=user@host:port` in connection order, the destination last.
    fn hops_of(t: &Target) -> Vec<String> {
        let mut out: Vec<String> = t
            .hops()
            .iter()
            .map(|h| format!("{}={}", h.name, h.destination()))
            .collect();
        out.push(format!("{}={}", t.name, t.destination()));
        out
    }

    #[test]
    fn single_jump_host_is_resolved_through_its_own_config() {
        let t = route(
            "Host gpu\n  HostName 10.0.0.5\n  ProxyJump bastion\nHost bastion\n  HostName b.example\n  User jumper\n  Port 2200\n",
            "gpu",
        )
        .unwrap();
        assert_eq!(hops_of(&t), ["bastion=jumper@b.example:2200", "gpu=me@10.0.0.5:22"]);
    }

    #[test]
    fn chained_jump_hosts_connect_left_to_right() {
        let t = route(
            "Host gpu\n  ProxyJump a,u@b:2222\nHost a\n  HostName a.example\nHost b\n  HostName b.example\n  User ignored\n",
            "gpu",
        )
        .unwrap();
        // `u@b:2222` wins over b's User, as `ssh -l u -p 2222 b` would.
        assert_eq!(
            hops_of(&t),
            ["a=me@a.example:22", "u@b:2222=u@b.example:2222", "gpu=me@gpu:22"]
        );
    }

    #[test]
    fn a_jump_hosts_own_proxy_jump_is_followed_unless_the_list_says_how_to_reach_it() {
        let cfg = "Host gpu\n  ProxyJump inner\nHost gpu2\n  ProxyJump outer2,inner\n\
                   Host inner\n  ProxyJump outer\n  ProxyCommand nc %h %p\n";
        assert_eq!(
            hops_of(&route(cfg, "gpu").unwrap()),
            ["outer=me@outer:22", "inner=me@inner:22", "gpu=me@gpu:22"]
        );
        // `ssh -J outer2 inner`: the list replaces inner's own ProxyJump (and its ProxyCommand).
        let t = route(cfg, "gpu2").unwrap();
        assert_eq!(
            hops_of(&t),
            ["outer2=me@outer2:22", "inner=me@inner:22", "gpu2=me@gpu2:22"]
        );
        assert!(matches!(t.hops()[1].route, Route::Jump(_)));
        assert!(matches!(t.hops()[0].route, Route::Direct));
    }

    #[test]
    fn proxy_jump_none_in_a_specific_block_wins_over_host_star() {
        let cfg = "Host direct\n  ProxyJump none\nHost bastion\n  ProxyJump none\nHost *\n  ProxyJump bastion\n";
        assert!(matches!(route(cfg, "direct").unwrap().route, Route::Direct));
        assert_eq!(
            hops_of(&route(cfg, "gpu").unwrap()),
            ["bastion=me@bastion:22", "gpu=me@gpu:22"]
        );
    }

    #[test]
    fn regression_jump_host_caught_by_its_own_host_star_proxy_jump_is_a_loop_error() {
        // The classic mistake: `Host *` ProxyJump without excluding the bastion itself.
        let err = route("Host *\n  ProxyJump bastion\n", "gpu").unwrap_err();
        assert!(matches!(err, ConfigError::Route { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("loops") && msg.contains("bastion -> bastion -> gpu"),
            "{msg}"
        );
        assert!(msg.contains("Host * !bastion"), "{msg}");
    }

    #[test]
    fn jump_hosts_pointing_at_each_other_are_a_loop_error() {
        let err = route(
            "Host gpu\n  ProxyJump a\nHost a\n  ProxyJump b\nHost b\n  ProxyJump a\n",
            "gpu",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("loops") && err.contains("a -> b -> a -> gpu"), "{err}");
    }

    #[test]
    fn too_long_a_chain_is_an_error_naming_the_limit() {
        let list: Vec<String> = (0..=MAX_JUMP_HOPS).map(|i| format!("h{i}")).collect();
        let err = route(&format!("Host gpu\n  ProxyJump {}\n", list.join(",")), "gpu")
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("more than {MAX_JUMP_HOPS} jump hosts")), "{err}");
        let ok: Vec<String> = (0..MAX_JUMP_HOPS).map(|i| format!("h{i}")).collect();
        let t = route(&format!("Host gpu\n  ProxyJump {}\n", ok.join(",")), "gpu").unwrap();
        assert_eq!(t.hops().len(), MAX_JUMP_HOPS);
    }

    #[test]
    fn bad_jump_host_is_a_config_error() {
        let err = route("Host gpu\n  ProxyJump -oProxyCommand=x\n", "gpu")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid jump host"), "{err}");
    }

    #[test]
    fn proxy_command_is_expanded_with_the_hosts_values() {
        let t = route(
            "Host gpu\n  HostName 10.0.0.5\n  User alice\n  Port 2222\n  ProxyCommand ssh -W %h:%p -l %r j # %n %%\n",
            "gpu",
        )
        .unwrap();
        match &t.route {
            Route::Command(c) => assert_eq!(c, "ssh -W 10.0.0.5:2222 -l alice j # gpu %"),
            other => panic!("{other:?}"),
        }
        let err = route("Host gpu\n  ProxyCommand nc %h %q\n", "gpu")
            .unwrap_err()
            .to_string();
        assert!(err.contains("%q"), "{err}");
    }

    #[test]
    fn jump_host_reached_by_proxy_command() {
        let t = route("Host gpu\n  ProxyJump b\nHost b\n  ProxyCommand nc %h %p\n", "gpu").unwrap();
        match &t.hops()[0].route {
            Route::Command(c) => assert_eq!(c, "nc b 22"),
            other => panic!("{other:?}"),
        }
    }
}

#[cfg(test)]
mod unknown_host_tests {
    use super::*;

    /// `check_known` for `host` with this ~/.ssh/config and rtrain config, DNS answering `dns`.
    fn check(ssh_config: &str, rtrain: &str, host: &str, dns: Lookup) -> Result<(), ConfigError> {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
        std::fs::write(home.path().join(".ssh/config"), ssh_config).unwrap();
        let paths = Paths::resolve(home.path().to_path_buf(), None, None, "me".into());
        let cfg = ConfigFile::parse(rtrain, Path::new("config.yaml")).unwrap();
        let t = resolve_target(host, &cfg, &paths, false).unwrap();
        check_known(&t, &cfg, &paths, |_| dns)
    }

    #[test]
    fn a_name_no_config_knows_and_dns_lacks_is_unknown_and_said_so() {
        let err = check("", "", "nosuchhost", Lookup::NoSuchName).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown host nosuchhost: not in ~/.ssh/config or rtrain's config, and DNS has no such name"
        );
        let err = check("", "", "alice@nosuchhost:2222", Lookup::NoSuchName).unwrap_err();
        assert!(
            matches!(&err, ConfigError::UnknownHost(h) if h == "nosuchhost"),
            "{err}"
        );
    }

    #[test]
    fn known_names_and_other_dns_failures_are_left_to_the_connection() {
        let none = Lookup::NoSuchName;
        // An alias of ~/.ssh/config, even one without HostName (DNS then fails at connect: exit 3).
        assert!(check("Host nosuchhost\n  User a\n", "", "nosuchhost", none).is_ok());
        // A pattern that gives it a HostName.
        assert!(check("Host *.lab\n  HostName 10.0.0.1\n", "", "gpu.lab", none).is_ok());
        // rtrain's own host entry.
        assert!(check("", "hosts:\n  nosuchhost: {}\n", "nosuchhost", none).is_ok());
        // Reached through a jump host or a ProxyCommand, which may know names the laptop does not.
        assert!(check(
            "Host bastion\n  ProxyJump none\nHost *\n  ProxyJump bastion\n",
            "",
            "inner",
            none
        )
        .is_ok());
        assert!(check("Host *\n  ProxyCommand nc %h %p\n", "", "inner", none).is_ok());
        // No network is not a typo.
        assert!(check("", "", "nosuchhost", Lookup::Failed).is_ok());
        assert!(check("", "", "nosuchhost", Lookup::Found).is_ok());
    }

    #[test]
    fn the_system_resolver_knows_ip_literals_and_localhost() {
        assert_eq!(dns_lookup("127.0.0.1"), Lookup::Found);
        assert_eq!(dns_lookup("localhost"), Lookup::Found);
        assert_eq!(dns_lookup("bad\0name"), Lookup::NoSuchName);
    }
}
