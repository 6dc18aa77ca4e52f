//! OpenSSH client-config (`ssh_config(5)`) parser and resolver, so that rtrain connects to exactly
//! the host, port, user, keys and proxies that `ssh` would pick for the same destination.
//!
//! It exists because russh-config 0.58 ignores `Include`, `Match` and `ServerAlive*`, fails on any
//! option placed before the first `Host`, and drops `Key=Value` and tab-separated lines — all of
//! which are common in real `~/.ssh/config` files.
//!
//! The behaviour follows OpenSSH 9.2's `readconf.c` (checked against `ssh -G`): the file is read
//! top to bottom, the first value obtained for an option wins, `Host`/`Match` lines switch whether
//! the following lines apply, and `Include` splices other files in place. Like OpenSSH, every line
//! is validated even when it belongs to a block that does not apply, so a typo fails loudly
//! instead of silently changing which host rtrain reaches.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrictHostKeyChecking {
    Yes,
    AcceptNew,
    No,
    Ask,
}

/// Everything rtrain needs for one destination, after OpenSSH's first-value-wins resolution.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostConfig {
    /// The name as given (the alias).
    pub host: String,
    /// `HostName` (with `%h` expanded), or the alias itself; lower-cased as `ssh` does.
    pub host_name: String,
    pub user: Option<String>,
    /// `None` means "not set": the caller uses 22.
    pub port: Option<u16>,
    /// Accumulated in order (IdentityFile is additive), duplicates dropped as OpenSSH does,
    /// `~`, `%`-tokens and `${VAR}` expanded. `IdentityFile none` entries are left out.
    pub identity_files: Vec<PathBuf>,
    pub identities_only: bool,
    /// `"none"`, `"SSH_AUTH_SOCK"`, a legacy `"$VAR"`, or a path (`~`/tokens expanded).
    pub identity_agent: Option<String>,
    /// Raw value, e.g. `"bastion"`, `"a,b"` or `"user@h:2222"`; `"none"` is kept as `Some("none")`.
    pub proxy_jump: Option<String>,
    /// Raw value (tokens `%h %p %r` are expanded by the caller later). `ProxyCommand none`, and
    /// the implicit `none` a `ProxyJump` sets in OpenSSH, both come out as `None`.
    pub proxy_command: Option<String>,
    /// Several paths allowed on one line, `~`/tokens expanded; empty = not set.
    pub user_known_hosts_files: Vec<PathBuf>,
    /// Kept verbatim, as OpenSSH does not expand these; empty = not set.
    pub global_known_hosts_files: Vec<PathBuf>,
    pub strict_host_key_checking: Option<StrictHostKeyChecking>,
    /// `None` when unset, `none` or 0 (OpenSSH treats 0 as "no timeout").
    pub connect_timeout: Option<Duration>,
    /// `None` when unset or 0 (disabled).
    pub server_alive_interval: Option<Duration>,
    pub server_alive_count_max: Option<u32>,
    /// Only for ProxyCommand's `%k`; rtrain still looks host keys up by HostName (noted as unsupported).
    pub host_key_alias: Option<String>,
    /// `PreferredAuthentications` as written (OpenSSH matches names exactly); `None`: its default order.
    pub preferred_authentications: Option<Vec<String>>,
    /// `PubkeyAuthentication`, `PasswordAuthentication`, `KbdInteractiveAuthentication` (or its
    /// old name ChallengeResponseAuthentication); `None`: OpenSSH's default, yes.
    pub pubkey_authentication: Option<bool>,
    pub password_authentication: Option<bool>,
    pub kbd_interactive_authentication: Option<bool>,
    /// `None`: OpenSSH's default, 3.
    pub number_of_password_prompts: Option<u32>,
    /// `CertificateFile`, accumulated and expanded like IdentityFile.
    pub certificate_files: Vec<PathBuf>,
    /// Keywords that were set for this host but rtrain ignores, as `"Keyword (file:line)"`,
    /// plus `"Match exec (file:line)"`-style notes for blocks that could not be evaluated.
    pub unsupported: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SshConfigError {
    #[error("{file}:{line}: {msg}")]
    Syntax { file: PathBuf, line: usize, msg: String },
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct ResolveContext<'a> {
    /// Decides where `~` and `~/.ssh` are (`$HOME`, so tests run hermetically).
    pub home: &'a Path,
    /// For `%u` and `Match localuser`, and the remote user when none is configured.
    pub local_user: &'a str,
}

/// Parse `config_path` (normally `$HOME/.ssh/config`; a missing file means an empty config, not an
/// error) and resolve `host` the way `ssh -G host` would. `user_override`/`port_override` come from
/// a literal `user@host:port` destination and win over the file (like `ssh -p`/`-l`).
pub fn resolve(
    config_path: &Path,
    host: &str,
    user_override: Option<&str>,
    port_override: Option<u16>,
    ctx: &ResolveContext,
) -> Result<HostConfig, SshConfigError> {
    let config = load(config_path, ctx)?;
    let mut resolver = Resolver::new(host, *ctx);
    // OpenSSH stores -l/-p (and user@) before reading any file, so they win over the file and
    // are visible to `Match user` and `%r`.
    resolver.user = user_override.map(str::to_owned);
    resolver.port = port_override;
    let mut active = true;
    resolver.walk(&config, &mut active, false)?;
    resolver.finish()
}

/// The concrete `Host` aliases (no wildcard, no negation) defined in the file and its Includes, in
/// order, deduplicated — for `rtrain hosts`.
pub fn list_hosts(config_path: &Path, ctx: &ResolveContext) -> Result<Vec<String>, SshConfigError> {
    let config = load(config_path, ctx)?;
    let mut hosts = Vec::new();
    let mut seen = HashSet::new();
    collect_hosts(&config, &mut hosts, &mut seen);
    Ok(hosts)
}

// ---------------------------------------------------------------------------------------------
// Parsed form. Parsing happens once, up front, so syntax errors surface regardless of which host
// is asked for (as in OpenSSH), and resolving is a plain walk over the tree.

/// OpenSSH's READCONF_MAX_DEPTH: the top file is depth 0, a 17th nested Include is fatal.
const MAX_INCLUDE_DEPTH: usize = 16;

const WHITESPACE: [char; 4] = [' ', '\t', '\r', '\n'];

pub(crate) struct ConfigFile {
    path: PathBuf,
    entries: Vec<Entry>,
}

struct Entry {
    line: usize,
    directive: Directive,
}

enum Directive {
    Host(Vec<HostPattern>),
    Match(Vec<Criterion>),
    Include(Vec<ConfigFile>),
    Set(Setting),
}

struct HostPattern {
    negated: bool,
    pattern: String,
}

struct Criterion {
    negated: bool,
    kind: CriterionKind,
}

enum CriterionKind {
    All,
    Host(String),
    OriginalHost(String),
    User(String),
    LocalUser(String),
    /// Criteria OpenSSH knows but rtrain cannot evaluate (`exec` would run arbitrary commands,
    /// `canonical`/`final` need a second, post-canonicalisation pass).
    Unsupported(String),
}

#[derive(Clone, Copy)]
enum AuthFlag {
    Pubkey,
    Password,
    KbdInteractive,
}

enum Setting {
    HostName(String),
    User(String),
    Port(u16),
    IdentityFile(String),
    IdentitiesOnly(bool),
    IdentityAgent(String),
    ProxyJump(String),
    ProxyCommand(String),
    UserKnownHostsFiles(Vec<String>),
    GlobalKnownHostsFiles(Vec<String>),
    StrictHostKeyChecking(StrictHostKeyChecking),
    /// `None` is the literal `none`, which OpenSSH stores as "unset" so a later line still wins.
    ConnectTimeout(Option<u64>),
    ServerAliveInterval(Option<u64>),
    ServerAliveCountMax(u32),
    /// Only tracked because `%k` expands to it; still reported as unsupported.
    HostKeyAlias(String),
    PreferredAuthentications(Vec<String>),
    /// Which of PubkeyAuthentication, PasswordAuthentication, KbdInteractiveAuthentication.
    AuthFlag(AuthFlag, bool),
    NumberOfPasswordPrompts(u32),
    CertificateFile(String),
    /// Meta-option that only tunes OpenSSH's own strictness; rtrain is lenient anyway.
    IgnoreUnknown,
    Unsupported(String),
}

fn syntax(file: &Path, line: usize, msg: impl Into<String>) -> SshConfigError {
    SshConfigError::Syntax {
        file: file.to_path_buf(),
        line,
        msg: msg.into(),
    }
}

fn load(path: &Path, ctx: &ResolveContext) -> Result<ConfigFile, SshConfigError> {
    match read_text(path)? {
        Some(text) => parse_file(path, &text, ctx, 0),
        None => Ok(ConfigFile {
            path: path.to_path_buf(),
            entries: Vec::new(),
        }),
    }
}

/// `Ok(None)` for a missing file: both the main config and Include targets may legitimately be
/// absent (a dangling symlink matched by a glob, a laptop without `~/.ssh/config`).
fn read_text(path: &Path) -> Result<Option<String>, SshConfigError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SshConfigError::Io {
            file: path.to_path_buf(),
            source,
        }),
    }
}

pub(crate) fn parse_file(
    path: &Path,
    text: &str,
    ctx: &ResolveContext,
    depth: usize,
) -> Result<ConfigFile, SshConfigError> {
    let mut entries = Vec::new();
    for (idx, raw) in text.split('\n').enumerate() {
        let line = idx + 1;
        if let Some(directive) = parse_line(raw, path, line, ctx, depth)? {
            entries.push(Entry { line, directive });
        }
    }
    Ok(ConfigFile {
        path: path.to_path_buf(),
        entries,
    })
}

/// Keywords rtrain interprets; every other keyword is recorded as unsupported when it applies.
const HANDLED_KEYWORDS: &[&str] = &[
    "host",
    "match",
    "include",
    "hostname",
    "user",
    "port",
    "identityfile",
    "identitiesonly",
    "identityagent",
    "proxyjump",
    "proxycommand",
    "userknownhostsfile",
    "globalknownhostsfile",
    "stricthostkeychecking",
    "connecttimeout",
    "serveraliveinterval",
    "serveralivecountmax",
    "hostkeyalias",
    "ignoreunknown",
    "preferredauthentications",
    "pubkeyauthentication",
    "passwordauthentication",
    "kbdinteractiveauthentication",
    "challengeresponseauthentication",
    "numberofpasswordprompts",
    "certificatefile",
];

