//! Bounded in-memory collectors for what a remote command prints. A box is not trusted to be small or
//! sane (a `ForceCommand`, a chatty rc file or a broken trainer can print gigabytes), so nothing the remote
//! side sends is kept without a limit: [`Limited`] refuses more than its limit, [`HeadTail`] keeps the
//! beginning and the end, where rtrain's own marker lines are, and drops the middle.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;

/// The error a [`Limited`] collector's write returns once the limit is passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than {limit} bytes")]
pub struct OverLimit {
    pub limit: usize,
}

/// A limit for messages: `2 MiB`, `64 KiB`, `100 bytes`.
pub fn human_limit(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// Collects at most `limit` bytes; the write that would pass it fails with [`OverLimit`], and so does
/// every one after it, so the caller can stop reading.
#[derive(Debug)]
pub struct Limited {
    buf: Vec<u8>,
    limit: usize,
    over: bool,
}

impl Limited {
    pub fn new(limit: usize) -> Limited {
        Limited {
            buf: Vec::new(),
            limit,
            over: false,
        }
    }

    pub fn push(&mut self, data: &[u8]) -> Result<(), OverLimit> {
        if self.over || self.buf.len() + data.len() > self.limit {
            self.over = true;
            return Err(OverLimit { limit: self.limit });
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    pub fn is_over(&self) -> bool {
        self.over
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }
}

/// Keeps the first `head` bytes and the last `tail` bytes of a stream. Between them, when bytes were
/// dropped, [`HeadTail::bytes`] puts one newline, so a line cut in two never joins another line.
#[derive(Debug)]
pub struct HeadTail {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_cap: usize,
    tail_cap: usize,
    dropped: u64,
}

impl HeadTail {
    pub fn new(head: usize, tail: usize) -> HeadTail {
        HeadTail {
            head: Vec::new(),
            tail: VecDeque::new(),
            head_cap: head,
            tail_cap: tail,
            dropped: 0,
        }
    }

    pub fn push(&mut self, mut data: &[u8]) {
        let room = self.head_cap - self.head.len();
        if room > 0 && self.tail.is_empty() {
            let n = room.min(data.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        if data.len() >= self.tail_cap {
            self.dropped += (self.tail.len() + data.len() - self.tail_cap) as u64;
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.tail_cap..]);
            return;
        }
        let excess = (self.tail.len() + data.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..excess);
        self.dropped += excess as u64;
        self.tail.extend(data);
    }

    /// Bytes dropped between the head and the tail.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// What was kept: the head, a newline if anything was dropped, the tail.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + self.tail.len() + 1);
        out.extend_from_slice(&self.head);
        if self.dropped > 0 {
            out.push(b'\n');
        }
        out.extend(self.tail.iter());
        out
    }
}

impl AsyncWrite for Limited {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.get_mut()
                .push(buf)
                .map(|()| buf.len())
                .map_err(std::io::Error::other),
        )
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for HeadTail {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.get_mut().push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn limited_refuses_the_byte_past_its_limit_and_everything_after() {
        let mut l = Limited::new(4);
        assert!(l.push(b"ab").is_ok() && l.push(b"cd").is_ok());
        assert_eq!(l.push(b"e"), Err(OverLimit { limit: 4 }));
        assert_eq!(l.push(b""), Err(OverLimit { limit: 4 }), "stays refused");
        assert!(l.is_over());
        assert_eq!(l.into_inner(), b"abcd");
    }

    proptest! {
        /// However the stream is cut into writes, the head is its first bytes, the tail its last, and
        /// nothing is kept beyond the two caps.
        #[test]
        fn head_tail_keeps_exactly_both_ends(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..8),
            head in 0usize..100,
            tail in 1usize..100,
        ) {
            let mut h = HeadTail::new(head, tail);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort();
            let mut at = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                h.push(&data[at..c]);
                at = c;
            }
            let n = data.len();
            let want_head = &data[..head.min(n)];
            let rest = &data[head.min(n)..];
            let want_tail = &rest[rest.len().saturating_sub(tail)..];
            let dropped = (rest.len() - want_tail.len()) as u64;
            prop_assert_eq!(h.dropped(), dropped);
            let mut want = want_head.to_vec();
            if dropped > 0 {
                want.push(b'\n');
            }
            want.extend_from_slice(want_tail);
            prop_assert_eq!(h.bytes(), want);
        }
    }
}
