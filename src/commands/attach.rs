//! `rtrain attach HOST`: the run's remote session (tmux or screen, whichever its backend is) in the
//! local terminal, through an SSH PTY, with the local terminal in raw mode for exactly as long as that
//! lasts; for a backend whose run has a place a shell can join instead (a Slurm job's allocation), a shell
//! there; for a backend without either (nohup), or while no shell can be opened (the job is pending), its
//! live log instead, with the reason.

use super::resilient::StatusLine;
use super::{CommandError, Ctx};
use crate::config::Target;
use crate::remote::backend::{self, Backend, PtyEnd};
use crate::remote::run::ShellPlace;
use crate::ssh::link::{Link, LinkError};
use crate::ssh::{Session, SshError};
use russh::ChannelMsg;
use std::io::IsTerminal;
use std::sync::Arc;
use tokio::sync::mpsc;

/// How one attached PTY ended.
#[derive(Debug, PartialEq, Eq)]
pub enum AttachEnd {
    /// The session's client ended as its backend tells ([`PtyEnd`]).
    Pty(PtyEnd),
    /// The connection died under us.
    Lost(String),
}

/// Printed by screen's attach command when it takes the session over from another terminal.
const TOOK_OVER: &[u8] = b"rtrain: took over the screen session";

/// Puts the terminal in raw mode and restores it on drop, whatever the exit path (errors,
/// panics unwinding, Ctrl-C handling).
pub struct RawMode;