fn parse_line(
    raw: &str,
    file: &Path,
    line: usize,
    ctx: &ResolveContext,
    depth: usize,
) -> Result<Option<Directive>, SshConfigError> {
    let Some((keyword, rest)) = split_keyword(raw) else {
        return Ok(None);
    };
    if keyword.is_empty() {
        return Err(syntax(file, line, "missing keyword"));
    }
    let kw = keyword.to_ascii_lowercase();
    if !HANDLED_KEYWORDS.contains(&kw.as_str()) {
        // Lenient on purpose: OpenSSH rejects unknown keywords, but a newer ssh's option (or a
        // vendor one like UseKeychain) must not stop rtrain from connecting.
        return Ok(Some(Directive::Set(Setting::Unsupported(keyword.to_owned()))));
    }
    if rest.is_empty() {
        return Err(syntax(file, line, format!("no argument after keyword \"{keyword}\"")));
    }
    let args = split_args(rest).ok_or_else(|| syntax(file, line, "invalid quotes"))?;
    let err = |msg: String| syntax(file, line, msg);
    let single = || -> Result<&str, SshConfigError> {
        match args.as_slice() {
            [] => Err(err(format!("missing argument for {keyword}"))),
            [one] => Ok(one.as_str()),
            _ => Err(err(format!("keyword {keyword} extra arguments at end of line"))),
        }
    };

    let setting = match kw.as_str() {
        "host" => {
            let mut patterns = Vec::with_capacity(args.len());
            for arg in &args {
                if arg.is_empty() {
                    return Err(err(format!("keyword {keyword} empty argument")));
                }
                let (negated, pattern) = match arg.strip_prefix('!') {
                    Some(p) => (true, p),
                    None => (false, arg.as_str()),
                };
                patterns.push(HostPattern {
                    negated,
                    pattern: pattern.to_owned(),
                });
            }
            return Ok(Some(Directive::Host(patterns)));
        }
        "match" => {
            return parse_match(&args, file, line).map(|c| Some(Directive::Match(c)));
        }
        "include" => {
            return parse_include(&args, file, line, ctx, depth).map(|files| Some(Directive::Include(files)));
        }
        "hostname" => Setting::HostName(single()?.to_owned()),
        "user" => Setting::User(single()?.to_owned()),
        "port" => {
            let value = single()?;
            match value.parse::<u16>() {
                Ok(port) if port > 0 => Setting::Port(port),
                _ => return Err(err(format!("Bad port '{value}' (must be 1-65535)"))),
            }
        }
        "identityfile" => Setting::IdentityFile(single()?.to_owned()),
        "certificatefile" => Setting::CertificateFile(single()?.to_owned()),
        "identitiesonly" => {
            let value = single()?;
            Setting::IdentitiesOnly(parse_flag(value).ok_or_else(|| {
                err(format!(
                    "unsupported value \"{value}\" for {keyword} (expected yes or no)"
                ))
            })?)
        }
        "identityagent" => Setting::IdentityAgent(single()?.to_owned()),
        "hostkeyalias" => Setting::HostKeyAlias(single()?.to_owned()),
        "proxyjump" => {
            // OpenSSH hands ProxyJump the raw rest of the line, minus any comment.
            let value = raw_value(rest);
            let value = value.split('#').next().unwrap_or("").trim_end_matches(WHITESPACE);
            if value.is_empty() {
                return Err(err(format!("Invalid ProxyJump \"{}\"", raw_value(rest))));
            }
            Setting::ProxyJump(value.to_owned())
        }
        "proxycommand" => {
            // Raw rest of the line, quotes and even `#` included: it is handed to a shell.
            Setting::ProxyCommand(raw_value(rest).to_owned())
        }
        "userknownhostsfile" | "globalknownhostsfile" => {
            for (i, arg) in args.iter().enumerate() {
                if arg.is_empty() {
                    return Err(err(format!("keyword {keyword} empty argument")));
                }
                if arg.eq_ignore_ascii_case("none") && (i > 0 || args.len() > 1) {
                    return Err(err(format!("keyword {keyword} \"none\" argument must appear alone")));
                }
            }
            if kw == "userknownhostsfile" {
                Setting::UserKnownHostsFiles(args.clone())
            } else {
                Setting::GlobalKnownHostsFiles(args.clone())
            }
        }
        "stricthostkeychecking" => {
            let value = single()?;
            Setting::StrictHostKeyChecking(parse_strict(value).ok_or_else(|| {
                err(format!(
                    "unsupported value \"{value}\" for {keyword} \
                     (expected yes, no, ask, accept-new or off)"
                ))
            })?)
        }
        "connecttimeout" | "serveraliveinterval" => {
            let value = single()?;
            let secs = if value == "none" {
                None
            } else {
                Some(parse_time(value).ok_or_else(|| err(format!("invalid time value \"{value}\" for {keyword}")))?)
            };
            if kw == "connecttimeout" {
                Setting::ConnectTimeout(secs)
            } else {
                Setting::ServerAliveInterval(secs)
            }
        }
        "serveralivecountmax" => {
            let value = single()?;
            match value.parse::<u32>() {
                Ok(n) if n <= i32::MAX as u32 => Setting::ServerAliveCountMax(n),
                _ => return Err(err(format!("invalid integer value \"{value}\" for {keyword}"))),
            }
        }
        "ignoreunknown" => Setting::IgnoreUnknown,
        "preferredauthentications" => {
            let value = single()?;
            let methods: Vec<String> = value
                .split(',')
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty())
                .collect();
            if methods.is_empty() {
                return Err(err(format!("empty {keyword}")));
            }
            Setting::PreferredAuthentications(methods)
        }
        "pubkeyauthentication"
        | "passwordauthentication"
        | "kbdinteractiveauthentication"
        | "challengeresponseauthentication" => {
            let value = single()?;
            // OpenSSH also takes `unbound`/`host-bound` for PubkeyAuthentication: both mean yes.
            let flag = if kw == "pubkeyauthentication"
                && (value.eq_ignore_ascii_case("unbound") || value.eq_ignore_ascii_case("host-bound"))
            {
                Some(true)
            } else {
                parse_flag(value)
            };
            let flag = flag.ok_or_else(|| {
                err(format!(
                    "unsupported value \"{value}\" for {keyword} (expected yes or no)"
                ))
            })?;
            let which = match kw.as_str() {
                "pubkeyauthentication" => AuthFlag::Pubkey,
                "passwordauthentication" => AuthFlag::Password,
                _ => AuthFlag::KbdInteractive,
            };
            Setting::AuthFlag(which, flag)
        }
        "numberofpasswordprompts" => {
            let value = single()?;
            match value.parse::<u32>() {
                Ok(n) if n <= i32::MAX as u32 => Setting::NumberOfPasswordPrompts(n),
                _ => return Err(err(format!("invalid integer value \"{value}\" for {keyword}"))),
            }
        }
        _ => unreachable!("every handled keyword has an arm"),
    };
    Ok(Some(Directive::Set(setting)))
}

/// Splits off the keyword the way OpenSSH's `strdelim()` does: the keyword ends at whitespace or
/// `=`, and a single `=` (with optional whitespace around it) may separate it from the value.
/// Returns `None` for blank and comment lines.
fn split_keyword(raw: &str) -> Option<(&str, &str)> {
    let line = raw
        .trim_end_matches(|c: char| WHITESPACE.contains(&c) || c == '\x0c')
        .trim_start_matches(WHITESPACE);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| WHITESPACE.contains(&c) || c == '=')
        .unwrap_or(line.len());
    let keyword = &line[..end];
    if end == line.len() {
        return Some((keyword, ""));
    }
    let saw_equals = line.as_bytes()[end] == b'=';
    let mut rest = line[end + 1..].trim_start_matches(WHITESPACE);
    if !saw_equals {
        if let Some(after) = rest.strip_prefix('=') {
            rest = after.trim_start_matches(WHITESPACE);
        }
    }
    Some((keyword, rest))
}

/// The value of a "command" keyword as OpenSSH stores it: the rest of the line verbatim.
fn raw_value(rest: &str) -> &str {
    rest.trim_start_matches(|c: char| WHITESPACE.contains(&c) || c == '=')
}

/// OpenSSH's `argv_split(..., terminate_on_comment=1)`: whitespace-separated words, `"` and `'`
/// quoting (also mid-word), backslash escapes for quotes, backslash and space, and a `#` at the
/// start of a word ends the line. `None` means an unterminated quote.
pub(crate) fn split_args(s: &str) -> Option<Vec<String>> {
    let chars: Vec<char> = s.chars().collect();
    let mut args = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == ' ' || chars[i] == '\t' {
            i += 1;
            continue;
        }
        if chars[i] == '#' {
            break;
        }
        let mut arg = String::new();
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            if c == '\\' {
                match chars.get(i + 1) {
                    Some(&next) if next == '\'' || next == '"' || next == '\\' || (quote.is_none() && next == ' ') => {
                        arg.push(next);
                        i += 1;
                    }
                    _ => arg.push('\\'),
                }
            } else if quote.is_none() && (c == ' ' || c == '\t') {
                break;
            } else if quote.is_none() && (c == '"' || c == '\'') {
                quote = Some(c);
            } else if quote == Some(c) {
                quote = None;
            } else {
                arg.push(c);
            }
            i += 1;
        }
        if quote.is_some() {
            return None;
        }
        args.push(arg);
    }
    Some(args)
}

fn parse_flag(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" => Some(true),
        "no" | "false" => Some(false),
        _ => None,
    }
}

fn parse_strict(value: &str) -> Option<StrictHostKeyChecking> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" => Some(StrictHostKeyChecking::Yes),
        "no" | "false" | "off" => Some(StrictHostKeyChecking::No),
        "ask" => Some(StrictHostKeyChecking::Ask),
        "accept-new" => Some(StrictHostKeyChecking::AcceptNew),
        _ => None,
    }
}

/// OpenSSH's `convtime()`: `90`, `90s`, `1m30s`, `2h`, `1d`, `1w`; capped at `INT_MAX` seconds.
fn parse_time(value: &str) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    let bytes = value.as_bytes();
    let mut total: u64 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let amount: u64 = value[start..i].parse().ok()?;
        let multiplier = match bytes.get(i).map(u8::to_ascii_lowercase) {
            None => 1,
            Some(b's') => 1,
            Some(b'm') => 60,
            Some(b'h') => 60 * 60,
            Some(b'd') => 24 * 60 * 60,
            Some(b'w') => 7 * 24 * 60 * 60,
            Some(_) => return None,
        };
        if i < bytes.len() {
            i += 1;
        }
        total = total.checked_add(amount.checked_mul(multiplier)?)?;
        if total > i32::MAX as u64 {
            return None;
        }
    }
    Some(total)
}

/// Mirrors OpenSSH's `match_cfg_line()` parsing, including its errors for unknown criteria and
/// for `all` combined with other criteria.
fn parse_match(args: &[String], file: &Path, line: usize) -> Result<Vec<Criterion>, SshConfigError> {
    let mut criteria = Vec::new();
    let mut attributes = 0;
    let mut iter = args.iter().peekable();
    while let Some(token) = iter.next() {
        let (negated, attr) = match token.strip_prefix('!') {
            Some(a) => (true, a),
            None => (false, token.as_str()),
        };
        let name = attr.to_ascii_lowercase();
        if name == "all" {
            if attributes > 1 || iter.peek().is_some() {
                return Err(syntax(
                    file,
                    line,
                    format!("'{token}' cannot be combined with other Match attributes"),
                ));
            }
            criteria.push(Criterion {
                negated,
                kind: CriterionKind::All,
            });
            return Ok(criteria);
        }
        attributes += 1;
        if name == "canonical" || name == "final" {
            criteria.push(Criterion {
                negated,
                kind: CriterionKind::Unsupported(name),
            });
            continue;
        }
        let Some(arg) = iter.next() else {
            return Err(syntax(file, line, format!("Missing Match criteria for {attr}")));
        };
        let kind = match name.as_str() {
            "host" => CriterionKind::Host(arg.clone()),
            "originalhost" => CriterionKind::OriginalHost(arg.clone()),
            "user" => CriterionKind::User(arg.clone()),
            "localuser" => CriterionKind::LocalUser(arg.clone()),
            // exec is OpenSSH 9.2's; the rest come from newer releases and are accepted so a
            // config written for a newer ssh does not lock rtrain out.
            "exec" | "localnetwork" | "tagged" | "version" | "sessiontype" | "command" => {
                CriterionKind::Unsupported(name)
            }
            _ => return Err(syntax(file, line, format!("Unsupported Match attribute {attr}"))),
        };
        criteria.push(Criterion { negated, kind });
    }
    if attributes == 0 {
        return Err(syntax(file, line, "One or more attributes required for Match"));
    }
    Ok(criteria)
}

