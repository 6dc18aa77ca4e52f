//! The fault-injecting proxy itself: each mode does to a plain echo connection what it promises,
//! so the link tests that rely on it test rtrain, not the proxy.

use crate::support::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// An echo server on 127.0.0.1 (a thread per connection; they end with the test process).
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr(port), Duration::from_secs(5)).expect("connect through the proxy");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn echo(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(msg)?;
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got)?;
    Ok(got)
}

/// Nothing arrives within `wait`.
fn silent(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 16];
    let r = s.read(&mut b);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    matches!(r, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
}

#[test]
fn proxy_pass_forwards_both_ways_and_counts_connections() {
    let proxy = Proxy::start(echo_server());
    let mut a = connect(proxy.port());
    let mut b = connect(proxy.port());
    assert_eq!(echo(&mut a, b"hello").unwrap(), b"hello");
    assert_eq!(echo(&mut b, b"world").unwrap(), b"world");
    assert_eq!(proxy.accepted(), 2);
    assert_eq!(proxy.live(), 2);
}

#[test]
fn proxy_black_hole_holds_bytes_and_new_connects_hang_until_pass() {
    let proxy = Proxy::start(echo_server());
    let mut old = connect(proxy.port());
    assert_eq!(echo(&mut old, b"1").unwrap(), b"1");
    proxy.set_mode(Mode::BlackHole);
    old.write_all(b"held").unwrap();
    assert!(
        silent(&mut old, Duration::from_millis(300)),
        "bytes crossed a black hole"
    );
    let err = TcpStream::connect_timeout(&addr(proxy.port()), Duration::from_millis(500))
        .expect_err("a new connection completed through a black hole");
    assert!(
        matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock),
        "a black hole must time out, not refuse: {err}"
    );
    let accepted = proxy.accepted();
    proxy.set_mode(Mode::Pass);
    let mut got = [0u8; 4];
    old.read_exact(&mut got)
        .expect("held bytes are delivered after the black hole");
    assert_eq!(&got, b"held");
    let mut new = connect(proxy.port());
    assert_eq!(echo(&mut new, b"2").unwrap(), b"2");
    assert_eq!(proxy.accepted(), accepted + 1);
}

#[test]
fn proxy_reset_resets_existing_and_new_connections() {
    let proxy = Proxy::start(echo_server());
    let mut old = connect(proxy.port());
    assert_eq!(echo(&mut old, b"1").unwrap(), b"1");
    proxy.set_mode(Mode::Reset);
    assert_eq!(proxy.live(), 0);
    let mut b = [0u8; 1];
    let err = old.read(&mut b).expect_err("a reset connection must not read cleanly");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    // The reset may already have arrived when connect looks at the socket, or come after.
    let r = TcpStream::connect_timeout(&addr(proxy.port()), Duration::from_secs(5)).and_then(|mut new| {
        new.set_read_timeout(Some(Duration::from_secs(5)))?;
        echo(&mut new, b"2")
    });
    assert!(
        matches!(&r, Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe)),
        "{r:?}"
    );
    proxy.set_mode(Mode::Pass);
    let mut again = connect(proxy.port());
    assert_eq!(echo(&mut again, b"3").unwrap(), b"3");
}

#[test]
fn proxy_refuse_refuses_new_connections_and_keeps_existing_ones() {
    let proxy = Proxy::start(echo_server());
    let mut old = connect(proxy.port());
    proxy.set_mode(Mode::Refuse);
    let err = TcpStream::connect_timeout(&addr(proxy.port()), Duration::from_secs(2)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    assert_eq!(echo(&mut old, b"still here").unwrap(), b"still here");
    proxy.set_mode(Mode::Pass);
    let mut new = connect(proxy.port());
    assert_eq!(echo(&mut new, b"back").unwrap(), b"back", "same port after Refuse");
}

#[test]
fn proxy_drop_closes_the_port_and_every_connection() {
    let proxy = Proxy::start(echo_server());
    let port = proxy.port();
    let mut old = connect(port);
    assert_eq!(echo(&mut old, b"1").unwrap(), b"1");
    drop(proxy);
    // Closed means EOF or a reset, and soon; a read that times out is a connection that survived.
    old.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 1];
    let r = old.read(&mut b);
    assert!(
        matches!(&r, Ok(0))
            || matches!(&r, Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted)),
        "connection survived the proxy: {r:?}"
    );
    let err = TcpStream::connect_timeout(&addr(port), Duration::from_secs(2)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
}
