//! `rtrain forward HOST PORT[:REMOTE]`: a local port forwarded to the box over the resilient link
//! (direct-tcpip), e.g. TensorBoard on 6006. The listener stays up across reconnects; clients that
//! arrive while the link is down wait for it.

use super::resilient::StatusLine;
use super::{CommandError, Ctx};
use crate::cli::ForwardArgs;
use crate::ssh::link::{Link, LinkError};
use crate::ssh::Session;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long a new client waits for the link to come back before it is turned away.
const WAIT_FOR_LINK: Duration = Duration::from_secs(60);

pub fn parse_ports(s: &str) -> Result<(u16, u16), CommandError> {
    let bad = || {
        CommandError::Usage(format!(
            "invalid port spec {s:?}: use PORT or LOCAL:REMOTE, e.g. 6006 or 8080:6006"
        ))
    };
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad);
    match s.split_once(':') {
        None => Ok((port(s)?, port(s)?)),
        Some((l, r)) => Ok((port(l)?, port(r)?)),
    }
}

pub async fn run(ctx: &Ctx, args: ForwardArgs) -> anyhow::Result<u8> {
    let (local, remote) = parse_ports(&args.ports)?;
    let target = ctx.target(&args.host)?;
    ctx.note_unsupported(&target);
    let listener = TcpListener::bind(("127.0.0.1", local))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on 127.0.0.1:{local}: {e}"))?;
    let mut link = ctx.connected_link(&target).await?;
    if !ctx.quiet {
        eprintln!(
            "forwarding 127.0.0.1:{local} → {}:localhost:{remote} (Ctrl-C to stop)",
            target.name
        );
    }
    // The current usable session, or None while reconnecting.
    let (tx, rx) = watch::channel::<Option<Arc<Session>>>(link.current());
    let status = StatusLine::new(&target.name, false, ctx.env.interactive, ctx.quiet);
    let accept_loop = async {
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(x) => x,
                Err(_) => continue,
            };
            let rx = rx.clone();
            let name = target.name.clone();
            tokio::spawn(async move {
                if let Err(e) = serve(tcp, remote, rx).await {
                    eprintln!("rtrain: forward to {name}:{remote}: {e}");
                }
            });
        }
    };
    tokio::select! {
        _ = accept_loop => unreachable!("the accept loop never ends"),
        Err(e) = keep_up(ctx, &mut link, &tx, &status) => Err(e.into()),
        _ = ctx.shutdown.cancelled() => Err(CommandError::Interrupted.into()),
    }
}

/// Replace the session whenever it dies, publishing None while there is none; returns only when
/// reconnecting fails for good (auth, host key, give-up time).
async fn keep_up(
    ctx: &Ctx,
    link: &mut Link,
    tx: &watch::Sender<Option<Arc<Session>>>,
    status: &StatusLine,
) -> Result<std::convert::Infallible, LinkError> {
    loop {
        link.wait_dead().await;
        tx.send_replace(None);
        let cancel = ctx.shutdown.child_token();
        let session = link.reconnect(&cancel, |ev| status.event(&ev)).await?;
        tx.send_replace(Some(session));
    }
}

/// One forwarded client: wait for a live session, open direct-tcpip to localhost:remote on the
/// box, and copy both ways until either side closes.
async fn serve(mut tcp: TcpStream, remote: u16, mut rx: watch::Receiver<Option<Arc<Session>>>) -> anyhow::Result<()> {
    let session = tokio::time::timeout(WAIT_FOR_LINK, async {
        loop {
            if let Some(s) = rx.borrow_and_update().clone().filter(|s| !s.is_closed()) {
                return Some(s);
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| anyhow::anyhow!("the link did not come back within {} s", WAIT_FOR_LINK.as_secs()))?;
    let channel = session
        .open_direct_tcpip("localhost", remote, Duration::from_secs(15), session.host())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut stream = channel.into_stream();
    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut stream).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs() {
        assert_eq!(parse_ports("6006").unwrap(), (6006, 6006));
        assert_eq!(parse_ports("8080:6006").unwrap(), (8080, 6006));
        for bad in ["", "0", "x", "1:2:3", "70000", ":1"] {
            assert!(parse_ports(bad).is_err(), "{bad}");
        }
    }
}
