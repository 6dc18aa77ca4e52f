//! Reaching hosts that are not directly reachable, the way OpenSSH does: parsing ProxyJump hop
//! lists, expanding ProxyCommand tokens, and running a ProxyCommand whose stdin/stdout carry the
//! SSH connection. The hops themselves are connected in `session.rs`, inside `connect_once`.

use super::endpoint::HostSpec;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// How much of the ProxyCommand's stderr is kept for the error message.
const STDERR_TAIL: usize = 4096;

/// One element of a ProxyJump list: `[user@]host[:port]` or `ssh://[user@]host[:port]`, as
/// OpenSSH's `parse_jump()` accepts them.
pub fn parse_jump_host(element: &str) -> Result<HostSpec, String> {
    let element = element.trim();
    let plain = match element.strip_prefix("ssh://") {
        Some(rest) => rest.strip_suffix('/').unwrap_or(rest),
        None => element,
    };
    HostSpec::parse(plain).map_err(|e| format!("invalid jump host {element:?}: {e}"))
}

/// Split a ProxyJump value the way OpenSSH does: the last element is the host that connects to
/// the destination; the ones before it (if any) are how that host itself is reached, and replace
/// its own ProxyJump (OpenSSH runs `ssh -J <earlier> -W %h:%p <last>`).
pub fn split_jump_list(list: &str) -> (Option<&str>, &str) {
    match list.rsplit_once(',') {
        Some((earlier, last)) => (Some(earlier), last),
        None => (None, list),
    }
}

/// Values substituted into ProxyCommand (`%h`, `%p`, `%r`, `%n`, `%k`).
pub struct CommandTokens<'a> {
    pub host_name: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub alias: &'a str,
    pub key_alias: &'a str,
}

/// OpenSSH's `expand_proxy_command()` tokens (`%h %p %r %n %k %%`). Unlike OpenSSH 9.2, a value
/// carrying shell metacharacters is refused rather than pasted into the shell command (what
/// OpenSSH 9.6 started doing for names from the command line, CVE-2023-51385).
pub fn expand_proxy_command(command: &str, t: &CommandTokens) -> Result<String, String> {
    let mut out = String::with_capacity(command.len());
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (token, value) = match chars.next() {
            None => return Err("ProxyCommand ends with a lone %".into()),
            Some('%') => {
                out.push('%');
                continue;
            }
            Some('h') => ('h', t.host_name.to_string()),
            Some('p') => ('p', t.port.to_string()),
            Some('r') => ('r', t.user.to_string()),
            Some('n') => ('n', t.alias.to_string()),
            Some('k') => ('k', t.key_alias.to_string()),
            Some(other) => return Err(format!("ProxyCommand has the unknown token %{other}")),
        };
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':' | '[' | ']' | '@' | '+')))
        {
            return Err(format!(
                "refusing to put {value:?} (for %{token}) into the ProxyCommand shell command: it contains {bad:?}"
            ));
        }
        out.push_str(&value);
    }
    Ok(out)
}

/// The tail of a ProxyCommand's stderr, kept so that a failure can say why (`nc: connect ...
/// refused`, `ssh: Could not resolve hostname ...`) instead of just "connection lost".
#[derive(Clone, Default)]
pub struct StderrTail(Arc<Mutex<Vec<u8>>>);

impl StderrTail {
    fn push(&self, data: &[u8]) {
        let mut buf = self.0.lock().unwrap();
        buf.extend_from_slice(data);
        if buf.len() > STDERR_TAIL {
            let cut = buf.len() - STDERR_TAIL;
            buf.drain(..cut);
        }
    }

    /// The last few non-empty lines, on one line.
    pub fn summary(&self) -> String {
        let buf = self.0.lock().unwrap();
        let text = String::from_utf8_lossy(&buf);
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        lines[lines.len().saturating_sub(3)..].join("; ")
    }
}

/// A running ProxyCommand as a byte stream: SSH is spoken over its stdin/stdout. Dropping it
/// (when the session ends, or a connection attempt fails) kills the command.
pub struct ProxyCommandStream {
    // Held for kill_on_drop: the command lives exactly as long as the stream.
    _child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

/// What is left to look at after the stream was handed to the SSH session.
pub struct ProxyCommandWatch {
    pub stderr: StderrTail,
    reader: tokio::task::JoinHandle<()>,
}

impl ProxyCommandWatch {
    /// The command's last words, once it has finished writing them (the failed connection attempt
    /// has dropped, hence killed, it; the wait is bounded in case a grandchild holds stderr open).
    pub async fn last_words(self) -> String {
        let _ = tokio::time::timeout(Duration::from_millis(500), self.reader).await;
        self.stderr.summary()
    }
}

impl ProxyCommandStream {
    /// Run `command` as OpenSSH does: `exec <command>` under the user's `$SHELL -c` (`/bin/sh`
    /// when unset). stderr is captured, not inherited: the ssh layer never prints, and the error
    /// message carries it instead.
    pub fn spawn(command: &str) -> io::Result<(ProxyCommandStream, ProxyCommandWatch)> {
        let shell = std::env::var_os("SHELL")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".into());
        let mut child = tokio::process::Command::new(&shell)
            .arg("-c")
            .arg(format!("exec {command}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {}: {e}", shell.to_string_lossy())))?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut err = child.stderr.take().expect("stderr is piped");
        let stderr = StderrTail::default();
        let tail = stderr.clone();
        // Drained for the whole life of the command, so it never blocks on a full stderr pipe.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tail.push(&buf[..n]);
            }
        });
        Ok((
            ProxyCommandStream {
                _child: child,
                stdin,
                stdout,
            },
            ProxyCommandWatch { stderr, reader },
        ))
    }
}

