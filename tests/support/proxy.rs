//! A fault-injecting TCP proxy between rtrain and a real sshd, so tests can make the network do
//! what laptops see: sleep or a dead Wi-Fi (black hole), a reset path (VPN drop, NAT reboot), a
//! refusing port. It runs on its own thread and tokio runtime, so std-thread tests and async tests
//! drive it alike; a mode switch returns once it has taken effect.

use super::sshd::{Client, Sshd};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the proxy does to existing and new connections. Switchable at any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// Nothing moves either way, and nothing is lost: bytes wait (unread, in the kernel, where TCP
    /// would be retransmitting them) and flow again on `Pass`, by which time the SSH client has
    /// usually given up on keepalives, which is what tests look at. New connections hang in
    /// connect: the listen queue is kept full, so the kernel drops their SYNs and the client
    /// retransmits them, exactly as across a dead network; they complete after `Pass`.
    BlackHole,
    /// Every existing connection is reset (RST: SO_LINGER 0, then close), both towards the client
    /// and towards the server, and so is every new one.
    Reset,
    /// New connections are refused (nothing listens; the port stays reserved); existing ones are
    /// untouched.
    Refuse,
}

/// The state set_mode waits on.
#[derive(Default)]
struct State {
    /// The mode whose listener side is in place.
    applied: Option<Mode>,
    accepted: u64,
    live: usize,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap());
        self.changed.notify_all();
    }
}

/// The proxy. Dropping it closes the listener and every connection.
pub struct Proxy {
    port: u16,
    target: u16,
    mode: watch::Sender<Mode>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Listen on 127.0.0.1 at an ephemeral port and forward to 127.0.0.1:`target`, in `Pass` mode.
    pub fn start(target: u16) -> Proxy {
        let (mode, mode_rx) = watch::channel(Mode::Pass);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let shutdown = CancellationToken::new();
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let thread = {
            let (shared, shutdown) = (shared.clone(), shutdown.clone());
            std::thread::Builder::new()
                .name(format!("proxy-to-{target}"))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("proxy runtime");
                    rt.block_on(async move {
                        let socket = reserve(0).expect("proxy: bind 127.0.0.1:0");
                        let port = socket.local_addr().unwrap().port();
                        port_tx.send(port).unwrap();
                        run(socket, port, target, mode_rx, shared, shutdown).await;
                    });
                })
                .expect("spawn proxy thread")
        };
        let port = port_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the proxy did not start");
        let proxy = Proxy {
            port,
            target,
            mode,
            shared,
            shutdown,
            thread: Some(thread),
        };
        proxy.wait_applied(Mode::Pass);
        proxy
    }

    /// The port rtrain should connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port connections are forwarded to.
    pub fn target(&self) -> u16 {
        self.target
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// Switch modes; returns once the listener is in its new state and, for `Reset`, once every
    /// existing connection has been reset.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
        self.wait_applied(mode);
    }

    /// A client like [`Client::for_box`] whose `box` alias goes through this proxy: ssh_config
    /// points at the proxy's port, and known_hosts has the box's key under `[127.0.0.1]:PROXYPORT`.
    pub fn client_for(&self, sshd: &Sshd) -> Client {
        let c = Client::for_box(sshd);
        c.write_ssh_config(&format!(
            "Host box\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n",
            self.port,
            sshd.user,
            c.key.display()
        ));
        let line = format!("[127.0.0.1]:{} {}\n", self.port, sshd.host_public_key());
        std::fs::write(c.ssh_dir().join("known_hosts"), line).unwrap();
        c
    }

    /// Connections accepted so far, in any mode (a connection reset at once still counts).
    pub fn accepted(&self) -> u64 {
        self.shared.state.lock().unwrap().accepted
    }

    /// Connections currently open through the proxy.
    pub fn live(&self) -> usize {
        self.shared.state.lock().unwrap().live
    }

    fn wait_applied(&self, mode: Mode) {
        let limit = Duration::from_secs(10);
        self.wait_until(limit, |s| {
            s.applied == Some(mode) && (mode != Mode::Reset || s.live == 0)
        })
        .unwrap_or_else(|| panic!("proxy: mode {mode:?} not in effect after {limit:?}"));
    }

    fn wait_until(&self, limit: Duration, ok: impl Fn(&State) -> bool) -> Option<()> {
        let deadline = Instant::now() + limit;
        let mut state = self.shared.state.lock().unwrap();
        while !ok(&state) {
            let left = deadline.checked_duration_since(Instant::now())?;
            state = self.shared.changed.wait_timeout(state, left).unwrap().0;
        }
        Some(())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A socket bound to the port but not listening: connections to it are refused, and no one else
/// (say, another test's sshd picking a free port) can take the port meanwhile.
fn reserve(port: u16) -> std::io::Result<TcpSocket> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    Ok(socket)
}

