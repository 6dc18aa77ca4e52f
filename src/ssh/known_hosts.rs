//! Host-key verification against OpenSSH `known_hosts` files, done here because russh's
//! `check_known_hosts` gets several cases wrong (a host with two lines, `@revoked`,
//! `@cert-authority`, patterns and negation) and rtrain must accept and refuse what `ssh` would.
//!
//! The rules follow OpenSSH 9.2 (`hostfile.c`, `match.c`, `sshconnect.c`) and were checked
//! against a real `ssh`/`sshd` pair. Where this module is deliberately stricter than OpenSSH,
//! the item concerned says so.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

const DEFAULT_PORT: u16 = 22;

/// One line of a known_hosts file, as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownLine {
    pub file: PathBuf,
    /// 1-based, like `ssh` prints it.
    pub line: usize,
    /// Canonical key type of that line's key (`rsa-sha2-*` lines say `ssh-rsa`).
    pub key_type: String,
    /// `SHA256:...` of that line's key.
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyStatus {
    /// A non-marker line for this host carries exactly this key.
    Known(KnownLine),
    /// The host has one or more lines with the same key type, none carries this key. `lines`
    /// lists them all (file:line so the user knows what to fix).
    Changed { lines: Vec<KnownLine> },
    /// The key appears on an `@revoked` line. Always refused, wins over `Known`.
    ///
    /// Stricter than OpenSSH, which only honours an `@revoked` line whose host patterns match the
    /// host being checked: a revoked key is refused here whatever host the line names.
    Revoked(KnownLine),
    /// No line for this host carries a key of this type. `other_types` lists key types known for
    /// the host.
    ///
    /// Careful: OpenSSH 9.2 reports "REMOTE HOST IDENTIFICATION HAS CHANGED" when `other_types`
    /// is non-empty (it does not ask as for a new host); see
    /// [`HostKeyStatus::openssh_reports_mismatch`].
    Unknown { other_types: Vec<String> },
}

impl HostKeyStatus {
    /// Whether `ssh` would stop here with its "HOST IDENTIFICATION HAS CHANGED" or "REVOKED HOST
    /// KEY" warning rather than accept the key or ask about a new host.
    ///
    /// This differs from "is `Changed` or `Revoked`" because OpenSSH counts a host whose lines
    /// only carry other key types as changed (checked against OpenSSH 9.2). Since `ssh`, like
    /// rtrain via [`known_key_types`], prefers the known types during key exchange, a server
    /// that offers none of them has lost its known key or is not the server that was recorded.
    pub fn openssh_reports_mismatch(&self) -> bool {
        match self {
            HostKeyStatus::Known(_) => false,
            HostKeyStatus::Changed { .. } | HostKeyStatus::Revoked(_) => true,
            HostKeyStatus::Unknown { other_types } => !other_types.is_empty(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("invalid host key text: {0}")]
    BadKey(String),
}

/// OpenSSH's per-user defaults for `UserKnownHostsFile`.
pub fn default_files(home: &Path) -> Vec<PathBuf> {
    let ssh = home.join(".ssh");
    vec![ssh.join("known_hosts"), ssh.join("known_hosts2")]
}

/// The name OpenSSH looks up: "host" for port 22, "[host]:port" otherwise.
///
/// Lowercased, because `ssh` lowercases the host name before looking it up or recording it, and
/// hashed entries are hashes of that lowercased form.
pub fn host_pattern_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == DEFAULT_PORT {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// SHA256 fingerprint as OpenSSH prints it: "SHA256:" + base64 (no padding) of sha256(blob).
pub fn fingerprint(key_openssh: &str) -> Result<String, KnownHostsError> {
    Ok(HostKey::parse_openssh(key_openssh)?.fingerprint())
}

/// Check `key_openssh` for (host, port) against every file in `files`, in order (missing files
/// are fine: skip them; other read errors are errors). Malformed lines are skipped (OpenSSH skips
/// them too), never a crash.
///
/// For a port other than 22, lines for `[host]:port` decide. Only when there is no such line at
/// all does a plain `host` line count, and then only if it carries exactly this key: that is
/// `ssh`'s "checking without port identifier" retry, so a host already trusted on port 22 is not
/// a stranger on another port, yet a plain line with another key is not a "changed" alarm.
pub fn check(files: &[PathBuf], host: &str, port: u16, key_openssh: &str) -> Result<HostKeyStatus, KnownHostsError> {
    let key = HostKey::parse_openssh(key_openssh)?;
    let entries = load(files)?;
    let known_line = |entry: &Entry| entry.known_line(files);

    if let Some(revoked) = entries.iter().find(|e| e.marker == Marker::Revoked && e.key == key) {
        return Ok(HostKeyStatus::Revoked(known_line(revoked)));
    }

    let for_host = host_entries(&entries, &host_pattern_name(host, port));
    if let Some(found) = for_host.iter().find(|e| e.key == key) {
        return Ok(HostKeyStatus::Known(known_line(found)));
    }
    let same_type: Vec<KnownLine> = for_host
        .iter()
        .filter(|e| e.key.key_type == key.key_type)
        .map(|e| known_line(e))
        .collect();
    if !same_type.is_empty() {
        return Ok(HostKeyStatus::Changed { lines: same_type });
    }
    if for_host.is_empty() && port != DEFAULT_PORT {
        let plain = host_pattern_name(host, DEFAULT_PORT);
        if let Some(found) = host_entries(&entries, &plain).into_iter().find(|e| e.key == key) {
            return Ok(HostKeyStatus::Known(known_line(found)));
        }
    }
    Ok(HostKeyStatus::Unknown {
        other_types: distinct_types(&for_host),
    })
}

/// Key types (e.g. "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa") known for this host, in file
/// order, deduplicated. The caller uses this to prefer those host-key algorithms during key
/// exchange, as OpenSSH does.
///
/// RSA is reported as "ssh-rsa" whatever the line says; the caller maps it to the
/// `rsa-sha2-512`/`rsa-sha2-256` signature algorithms. Like OpenSSH's own ordering, a non-22 port
/// only looks at `[host]:port` lines (no fallback to plain `host` lines here).
pub fn known_key_types(files: &[PathBuf], host: &str, port: u16) -> Result<Vec<String>, KnownHostsError> {
    let entries = load(files)?;
    Ok(distinct_types(&host_entries(&entries, &host_pattern_name(host, port))))
}

/// A certificate authority trusted for a host by a `@cert-authority` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    pub line: KnownLine,
    /// The CA's public key as `type base64`.
    pub key_openssh: String,
}

/// The `@cert-authority` lines whose host patterns match (host, port), in file order (for a port
/// other than 22 the name looked up is `[host]:port`, as for plain lines).
pub fn cert_authorities(files: &[PathBuf], host: &str, port: u16) -> Result<Vec<Authority>, KnownHostsError> {
    let entries = load(files)?;
    let name = host_pattern_name(host, port);
    Ok(entries
        .iter()
        .filter(|e| e.marker == Marker::CertAuthority && hosts_match(&e.hosts, name.as_bytes()))
        .map(|e| Authority {
            line: e.known_line(files),
            key_openssh: e.key.to_openssh(),
        })
        .collect())
}

/// The `@revoked` line carrying this key, if any (whatever host it names, as [`check`] does).
pub fn revoked(files: &[PathBuf], key_openssh: &str) -> Result<Option<KnownLine>, KnownHostsError> {
    let key = HostKey::parse_openssh(key_openssh)?;
    let entries = load(files)?;
    Ok(entries
        .iter()
        .find(|e| e.marker == Marker::Revoked && e.key == key)
        .map(|e| e.known_line(files)))
}

/// Append a line for (host, port) with this key to `file` (create parent dir 0700 and file 0600
/// if missing; add a newline first if the file does not end with one). Plain (unhashed) `host` or
/// `[host]:port` form.
///
/// A host name that would change the meaning of the line (blank, control characters, `,` `*` `?`
/// `!`, or a leading `@` `#` `|`) is refused with an `Io` error of kind `InvalidInput`, so a
/// strange name can never widen what the new line trusts.
pub fn append(file: &Path, host: &str, port: u16, key_openssh: &str) -> Result<(), KnownHostsError> {
    let key = HostKey::parse_openssh(key_openssh)?;
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |e| KnownHostsError::Io(path, e)
    };
    check_writable_host(host).map_err(io_error(file))?;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(io_error(dir))?;
    }
    let mut out = open_private_append(file).map_err(io_error(file))?;
    let mut text = String::new();
    if !ends_with_newline(&mut out).map_err(io_error(file))? {
        text.push('\n');
    }
    text.push_str(&host_pattern_name(host, port));
    text.push(' ');
    text.push_str(&key.to_openssh());
    text.push('\n');
    // One write on an O_APPEND file, so a concurrent `ssh` appending too cannot split our line.
    out.write_all(text.as_bytes()).map_err(io_error(file))
}

