//! The Linux kernel interfaces under tests/support/netns.rs: entering a network namespace
//! (setns) and the NFQUEUE delay line that stands in for netem, by hand over nfnetlink.

use super::netns::{Rng, Shape};
use std::collections::BinaryHeap;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// This thread into the network namespace at `path`.
pub fn enter(path: &str) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: a valid namespace fd; setns changes only the calling thread.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {path}: {} (needs root)", std::io::Error::last_os_error());
}

// nfnetlink_queue, by hand (linux/netfilter/nfnetlink_queue.h): bind queue 0, copy only metadata,
// and answer each packet with a verdict when its delay has passed.
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_META: u8 = 1;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;

fn nl_message(msg: u16, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = vec![libc::AF_UNSPEC as u8, 0, 0, 0]; // nfgenmsg: family, version, queue 0 (be16)
    for (kind, payload) in attrs {
        body.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        body.extend_from_slice(&kind.to_ne_bytes());
        body.extend_from_slice(payload);
        while body.len() % 4 != 0 {
            body.push(0);
        }
    }
    let mut m = Vec::with_capacity(16 + body.len());
    m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&(NFNL_SUBSYS_QUEUE << 8 | msg).to_ne_bytes());
    m.extend_from_slice(&((libc::NLM_F_REQUEST) as u16).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    m.extend_from_slice(&body);
    m
}

fn nl_send(fd: i32, m: &[u8]) {
    // SAFETY: m is a valid buffer; the fd a netlink socket bound by us.
    let r = unsafe { libc::send(fd, m.as_ptr().cast(), m.len(), 0) };
    assert!(r >= 0, "netlink send: {}", std::io::Error::last_os_error());
}

/// Packet ids in one received netlink datagram.
fn packet_ids(buf: &[u8], out: &mut Vec<u32>) {
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap());
        if len < 16 || off + len > buf.len() {
            break;
        }
        if kind == NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_PACKET {
            let mut a = off + 20;
            while a + 4 <= off + len {
                let alen = u16::from_ne_bytes(buf[a..a + 2].try_into().unwrap()) as usize;
                let akind = u16::from_ne_bytes(buf[a + 2..a + 4].try_into().unwrap()) & 0x3fff;
                if alen < 4 {
                    break;
                }
                if akind == NFQA_PACKET_HDR && alen >= 8 {
                    out.push(u32::from_be_bytes(buf[a + 4..a + 8].try_into().unwrap()));
                }
                a += (alen + 3) & !3;
            }
        }
        off += (len + 3) & !3;
    }
}

fn verdict(fd: i32, id: u32, v: u32) {
    let mut hdr = v.to_be_bytes().to_vec();
    hdr.extend_from_slice(&id.to_be_bytes());
    nl_send(fd, &nl_message(NFQNL_MSG_VERDICT, &[(NFQA_VERDICT_HDR, hdr)]));
}

/// Holds each queued packet for its delay (drops some), until `stop`.
pub fn delay_queue(shape: Arc<Mutex<Shape>>, stop: Arc<AtomicBool>, seed: u64, ready: std::sync::mpsc::Sender<()>) {
    // SAFETY: plain socket calls on a socket this function owns and closes.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    assert!(fd >= 0, "netlink socket: {}", std::io::Error::last_os_error());
    let big: libc::c_int = 8 << 20;
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&big as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        );
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        let r = libc::bind(
            fd,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        );
        assert_eq!(r, 0, "netlink bind: {}", std::io::Error::last_os_error());
    }
    nl_send(
        fd,
        &nl_message(NFQNL_MSG_CONFIG, &[(NFQA_CFG_CMD, vec![NFQNL_CFG_CMD_BIND, 0, 0, 0])]),
    );
    let mut params = 0u32.to_be_bytes().to_vec();
    params.push(NFQNL_COPY_META);
    nl_send(
        fd,
        &nl_message(
            NFQNL_MSG_CONFIG,
            &[
                (NFQA_CFG_PARAMS, params),
                (NFQA_CFG_QUEUE_MAXLEN, 65536u32.to_be_bytes().to_vec()),
            ],
        ),
    );
    let _ = ready.send(());
    let mut rng = Rng::new(seed);
    let mut held: BinaryHeap<std::cmp::Reverse<(Instant, u32)>> = BinaryHeap::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut ids = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        while let Some(std::cmp::Reverse((due, id))) = held.peek().copied() {
            if due > now {
                break;
            }
            held.pop();
            verdict(fd, id, NF_ACCEPT);
        }
        let wait_ms = held
            .peek()
            .map(|r| r.0 .0.saturating_duration_since(now).as_millis() as i32 + 1)
            .unwrap_or(50)
            .min(50);
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, wait_ms) } <= 0 {
            continue;
        }
        loop {
            // SAFETY: buf is writable for its length.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if n <= 0 {
                break; // EAGAIN, or ENOBUFS (the kernel dropped packets: that is loss, too)
            }
            ids.clear();
            packet_ids(&buf[..n as usize], &mut ids);
            let s = *shape.lock().unwrap();
            for &id in &ids {
                if s.loss > 0.0 && rng.unit() < s.loss {
                    verdict(fd, id, NF_DROP);
                    continue;
                }
                let j = s.jitter.as_secs_f64() * (2.0 * rng.unit() - 1.0);
                let d = Duration::from_secs_f64((s.delay.as_secs_f64() + j).max(0.0));
                held.push(std::cmp::Reverse((Instant::now() + d, id)));
            }
        }
    }
    for std::cmp::Reverse((_, id)) in held.drain() {
        verdict(fd, id, NF_ACCEPT);
    }
    // SAFETY: our fd, closed once.
    unsafe { libc::close(fd) };
}