/// The listening side in one of its three shapes.
enum Listener {
    Open(TcpListener),
    /// Listening with a full queue (held by our own never-accepted connections), so the kernel
    /// drops new SYNs.
    Saturated(TcpListener, Vec<TcpStream>),
    Closed(TcpSocket),
}

#[derive(PartialEq)]
enum Shape {
    Open,
    Saturated,
    Closed,
}

fn shape_for(mode: Mode) -> Shape {
    match mode {
        Mode::Pass | Mode::Reset => Shape::Open,
        Mode::BlackHole => Shape::Saturated,
        Mode::Refuse => Shape::Closed,
    }
}

impl Listener {
    fn shape(&self) -> Shape {
        match self {
            Listener::Open(_) => Shape::Open,
            Listener::Saturated(..) => Shape::Saturated,
            Listener::Closed(_) => Shape::Closed,
        }
    }
}

/// Close a listener and keep its port reserved. Binding right after the close can briefly fail
/// while the kernel lets go of the port, hence the retries.
async fn reserve_after(listener: std::net::TcpListener, port: u16) -> TcpSocket {
    drop(listener);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match reserve(port) {
            Ok(s) => return s,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => panic!("proxy: cannot reserve port {port} again: {e}"),
        }
    }
}

/// Give the listening side a new shape. The port stays reserved throughout, so no other socket can
/// take it in between.
async fn reshape(old: Listener, port: u16, shape: Shape) -> Listener {
    let socket = match old {
        Listener::Closed(socket) => socket,
        Listener::Open(l) => reserve_after(l.into_std().expect("proxy: listener into std"), port).await,
        Listener::Saturated(l, fillers) => {
            drop(fillers);
            reserve_after(l.into_std().expect("proxy: listener into std"), port).await
        }
    };
    try_shape(socket, port, &shape)
        .await
        .unwrap_or_else(|e| panic!("proxy: cannot listen on port {port} again: {e}"))
}

async fn try_shape(socket: TcpSocket, port: u16, shape: &Shape) -> std::io::Result<Listener> {
    Ok(match shape {
        Shape::Closed => Listener::Closed(socket),
        Shape::Open => Listener::Open(socket.listen(1024)?),
        Shape::Saturated => {
            // Fill the accept queue with connections nobody accepts, until one does not complete:
            // from then on the kernel drops every SYN. (Linux queues backlog + 1; asking the
            // kernel rather than assuming keeps this honest elsewhere.)
            let listener = socket.listen(0)?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut fillers = Vec::new();
            loop {
                match tokio::time::timeout(Duration::from_millis(100), TcpStream::connect(addr)).await {
                    Ok(Ok(s)) => fillers.push(s),
                    Ok(Err(e)) => return Err(e),
                    Err(_) => break,
                }
                if fillers.len() > 64 {
                    return Err(std::io::Error::other("the listen queue never filled up"));
                }
            }
            Listener::Saturated(listener, fillers)
        }
    })
}