fn check_writable_host(host: &str) -> io::Result<()> {
    let unsafe_name = host.is_empty()
        || host.starts_with(['@', '#', '|'])
        || host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | '*' | '?' | '!'));
    if unsafe_name {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("host name {host:?} cannot be recorded in known_hosts"),
        ));
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn open_private_append(file: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(file)
}

fn ends_with_newline(file: &mut fs::File) -> io::Result<bool> {
    if file.metadata()?.len() == 0 {
        return Ok(true);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// A public key reduced to what identifies it: OpenSSH compares keys by their wire blob, so two
/// texts with different comments or `rsa-sha2-*` names are the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostKey {
    key_type: &'static str,
    blob: Vec<u8>,
}

impl HostKey {
    fn parse_openssh(text: &str) -> Result<Self, KnownHostsError> {
        let mut fields = text.split_whitespace();
        let (Some(algo), Some(data)) = (fields.next(), fields.next()) else {
            return Err(KnownHostsError::BadKey(format!(
                "expected \"<type> <base64>\", got {:?}",
                truncate(text)
            )));
        };
        Self::from_fields(algo.as_bytes(), data.as_bytes())
            .map_err(|why| KnownHostsError::BadKey(format!("{why} (type {:?})", truncate(algo))))
    }

    fn from_fields(algo: &[u8], data: &[u8]) -> Result<Self, &'static str> {
        let key_type = canonical_key_type(algo).ok_or("unsupported key type")?;
        // Strict (padded, canonical) base64, as OpenSSH's decoder is: a line it cannot decode
        // must not count here either.
        let blob = STANDARD.decode(data).map_err(|_| "key data is not valid base64")?;
        check_blob(key_type, &blob)?;
        Ok(HostKey { key_type, blob })
    }

    fn fingerprint(&self) -> String {
        format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(&self.blob)))
    }

    fn to_openssh(&self) -> String {
        format!("{} {}", self.key_type, STANDARD.encode(&self.blob))
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// The type names OpenSSH 9.2 accepts in a known_hosts line, mapped to the name inside the key
/// blob. Short names (`ED25519`) and certificates are not accepted: `ssh` skips such lines too.
fn canonical_key_type(name: &[u8]) -> Option<&'static str> {
    Some(match name {
        b"ssh-rsa" | b"rsa-sha2-256" | b"rsa-sha2-512" => "ssh-rsa",
        b"ssh-ed25519" => "ssh-ed25519",
        b"ecdsa-sha2-nistp256" => "ecdsa-sha2-nistp256",
        b"ecdsa-sha2-nistp384" => "ecdsa-sha2-nistp384",
        b"ecdsa-sha2-nistp521" => "ecdsa-sha2-nistp521",
        b"ssh-dss" => "ssh-dss",
        b"sk-ssh-ed25519@openssh.com" => "sk-ssh-ed25519@openssh.com",
        b"sk-ecdsa-sha2-nistp256@openssh.com" => "sk-ecdsa-sha2-nistp256@openssh.com",
        _ => return None,
    })
}

/// Structural check of a key blob, so that lines `ssh` would reject as corrupt (truncated,
/// trailing bytes, type/curve mismatch) are skipped rather than counted as a "changed" key.
/// Points are not checked to be on their curve.
fn check_blob(key_type: &str, blob: &[u8]) -> Result<(), &'static str> {
    const TRUNCATED: &str = "key data is truncated or malformed";
    let mut r = SshReader(blob);
    if r.string().ok_or(TRUNCATED)? != key_type.as_bytes() {
        return Err("key data is for another key type");
    }
    match key_type {
        "ssh-ed25519" | "sk-ssh-ed25519@openssh.com" => {
            if r.string().ok_or(TRUNCATED)?.len() != 32 {
                return Err(TRUNCATED);
            }
        }
        "ssh-rsa" => {
            r.mpint().ok_or(TRUNCATED)?;
            // OpenSSH refuses RSA keys under 1024 bits outright.
            if r.mpint().ok_or(TRUNCATED)? < 1024 {
                return Err("RSA key is too small");
            }
        }
        "ssh-dss" => {
            for _ in 0..4 {
                r.mpint().ok_or(TRUNCATED)?;
            }
        }
        _ => {
            let (curve, coordinate_len): (&[u8], usize) = match key_type {
                "ecdsa-sha2-nistp384" => (b"nistp384", 48),
                "ecdsa-sha2-nistp521" => (b"nistp521", 66),
                _ => (b"nistp256", 32),
            };
            if r.string().ok_or(TRUNCATED)? != curve {
                return Err("key data is for another curve");
            }
            let point = r.string().ok_or(TRUNCATED)?;
            if point.len() != 1 + 2 * coordinate_len || point[0] != 4 {
                return Err(TRUNCATED);
            }
        }
    }
    if key_type.starts_with("sk-") {
        r.string().ok_or(TRUNCATED)?; // FIDO application
    }
    if !r.0.is_empty() {
        return Err("trailing bytes after key data");
    }
    Ok(())
}