fn parse_include(
    args: &[String],
    file: &Path,
    line: usize,
    ctx: &ResolveContext,
    depth: usize,
) -> Result<Vec<ConfigFile>, SshConfigError> {
    let home = ctx.home.to_string_lossy();
    let escaped_home = glob::Pattern::escape(&home);
    let mut files = Vec::new();
    for arg in args {
        if arg.is_empty() {
            return Err(syntax(file, line, "keyword Include empty argument"));
        }
        // Relative Include paths live in ~/.ssh (user configuration), as in OpenSSH.
        let (pattern, literal) = if let Some(rest) = tilde_rest(arg, ctx.local_user) {
            (format!("{escaped_home}{rest}"), format!("{home}{rest}"))
        } else if Path::new(arg).is_absolute() || arg.starts_with('~') {
            (arg.clone(), arg.clone())
        } else {
            (format!("{escaped_home}/.ssh/{arg}"), format!("{home}/.ssh/{arg}"))
        };
        for path in glob_sorted(&pattern, &literal) {
            if depth + 1 > MAX_INCLUDE_DEPTH {
                return Err(syntax(
                    file,
                    line,
                    format!(
                        "too many recursive configuration includes (more than \
                         {MAX_INCLUDE_DEPTH} levels) including {}",
                        path.display()
                    ),
                ));
            }
            // OpenSSH "reads" a directory as an empty file.
            if path.is_dir() {
                continue;
            }
            if let Some(text) = read_text(&path)? {
                files.push(parse_file(&path, &text, ctx, depth + 1)?);
            }
        }
    }
    Ok(files)
}

/// For `~`, `~/x` and `~<local user>/x`, the part after the home directory. Other users' homes
/// are not looked up (that needs the passwd database); such paths are used verbatim.
fn tilde_rest<'s>(path: &'s str, local_user: &str) -> Option<&'s str> {
    let after = path.strip_prefix('~')?;
    let slash = after.find('/').unwrap_or(after.len());
    let user = &after[..slash];
    if user.is_empty() || user == local_user {
        Some(&after[slash..])
    } else {
        None
    }
}

/// glob(3) as OpenSSH calls it: `*` does not match a leading dot, results sorted byte-wise over
/// the whole path (glibc sorts with strcoll, and ssh leaves LC_COLLATE at "C").
fn glob_sorted(pattern: &str, literal: &str) -> Vec<PathBuf> {
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let mut paths: Vec<PathBuf> = match glob::glob_with(pattern, options) {
        Ok(paths) => paths.filter_map(Result::ok).collect(),
        // glob(3) treats a malformed pattern as a plain name.
        Err(_) => {
            let path = PathBuf::from(literal);
            if path.exists() {
                vec![path]
            } else {
                Vec::new()
            }
        }
    };
    paths.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    paths
}