impl AsyncRead for ProxyCommandStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for ProxyCommandStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stdin).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn tokens() -> CommandTokens<'static> {
        CommandTokens {
            host_name: "10.0.0.5",
            port: 2222,
            user: "alice",
            alias: "gpu",
            key_alias: "gpu-key",
        }
    }

    #[test]
    fn proxy_command_tokens_expand_like_openssh() {
        assert_eq!(
            expand_proxy_command("ssh -W %h:%p -l %r bastion # %n %k 100%%", &tokens()).unwrap(),
            "ssh -W 10.0.0.5:2222 -l alice bastion # gpu gpu-key 100%"
        );
        assert_eq!(
            expand_proxy_command("nc '[%h]' %p", &tokens()).unwrap(),
            "nc '[10.0.0.5]' 2222"
        );
    }

    #[test]
    fn unknown_or_dangling_tokens_are_errors() {
        assert!(expand_proxy_command("nc %h %x", &tokens()).unwrap_err().contains("%x"));
        assert!(expand_proxy_command("nc %h %", &tokens()).is_err());
    }

    #[test]
    fn shell_metacharacters_in_substituted_values_are_refused() {
        for evil in [
            "a;touch x",
            "$(id)",
            "a`id`",
            "a|b",
            "a'b",
            "a\"b",
            "a b",
            "a\nb",
            "a&b",
            "a>b",
        ] {
            let t = CommandTokens {
                host_name: evil,
                ..tokens()
            };
            assert!(expand_proxy_command("nc %h %p", &t).is_err(), "{evil:?} was accepted");
            // Not substituted, not checked: the user's own command text is theirs.
            assert!(expand_proxy_command("nc host 22 # $(x)", &t).is_ok());
        }
        let t = CommandTokens {
            user: "a$b",
            ..tokens()
        };
        assert!(expand_proxy_command("x %r", &t).is_err());
        let ipv6 = CommandTokens {
            host_name: "fe80::1",
            ..tokens()
        };
        assert_eq!(expand_proxy_command("nc %h %p", &ipv6).unwrap(), "nc fe80::1 2222");
    }

    #[test]
    fn jump_elements_parse_like_openssh() {
        let p = |s| parse_jump_host(s).unwrap();
        assert_eq!(
            (p("bastion").user, p("bastion").host, p("bastion").port),
            (None, "bastion".into(), None)
        );
        let s = p("me@bastion:2222");
        assert_eq!(
            (s.user.as_deref(), s.host.as_str(), s.port),
            (Some("me"), "bastion", Some(2222))
        );
        let s = p("ssh://me@[::1]:2200/");
        assert_eq!(
            (s.user.as_deref(), s.host.as_str(), s.port),
            (Some("me"), "::1", Some(2200))
        );
        for bad in ["", "-oProxyCommand=x", "a b", "h:0"] {
            assert!(parse_jump_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_last_jump_host_is_the_one_next_to_the_destination() {
        assert_eq!(split_jump_list("a"), (None, "a"));
        assert_eq!(split_jump_list("a,b"), (Some("a"), "b"));
        assert_eq!(split_jump_list("a,u@b:2,c"), (Some("a,u@b:2"), "c"));
    }

    #[tokio::test]
    async fn proxy_command_stream_carries_bytes_and_keeps_stderr() {
        let (mut s, watch) = ProxyCommandStream::spawn("sh -c 'echo warn >&2; cat'").unwrap();
        s.write_all(b"ping\n").await.unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping\n");
        drop(s);
        assert_eq!(watch.last_words().await, "warn");
    }

    #[tokio::test]
    async fn proxy_command_runs_through_exec_like_openssh() {
        // `exec` replaces the shell, so `;` ends the command as it does for ssh.
        let (mut s, watch) = ProxyCommandStream::spawn("echo first; echo never").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "first\n");
        drop(s);
        assert_eq!(watch.last_words().await, "");
    }
}