struct SshReader<'a>(&'a [u8]);

impl<'a> SshReader<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        if rest.len() < len {
            return None;
        }
        let (s, rest) = rest.split_at(len);
        self.0 = rest;
        Some(s)
    }

    /// Bit length of an SSH mpint, refusing what OpenSSH's `sshbuf_get_bignum2` refuses.
    fn mpint(&mut self) -> Option<usize> {
        const MAX_BYTES: usize = 16384 / 8;
        let m = self.string()?;
        if m.first().is_some_and(|b| b & 0x80 != 0) || m.len() > MAX_BYTES + 1 {
            return None;
        }
        if m.len() == MAX_BYTES + 1 && m[0] != 0 {
            return None;
        }
        let zeros = m.iter().take_while(|&&b| b == 0).count();
        let m = &m[zeros..];
        Some(
            m.first()
                .map_or(0, |&b| (m.len() - 1) * 8 + (8 - b.leading_zeros() as usize)),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    None,
    CertAuthority,
    Revoked,
}

#[derive(Debug)]
struct Entry {
    file: usize,
    line: usize,
    marker: Marker,
    hosts: Vec<u8>,
    key: HostKey,
}

impl Entry {
    fn known_line(&self, files: &[PathBuf]) -> KnownLine {
        KnownLine {
            file: files[self.file].clone(),
            line: self.line,
            key_type: self.key.key_type.to_string(),
            fingerprint: self.key.fingerprint(),
        }
    }
}

fn load(files: &[PathBuf]) -> Result<Vec<Entry>, KnownHostsError> {
    let mut entries = Vec::new();
    for (file, path) in files.iter().enumerate() {
        let data = match fs::read(path) {
            Ok(data) => data,
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => continue,
            Err(e) => return Err(KnownHostsError::Io(path.clone(), e)),
        };
        // Bytes, not text: a stray non-UTF-8 byte in one comment must not hide the whole file.
        for (index, line) in data.split(|&b| b == b'\n').enumerate() {
            if let Some((marker, hosts, key)) = parse_line(line) {
                entries.push(Entry {
                    file,
                    line: index + 1,
                    marker,
                    hosts: hosts.to_vec(),
                    key,
                });
            }
        }
    }
    Ok(entries)
}

fn host_entries<'a>(entries: &'a [Entry], name: &str) -> Vec<&'a Entry> {
    entries
        .iter()
        .filter(|e| e.marker == Marker::None && hosts_match(&e.hosts, name.as_bytes()))
        .collect()
}

fn distinct_types(entries: &[&Entry]) -> Vec<String> {
    let mut types: Vec<String> = Vec::new();
    for entry in entries {
        if !types.iter().any(|t| t == entry.key.key_type) {
            types.push(entry.key.key_type.to_string());
        }
    }
    types
}

fn is_blank(b: &u8) -> bool {
    *b == b' ' || *b == b'\t'
}

fn skip_blanks(s: &[u8]) -> &[u8] {
    &s[s.iter().take_while(|b| is_blank(b)).count()..]
}

fn split_field(s: &[u8]) -> (&[u8], &[u8]) {
    s.split_at(s.iter().position(is_blank).unwrap_or(s.len()))
}

/// `[@marker] hosts keytype base64 [comment]`; `None` for comments, blank and malformed lines.
///
/// A tab after the marker is accepted. OpenSSH 9.2 looks for the first space in the line instead,
/// so it ignores `@revoked<TAB>host key...` when a space follows later; honouring such a line
/// only ever refuses more.
pub(crate) fn parse_line(line: &[u8]) -> Option<(Marker, &[u8], HostKey)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = skip_blanks(line);
    if rest.is_empty() || rest[0] == b'#' {
        return None;
    }
    let (marker, rest) = if rest[0] == b'@' {
        let (word, after) = split_field(rest);
        if after.is_empty() {
            return None;
        }
        let marker = match word {
            b"@cert-authority" => Marker::CertAuthority,
            b"@revoked" => Marker::Revoked,
            _ => return None,
        };
        (marker, skip_blanks(after))
    } else {
        (Marker::None, rest)
    };
    if rest.first() == Some(&b'@') {
        return None; // only one marker is allowed
    }
    let (hosts, rest) = split_field(rest);
    let rest = skip_blanks(rest);
    if rest.is_empty() || rest[0] == b'#' {
        return None;
    }
    let (key_type, rest) = split_field(rest);
    if rest.is_empty() {
        return None;
    }
    let (data, _comment) = split_field(skip_blanks(rest));
    let key = HostKey::from_fields(key_type, data).ok()?;
    Some((marker, hosts, key))
}

/// Whether a line's host field matches the (lowercased) lookup name.
pub(crate) fn hosts_match(hosts: &[u8], name: &[u8]) -> bool {
    if hosts.first() == Some(&b'|') {
        hashed_host_matches(hosts, name)
    } else {
        pattern_list_matches(name, hosts)
    }
}

/// `|1|<base64 salt>|<base64 HMAC-SHA1(salt, name)>`. Like OpenSSH, recompute the whole field and
/// compare text, so a hashed field is one name only and any non-canonical encoding never matches.
fn hashed_host_matches(field: &[u8], name: &[u8]) -> bool {
    const SHA1_LEN: usize = 20;
    let Some(rest) = field.strip_prefix(b"|1|") else {
        return false;
    };
    let Some(end) = rest.iter().position(|&b| b == b'|') else {
        return false;
    };
    let salt_text = &rest[..end];
    if salt_text.is_empty() || salt_text.len() > 1024 {
        return false;
    }
    let Ok(salt) = STANDARD.decode(salt_text) else {
        return false;
    };
    if salt.len() != SHA1_LEN {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name);
    let expected = format!(
        "|1|{}|{}",
        STANDARD.encode(&salt),
        STANDARD.encode(mac.finalize().into_bytes())
    );
    field == expected.as_bytes()
}

/// OpenSSH's `match_pattern_list` on a lowercased name: comma-separated patterns, any negated
/// (`!`) pattern that matches vetoes the whole list, otherwise one positive match is needed.
fn pattern_list_matches(name: &[u8], list: &[u8]) -> bool {
    // OpenSSH copies each pattern into a 1024-byte buffer and fails the whole list if one is
    // longer.
    const MAX_PATTERN: usize = 1023;
    let mut positive = false;
    let mut rest = list;
    while !rest.is_empty() {
        let (negated, body) = match rest.strip_prefix(b"!") {
            Some(body) => (true, body),
            None => (false, rest),
        };
        let end = body.iter().position(|&b| b == b',').unwrap_or(body.len());
        let pattern = &body[..end];
        if pattern.len() >= MAX_PATTERN {
            return false;
        }
        if wildcard_match(name, pattern) {
            if negated {
                return false;
            }
            positive = true;
        }
        rest = body.get(end + 1..).unwrap_or_default();
    }
    positive
}