fn collect_hosts(file: &ConfigFile, hosts: &mut Vec<String>, seen: &mut HashSet<String>) {
    for entry in &file.entries {
        match &entry.directive {
            Directive::Host(patterns) => {
                for p in patterns {
                    let concrete = !p.negated && !p.pattern.contains(['*', '?']);
                    if concrete && seen.insert(p.pattern.clone()) {
                        hosts.push(p.pattern.clone());
                    }
                }
            }
            Directive::Include(files) => {
                for f in files {
                    collect_hosts(f, hosts, seen);
                }
            }
            Directive::Match(_) | Directive::Set(_) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pattern matching, byte for byte like OpenSSH's match.c.

/// `match_pattern()`: `*` and `?` wildcards, case-sensitive, `?` is one byte.
fn match_pattern(s: &str, pattern: &str) -> bool {
    let (s, p) = (s.as_bytes(), pattern.as_bytes());
    let (mut si, mut pi) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            backtrack = Some((pi, si));
            pi += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            si = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// `match_pattern_list()`: a comma-separated list where a matching `!pattern` vetoes everything.
/// Returns 1 (match), 0 (no match) or -1 (negated match).
fn match_pattern_list(s: &str, list: &str, lowercase_patterns: bool) -> i32 {
    let mut positive = false;
    for sub in list.split(',') {
        let (negated, sub) = match sub.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, sub),
        };
        let sub = if lowercase_patterns {
            sub.to_ascii_lowercase()
        } else {
            sub.to_owned()
        };
        if match_pattern(s, &sub) {
            if negated {
                return -1;
            }
            positive = true;
        }
    }
    i32::from(positive)
}

/// `match_hostname()`: case-insensitive pattern list.
fn match_hostname(host: &str, list: &str) -> bool {
    match_pattern_list(&host.to_ascii_lowercase(), list, true) == 1
}

/// A `Host` line applies when any pattern matches the alias as given and no negated one does.
/// Deliberately case-sensitive: OpenSSH 9.2 matches `Host` with `match_pattern()` on the
/// unmodified command-line name (`Host Foo` does not apply to `ssh foo`).
fn host_line_matches(patterns: &[HostPattern], alias: &str) -> bool {
    let mut matched = false;
    for p in patterns {
        if match_pattern(alias, &p.pattern) {
            if p.negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

// ---------------------------------------------------------------------------------------------
// Resolution.

struct Located<T> {
    value: T,
    file: PathBuf,
    line: usize,
}

struct Resolver<'a> {
    alias: &'a str,
    ctx: ResolveContext<'a>,
    host_name: Option<Located<String>>,
    user: Option<String>,
    port: Option<u16>,
    identity_files: Vec<Located<String>>,
    identities_only: Option<bool>,
    identity_agent: Option<Located<String>>,
    proxy_jump: Option<String>,
    proxy_command: Option<String>,
    user_known_hosts_files: Option<Located<Vec<String>>>,
    global_known_hosts_files: Option<Vec<String>>,
    strict_host_key_checking: Option<StrictHostKeyChecking>,
    connect_timeout: Option<u64>,
    server_alive_interval: Option<u64>,
    server_alive_count_max: Option<u32>,
    host_key_alias: Option<String>,
    preferred_authentications: Option<Vec<String>>,
    pubkey_authentication: Option<bool>,
    password_authentication: Option<bool>,
    kbd_interactive_authentication: Option<bool>,
    number_of_password_prompts: Option<u32>,
    certificate_files: Vec<Located<String>>,
    notes: Vec<String>,
    noted: HashSet<String>,
}

fn set_once<T>(slot: &mut Option<T>, value: T) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

impl<'a> Resolver<'a> {
    fn new(alias: &'a str, ctx: ResolveContext<'a>) -> Self {
        Resolver {
            alias,
            ctx,
            host_name: None,
            user: None,
            port: None,
            identity_files: Vec::new(),
            identities_only: None,
            identity_agent: None,
            proxy_jump: None,
            proxy_command: None,
            user_known_hosts_files: None,
            global_known_hosts_files: None,
            strict_host_key_checking: None,
            connect_timeout: None,
            server_alive_interval: None,
            server_alive_count_max: None,
            host_key_alias: None,
            preferred_authentications: None,
            pubkey_authentication: None,
            password_authentication: None,
            kbd_interactive_authentication: None,
            number_of_password_prompts: None,
            certificate_files: Vec::new(),
            notes: Vec::new(),
            noted: HashSet::new(),
        }
    }

    fn note(&mut self, key: String, text: String) {
        if self.noted.insert(key) {
            self.notes.push(text);
        }
    }

    /// `never_match` is OpenSSH's SSHCONF_NEVERMATCH: a file included from a block that does not
    /// apply is parsed but none of its Host/Match blocks may switch on.
    fn walk(&mut self, file: &ConfigFile, active: &mut bool, never_match: bool) -> Result<(), SshConfigError> {
        for entry in &file.entries {
            match &entry.directive {
                Directive::Host(patterns) => {
                    *active = !never_match && host_line_matches(patterns, self.alias);
                }
                Directive::Match(criteria) => {
                    *active = !never_match && self.eval_match(criteria, &file.path, entry.line)?;
                }
                Directive::Include(files) => {
                    let outer = *active;
                    for included in files {
                        self.walk(included, active, never_match || !outer)?;
                        // A Host/Match inside the included file must not leak out of it.
                        *active = outer;
                    }
                }
                Directive::Set(setting) => {
                    if *active {
                        self.apply(setting, &file.path, entry.line);
                    }
                }
            }
        }
        Ok(())
    }

    /// The name `Match host` tests: HostName as obtained so far (with `%h` expanded), else the
    /// alias. This is OpenSSH's documented single-pass behaviour; its optional second pass for
    /// `Match final`/canonicalisation is not replicated.
    fn match_host_target(&self) -> Result<String, SshConfigError> {
        match &self.host_name {
            Some(h) => expand_host_name(h, self.alias),
            None => Ok(self.alias.to_owned()),
        }
    }

    fn eval_match(&mut self, criteria: &[Criterion], file: &Path, line: usize) -> Result<bool, SshConfigError> {
        let mut result = true;
        let mut unsupported = Vec::new();
        for c in criteria {
            let hit = match &c.kind {
                CriterionKind::All => true,
                CriterionKind::Host(list) => match_hostname(&self.match_host_target()?, list),
                CriterionKind::OriginalHost(list) => match_hostname(self.alias, list),
                CriterionKind::User(list) => {
                    let user = self.user.as_deref().unwrap_or(self.ctx.local_user);
                    match_pattern_list(user, list, false) == 1
                }
                CriterionKind::LocalUser(list) => match_pattern_list(self.ctx.local_user, list, false) == 1,
                CriterionKind::Unsupported(name) => {
                    unsupported.push(name.clone());
                    continue;
                }
            };
            if hit == c.negated {
                result = false;
            }
        }
        if unsupported.is_empty() {
            return Ok(result);
        }
        // Only worth a note when the block might have applied, i.e. everything else matched.
        if result {
            for name in unsupported {
                let text = format!("Match {name} ({}:{line})", file.display());
                self.note(text.clone(), text);
            }
        }
        Ok(false)
    }

    fn apply(&mut self, setting: &Setting, file: &Path, line: usize) {
        fn located<T>(value: T, file: &Path, line: usize) -> Located<T> {
            Located {
                value,
                file: file.to_path_buf(),
                line,
            }
        }
        match setting {
            Setting::HostName(v) => set_once(&mut self.host_name, located(v.clone(), file, line)),
            Setting::User(v) => set_once(&mut self.user, v.clone()),
            Setting::Port(p) => set_once(&mut self.port, *p),
            Setting::IdentityFile(v) => {
                // OpenSSH keeps `none` (then skips it when loading keys) and drops exact repeats.
                let duplicate = self.identity_files.iter().any(|f| f.value == *v);
                if !v.eq_ignore_ascii_case("none") && !duplicate {
                    self.identity_files.push(located(v.clone(), file, line));
                }
            }
            Setting::IdentitiesOnly(b) => set_once(&mut self.identities_only, *b),
            Setting::IdentityAgent(v) => set_once(&mut self.identity_agent, located(v.clone(), file, line)),
            Setting::ProxyJump(v) => {
                // ProxyJump and ProxyCommand exclude each other: whichever comes first wins, and a
                // real jump host also pins ProxyCommand to "none" (OpenSSH's parse_jump()).
                if self.proxy_jump.is_none() && self.proxy_command.is_none() {
                    self.proxy_jump = Some(v.clone());
                    if !v.eq_ignore_ascii_case("none") {
                        self.proxy_command = Some("none".to_owned());
                    }
                }
            }
            Setting::ProxyCommand(v) => set_once(&mut self.proxy_command, v.clone()),
            Setting::UserKnownHostsFiles(v) => {
                set_once(&mut self.user_known_hosts_files, located(v.clone(), file, line))
            }
            Setting::GlobalKnownHostsFiles(v) => set_once(&mut self.global_known_hosts_files, v.clone()),
            Setting::StrictHostKeyChecking(v) => set_once(&mut self.strict_host_key_checking, *v),
            Setting::ConnectTimeout(v) => {
                if let Some(secs) = v {
                    set_once(&mut self.connect_timeout, *secs);
                }
            }
            Setting::ServerAliveInterval(v) => {
                if let Some(secs) = v {
                    set_once(&mut self.server_alive_interval, *secs);
                }
            }
            Setting::ServerAliveCountMax(n) => set_once(&mut self.server_alive_count_max, *n),
            Setting::HostKeyAlias(v) => {
                set_once(&mut self.host_key_alias, v.clone());
                self.note(
                    "hostkeyalias".to_owned(),
                    format!("HostKeyAlias ({}:{line})", file.display()),
                );
            }
            Setting::PreferredAuthentications(v) => set_once(&mut self.preferred_authentications, v.clone()),
            Setting::AuthFlag(which, v) => match which {
                AuthFlag::Pubkey => set_once(&mut self.pubkey_authentication, *v),
                AuthFlag::Password => set_once(&mut self.password_authentication, *v),
                AuthFlag::KbdInteractive => set_once(&mut self.kbd_interactive_authentication, *v),
            },
            Setting::NumberOfPasswordPrompts(n) => set_once(&mut self.number_of_password_prompts, *n),
            Setting::CertificateFile(v) => {
                let duplicate = self.certificate_files.iter().any(|f| f.value == *v);
                if !v.eq_ignore_ascii_case("none") && !duplicate {
                    self.certificate_files.push(located(v.clone(), file, line));
                }
            }
            Setting::IgnoreUnknown => {}
            Setting::Unsupported(keyword) => self.note(
                keyword.to_ascii_lowercase(),
                format!("{keyword} ({}:{line})", file.display()),
            ),
        }
    }

    fn finish(mut self) -> Result<HostConfig, SshConfigError> {
        let host_name = self.match_host_target()?.to_ascii_lowercase();
        let remote_user = self.user.clone().unwrap_or_else(|| self.ctx.local_user.to_owned());
        let tokens = Tokens {
            home: self.ctx.home.to_string_lossy().into_owned(),
            local_user: self.ctx.local_user.to_owned(),
            host_name: host_name.clone(),
            remote_user,
            alias: self.alias.to_owned(),
            port: self.port.unwrap_or(22).to_string(),
            key_alias: self.host_key_alias.clone().unwrap_or_else(|| self.alias.to_owned()),
        };

        let mut unsupported_tokens = Vec::new();
        let mut identity_files = Vec::new();
        for f in &self.identity_files {
            let path = expand_path(f, "IdentityFile", &tokens, &mut unsupported_tokens)?;
            identity_files.push(PathBuf::from(path));
        }
        let mut certificate_files = Vec::new();
        for f in &self.certificate_files {
            let path = expand_path(f, "CertificateFile", &tokens, &mut unsupported_tokens)?;
            certificate_files.push(PathBuf::from(path));
        }
        let mut user_known_hosts_files = Vec::new();
        if let Some(files) = &self.user_known_hosts_files {
            for value in &files.value {
                let one = Located {
                    value: value.clone(),
                    file: files.file.clone(),
                    line: files.line,
                };
                let path = expand_path(&one, "UserKnownHostsFile", &tokens, &mut unsupported_tokens)?;
                user_known_hosts_files.push(PathBuf::from(path));
            }
        }
        let identity_agent = match &self.identity_agent {
            None => None,
            Some(a) if is_agent_keyword(&a.value) => Some(a.value.clone()),
            Some(a) => Some(expand_path(a, "IdentityAgent", &tokens, &mut unsupported_tokens)?),
        };
        for text in unsupported_tokens {
            self.note(text.clone(), text);
        }

        Ok(HostConfig {
            host: self.alias.to_owned(),
            host_name,
            user: self.user,
            port: self.port,
            identity_files,
            identities_only: self.identities_only.unwrap_or(false),
            identity_agent,
            proxy_jump: self.proxy_jump,
            proxy_command: self.proxy_command.filter(|c| !c.eq_ignore_ascii_case("none")),
            user_known_hosts_files,
            global_known_hosts_files: self
                .global_known_hosts_files
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            strict_host_key_checking: self.strict_host_key_checking,
            connect_timeout: self.connect_timeout.filter(|&s| s > 0).map(Duration::from_secs),
            server_alive_interval: self.server_alive_interval.filter(|&s| s > 0).map(Duration::from_secs),
            server_alive_count_max: self.server_alive_count_max,
            host_key_alias: self.host_key_alias,
            preferred_authentications: self.preferred_authentications,
            pubkey_authentication: self.pubkey_authentication,
            password_authentication: self.password_authentication,
            kbd_interactive_authentication: self.kbd_interactive_authentication,
            number_of_password_prompts: self.number_of_password_prompts,
            certificate_files,
            unsupported: self.notes,
        })
    }
}

/// Values OpenSSH gives IdentityAgent a meaning other than "path to a socket".
fn is_agent_keyword(value: &str) -> bool {
    value == "none" || value == "SSH_AUTH_SOCK" || (value.starts_with('$') && !value.starts_with("${"))
}

// ---------------------------------------------------------------------------------------------
// Token expansion.

struct Tokens {
    home: String,
    local_user: String,
    host_name: String,
    remote_user: String,
    alias: String,
    port: String,
    key_alias: String,
}

enum Token {
    Value(String),
    /// Valid in OpenSSH but not computable here; left in place and noted.
    Unsupported,
    Unknown,
}

/// `HostName` only knows `%h` (the alias as given) and `%%`.
fn expand_host_name(h: &Located<String>, alias: &str) -> Result<String, SshConfigError> {
    let lookup = |c: char| match c {
        'h' => Token::Value(alias.to_owned()),
        _ => Token::Unknown,
    };
    expand_tokens(&h.value, &lookup, false, &mut Vec::new())
        .map_err(|msg| syntax(&h.file, h.line, format!("HostName: {msg}")))
}

/// Path-like options: `~` first (from `ctx.home`), then OpenSSH's client `%` tokens and
/// `${VAR}` environment references.
fn expand_path(
    v: &Located<String>,
    keyword: &str,
    tokens: &Tokens,
    unsupported: &mut Vec<String>,
) -> Result<String, SshConfigError> {
    let (prefix, rest) = match tilde_rest(&v.value, &tokens.local_user) {
        Some(rest) => (tokens.home.as_str(), rest),
        None => ("", v.value.as_str()),
    };
    let lookup = |c: char| match c {
        'd' => Token::Value(tokens.home.clone()),
        'u' => Token::Value(tokens.local_user.clone()),
        'h' => Token::Value(tokens.host_name.clone()),
        'r' => Token::Value(tokens.remote_user.clone()),
        'n' => Token::Value(tokens.alias.clone()),
        'p' => Token::Value(tokens.port.clone()),
        'k' => Token::Value(tokens.key_alias.clone()),
        'l' => local_hostname().map_or(Token::Unsupported, Token::Value),
        'L' => local_hostname().map_or(Token::Unsupported, |h| {
            Token::Value(h.split('.').next().unwrap_or_default().to_owned())
        }),
        'C' | 'i' | 'j' => Token::Unsupported,
        _ => Token::Unknown,
    };
    let mut missing = Vec::new();
    let expanded = expand_tokens(rest, &lookup, true, &mut missing)
        .map_err(|msg| syntax(&v.file, v.line, format!("{keyword}: {msg}")))?;
    for token in missing {
        unsupported.push(format!("{keyword} token %{token} ({}:{})", v.file.display(), v.line));
    }
    Ok(format!("{prefix}{expanded}"))
}

/// OpenSSH's `percent_dollar_expand()`: `%%` is a literal `%`, `%x` is looked up, `${VAR}` comes
/// from the environment; unknown tokens and unset variables are errors, as in ssh.
fn expand_tokens(
    s: &str,
    lookup: &dyn Fn(char) -> Token,
    dollar: bool,
    unsupported: &mut Vec<char>,
) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if dollar && c == '$' && chars.peek() == Some(&'{') {
            chars.next();
            let mut name = String::new();
            loop {
                match chars.next() {
                    Some('}') => break,
                    Some(ch) => name.push(ch),
                    None => return Err(format!("unterminated ${{{name}")),
                }
            }
            let value = std::env::var(&name).map_err(|_| format!("environment variable ${{{name}}} has no value"))?;
            out.push_str(&value);
        } else if c == '%' {
            match chars.next() {
                None => return Err("invalid format: trailing %".to_owned()),
                Some('%') => out.push('%'),
                Some(t) => match lookup(t) {
                    Token::Value(v) => out.push_str(&v),
                    Token::Unsupported => {
                        out.push('%');
                        out.push(t);
                        if !unsupported.contains(&t) {
                            unsupported.push(t);
                        }
                    }
                    Token::Unknown => return Err(format!("unknown token %{t}")),
                },
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// `%l`: the kernel's hostname, read without libc so the module stays dependency-free.
fn local_hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::fs;
    use std::process::{Command, Stdio};

    /// A throwaway `$HOME` with a `.ssh` directory, so no test ever reads the real one.
    struct Home {
        dir: tempfile::TempDir,
    }

    const LOCAL_USER: &str = "tester";

    impl Home {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            fs::create_dir(dir.path().join(".ssh")).expect("mkdir .ssh");
            Home { dir }
        }

        fn path(&self) -> &Path {
            self.dir.path()
        }

        fn ctx(&self) -> ResolveContext<'_> {
            ResolveContext {
                home: self.path(),
                local_user: LOCAL_USER,
            }
        }

        /// Writes `content` at `rel` (relative to the fake home) and returns the full path.
        fn write(&self, rel: &str, content: &str) -> PathBuf {
            let path = self.path().join(rel);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(&path, content).expect("write");
            path
        }

        fn config_path(&self) -> PathBuf {
            self.path().join(".ssh/config")
        }

        fn config(&self, content: &str) -> &Self {
            self.write(".ssh/config", content);
            self
        }

        fn resolve(&self, host: &str) -> HostConfig {
            self.try_resolve(host, None, None)
                .unwrap_or_else(|e| panic!("resolve {host}: {e}"))
        }

        fn try_resolve(&self, host: &str, user: Option<&str>, port: Option<u16>) -> Result<HostConfig, SshConfigError> {
            resolve(&self.config_path(), host, user, port, &self.ctx())
        }

        fn syntax_error(&self, host: &str) -> (PathBuf, usize, String) {
            match self.try_resolve(host, None, None) {
                Err(SshConfigError::Syntax { file, line, msg }) => (file, line, msg),
                other => panic!("expected a syntax error, got {other:?}"),
            }
        }

        fn hosts(&self) -> Vec<String> {
            list_hosts(&self.config_path(), &self.ctx()).expect("list_hosts")
        }
    }

    fn secs(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n))
    }

    // --- Regressions: the russh-config 0.58 gaps this module exists to close. ----------------

    #[test]
    fn regression_option_before_first_host_applies_to_all() {
        let h = Home::new();
        h.config("User everyone\nPort 2022\n\nHost gpu\n  HostName 10.0.0.5\n");
        let gpu = h.resolve("gpu");
        assert_eq!(gpu.user.as_deref(), Some("everyone"));
        assert_eq!(gpu.port, Some(2022));
        assert_eq!(gpu.host_name, "10.0.0.5");
        let other = h.resolve("elsewhere");
        assert_eq!(other.user.as_deref(), Some("everyone"));
        assert_eq!(other.port, Some(2022));
    }

    #[test]
    fn regression_include_is_honoured() {
        let h = Home::new();
        h.write(".ssh/hosts.d/gpu.conf", "Host gpu\n  HostName gpu.lab\n  User ml\n");
        h.config("Include hosts.d/*.conf\n");
        let gpu = h.resolve("gpu");
        assert_eq!(gpu.host_name, "gpu.lab");
        assert_eq!(gpu.user.as_deref(), Some("ml"));
    }

    #[test]
    fn regression_match_block_is_honoured() {
        let h = Home::new();
        h.config("Match host *.lab\n  User labuser\n");
        assert_eq!(h.resolve("box.lab").user.as_deref(), Some("labuser"));
        assert_eq!(h.resolve("box.home").user, None);
    }

    #[test]
    fn regression_server_alive_options_are_parsed() {
        let h = Home::new();
        h.config("Host gpu\n  ServerAliveInterval 15\n  ServerAliveCountMax 4\n");
        let gpu = h.resolve("gpu");
        assert_eq!(gpu.server_alive_interval, secs(15));
        assert_eq!(gpu.server_alive_count_max, Some(4));
    }

    #[test]
    fn regression_key_equals_value_lines_are_parsed() {
        let h = Home::new();
        h.config("Host=gpu\n  User=alice\n  Port = 2200\n  HostName =gpu.lab\n  ConnectTimeout= 9\n");
        let gpu = h.resolve("gpu");
        assert_eq!(gpu.user.as_deref(), Some("alice"));
        assert_eq!(gpu.port, Some(2200));
        assert_eq!(gpu.host_name, "gpu.lab");
        assert_eq!(gpu.connect_timeout, secs(9));
    }

    #[test]
    fn regression_tab_separated_lines_are_parsed() {
        let h = Home::new();
        h.config("Host\tgpu\tother\n\tUser\talice\n\tPort\t\t2200\n");
        let gpu = h.resolve("other");
        assert_eq!(gpu.user.as_deref(), Some("alice"));
        assert_eq!(gpu.port, Some(2200));
    }

    // --- Lexing. ------------------------------------------------------------------------------

    #[test]
    fn keywords_are_case_insensitive() {
        let h = Home::new();
        h.config("HOST gpu\n  hostname gpu.lab\n  uSeR alice\n  PORT 2200\n");
        let gpu = h.resolve("gpu");
        assert_eq!(
            (gpu.host_name.as_str(), gpu.user.as_deref(), gpu.port),
            ("gpu.lab", Some("alice"), Some(2200))
        );
    }

    #[test]
    fn comments_blank_lines_crlf_and_surrounding_whitespace_are_ignored() {
        let h = Home::new();
        h.config(
            "# leading comment\r\n\r\n   \t\r\nHost gpu # trailing comment\r\n   # indented comment\r\n  \
             User alice   \r\n  Port 2200 # why this port\r\n\x0c\n",
        );
        let gpu = h.resolve("gpu");
        assert_eq!(gpu.user.as_deref(), Some("alice"));
        assert_eq!(gpu.port, Some(2200));
        assert!(gpu.unsupported.is_empty(), "{:?}", gpu.unsupported);
    }

    #[test]
    fn quoted_arguments_keep_spaces() {
        let h = Home::new();
        h.config(
            "Host gpu\n  IdentityFile \"/keys/with space/id\"\n  IdentityFile '/keys/single q/id'\n  \
             IdentityFile /keys/escaped\\ space/id\n  IdentityFile /keys/mid\"dle quo\"ted\n",
        );
        assert_eq!(
            h.resolve("gpu").identity_files,
            vec![
                PathBuf::from("/keys/with space/id"),
                PathBuf::from("/keys/single q/id"),
                PathBuf::from("/keys/escaped space/id"),
                PathBuf::from("/keys/middle quoted"),
            ]
        );
    }

    #[test]
    fn unbalanced_quote_is_syntax_error_with_file_and_line() {
        let h = Home::new();
        h.config("Host gpu\n  IdentityFile \"/keys/id\n");
        let (file, line, msg) = h.syntax_error("gpu");
        assert_eq!((file, line), (h.config_path(), 2));
        assert!(msg.contains("quotes"), "{msg}");
    }

    #[test]
    fn missing_or_extra_arguments_are_syntax_errors() {
        let h = Home::new();
        h.config("Host gpu\n  Port\n");
        assert_eq!(h.syntax_error("gpu").1, 2);
        h.config("Host gpu\n  User a b\n");
        let (_, line, msg) = h.syntax_error("gpu");
        assert_eq!(line, 2);
        assert!(msg.contains("extra arguments"), "{msg}");
        h.config("Host gpu\n  Port # just a comment\n");
        assert_eq!(h.syntax_error("gpu").1, 2);
    }

    #[test]
    fn syntax_error_display_names_file_and_line() {
        let h = Home::new();
        h.config("\n\nPort abc\n");
        let err = h.try_resolve("gpu", None, None).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("{}:3: ", h.config_path().display())),
            "{shown}"
        );
    }

    // --- Host blocks and first-value-wins. -------------------------------------------------------

    #[test]
    fn host_line_with_several_patterns() {
        let h = Home::new();
        h.config("Host a b c\n  User abc\n");
        for host in ["a", "b", "c"] {
            assert_eq!(h.resolve(host).user.as_deref(), Some("abc"), "{host}");
        }
        assert_eq!(h.resolve("d").user, None);
    }

    #[test]
    fn host_wildcards_star_and_question_mark() {
        let h = Home::new();
        h.config("Host gpu-?\n  User single\nHost *.lab node*x\n  User star\n");
        assert_eq!(h.resolve("gpu-1").user.as_deref(), Some("single"));
        assert_eq!(h.resolve("gpu-12").user, None);
        assert_eq!(h.resolve("a.b.lab").user.as_deref(), Some("star"));
        assert_eq!(h.resolve("node-big-x").user.as_deref(), Some("star"));
        assert_eq!(h.resolve("nodex").user.as_deref(), Some("star"));
        assert_eq!(h.resolve("lab").user, None);
    }

    #[test]
    fn host_negation_vetoes_the_whole_line() {
        let h = Home::new();
        h.config("Host * !bastion\n  ProxyJump bastion\n");
        assert_eq!(h.resolve("gpu").proxy_jump.as_deref(), Some("bastion"));
        assert_eq!(h.resolve("bastion").proxy_jump, None);
        // Order inside the line does not matter: the veto wins.
        h.config("Host !bastion *\n  ProxyJump bastion\n");
        assert_eq!(h.resolve("bastion").proxy_jump, None);
        // A lone negation matches nothing.
        h.config("Host !bastion\n  User x\n");
        assert_eq!(h.resolve("gpu").user, None);
    }

    #[test]
    fn host_matching_is_case_sensitive_like_openssh_9_2() {
        let h = Home::new();
        h.config("Host Gpu\n  Port 1111\n");
        assert_eq!(h.resolve("Gpu").port, Some(1111));
        assert_eq!(h.resolve("gpu").port, None);
        // The name used to connect is lower-cased all the same, as `ssh -G` shows.
        assert_eq!(h.resolve("Gpu").host_name, "gpu");
    }

    #[test]
    fn first_obtained_value_wins_across_blocks() {
        let h = Home::new();
        h.config(
            "Host gpu\n  User first\n  User second\nHost *\n  User fallback\n  Port 2222\n\
             Host gpu\n  Port 3333\n",
        );
        let gpu = h.resolve("gpu");
        assert_eq!(gpu.user.as_deref(), Some("first"));
        assert_eq!(gpu.port, Some(2222));
    }

    #[test]
    fn identity_files_accumulate_in_order_without_duplicates() {
        let h = Home::new();
        h.config(
            "Host gpu\n  IdentityFile /k/gpu\n  IdentityFile /k/shared\nHost *\n  \
             IdentityFile /k/shared\n  IdentityFile /k/default\n",
        );
        assert_eq!(
            h.resolve("gpu").identity_files,
            vec![
                PathBuf::from("/k/gpu"),
                PathBuf::from("/k/shared"),
                PathBuf::from("/k/default")
            ]
        );
    }

    #[test]
    fn identity_file_none_is_ignored() {
        let h = Home::new();
        h.config("Host gpu\n  IdentityFile none\n  IdentityFile /k/id\n");
        assert_eq!(h.resolve("gpu").identity_files, vec![PathBuf::from("/k/id")]);
    }

    #[test]
    fn known_hosts_files_take_several_paths_and_first_line_wins() {
        let h = Home::new();
        h.config(
            "Host gpu\n  UserKnownHostsFile ~/.ssh/kh_a /abs/kh_b\n  UserKnownHostsFile /ignored\n  \
             GlobalKnownHostsFile /etc/g1 ~/g2\n  GlobalKnownHostsFile /ignored\n",
        );
        let gpu = h.resolve("gpu");
        assert_eq!(
            gpu.user_known_hosts_files,
            vec![h.path().join(".ssh/kh_a"), PathBuf::from("/abs/kh_b")]
        );
        // OpenSSH does not expand GlobalKnownHostsFile, so neither do we.
        assert_eq!(
            gpu.global_known_hosts_files,
            vec![PathBuf::from("/etc/g1"), PathBuf::from("~/g2")]
        );
        assert!(h.resolve("other").user_known_hosts_files.is_empty());
    }

    #[test]
    fn known_hosts_none_must_appear_alone() {
        let h = Home::new();
        h.config("UserKnownHostsFile none /x\n");
        assert_eq!(h.syntax_error("gpu").1, 1);
        h.config("UserKnownHostsFile none\n");
        assert_eq!(h.resolve("gpu").user_known_hosts_files, vec![PathBuf::from("none")]);
    }

    // --- Include. ------------------------------------------------------------------------------

    #[test]
    fn include_relative_path_is_under_home_ssh() {
        let h = Home::new();
        h.write(".ssh/extra", "Host gpu\n  User rel\n");
        h.config("Include extra\n");
        assert_eq!(h.resolve("gpu").user.as_deref(), Some("rel"));
    }

    #[test]
    fn include_absolute_and_tilde_paths() {
        let h = Home::new();
        let abs = h.write("elsewhere/abs.conf", "Host a\n  User abs\n");
        h.write("tilde.conf", "Host t\n  User tilde\n");
        h.config(&format!("Include {}\nInclude ~/tilde.conf\n", abs.display()));
        assert_eq!(h.resolve("a").user.as_deref(), Some("abs"));
        assert_eq!(h.resolve("t").user.as_deref(), Some("tilde"));
    }

    #[test]
    fn include_glob_is_sorted_and_skips_dotfiles() {
        let h = Home::new();
        // Written out of order; the first file in sorted order must win.
        h.write(".ssh/conf.d/20-b.conf", "User from-b\n");
        h.write(".ssh/conf.d/10-a.conf", "User from-a\n");
        h.write(".ssh/conf.d/.00-hidden.conf", "User hidden\n");
        h.config("Include conf.d/*\n");
        assert_eq!(h.resolve("gpu").user.as_deref(), Some("from-a"));
        // Directories matched by the glob are skipped rather than failing.
        fs::create_dir(h.path().join(".ssh/conf.d/05-dir")).unwrap();
        assert_eq!(h.resolve("gpu").user.as_deref(), Some("from-a"));
    }

    #[test]
    fn include_several_files_on_one_line() {
        let h = Home::new();
        h.write(".ssh/one", "Host gpu\n  Port 1111\n");
        h.write(".ssh/two", "Host gpu\n  User two\n  Port 2222\n");
        h.config("Include one missing two\n");
        let gpu = h.resolve("gpu");
        assert_eq!((gpu.port, gpu.user.as_deref()), (Some(1111), Some("two")));
    }

    #[test]
    fn include_inside_host_block_is_conditional_on_that_block() {
        let h = Home::new();
        h.write(".ssh/gpu-opts", "User gpuuser\nHost inner\n  Port 4444\n");
        h.config("Host gpu\n  Include gpu-opts\n  Port 2222\nHost *\n  User fallback\n");
        let gpu = h.resolve("gpu");
        assert_eq!(gpu.user.as_deref(), Some("gpuuser"));
        // The included file's `Host inner` must not end the enclosing `Host gpu` block.
        assert_eq!(gpu.port, Some(2222));
        let other = h.resolve("other");
        assert_eq!(other.user.as_deref(), Some("fallback"));
        // Inside a block that does not apply, the include's own Host blocks never match either.
        assert_eq!(h.resolve("inner").port, None);
    }

    #[test]
    fn include_missing_file_is_silently_ignored() {
        let h = Home::new();
        h.config("Include nope.conf ~/nope/*.conf /definitely/not/here\nUser still\n");
        assert_eq!(h.resolve("gpu").user.as_deref(), Some("still"));
    }

    #[test]
    fn include_recursion_is_a_clear_error() {
        let h = Home::new();
        h.config("Include config\n");
        let (file, line, msg) = h.syntax_error("gpu");
        assert_eq!((file, line), (h.config_path(), 1));
        assert!(msg.contains("recursive"), "{msg}");
    }

    #[test]
    fn include_depth_limit_is_sixteen_levels_like_openssh() {
        let h = Home::new();
        // config -> l1 -> ... -> l16 is allowed (depth 16); one more level is not.
        for level in 1..=17 {
            let next = if level < 17 {
                format!("Include l{}\n", level + 1)
            } else {
                String::new()
            };
            h.write(
                &format!(".ssh/l{level}"),
                &format!("{next}Host h{level}\n  User u{level}\n"),
            );
        }
        h.config("Include l1\n");
        let (file, line, msg) = h.syntax_error("h16");
        assert_eq!((file, line), (h.path().join(".ssh/l16"), 1), "{msg}");
        fs::remove_file(h.path().join(".ssh/l17")).unwrap();
        assert_eq!(h.resolve("h16").user.as_deref(), Some("u16"));
    }

    // --- Match. --------------------------------------------------------------------------------

    #[test]
    fn match_all_applies_everywhere() {
        let h = Home::new();
        h.config("Host gpu\n  User gpuuser\nMatch all\n  User everyone\n  Port 2222\n");
        assert_eq!(h.resolve("gpu").user.as_deref(), Some("gpuuser"));
        assert_eq!(h.resolve("x").user.as_deref(), Some("everyone"));
        assert_eq!(h.resolve("x").port, Some(2222));
    }

    #[test]
    fn match_host_tests_hostname_when_already_set_else_alias() {
        let h = Home::new();
        h.config(
            "Match host 10.0.0.*\n  User early\nHost gpu\n  HostName 10.0.0.5\n\
             Match host 10.0.0.*\n  Port 2222\nMatch host gpu\n  IdentitiesOnly yes\n",
        );
        let gpu = h.resolve("gpu");
        // The first Match ran before HostName was known, so it saw "gpu".
        assert_eq!(gpu.user, None);
        assert_eq!(gpu.port, Some(2222));
        assert!(!gpu.identities_only);
        assert_eq!(h.resolve("10.0.0.9").user.as_deref(), Some("early"));
    }

    #[test]
    fn match_host_expands_percent_h_in_hostname() {
        let h = Home::new();
        h.config("Host gpu\n  HostName %h.lab\nMatch host *.lab\n  User lab\n");
        assert_eq!(h.resolve("gpu").user.as_deref(), Some("lab"));
    }

    #[test]
    fn match_host_pattern_list_with_negation() {
        let h = Home::new();
        h.config("Match host *.lab,!bad.lab\n  User lab\n");
        assert_eq!(h.resolve("good.lab").user.as_deref(), Some("lab"));
        assert_eq!(h.resolve("bad.lab").user, None);
    }

    #[test]
    fn match_host_is_case_insensitive() {
        let h = Home::new();
        h.config("Match host GPU.lab\n  User lab\n");
        assert_eq!(h.resolve("gpu.LAB").user.as_deref(), Some("lab"));
    }

    #[test]
    fn match_originalhost_tests_the_alias_not_hostname() {
        let h = Home::new();
        h.config("Host gpu\n  HostName 10.0.0.5\nMatch originalhost gpu\n  User orig\n");
        assert_eq!(h.resolve("gpu").user.as_deref(), Some("orig"));
    }

    #[test]
    fn match_user_sees_override_and_earlier_user() {
        let h = Home::new();
        h.config("Match user alice\n  Port 1111\nHost gpu\n  User bob\nMatch user bob\n  Port 2222\n");
        let gpu = h.try_resolve("gpu", Some("alice"), None).unwrap();
        assert_eq!((gpu.user.as_deref(), gpu.port), (Some("alice"), Some(1111)));
        let gpu = h.resolve("gpu");
        assert_eq!((gpu.user.as_deref(), gpu.port), (Some("bob"), Some(2222)));
        // With no User at all, `Match user` tests the local user.
        h.config(&format!("Match user {LOCAL_USER}\n  Port 3333\n"));
        assert_eq!(h.resolve("x").port, Some(3333));
    }

    #[test]
    fn match_localuser() {
        let h = Home::new();
        h.config(&format!(
            "Match localuser {LOCAL_USER},root\n  User me\nMatch localuser nobody\n  Port 1\n"
        ));
        let x = h.resolve("x");
        assert_eq!((x.user.as_deref(), x.port), (Some("me"), None));
    }

    #[test]
    fn match_criteria_are_anded_and_can_be_negated() {
        let h = Home::new();
        h.config("Match host gpu* !user root\n  Port 2222\nMatch !host gpu*\n  User notgpu\n");
        assert_eq!(h.resolve("gpu1").port, Some(2222));
        assert_eq!(h.try_resolve("gpu1", Some("root"), None).unwrap().port, None);
        assert_eq!(h.resolve("gpu1").user, None);
        assert_eq!(h.resolve("cpu").user.as_deref(), Some("notgpu"));
    }

    #[test]
    fn match_exec_is_unsupported_never_matches_and_is_noted() {
        let h = Home::new();
        h.config("Match host gpu exec \"true\"\n  User execuser\nMatch host other exec \"true\"\n  User x\n");
        let gpu = h.resolve("gpu");
        assert_eq!(gpu.user, None);
        let path = h.config_path();
        assert_eq!(gpu.unsupported, vec![format!("Match exec ({}:1)", path.display())]);
    }

    #[test]
    fn match_canonical_final_and_newer_criteria_are_unsupported() {
        let h = Home::new();
        h.config(
            "Match canonical\n  User a\nMatch final host gpu\n  User b\n\
             Match localnetwork 10.0.0.0/8\n  User c\nMatch tagged x\n  User d\n",
        );
        let gpu = h.resolve("gpu");
        assert_eq!(gpu.user, None);
        let p = h.config_path();
        let p = p.display();
        assert_eq!(
            gpu.unsupported,
            vec![
                format!("Match canonical ({p}:1)"),
                format!("Match final ({p}:3)"),
                format!("Match localnetwork ({p}:5)"),
                format!("Match tagged ({p}:7)"),
            ]
        );
    }

    #[test]
    fn match_unknown_criterion_is_syntax_error() {
        let h = Home::new();
        h.config("Host x\n  User y\nMatch bogus foo\n  User z\n");
        let (file, line, msg) = h.syntax_error("gpu");
        assert_eq!((file, line), (h.config_path(), 3));
        assert!(msg.contains("bogus"), "{msg}");
    }

    #[test]
    fn match_all_combined_or_missing_argument_is_syntax_error() {
        let h = Home::new();
        h.config("Match all host x\n");
        assert!(h.syntax_error("x").2.contains("cannot be combined"));
        h.config("Match host\n");
        assert!(h.syntax_error("x").2.contains("Missing Match criteria"));
        h.config("Match # nothing\n");
        assert_eq!(h.syntax_error("x").1, 1);
    }

    // --- Values. -------------------------------------------------------------------------------

    #[test]
    fn hostname_expands_percent_h_and_is_lowercased() {
        let h = Home::new();
        h.config("Host Gpu*\n  HostName %h.Lab.EXAMPLE.com\n");
        assert_eq!(h.resolve("Gpu7").host_name, "gpu7.lab.example.com");
        assert_eq!(h.resolve("Gpu7").host, "Gpu7");
        h.config("Host gpu\n  HostName %x.lab\n");
        assert_eq!(h.syntax_error("gpu").1, 2);
    }

    #[test]
    fn defaults_without_any_setting() {
        let h = Home::new();
        h.config("Host other\n  User x\n");
        assert_eq!(
            h.resolve("gpu"),
            HostConfig {
                host: "gpu".into(),
                host_name: "gpu".into(),
                ..HostConfig::default()
            }
        );
    }

    #[test]
    fn missing_config_file_is_an_empty_config() {
        let h = Home::new();
        let cfg = h.resolve("gpu.example.com");
        assert_eq!(cfg.host_name, "gpu.example.com");
        assert_eq!(cfg.port, None);
        assert_eq!(cfg.user, None);
        assert!(h.hosts().is_empty());
    }

    #[test]
    fn unreadable_config_is_io_error() {
        let h = Home::new();
        fs::create_dir(h.config_path()).unwrap();
        match h.try_resolve("gpu", None, None) {
            Err(SshConfigError::Io { file, .. }) => assert_eq!(file, h.config_path()),
            other => panic!("expected an Io error, got {other:?}"),
        }
    }

    #[test]
    fn port_must_be_1_to_65535() {
        let h = Home::new();
        for bad in ["0", "65536", "70000", "abc", "-1", "22x"] {
            h.config(&format!("Host gpu\n  Port {bad}\n"));
            let (file, line, msg) = h.syntax_error("gpu");
            assert_eq!((file, line), (h.config_path(), 2), "{bad}: {msg}");
        }
        h.config("Port 65535\n");
        assert_eq!(h.resolve("gpu").port, Some(65535));
    }

    #[test]
    fn values_are_validated_even_in_blocks_that_do_not_apply() {
        let h = Home::new();
        h.config("Host elsewhere\n  Port nope\n");
        assert_eq!(h.syntax_error("gpu").1, 2);
    }

    #[test]
    fn identity_file_tokens_are_expanded() {
        let h = Home::new();
        h.config(
            "Host gpu\n  HostName GPU.lab\n  User remote\n  Port 2200\n  \
             IdentityFile ~/.ssh/%h_%r\n  IdentityFile %d/keys/%u-%n-%p-%%\n  \
             IdentityFile ~tester/k\n  IdentityFile ${HOME}/env\n  IdentityFile rel/key\n",
        );
        let home = h.path().display().to_string();
        let env_home = std::env::var("HOME").expect("HOME is set for tests");
        assert_eq!(
            h.resolve("gpu").identity_files,
            vec![
                PathBuf::from(format!("{home}/.ssh/gpu.lab_remote")),
                PathBuf::from(format!("{home}/keys/{LOCAL_USER}-gpu-2200-%")),
                PathBuf::from(format!("{home}/k")),
                PathBuf::from(format!("{env_home}/env")),
                PathBuf::from("rel/key"),
            ]
        );
        // %r falls back to the local user when no User is configured.
        h.config("IdentityFile /k/%r\n");
        assert_eq!(
            h.resolve("gpu").identity_files,
            vec![PathBuf::from(format!("/k/{LOCAL_USER}"))]
        );
    }

    #[test]
    fn identity_file_unknown_token_is_error_and_uncomputable_token_is_noted() {
        let h = Home::new();
        h.config("Host gpu\n  IdentityFile /k/%Z\n");
        let (_, line, msg) = h.syntax_error("gpu");
        assert_eq!(line, 2);
        assert!(msg.contains("%Z"), "{msg}");
        h.config("Host gpu\n  IdentityFile /k/%C\n");
        let gpu = h.resolve("gpu");
        assert_eq!(gpu.identity_files, vec![PathBuf::from("/k/%C")]);
        assert_eq!(
            gpu.unsupported,
            vec![format!("IdentityFile token %C ({}:2)", h.config_path().display())]
        );
        h.config("IdentityFile ${RTRAIN_SURELY_UNSET_VARIABLE_42}/k\n");
        assert!(h.syntax_error("gpu").2.contains("RTRAIN_SURELY_UNSET_VARIABLE_42"));
    }

    #[test]
    fn connect_timeout_accepts_openssh_time_formats() {
        let h = Home::new();
        for (value, expected) in [
            ("10", secs(10)),
            ("10s", secs(10)),
            ("1m30s", secs(90)),
            ("2H", secs(7200)),
            ("1d", secs(86400)),
            ("1w", secs(604800)),
            ("0", None),
        ] {
            h.config(&format!("ConnectTimeout {value}\n"));
            assert_eq!(h.resolve("gpu").connect_timeout, expected, "{value}");
        }
        for bad in ["ten", "10x", "-5", "5 m"] {
            h.config(&format!("ConnectTimeout {bad}\n"));
            assert_eq!(h.syntax_error("gpu").1, 1, "{bad}");
        }
    }

    #[test]
    fn connect_timeout_none_leaves_it_unset_so_a_later_line_wins() {
        // An OpenSSH quirk: `none` is stored as "unset", so it does not block later values.
        let h = Home::new();
        h.config("Host gpu\n  ConnectTimeout none\nHost *\n  ConnectTimeout 7\n");
        assert_eq!(h.resolve("gpu").connect_timeout, secs(7));
    }

    #[test]
    fn server_alive_interval_zero_disables_and_still_wins_first() {
        let h = Home::new();
        h.config("Host gpu\n  ServerAliveInterval 0\nHost *\n  ServerAliveInterval 30\n");
        assert_eq!(h.resolve("gpu").server_alive_interval, None);
        assert_eq!(h.resolve("other").server_alive_interval, secs(30));
        h.config("ServerAliveInterval 2m\n");
        assert_eq!(h.resolve("gpu").server_alive_interval, secs(120));
    }

    #[test]
    fn server_alive_count_max_must_be_a_non_negative_integer() {
        let h = Home::new();
        h.config("ServerAliveCountMax 0\n");
        assert_eq!(h.resolve("gpu").server_alive_count_max, Some(0));
        for bad in ["-1", "three", "3.5", "2147483648"] {
            h.config(&format!("ServerAliveCountMax {bad}\n"));
            assert_eq!(h.syntax_error("gpu").1, 1, "{bad}");
        }
    }

    #[test]
    fn strict_host_key_checking_accepts_every_openssh_spelling() {
        use StrictHostKeyChecking::*;
        let h = Home::new();
        for (value, expected) in [
            ("yes", Yes),
            ("true", Yes),
            ("YES", Yes),
            ("no", No),
            ("false", No),
            ("off", No),
            ("ask", Ask),
            ("accept-new", AcceptNew),
        ] {
            h.config(&format!("StrictHostKeyChecking {value}\n"));
            assert_eq!(h.resolve("gpu").strict_host_key_checking, Some(expected), "{value}");
        }
        h.config("Host gpu\n  StrictHostKeyChecking maybe\n");
        let (_, line, msg) = h.syntax_error("gpu");
        assert_eq!(line, 2);
        assert!(msg.contains("maybe"), "{msg}");
    }

    #[test]
    fn certificate_files_accumulate_and_expand_like_identity_files() {
        let h = Home::new();
        h.config("Host gpu\n  CertificateFile ~/.ssh/%h-cert.pub\nHost *\n  CertificateFile ~/.ssh/%h-cert.pub\n  CertificateFile /ca/%r.pub\n");
        assert_eq!(
            h.resolve("gpu").certificate_files,
            [
                h.dir.path().join(".ssh/gpu-cert.pub"),
                PathBuf::from(format!("/ca/{LOCAL_USER}.pub"))
            ]
        );
        assert!(
            h.resolve("gpu").unsupported.is_empty(),
            "{:?}",
            h.resolve("gpu").unsupported
        );
    }

    #[test]
    fn identities_only_yes_no_and_bad_value() {
        let h = Home::new();
        h.config("Host gpu\n  IdentitiesOnly yes\nHost *\n  IdentitiesOnly no\n");
        assert!(h.resolve("gpu").identities_only);
        assert!(!h.resolve("other").identities_only);
        h.config("IdentitiesOnly sometimes\n");
        assert_eq!(h.syntax_error("gpu").1, 1);
    }

    #[test]
    fn identity_agent_keywords_are_kept_and_paths_expanded() {
        let h = Home::new();
        for (value, expected) in [
            ("none", "none".to_owned()),
            ("SSH_AUTH_SOCK", "SSH_AUTH_SOCK".to_owned()),
            ("$MY_AGENT", "$MY_AGENT".to_owned()),
            ("~/agent.sock", format!("{}/agent.sock", h.path().display())),
            ("/run/%u/agent", format!("/run/{LOCAL_USER}/agent")),
        ] {
            h.config(&format!("IdentityAgent {value}\n"));
            assert_eq!(h.resolve("gpu").identity_agent, Some(expected), "{value}");
        }
    }

    #[test]
    fn proxy_jump_is_raw_and_none_is_kept() {
        let h = Home::new();
        h.config(
            "Host a\n  ProxyJump user@bastion:2222,second # hop list\nHost b\n  ProxyJump none\n\
             Host *\n  ProxyJump fallback\n",
        );
        assert_eq!(h.resolve("a").proxy_jump.as_deref(), Some("user@bastion:2222,second"));
        assert_eq!(h.resolve("a").proxy_command, None);
        assert_eq!(h.resolve("b").proxy_jump.as_deref(), Some("none"));
        assert_eq!(h.resolve("c").proxy_jump.as_deref(), Some("fallback"));
    }

    #[test]
    fn proxy_jump_and_proxy_command_exclude_each_other_first_wins() {
        let h = Home::new();
        h.config(
            "Host jump-first\n  ProxyJump j\n  ProxyCommand nc %h %p\n\
             Host cmd-first\n  ProxyCommand nc %h %p\n  ProxyJump j\n\
             Host cmd-none\n  ProxyCommand none\n  ProxyJump j\n\
             Host jump-none\n  ProxyJump none\n  ProxyCommand nc %h %p\n",
        );
        let r = |host: &str| {
            let c = h.resolve(host);
            (c.proxy_jump, c.proxy_command)
        };
        assert_eq!(r("jump-first"), (Some("j".into()), None));
        assert_eq!(r("cmd-first"), (None, Some("nc %h %p".into())));
        assert_eq!(r("cmd-none"), (None, None));
        assert_eq!(r("jump-none"), (Some("none".into()), Some("nc %h %p".into())));
    }

    #[test]
    fn proxy_command_keeps_the_raw_rest_of_the_line() {
        let h = Home::new();
        h.config("Host gpu\n  ProxyCommand=  ssh -W \"%h:%p\"   bastion # not a comment  \n");
        assert_eq!(
            h.resolve("gpu").proxy_command.as_deref(),
            Some("ssh -W \"%h:%p\"   bastion # not a comment")
        );
    }

    #[test]
    fn unknown_and_ignored_keywords_are_noted_only_when_they_apply() {
        let h = Home::new();
        h.config(
            "IgnoreUnknown UseKeychain\nHost gpu\n  ForwardAgent yes\n  Compression yes\n  \
             UseKeychain yes\n  FrobnicateTheWidget 3\nHost *\n  ForwardAgent no\n  \
             ControlMaster auto\n  AddKeysToAgent yes\nHost never\n  LocalForward 8080 localhost:80\n",
        );
        let p = h.config_path();
        let p = p.display();
        assert_eq!(
            h.resolve("gpu").unsupported,
            vec![
                format!("ForwardAgent ({p}:3)"),
                format!("Compression ({p}:4)"),
                format!("UseKeychain ({p}:5)"),
                format!("FrobnicateTheWidget ({p}:6)"),
                format!("ControlMaster ({p}:9)"),
                format!("AddKeysToAgent ({p}:10)"),
            ]
        );
    }

    #[test]
    fn user_and_port_overrides_win_over_the_file() {
        let h = Home::new();
        h.config("Host gpu\n  User fileuser\n  Port 2200\n  IdentityFile /k/%r\n");
        let gpu = h.try_resolve("gpu", Some("cli"), Some(2222)).unwrap();
        assert_eq!(gpu.user.as_deref(), Some("cli"));
        assert_eq!(gpu.port, Some(2222));
        assert_eq!(gpu.identity_files, vec![PathBuf::from("/k/cli")]);
    }

    #[test]
    fn list_hosts_gives_concrete_aliases_in_order_deduplicated() {
        let h = Home::new();
        h.write(".ssh/more", "Host inc1 gpu\nMatch host m\n");
        h.config(
            "Host *\n  User x\nHost gpu bastion !evil web-?\nHost cpu *.lab\n  Include more\n\
             Host gpu tail\n",
        );
        assert_eq!(h.hosts(), vec!["gpu", "bastion", "cpu", "inc1", "tail"]);
    }

    // --- Against the real OpenSSH client. -------------------------------------------------------

    /// `ssh -G` output as keyword -> values (repeatable keywords such as identityfile keep order).
    fn ssh_g(config: &Path, host: &str, user: Option<&str>, port: Option<u16>) -> BTreeMap<String, Vec<String>> {
        let mut cmd = Command::new("ssh");
        cmd.arg("-G").arg("-F").arg(config);
        if let Some(u) = user {
            cmd.arg("-l").arg(u);
        }
        if let Some(p) = port {
            cmd.arg("-p").arg(p.to_string());
        }
        let out = cmd.arg(host).stdin(Stdio::null()).output().unwrap_or_else(|e| {
            panic!(
                "this test needs the OpenSSH client: could not run `ssh -G` ({e}); \
                     install openssh-client"
            )
        });
        assert!(
            out.status.success(),
            "ssh -G -F {} {host} failed: {}",
            config.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            map.entry(k.to_owned()).or_default().push(v.to_owned());
        }
        map
    }

    /// Our resolution rendered the way `ssh -G` prints it, unset options shown as ssh's defaults.
    fn as_ssh_g(c: &HostConfig, user: &str, home: &str) -> BTreeMap<String, Vec<String>> {
        let join = |v: &[PathBuf]| v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" ");
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_owned(), vec![v]);
        };
        put("hostname", c.host_name.clone());
        put("user", c.user.clone().unwrap_or_else(|| user.to_owned()));
        put("port", c.port.unwrap_or(22).to_string());
        put("identitiesonly", if c.identities_only { "yes" } else { "no" }.into());
        put(
            "stricthostkeychecking",
            match c.strict_host_key_checking {
                Some(StrictHostKeyChecking::Yes) => "true",
                Some(StrictHostKeyChecking::No) => "false",
                Some(StrictHostKeyChecking::AcceptNew) => "accept-new",
                Some(StrictHostKeyChecking::Ask) | None => "ask",
            }
            .into(),
        );
        put(
            "connecttimeout",
            c.connect_timeout.map_or("none".into(), |d| d.as_secs().to_string()),
        );
        put(
            "serveraliveinterval",
            c.server_alive_interval.map_or("0".into(), |d| d.as_secs().to_string()),
        );
        put("serveralivecountmax", c.server_alive_count_max.unwrap_or(3).to_string());
        let yes_no = |v: Option<bool>| if v.unwrap_or(true) { "yes" } else { "no" }.to_string();
        put("passwordauthentication", yes_no(c.password_authentication));
        put("kbdinteractiveauthentication", yes_no(c.kbd_interactive_authentication));
        put(
            "pubkeyauthentication",
            if c.pubkey_authentication.unwrap_or(true) {
                "true"
            } else {
                "false"
            }
            .into(),
        );
        put(
            "numberofpasswordprompts",
            c.number_of_password_prompts.unwrap_or(3).to_string(),
        );
        if let Some(p) = &c.preferred_authentications {
            put("preferredauthentications", p.join(","));
        }
        put(
            "userknownhostsfile",
            if c.user_known_hosts_files.is_empty() {
                format!("{home}/.ssh/known_hosts {home}/.ssh/known_hosts2")
            } else {
                join(&c.user_known_hosts_files)
            },
        );
        put(
            "globalknownhostsfile",
            if c.global_known_hosts_files.is_empty() {
                "/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2".into()
            } else {
                join(&c.global_known_hosts_files)
            },
        );
        m
    }

    #[test]
    fn resolution_matches_real_ssh_dash_g_on_tricky_configs() {
        // ssh takes ~ and the user from the passwd entry, so learn both from ssh itself.
        let probe = ssh_g(Path::new("/dev/null"), "probe", None, None);
        let real_user = probe["user"][0].clone();
        let real_home = probe["userknownhostsfile"][0]
            .split(' ')
            .next()
            .and_then(|p| p.strip_suffix("/.ssh/known_hosts"))
            .expect("default userknownhostsfile")
            .to_owned();
        let ctx = ResolveContext {
            home: Path::new(&real_home),
            local_user: &real_user,
        };

        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        fs::create_dir(dir.path().join("inc")).unwrap();
        fs::write(
            dir.path().join("inc/20-b.conf"),
            "Host gpu-b\n  Port 2020\nUser from-inc-b\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("inc/10-a.conf"),
            "Port 1010\nHost inner\n  User inner\n",
        )
        .unwrap();

        let cases: Vec<(String, Vec<&str>)> = vec![
            (
                // Options before any Host, Key=Value, tabs, quoting, first-wins, accumulation.
                "ConnectTimeout=12\nServerAliveCountMax 5\n\
                 Host gpu gpu-? !gpu-x\n\tHostName %h.Lab.Example\n\tUser = alice\n\
                 \tIdentityFile \"/keys/with space/id\"\n\tIdentityFile /keys/b\n\
                 \tUserKnownHostsFile /kh/%h-%r-%u-%n-%p-%%-%k-%l-%L%d  ~/.ssh/kh2 ${HOME}/kh3\n\
                 Host *\n  User fallback\n  Port 2222\n  IdentityFile /keys/b\n  IdentityFile /keys/c\n\
                 \x20 ServerAliveInterval 1m30s\n  StrictHostKeyChecking accept-new\n"
                    .to_owned(),
                vec!["gpu", "gpu-1", "gpu-x", "other", "alice@gpu-2:2200", "GPU"],
            ),
            (
                // Include inside a Host block, glob order, Match against HostName / alias / user.
                format!(
                    "Host blk gpu-b\n  Include {d}/inc/*.conf\n  User blk\n\
                     Host gpu\n  HostName 10.1.2.3\n\
                     Match host 10.1.2.*\n  User matched-by-hostname\n\
                     Match originalhost GPU\n  Port 4040\n\
                     Match user bob\n  IdentitiesOnly yes\n\
                     Match !host gpu*,blk\n  StrictHostKeyChecking no\n\
                     Match all\n  ServerAliveInterval 0\n"
                ),
                vec!["blk", "gpu-b", "inner", "gpu", "bob@gpu", "bob@xyz", "zzz"],
            ),
            (
                // ProxyJump/ProxyCommand interplay, ConnectTimeout none, ServerAliveInterval 0.
                "Host jf\n  ProxyJump u@j1:2222,j2 # comment\n  ProxyCommand nc %h %p\n\
                 Host cf\n  ProxyCommand ssh -W %h:%p  bastion\n  ProxyJump j\n\
                 Host cn\n  ProxyCommand none\n  ProxyJump j\n\
                 Host jn\n  ProxyJump none\n  ProxyCommand nc %h %p\n\
                 Host *\n  ConnectTimeout none\n  ServerAliveInterval 0\n  ConnectTimeout 2h\n\
                 \x20 ServerAliveInterval 40\n  StrictHostKeyChecking off\n  GlobalKnownHostsFile /etc/g1 ~/g2\n"
                    .to_owned(),
                vec!["jf", "cf", "cn", "jn", "root@jf:22"],
            ),
            (
                // Authentication methods: first value wins, the old ChallengeResponse name.
                "Host pw\n  PreferredAuthentications password,keyboard-interactive\n  PubkeyAuthentication no\n\
                 \x20 ChallengeResponseAuthentication no\n  NumberOfPasswordPrompts 1\n  CertificateFile ~/c/%h.pub\n\
                 Host *\n  PreferredAuthentications publickey\n  PasswordAuthentication no\n\
                 \x20 PubkeyAuthentication yes\n  KbdInteractiveAuthentication yes\n  NumberOfPasswordPrompts 5\n"
                    .to_owned(),
                vec!["pw", "other"],
            ),
        ];

        for (i, (text, dests)) in cases.iter().enumerate() {
            let path = dir.path().join(format!("case{i}"));
            fs::write(&path, text).unwrap();
            for dest in dests {
                let (user, rest) = match dest.split_once('@') {
                    Some((u, r)) => (Some(u), r),
                    None => (None, *dest),
                };
                let (host, port) = match rest.split_once(':') {
                    Some((h, p)) => (h, Some(p.parse::<u16>().unwrap())),
                    None => (rest, None),
                };
                let ours = resolve(&path, host, user, port, &ctx).unwrap_or_else(|e| panic!("case{i} {dest}: {e}"));
                let theirs = ssh_g(&path, host, user, port);
                let what = format!("case{i} `{dest}`");
                for (key, want) in as_ssh_g(&ours, &real_user, &real_home) {
                    assert_eq!(theirs.get(&key), Some(&want), "{what}: {key}");
                }
                // ssh -G prints IdentityFile unexpanded; expand its ~ to compare.
                let their_ids: Vec<PathBuf> = theirs["identityfile"]
                    .iter()
                    .map(|p| match p.strip_prefix('~') {
                        Some(rest) => PathBuf::from(format!("{real_home}{rest}")),
                        None => PathBuf::from(p),
                    })
                    .collect();
                if ours.identity_files.is_empty() {
                    assert!(
                        their_ids.contains(&PathBuf::from(format!("{real_home}/.ssh/id_rsa"))),
                        "{what}: ssh has identity files {their_ids:?} but we have none"
                    );
                } else {
                    assert_eq!(their_ids, ours.identity_files, "{what}: identityfile");
                }
                // ssh -G omits proxyjump when unset or "none", and proxycommand when "none".
                let jump = ours.proxy_jump.clone().filter(|j| j != "none");
                assert_eq!(theirs.get("proxyjump").map(|v| v[0].clone()), jump, "{what}: proxyjump");
                assert_eq!(
                    theirs.get("proxycommand").map(|v| v[0].clone()),
                    ours.proxy_command,
                    "{what}: proxycommand"
                );
            }
        }
    }
}