async fn run(
    socket: TcpSocket,
    port: u16,
    target: u16,
    mut mode: watch::Receiver<Mode>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let mut listener = Listener::Open(socket.listen(1024).expect("proxy: listen"));
    let admit = |client: TcpStream, mode: &watch::Receiver<Mode>| {
        shared.update(|s| s.accepted += 1);
        if *mode.borrow() == Mode::Reset {
            return reset(client);
        }
        shared.update(|s| s.live += 1);
        let (mode, shared, shutdown) = (mode.clone(), shared.clone(), shutdown.clone());
        tokio::spawn(async move {
            serve(client, target, mode, shutdown).await;
            shared.update(|s| s.live -= 1);
        });
    };
    loop {
        let m = *mode.borrow_and_update();
        if listener.shape() != shape_for(m) {
            if let Listener::Open(l) = listener {
                // Connections the kernel completed but we had not accepted yet exist for their
                // clients already: closing the listener would reset them. They get the new mode.
                // (tokio's accept only sees what its reactor has noticed, so ask the kernel.)
                let l = l.into_std().expect("proxy: listener into std");
                while let Ok((client, _)) = l.accept() {
                    let client = client.set_nonblocking(true).and_then(|()| TcpStream::from_std(client));
                    if let Ok(client) = client {
                        admit(client, &mode);
                    }
                }
                listener = Listener::Closed(reserve_after(l, port).await);
            }
            listener = reshape(listener, port, shape_for(m)).await;
        }
        shared.update(|s| s.applied = Some(m));
        let accepted = match &listener {
            Listener::Open(l) => tokio::select! {
                r = l.accept() => r.ok(),
                _ = mode.changed() => None,
                () = shutdown.cancelled() => return,
            },
            _ => tokio::select! {
                _ = mode.changed() => None,
                () = shutdown.cancelled() => return,
            },
        };
        if let Some((client, _)) = accepted {
            admit(client, &mode);
        }
    }
}

fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn serve(client: TcpStream, target: u16, mode: watch::Receiver<Mode>, shutdown: CancellationToken) {
    let upstream = match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(("127.0.0.1", target))).await {
        Ok(Ok(s)) => s,
        // The server is down: to the client that looks like a reset connection.
        _ => return reset(client),
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let mut client = client;
    let mut upstream = upstream;
    let reset_both = {
        let (mut cr, mut cw) = client.split();
        let (mut ur, mut uw) = upstream.split();
        let mut reset_mode = mode.clone();
        tokio::select! {
            r = async {
                tokio::try_join!(
                    pump(&mut cr, &mut uw, mode.clone()),
                    pump(&mut ur, &mut cw, mode.clone()),
                )
            } => r.is_err(),
            _ = reset_mode.wait_for(|m| *m == Mode::Reset) => true,
            () = shutdown.cancelled() => false,
        }
    };
    if reset_both {
        reset(client);
        reset(upstream);
    }
}

/// Copy one direction, holding still while the mode is `BlackHole`. Err: the path broke (a reset
/// on one side is passed on as a reset to the other).
async fn pump<R, W>(from: &mut R, to: &mut W, mut mode: watch::Receiver<Mode>) -> Result<(), ()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        mode.wait_for(|m| *m != Mode::BlackHole).await.map_err(|_| ())?;
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) => {
                    let _ = to.shutdown().await;
                    return Ok(());
                }
                Ok(n) => n,
                Err(_) => return Err(()),
            },
            _ = mode.changed() => continue,
        };
        // Bytes read just as the black hole began wait for its end, like everything behind them.
        let mut done = 0;
        while done < n {
            mode.wait_for(|m| *m != Mode::BlackHole).await.map_err(|_| ())?;
            tokio::select! {
                r = to.write(&buf[done..n]) => match r {
                    Ok(0) | Err(_) => return Err(()),
                    Ok(k) => done += k,
                },
                _ = mode.changed() => {}
            }
        }
    }
}