/// `*` (any run of bytes) and `?` (one byte), pattern compared case-insensitively (ASCII). Same
/// answers as OpenSSH's recursive `match_pattern`, without its exponential worst case.
fn wildcard_match(name: &[u8], pattern: &[u8]) -> bool {
    let (mut n, mut p) = (0, 0);
    // After a `*`: where the pattern resumes and the name position the `*` currently ends at.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                star = Some((p, n));
            }
            Some(&c) if c == b'?' || c.to_ascii_lowercase() == name[n] => {
                n += 1;
                p += 1;
            }
            _ => match star {
                Some((resume, end)) => {
                    p = resume;
                    n = end + 1;
                    star = Some((resume, end + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Output};
    use std::slice::from_ref;
    use std::sync::OnceLock;

    /// Public keys made by the real `ssh-keygen`, as "<type> <base64> <comment>".
    struct Keys {
        ed_a: String,
        ed_b: String,
        ed_c: String,
        ecdsa: String,
        ecdsa384: String,
        rsa: String,
    }

    fn ssh_keygen(args: &[&str]) -> Output {
        Command::new("ssh-keygen")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("these tests need OpenSSH's ssh-keygen (package openssh-client): {e}"))
    }

    fn generate(dir: &Path, name: &str, kind: &[&str]) -> String {
        let path = dir.join(name);
        let path_text = path.to_str().unwrap();
        let mut args = vec!["-q", "-N", "", "-C", name, "-f", path_text];
        args.extend_from_slice(kind);
        let out = ssh_keygen(&args);
        assert!(
            out.status.success(),
            "ssh-keygen {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::read_to_string(path.with_extension("pub"))
            .unwrap()
            .trim()
            .to_string()
    }

    fn keys() -> &'static Keys {
        static KEYS: OnceLock<Keys> = OnceLock::new();
        KEYS.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            Keys {
                ed_a: generate(d, "ed_a", &["-t", "ed25519"]),
                ed_b: generate(d, "ed_b", &["-t", "ed25519"]),
                ed_c: generate(d, "ed_c", &["-t", "ed25519"]),
                ecdsa: generate(d, "ecdsa", &["-t", "ecdsa", "-b", "256"]),
                ecdsa384: generate(d, "ecdsa384", &["-t", "ecdsa", "-b", "384"]),
                rsa: generate(d, "rsa", &["-t", "rsa", "-b", "2048"]),
            }
        })
    }

    /// "<type> <base64>" without the comment, as it goes into a known_hosts line.
    fn bare(key: &str) -> String {
        key.split(' ').take(2).collect::<Vec<_>>().join(" ")
    }

    fn blob_b64(key: &str) -> &str {
        key.split(' ').nth(1).unwrap()
    }

    fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, content).unwrap();
        path
    }

    fn status(files: &[PathBuf], host: &str, port: u16, key: &str) -> HostKeyStatus {
        check(files, host, port, key).unwrap()
    }

    fn known_at(file: &Path, line: usize, key: &str) -> HostKeyStatus {
        let key = HostKey::parse_openssh(key).unwrap();
        HostKeyStatus::Known(KnownLine {
            file: file.to_path_buf(),
            line,
            key_type: key.key_type.to_string(),
            fingerprint: key.fingerprint(),
        })
    }

    fn line_at(file: &Path, line: usize, key: &str) -> KnownLine {
        match known_at(file, line, key) {
            HostKeyStatus::Known(l) => l,
            _ => unreachable!(),
        }
    }

    fn unknown(types: &[&str]) -> HostKeyStatus {
        HostKeyStatus::Unknown {
            other_types: types.iter().map(|t| t.to_string()).collect(),
        }
    }

    /// Line numbers `ssh-keygen -F` reports for `name`: OpenSSH's own host matching. With
    /// `parsed`, `-l` makes it parse keys too, so lines with a bad key drop out.
    fn keygen_find(file: &Path, name: &str, parsed: bool) -> Vec<usize> {
        let mut args = vec!["-F", name, "-f", file.to_str().unwrap()];
        if parsed {
            args.insert(0, "-l");
        }
        let out = ssh_keygen(&args);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("# Host "))
            .filter_map(|l| l.split("found: line ").nth(1))
            // "N", or "N CA" / "N REVOKED" for marker lines.
            .map(|n| n.split_whitespace().next().unwrap().parse().unwrap())
            .collect()
    }

    /// Line numbers whose host field this module matches for `name`, whatever their marker.
    fn our_find(file: &Path, name: &str) -> Vec<usize> {
        load(&[file.to_path_buf()])
            .unwrap()
            .iter()
            .filter(|e| hosts_match(&e.hosts, name.to_ascii_lowercase().as_bytes()))
            .map(|e| e.line)
            .collect()
    }

    #[test]
    fn fingerprint_equals_ssh_keygen_lf() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        for key in [&k.ed_a, &k.ecdsa, &k.ecdsa384, &k.rsa] {
            let file = write(dir.path(), "key.pub", &format!("{key}\n"));
            let out = ssh_keygen(&["-lf", file.to_str().unwrap()]);
            assert!(out.status.success());
            let stdout = String::from_utf8(out.stdout).unwrap();
            let expected = stdout.split(' ').nth(1).unwrap();
            assert!(expected.starts_with("SHA256:"));
            assert_eq!(fingerprint(key).unwrap(), expected, "{key}");
            assert_eq!(fingerprint(&bare(key)).unwrap(), expected);
        }
    }

    #[test]
    fn host_pattern_name_is_plain_for_port_22_and_bracketed_otherwise() {
        assert_eq!(host_pattern_name("gpu1", 22), "gpu1");
        assert_eq!(host_pattern_name("gpu1", 2222), "[gpu1]:2222");
        assert_eq!(host_pattern_name("GPU1.Example.COM", 22), "gpu1.example.com");
        assert_eq!(host_pattern_name("10.0.0.5", 2200), "[10.0.0.5]:2200");
        assert_eq!(host_pattern_name("::1", 2200), "[::1]:2200");
    }

    #[test]
    fn default_files_are_the_user_known_hosts_files() {
        assert_eq!(
            default_files(Path::new("/home/u")),
            vec![
                PathBuf::from("/home/u/.ssh/known_hosts"),
                PathBuf::from("/home/u/.ssh/known_hosts2")
            ]
        );
    }

    #[test]
    fn key_text_with_trailing_comment_or_newline_is_accepted() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "kh", &format!("gpu1 {}\n", bare(&k.ed_a)));
        let files = [f.clone()];
        assert_eq!(status(&files, "gpu1", 22, &k.ed_a), known_at(&f, 1, &k.ed_a));
        let with_newline = format!("{}\n", k.ed_a);
        assert_eq!(status(&files, "gpu1", 22, &with_newline), known_at(&f, 1, &k.ed_a));
    }

    #[test]
    fn bad_key_text_is_rejected() {
        let k = keys();
        let ed_blob = blob_b64(&k.ed_a);
        for bad in [
            String::new(),
            "ssh-ed25519".to_string(),
            "ssh-ed25519 not*base64".to_string(),
            format!("ssh-foo {ed_blob}"),
            format!("ssh-rsa {ed_blob}"),
            format!("ED25519 {ed_blob}"),
            format!("ssh-ed25519 {}", &ed_blob[..40]),
        ] {
            let err = fingerprint(&bad).unwrap_err();
            assert!(matches!(err, KnownHostsError::BadKey(_)), "{bad:?}: {err}");
            let err = check(&[], "gpu1", 22, &bad).unwrap_err();
            assert!(matches!(err, KnownHostsError::BadKey(_)), "{bad:?}: {err}");
        }
    }

    #[test]
    fn plain_entry_is_known() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "kh", &format!("gpu1 {}\n", bare(&k.ed_a)));
        assert_eq!(status(from_ref(&f), "gpu1", 22, &k.ed_a), known_at(&f, 1, &k.ed_a));
        assert_eq!(status(&[f], "gpu2", 22, &k.ed_a), unknown(&[]));
    }

    #[test]
    fn hashed_entries_made_by_ssh_keygen_are_matched() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "kh",
            &format!("gpu1 {}\n[gpu1]:2222 {}\n", bare(&k.ed_a), bare(&k.ecdsa)),
        );
        let out = ssh_keygen(&["-H", "-f", f.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let hashed = fs::read_to_string(&f).unwrap();
        assert_eq!(hashed.lines().count(), 2);
        assert!(hashed.lines().all(|l| l.starts_with("|1|")), "{hashed}");

        let files = [f.clone()];
        assert_eq!(status(&files, "gpu1", 22, &k.ed_a), known_at(&f, 1, &k.ed_a));
        assert_eq!(status(&files, "GPU1", 22, &k.ed_a), known_at(&f, 1, &k.ed_a));
        assert_eq!(status(&files, "gpu1", 2222, &k.ecdsa), known_at(&f, 2, &k.ecdsa));
        assert_eq!(
            status(&files, "gpu1", 22, &k.ed_b),
            HostKeyStatus::Changed {
                lines: vec![line_at(&f, 1, &k.ed_a)]
            }
        );
        assert_eq!(status(&files, "gpu2", 22, &k.ed_a), unknown(&[]));
        assert_eq!(status(&files, "gpu1", 2223, &k.ecdsa), unknown(&[]));
        for name in ["gpu1", "[gpu1]:2222", "gpu2", "[gpu1]:22"] {
            assert_eq!(our_find(&f, name), keygen_find(&f, name, false), "{name}");
        }
    }

    #[test]
    fn bracketed_port_entry_is_known_only_for_that_port() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "kh", &format!("[gpu1]:2222 {}\n", bare(&k.ed_a)));
        let files = [f.clone()];
        assert_eq!(status(&files, "gpu1", 2222, &k.ed_a), known_at(&f, 1, &k.ed_a));
        assert_eq!(status(&files, "gpu1", 2223, &k.ed_a), unknown(&[]));
        assert_eq!(status(&files, "gpu1", 22, &k.ed_a), unknown(&[]));
    }

    /// `ssh` looks port 22 up as plain `host`, so a `[host]:22` line never applies (checked with
    /// OpenSSH 9.2 against a real sshd).
    #[test]
    fn bracketed_22_entry_does_not_apply_to_port_22() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "kh", &format!("[gpu1]:22 {}\n", bare(&k.ed_a)));
        assert_eq!(status(from_ref(&f), "gpu1", 22, &k.ed_a), unknown(&[]));
        assert_eq!(status(from_ref(&f), "gpu1", 22, &k.ed_b), unknown(&[]));
        assert_eq!(known_key_types(&[f], "gpu1", 22).unwrap(), Vec::<String>::new());
    }

    /// `ssh -p 2222 host` with no `[host]:2222` line retries plain `host` and accepts the very
    /// same key ("checking without port identifier"), checked with OpenSSH 9.2.
    #[test]
    fn plain_entry_with_same_key_is_known_on_another_port() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "kh", &format!("gpu1 {}\n", bare(&k.ed_a)));
        assert_eq!(status(from_ref(&f), "gpu1", 2222, &k.ed_a), known_at(&f, 1, &k.ed_a));
    }

    #[test]
    fn plain_entry_with_other_key_is_not_changed_on_another_port() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "kh",
            &format!("gpu1 {}\ngpu1 {}\n", bare(&k.ed_b), bare(&k.ecdsa)),
        );
        let s = status(&[f], "gpu1", 2222, &k.ed_a);
        assert_eq!(s, unknown(&[]));
        assert!(!s.openssh_reports_mismatch());
    }

    /// Once `[host]:port` has any line, plain `host` lines no longer count (OpenSSH only retries
    /// without the port when the host is entirely new).
    #[test]
    fn bracketed_entry_with_other_key_blocks_plain_fallback() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "kh",
            &format!("[gpu1]:2222 {}\ngpu1 {}\n", bare(&k.ed_b), bare(&k.ed_a)),
        );
        let files = [f.clone()];
        assert_eq!(
            status(&files, "gpu1", 2222, &k.ed_a),
            HostKeyStatus::Changed {
                lines: vec![line_at(&f, 1, &k.ed_b)]
            }
        );
        let f2 = write(
            dir.path(),
            "kh2",
            &format!("[gpu1]:2222 {}\ngpu1 {}\n", bare(&k.ecdsa), bare(&k.ed_a)),
        );
        let s = status(&[f2], "gpu1", 2222, &k.ed_a);
        assert_eq!(s, unknown(&["ecdsa-sha2-nistp256"]));
        assert!(s.openssh_reports_mismatch());
    }

    #[test]
    fn comma_list_matches_any_name() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "kh",
            &format!("gpu0,gpu1.example.com,10.0.0.5 {}\n", bare(&k.ed_a)),
        );
        let files = [f.clone()];
        for host in ["gpu0", "gpu1.example.com", "10.0.0.5"] {
            assert_eq!(status(&files, host, 22, &k.ed_a), known_at(&f, 1, &k.ed_a), "{host}");
        }
        for host in ["gpu1", "10.0.0.50", "example.com"] {
            assert_eq!(status(&files, host, 22, &k.ed_a), unknown(&[]), "{host}");
        }
    }

    #[test]
    fn star_and_question_mark_patterns() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "kh",
            &format!(
                "*.gpu.example.com {}\nnode?? {}\n[10.0.0.*]:22?? {}\n",
                bare(&k.ed_a),
                bare(&k.ed_a),
                bare(&k.ed_a)
            ),
        );
        let files = [f.clone()];
        assert_eq!(
            status(&files, "a.b.gpu.example.com", 22, &k.ed_a),
            known_at(&f, 1, &k.ed_a)
        );
        assert_eq!(status(&files, "gpu.example.com", 22, &k.ed_a), unknown(&[]));
        assert_eq!(status(&files, "node07", 22, &k.ed_a), known_at(&f, 2, &k.ed_a));
        assert_eq!(status(&files, "node7", 22, &k.ed_a), unknown(&[]));
        assert_eq!(status(&files, "node007", 22, &k.ed_a), unknown(&[]));
        assert_eq!(status(&files, "10.0.0.9", 2201, &k.ed_a), known_at(&f, 3, &k.ed_a));
        assert_eq!(status(&files, "10.0.0.9", 2300, &k.ed_a), unknown(&[]));
    }

    #[test]
    fn regression_negated_pattern_excludes_host_even_if_positive_matches() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "kh",
            &format!(
                "*.example.com,!bad.example.com {}\ngpu1,!gpu1 {}\n!gpu2,* {}\n",
                bare(&k.ed_a),
                bare(&k.ed_b),
                bare(&k.ecdsa)
            ),
        );
        let files = [f.clone()];
        assert_eq!(
            status(&files, "good.example.com", 22, &k.ed_a),
            known_at(&f, 1, &k.ed_a)
        );
        // Only line 3 (`!gpu2,*`, ECDSA) applies to bad.example.com.
        assert_eq!(
            status(&files, "bad.example.com", 22, &k.ed_a),
            unknown(&["ecdsa-sha2-nistp256"])
        );
        assert_eq!(status(&files, "gpu1", 22, &k.ecdsa), known_at(&f, 3, &k.ecdsa));
        assert_eq!(status(&files, "gpu2", 22, &k.ecdsa), unknown(&[]));
        assert_eq!(status(&files, "gpu2", 22, &k.ed_b), unknown(&[]));
    }

    /// The pattern rules above, cross-checked line by line against `ssh-keygen -F`.
    #[test]
    fn regression_host_matching_agrees_with_ssh_keygen_find() {
        let k = keys();
        let key = bare(&k.ed_a);
        let long = "a".repeat(1100);
        let lines = [
            "gpu1".to_string(),
            "gpu1.example.com,10.0.0.5".to_string(),
            "*.example.com,!bad.example.com".to_string(),
            "gpu?".to_string(),
            "[gpu1]:2222".to_string(),
            "[gpu*]:22??".to_string(),
            "!gpu2,*.org".to_string(),
            "GPU3".to_string(),
            "@revoked gpu4".to_string(),
            "@cert-authority *.example.com".to_string(),
            "a*b*c*d".to_string(),
            ",gpu5".to_string(),
            "gpu6,".to_string(),
            format!("gpu7,{long}"),
            "gpu8,!".to_string(),
            "*".to_string(),
            "!*".to_string(),
        ];
        let content: String = lines.iter().map(|h| format!("{h} {key}\n")).collect();
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "kh", &content);
        for name in [
            "gpu1",
            "gpu1.example.com",
            "10.0.0.5",
            "x.example.com",
            "bad.example.com",
            "gpu2",
            "gpu3",
            "gpu4",
            "[gpu1]:2222",
            "[gpu9]:2299",
            "[gpu9]:229",
            "axxbyyczzd",
            "abdc",
            "gpu5",
            "gpu6",
            "gpu7",
            "gpu8",
            "gpu",
            "x.org",
            "gpu2.org",
        ] {
            let theirs = keygen_find(&f, name, false);
            assert!(!theirs.is_empty(), "{name}: the cross-check needs a match");
            assert_eq!(our_find(&f, name), theirs, "{name}");
        }
    }

    #[test]
    fn hostname_matching_is_case_insensitive() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "kh",
            &format!("GPU1.Example.com {}\n[Gpu2]:2222 {}\n", bare(&k.ed_a), bare(&k.ed_a)),
        );
        let files = [f.clone()];
        assert_eq!(
            status(&files, "gpu1.EXAMPLE.com", 22, &k.ed_a),
            known_at(&f, 1, &k.ed_a)
        );
        assert_eq!(status(&files, "GPU2", 2222, &k.ed_a), known_at(&f, 2, &k.ed_a));
    }

    #[test]
    fn tab_separated_fields_and_trailing_comment() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let (ty, b64) = (k.ed_a.split(' ').next().unwrap(), blob_b64(&k.ed_a));
        let f = write(
            dir.path(),
            "kh",
            &format!(" \tgpu1\t \t{ty}\t{b64}\t some comment  with spaces\n"),
        );
        assert_eq!(status(from_ref(&f), "gpu1", 22, &k.ed_a), known_at(&f, 1, &k.ed_a));
        assert_eq!(keygen_find(&f, "gpu1", true), vec![1]);
    }

    #[test]
    fn crlf_line_endings_are_tolerated() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "kh",
            &format!("gpu0 {}\r\ngpu1 {}\r\n", bare(&k.ed_b), bare(&k.ed_a)),
        );
        assert_eq!(status(from_ref(&f), "gpu1", 22, &k.ed_a), known_at(&f, 2, &k.ed_a));
    }

    #[test]
    fn regression_second_line_matching_key_is_known() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "kh",
            &format!("gpu1 {}\ngpu1 {}\n", bare(&k.ed_b), bare(&k.ed_a)),
        );
        assert_eq!(status(from_ref(&f), "gpu1", 22, &k.ed_a), known_at(&f, 2, &k.ed_a));
    }

    #[test]
    fn changed_lists_every_same_type_line_across_files() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f1 = write(
            dir.path(),
            "kh1",
            &format!("gpu1 {}\ngpu1 {}\n", bare(&k.ed_b), bare(&k.ecdsa)),
        );
        let f2 = write(dir.path(), "kh2", &format!("# c\ngpu1 {}\n", bare(&k.ed_c)));
        let s = status(&[f1.clone(), f2.clone()], "gpu1", 22, &k.ed_a);
        assert_eq!(
            s,
            HostKeyStatus::Changed {
                lines: vec![line_at(&f1, 1, &k.ed_b), line_at(&f2, 2, &k.ed_c)]
            }
        );
        assert!(s.openssh_reports_mismatch());
        let HostKeyStatus::Changed { lines } = s else {
            unreachable!()
        };
        assert_eq!(lines[0].fingerprint, fingerprint(&k.ed_b).unwrap());
        assert_eq!(lines[1].fingerprint, fingerprint(&k.ed_c).unwrap());
    }

    #[test]
    fn key_in_a_later_file_is_known() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f1 = write(dir.path(), "kh1", &format!("gpu1 {}\n", bare(&k.ed_b)));
        let f2 = write(dir.path(), "kh2", &format!("gpu1 {}\n", bare(&k.ed_a)));
        assert_eq!(
            status(&[f1, f2.clone()], "gpu1", 22, &k.ed_a),
            known_at(&f2, 1, &k.ed_a)
        );
    }

    #[test]
    fn regression_revoked_key_is_refused_even_when_a_line_carries_it() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f1 = write(dir.path(), "kh1", &format!("gpu1 {}\n", bare(&k.ed_a)));
        let f2 = write(dir.path(), "kh2", &format!("@revoked gpu1 {}\n", bare(&k.ed_a)));
        let s = status(&[f1, f2.clone()], "gpu1", 22, &k.ed_a);
        assert_eq!(s, HostKeyStatus::Revoked(line_at(&f2, 1, &k.ed_a)));
        assert!(s.openssh_reports_mismatch());
    }

    /// Stricter than OpenSSH on purpose: a revoked key is refused whatever host its line names,
    /// and a tab after `@revoked` counts (OpenSSH 9.2 ignores such a line if a space follows).
    #[test]
    fn revoked_line_for_any_host_pattern_is_refused() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "kh",
            &format!("gpu1 {}\n@revoked\tsomewhere.else {}\n", bare(&k.ed_a), bare(&k.ed_a)),
        );
        assert_eq!(
            status(from_ref(&f), "gpu1", 22, &k.ed_a),
            HostKeyStatus::Revoked(line_at(&f, 2, &k.ed_a))
        );
        assert_eq!(
            status(from_ref(&f), "gpu1", 2222, &k.ed_a),
            HostKeyStatus::Revoked(line_at(&f, 2, &k.ed_a))
        );
    }

    #[test]
    fn revoked_line_for_another_key_changes_nothing() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "kh",
            &format!("@revoked * {}\ngpu1 {}\n", bare(&k.ed_b), bare(&k.ed_a)),
        );
        assert_eq!(status(from_ref(&f), "gpu1", 22, &k.ed_a), known_at(&f, 2, &k.ed_a));
        assert_eq!(status(&[f], "gpu2", 22, &k.ed_a), unknown(&[]));
    }

    #[test]
    fn regression_cert_authority_line_is_not_a_host_key() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        // The CA line carries the very key presented: still not "known".
        let f1 = write(
            dir.path(),
            "kh1",
            &format!("@cert-authority gpu1,*.example.com {}\n", bare(&k.ed_a)),
        );
        assert_eq!(status(from_ref(&f1), "gpu1", 22, &k.ed_a), unknown(&[]));
        // A CA key of the same type is not a "changed" host key either.
        assert_eq!(status(from_ref(&f1), "x.example.com", 22, &k.ed_b), unknown(&[]));
        assert_eq!(known_key_types(&[f1], "gpu1", 22).unwrap(), Vec::<String>::new());
        // Next to a real host line, only the host line counts.
        let f2 = write(
            dir.path(),
            "kh2",
            &format!("@cert-authority gpu1 {}\ngpu1 {}\n", bare(&k.ed_a), bare(&k.ed_b)),
        );
        assert_eq!(
            status(from_ref(&f2), "gpu1", 22, &k.ed_a),
            HostKeyStatus::Changed {
                lines: vec![line_at(&f2, 2, &k.ed_b)]
            }
        );
    }

    #[test]
    fn different_key_type_only_is_unknown_with_other_types() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "kh",
            &format!(
                "gpu1 {}\ngpu1 {}\ngpu1 {}\n",
                bare(&k.ecdsa),
                bare(&k.rsa),
                bare(&k.ecdsa)
            ),
        );
        let s = status(&[f], "gpu1", 22, &k.ed_a);
        assert_eq!(s, unknown(&["ecdsa-sha2-nistp256", "ssh-rsa"]));
        // What `ssh` itself does here (OpenSSH 9.2 against a real sshd): "HAS CHANGED".
        assert!(s.openssh_reports_mismatch());
    }

    #[test]
    fn rsa_family_is_one_type_and_ecdsa_curves_are_distinct() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let rsa_b64 = blob_b64(&k.rsa);
        let f = write(
            dir.path(),
            "kh",
            &format!(
                "gpu1 rsa-sha2-512 {rsa_b64}\ngpu2 {}\ngpu3 ssh-rsa {rsa_b64}\n",
                bare(&k.ecdsa384)
            ),
        );
        let files = [f.clone()];
        assert_eq!(status(&files, "gpu1", 22, &k.rsa), known_at(&f, 1, &k.rsa));
        let as_sha2 = format!("rsa-sha2-256 {rsa_b64}");
        assert_eq!(status(&files, "gpu1", 22, &as_sha2), known_at(&f, 1, &k.rsa));
        assert_eq!(status(&files, "gpu3", 22, &as_sha2), known_at(&f, 3, &k.rsa));
        assert_eq!(status(&files, "gpu2", 22, &k.ecdsa), unknown(&["ecdsa-sha2-nistp384"]));
        assert_eq!(known_key_types(&files, "gpu1", 22).unwrap(), vec!["ssh-rsa"]);
    }

    #[test]
    fn known_key_types_in_file_order_deduplicated() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f1 = write(
            dir.path(),
            "kh1",
            &format!(
                "gpu1 {}\ngpu2 {}\ngpu1 {}\n@cert-authority gpu1 {}\n@revoked gpu1 {}\n",
                bare(&k.ecdsa),
                bare(&k.ecdsa384),
                bare(&k.ed_a),
                bare(&k.ecdsa384),
                bare(&k.ecdsa384)
            ),
        );
        let f2 = write(
            dir.path(),
            "kh2",
            &format!(
                "gpu1 {}\ngpu1 rsa-sha2-256 {}\n[gpu1]:2222 {}\n",
                bare(&k.ed_b),
                blob_b64(&k.rsa),
                bare(&k.ed_a)
            ),
        );
        let missing = dir.path().join("missing");
        let files = [f1, missing, f2];
        assert_eq!(
            known_key_types(&files, "GPU1", 22).unwrap(),
            vec!["ecdsa-sha2-nistp256", "ssh-ed25519", "ssh-rsa"]
        );
        assert_eq!(known_key_types(&files, "gpu1", 2222).unwrap(), vec!["ssh-ed25519"]);
        // Like OpenSSH's algorithm ordering: no fallback to plain-host lines for another port.
        assert_eq!(known_key_types(&files, "gpu1", 2223).unwrap(), Vec::<String>::new());
        assert_eq!(known_key_types(&files, "gpu9", 22).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn missing_files_are_skipped_and_unreadable_ones_are_errors() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope").join("known_hosts");
        let f = write(dir.path(), "kh", &format!("gpu1 {}\n", bare(&k.ed_a)));
        assert_eq!(status(from_ref(&missing), "gpu1", 22, &k.ed_a), unknown(&[]));
        assert_eq!(
            status(&[missing, f.clone()], "gpu1", 22, &k.ed_a),
            known_at(&f, 1, &k.ed_a)
        );
        let not_a_dir = f.join("known_hosts");
        assert_eq!(status(&[not_a_dir], "gpu1", 22, &k.ed_a), unknown(&[]));

        let a_directory = dir.path().to_path_buf();
        match check(from_ref(&a_directory), "gpu1", 22, &k.ed_a) {
            Err(KnownHostsError::Io(path, _)) => assert_eq!(path, a_directory),
            other => panic!("expected an Io error, got {other:?}"),
        }
        assert!(matches!(
            known_key_types(&[a_directory], "gpu1", 22),
            Err(KnownHostsError::Io(..))
        ));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let k = keys();
        let other = bare(&k.ed_b);
        let other_b64 = blob_b64(&k.ed_b);
        let mut trailing = STANDARD.decode(other_b64).unwrap();
        trailing.extend_from_slice(b"XXXX");
        let ecdsa_b64 = blob_b64(&k.ecdsa);
        let bad_lines = [
            "gpu1".to_string(),
            "gpu1 ssh-ed25519".to_string(),
            "gpu1 ssh-ed25519 ".to_string(),
            "gpu1 ssh-ed25519 !!!notbase64".to_string(),
            format!("gpu1 ssh-ed25519 {}", &other_b64[..40]),
            format!("gpu1 ssh-ed25519 {}", STANDARD.encode(&trailing)),
            format!("gpu1 ecdsa-sha2-nistp384 {ecdsa_b64}"),
            format!("gpu1 ecdsa-sha2-nistp256 {}", ecdsa_b64.trim_end_matches('=')),
            format!("gpu1 ssh-rsa {other_b64}"),
            format!("gpu1 ED25519 {other_b64}"),
            format!("gpu1 ssh-foo {other_b64}"),
            format!("gpu1 #{other}"),
            format!("@bogus gpu1 {other}"),
            format!("@revoked @revoked gpu1 {other}"),
            "@revoked".to_string(),
            format!("@revoked {other}"),
            format!("|1|bad|hash {other}"),
            format!("|1| {other}"),
            format!("gpu1,{} {other}", "a".repeat(1100)),
            "gpu1 \u{fffd}\u{0} garbage \u{7f}".to_string(),
            "   ".to_string(),
            "# gpu1 comment".to_string(),
            String::new(),
        ];
        let dir = tempfile::tempdir().unwrap();
        let mut content: String = bad_lines.iter().map(|l| format!("{l}\n")).collect();
        let mut bytes = content.clone().into_bytes();
        bytes.extend_from_slice(b"gpu1 \xff\xfe binary\n");
        let f = dir.path().join("bad");
        fs::write(&f, &bytes).unwrap();
        // Had any of them been taken as a line for gpu1, the answer would be Changed.
        assert_eq!(status(from_ref(&f), "gpu1", 22, &k.ed_a), unknown(&[]));
        assert_eq!(known_key_types(from_ref(&f), "gpu1", 22).unwrap(), Vec::<String>::new());
        assert_eq!(keygen_find(&f, "gpu1", true), Vec::<usize>::new());

        content.push_str(&format!("gpu1 {}\n", bare(&k.ed_a)));
        let good = write(dir.path(), "good", &content);
        let line = bad_lines.len() + 1;
        assert_eq!(
            status(from_ref(&good), "gpu1", 22, &k.ed_a),
            known_at(&good, line, &k.ed_a)
        );
        assert_eq!(keygen_find(&good, "gpu1", true), vec![line]);
    }

    #[cfg(unix)]
    #[test]
    fn append_then_check_is_known() {
        use std::os::unix::fs::PermissionsExt;
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let ssh_dir = dir.path().join("home").join(".ssh");
        let f = ssh_dir.join("known_hosts");
        append(&f, "GPU1", 22, &k.ed_a).unwrap();
        append(&f, "gpu1", 2222, &k.rsa).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ssh_dir), 0o700);
        assert_eq!(mode(&f), 0o600);
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            format!("gpu1 {}\n[gpu1]:2222 {}\n", bare(&k.ed_a), bare(&k.rsa))
        );
        let files = [f.clone()];
        assert_eq!(status(&files, "gpu1", 22, &k.ed_a), known_at(&f, 1, &k.ed_a));
        assert_eq!(status(&files, "gpu1", 2222, &k.rsa), known_at(&f, 2, &k.rsa));
        assert_eq!(keygen_find(&f, "gpu1", true), vec![1]);
        assert_eq!(keygen_find(&f, "[gpu1]:2222", true), vec![2]);
    }

    #[test]
    fn append_adds_missing_newline() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let first = format!("gpu0 {}", bare(&k.ed_b));
        let f = write(dir.path(), "kh", &first);
        append(&f, "gpu1", 22, &k.ed_a).unwrap();
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            format!("{first}\ngpu1 {}\n", bare(&k.ed_a))
        );
        assert_eq!(status(from_ref(&f), "gpu0", 22, &k.ed_b), known_at(&f, 1, &k.ed_b));
        assert_eq!(status(from_ref(&f), "gpu1", 22, &k.ed_a), known_at(&f, 2, &k.ed_a));

        let empty = write(dir.path(), "empty", "");
        append(&empty, "gpu1", 22, &k.ed_a).unwrap();
        assert_eq!(fs::read_to_string(&empty).unwrap(), format!("gpu1 {}\n", bare(&k.ed_a)));
    }

    #[test]
    fn append_refuses_bad_key_and_pattern_like_hosts_without_writing() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub").join("known_hosts");
        assert!(matches!(
            append(&f, "gpu1", 22, "ssh-ed25519 nope"),
            Err(KnownHostsError::BadKey(_))
        ));
        for host in ["", "gpu*", "gpu?", "a,b", "!gpu", "gpu 1", "gpu\n1", "@revoked", "|1|x"] {
            match append(&f, host, 22, &k.ed_a) {
                Err(KnownHostsError::Io(_, e)) => {
                    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{host:?}")
                }
                other => panic!("{host:?}: expected refusal, got {other:?}"),
            }
        }
        assert!(!dir.path().join("sub").exists());
    }

    #[test]
    fn wildcard_matching_edge_cases() {
        assert!(wildcard_match(b"", b""));
        assert!(wildcard_match(b"", b"*"));
        assert!(!wildcard_match(b"", b"?"));
        assert!(wildcard_match(b"abc", b"a*"));
        assert!(wildcard_match(b"abc", b"*c"));
        assert!(wildcard_match(b"abc", b"a?c"));
        assert!(wildcard_match(b"abc", b"A?C"));
        assert!(!wildcard_match(b"abc", b"ab"));
        assert!(!wildcard_match(b"ab", b"abc"));
        assert!(wildcard_match(b"aXbXc", b"a*b*c"));
        assert!(!wildcard_match(b"aXbXd", b"a*b*c"));
        assert!(wildcard_match(b"mississippi", b"m*iss*ppi"));
        // The recursive matcher OpenSSH uses is exponential here; this one must stay fast.
        let name = "a".repeat(200);
        assert!(!wildcard_match(name.as_bytes(), b"*a*a*a*a*a*a*a*a*a*a*a*a*b"));
        assert!(pattern_list_matches(b"x", b"y,x"));
        assert!(!pattern_list_matches(b"x", b"x,!x"));
        assert!(!pattern_list_matches(b"x", b"!x,x"));
        assert!(!pattern_list_matches(b"x", b"!y"));
        assert!(!pattern_list_matches(b"", b"x,"));
    }
}