impl RawMode {
    pub fn enable() -> anyhow::Result<RawMode> {
        crossterm::terminal::enable_raw_mode()
            .map_err(|e| anyhow::anyhow!("cannot put the terminal in raw mode: {e}"))?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// Keystrokes from the local terminal, read on one thread for the whole command so that a
/// reconnect never loses the reader (and never has two).
pub fn stdin_pump() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

fn terminal_size() -> (u32, u32) {
    crossterm::terminal::size()
        .map(|(c, r)| (c as u32, r as u32))
        .unwrap_or((80, 24))
}

/// Run one attached PTY until it ends. Keystrokes come from `keys`; output goes to stdout. `took_over`
/// is set when the backend took the session over from another terminal.
pub async fn attach_once(
    session: &Session,
    target: &Target,
    backend: &dyn Backend,
    keys: &mut mpsc::Receiver<Vec<u8>>,
    took_over: &mut bool,
) -> Result<AttachEnd, SshError> {
    let s = &target.settings;
    // Callers check `has_terminal` first; a backend without one ends here as a client that could not start.
    let Some(command) = backend.attach_command(&s.workdir, &s.session) else {
        return Ok(AttachEnd::Pty(PtyEnd::Exited(1)));
    };
    pty_once(session, target, &command, backend, keys, took_over).await
}

/// Run `command` on a PTY until it ends (see [`attach_once`]).
async fn pty_once(
    session: &Session,
    target: &Target,
    command: &str,
    backend: &dyn Backend,
    keys: &mut mpsc::Receiver<Vec<u8>>,
    took_over: &mut bool,
) -> Result<AttachEnd, SshError> {
    use tokio::io::AsyncWriteExt;
    let channel = session.open_channel(std::time::Duration::from_secs(15)).await?;
    let term = std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".into());
    let (cols, rows) = terminal_size();
    let host = target.name.clone();
    let map = |e: russh::Error| crate::ssh::classify(&host, e);
    channel
        .request_pty(true, &term, cols, rows, 0, 0, &[])
        .await
        .map_err(map)?;
    channel.exec(true, command.as_bytes()).await.map_err(map)?;
    let (mut read, write) = channel.split();
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
    let mut stdout = tokio::io::stdout();
    // The last bytes the client printed tell a detach from the session ending (the backend knows which).
    let mut tail: Vec<u8> = Vec::new();
    let mut status = None;
    loop {
        let winch_fut = async {
            match winch.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = read.wait() => match msg {
                Some(ChannelMsg::Data { data }) => {
                    let _ = stdout.write_all(&data).await;
                    let _ = stdout.flush().await;
                    keep_tail(&mut tail, &data);
                    if !*took_over && tail.windows(TOOK_OVER.len()).any(|w| w == TOOK_OVER) {
                        *took_over = true;
                    }
                }
                Some(ChannelMsg::ExtendedData { data, .. }) => keep_tail(&mut tail, &data),
                Some(ChannelMsg::ExitStatus { exit_status }) => status = Some(exit_status),
                Some(ChannelMsg::Close) | None => break,
                Some(_) => {}
            },
            k = keys.recv() => match k {
                Some(bytes) => {
                    if write.data(&bytes[..]).await.is_err() {
                        break;
                    }
                }
                None => {
                    // Local stdin closed: nothing more to type; keep showing output.
                    let _ = write.eof().await;
                }
            },
            _ = winch_fut => {
                let (c, r) = terminal_size();
                let _ = write.window_change(c, r, 0, 0).await;
            }
        }
    }
    let text = String::from_utf8_lossy(&tail);
    Ok(match status {
        None => AttachEnd::Lost("the connection closed".into()),
        Some(code) => AttachEnd::Pty(backend.attach_end(code, &text)),
    })
}

/// The last [`ATTACH_TAIL`] bytes of what the channel printed, on stdout and stderr alike: a box may
/// print without end.
fn keep_tail(tail: &mut Vec<u8>, data: &[u8]) {
    tail.extend_from_slice(data);
    if tail.len() > ATTACH_TAIL {
        tail.drain(..tail.len() - ATTACH_TAIL);
    }
}

const ATTACH_TAIL: usize = 512;

/// `rtrain attach`: attach, and after a dead link reconnect and re-attach by itself.
pub async fn run(ctx: &Ctx, host: &str) -> anyhow::Result<u8> {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(CommandError::Usage("attach needs a terminal (stdin and stdout must be a TTY)".into()).into());
    }
    let target = ctx.target(host)?;
    ctx.note_unsupported(&target);
    let mut link = ctx.connected_link(&target).await?;
    attach_link(ctx, &target, &mut link).await
}

/// The backend of the current run (as its record says), else the configured one as the box resolves it,
/// and whether a shell can be opened in the run's place (for a backend that has one).
async fn which_backend(target: &Target, link: &mut Link) -> anyhow::Result<(&'static dyn Backend, Option<ShellPlace>)> {
    let session = link.session().await?;
    let script = crate::remote::run::backend_script(&target.settings.workdir, target.settings.backend);
    let text = super::run::run_script_stdin(&session, &script, None, std::time::Duration::from_secs(60)).await?;
    let name = match crate::remote::run::parse_backend(&text) {
        Ok(name) => name,
        Err(crate::remote::run::RunError::BackendMissing { backend, available }) => {
            return Err(super::run::backend_missing(target, &backend, &available))
        }
        Err(e) => anyhow::bail!("{}: {e}", target.name),
    };
    let backend = backend::by_name(&name).ok_or_else(|| super::run::backend_missing(target, &name, &[]))?;
    Ok((backend, crate::remote::run::parse_shell(&text)))
}

/// [`which_backend`] across dead links: the question is asked again on a fresh connection.
async fn which_backend_retrying(
    ctx: &Ctx,
    target: &Target,
    link: &mut Link,
    status: &StatusLine,
) -> anyhow::Result<(&'static dyn Backend, Option<ShellPlace>)> {
    loop {
        match which_backend(target, link).await {
            Err(e) if super::run::retryable(&e) => {
                let cancel = ctx.shutdown.child_token();
                link.reconnect(&cancel, |ev| status.event(&ev)).await?;
            }
            other => return other,
        }
    }
}

/// Rows of the local terminal: how much log a screenful is.
fn screenful() -> usize {
    crossterm::terminal::size()
        .map_or(24, |(_, r)| r as usize)
        .saturating_sub(2)
        .max(1)
}

/// Attach over `link` (already connected), re-attaching with a fresh PTY at the current terminal
/// size after every reconnect, until the user detaches or the session ends. A backend without a
/// terminal shows the live log from the last screenful instead, as `logs -f` does.
pub async fn attach_link(ctx: &Ctx, target: &Target, link: &mut Link) -> anyhow::Result<u8> {
    let (backend, shell) = which_backend(target, link).await?;
    if backend.has_shell() {
        return attach_shell(ctx, target, link, backend, shell).await;
    }
    if !backend.has_terminal() {
        eprintln!(
            "the run on {} has no terminal to attach to (backend {}): showing its live log as `rtrain logs {} -f` does (Ctrl-C leaves; the run goes on)",
            target.name,
            backend.name(),
            target.name
        );
        return super::run::follow_link(ctx, target, link, false, None, Some(screenful())).await;
    }
    // Only the first attach can take the session over from someone else: after a drop, the client
    // `screen -d -r` detaches is our own, still attached from before the outage.
    let mut took_over = false;
    let mut first = true;
    let mut keys = stdin_pump();
    let status = StatusLine::new(&target.name, true, true, ctx.quiet);
    let _raw = RawMode::enable()?;
    loop {
        let session = link.session().await?;
        let dead = link.wait_dead();
        let mut took = false;
        let end = tokio::select! {
            r = attach_once(&session, target, backend, &mut keys, &mut took) => match r {
                Ok(end) => end,
                Err(e) if e.is_retryable() => AttachEnd::Lost(e.to_string()),
                Err(e) => return Err(e.into()),
            },
            reason = dead => AttachEnd::Lost(reason),
            _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
        };
        drop(session);
        took_over |= took && first;
        first = false;
        match end {
            AttachEnd::Lost(_) => {
                reconnect_dropping_keys(ctx, link, &status, &mut keys).await?;
            }
            other => {
                drop(_raw);
                if took_over {
                    eprintln!(
                        "rtrain: the {} session on {} was attached elsewhere: rtrain took it over (that terminal was detached)",
                        backend.label(),
                        target.name
                    );
                }
                return report_end(target, backend, other);
            }
        }
    }
}

/// A shell in the run's place (a Slurm job's allocation, on its node): opened again after every
/// reconnect (the old one died with its connection; the run does not), until the user leaves it. While
/// none can be opened (the job pending, ended; a scheduler without `--overlap`), says why and shows the
/// live log instead, as on a backend without a terminal.
async fn attach_shell(
    ctx: &Ctx,
    target: &Target,
    link: &mut Link,
    backend: &dyn Backend,
    mut shell: Option<ShellPlace>,
) -> anyhow::Result<u8> {
    let status = StatusLine::new(&target.name, true, true, ctx.quiet);
    let mut keys: Option<mpsc::Receiver<Vec<u8>>> = None;
    let mut opened = false;
    loop {
        let (place, at) = match shell.take() {
            Some(ShellPlace::Open { place, at }) => (place, at),
            closed => {
                let why = match closed {
                    Some(ShellPlace::Closed(why)) => why,
                    _ => "the run has none".to_string(),
                };
                if opened {
                    // Back from a reconnect, and the job is gone (or not running): the shell ended with it.
                    eprintln!("rtrain: no shell in the run's {} job any more: {why}", backend.label());
                    return Ok(0);
                }
                eprintln!(
                    "rtrain: no shell in the run's {} allocation on {}: {why}; showing its live log as `rtrain logs {} -f` does (Ctrl-C leaves; the run goes on)",
                    backend.label(),
                    target.name,
                    target.name
                );
                return super::run::follow_link(ctx, target, link, false, None, Some(screenful())).await;
            }
        };
        let Some(command) = backend.shell_command(&target.settings.workdir, &place) else {
            anyhow::bail!("{}: backend {} offers no shell", target.name, backend.name());
        };
        if !opened {
            eprintln!("rtrain: a shell in {at} (exit it to leave; the run goes on)");
        }
        opened = true;
        let keys = keys.get_or_insert_with(stdin_pump);
        let raw = RawMode::enable()?;
        let session = link.session().await?;
        let dead = link.wait_dead();
        let mut took = false;
        let end = tokio::select! {
            r = pty_once(&session, target, &command, backend, keys, &mut took) => match r {
                Ok(end) => end,
                Err(e) if e.is_retryable() => AttachEnd::Lost(e.to_string()),
                Err(e) => return Err(e.into()),
            },
            reason = dead => AttachEnd::Lost(reason),
            _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
        };
        drop(session);
        match end {
            AttachEnd::Lost(_) => {
                reconnect_dropping_keys(ctx, link, &status, keys).await?;
                drop(raw);
                shell = which_backend_retrying(ctx, target, link, &status).await?.1;
            }
            AttachEnd::Pty(end) => {
                drop(raw);
                // The shell ended: by the user's `exit`, or with the job. Which one, the scheduler says.
                let code = match end {
                    PtyEnd::Exited(c) => c,
                    _ => 0,
                };
                return match which_backend_retrying(ctx, target, link, &status).await?.1 {
                    Some(ShellPlace::Open { at, .. }) => {
                        eprintln!("rtrain: left the shell in {at}; the run goes on");
                        Ok(0)
                    }
                    Some(ShellPlace::Closed(why)) => {
                        eprintln!("rtrain: the shell ended (status {code}): {why}");
                        Ok(0)
                    }
                    None => Ok(if code == 0 { 0 } else { 1 }),
                };
            }
        }
    }
}

/// Reconnect while discarding whatever is typed meanwhile (it must never reach the training pane
/// later); Ctrl-C (a 0x03 byte in raw mode) gives up.
async fn reconnect_dropping_keys(
    ctx: &Ctx,
    link: &mut Link,
    status: &StatusLine,
    keys: &mut mpsc::Receiver<Vec<u8>>,
) -> Result<Arc<Session>, LinkError> {
    let cancel = ctx.shutdown.child_token();
    let fut = link.reconnect(&cancel, |ev| status.event(&ev));
    tokio::pin!(fut);
    let mut stdin_open = true;
    loop {
        tokio::select! {
            r = &mut fut => return r,
            k = keys.recv(), if stdin_open => match k {
                Some(bytes) if bytes.contains(&0x03) => cancel.cancel(),
                Some(_) => {}
                None => stdin_open = false,
            },
        }
    }
}

pub fn report_end(target: &Target, backend: &dyn Backend, end: AttachEnd) -> anyhow::Result<u8> {
    match end {
        AttachEnd::Pty(PtyEnd::Detached) => {
            eprintln!("detached from {}; the run goes on", target.name);
            Ok(0)
        }
        AttachEnd::Pty(PtyEnd::SessionEnded) => {
            eprintln!(
                "the {} session {:?} on {} ended",
                backend.name(),
                target.settings.session,
                target.name
            );
            Ok(0)
        }
        AttachEnd::Pty(PtyEnd::Exited(code)) => {
            eprintln!("{} on {} exited with status {code}", backend.name(), target.name);
            Ok(if code == 0 { 0 } else { 1 })
        }
        AttachEnd::Pty(PtyEnd::Missing) => Err(super::run::backend_missing(target, backend.name(), &[])),
        AttachEnd::Lost(reason) => Err(SshError::Disconnected {
            host: target.name.clone(),
            reason,
        }
        .into()),
    }
}
