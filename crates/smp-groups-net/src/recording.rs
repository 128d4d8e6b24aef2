//! A stream wrapper that records the bytes flowing from the TLS client to the server
//! during the handshake: the client records what it writes, the server what it reads.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// At most this many bytes are recorded (a client's handshake flight is far smaller).
const RECORD_LIMIT: usize = 64 * 1024;

/// Which direction is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Record what is written (the client side).
    Writes,
    /// Record what is read (the server side).
    Reads,
}

/// Wraps a stream and records one direction until [`Recording::finish`].
#[derive(Debug)]
pub(crate) struct Recording<S> {
    inner: S,
    direction: Direction,
    recorded: Option<Vec<u8>>,
}

impl<S> Recording<S> {
    pub(crate) fn new(inner: S, direction: Direction) -> Self {
        Self {
            inner,
            direction,
            recorded: Some(Vec::new()),
        }
    }

    /// Stops recording and returns what was recorded.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        self.recorded.take().unwrap_or_default()
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    pub(crate) fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    fn record(&mut self, bytes: &[u8]) {
        if let Some(rec) = &mut self.recorded {
            let room = RECORD_LIMIT.saturating_sub(rec.len());
            rec.extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Recording<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.direction == Direction::Reads && matches!(res, Poll::Ready(Ok(()))) {
            let new = buf.filled().get(before..).unwrap_or_default();
            this.record(new);
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recording<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        if this.direction == Direction::Writes
            && let Poll::Ready(Ok(n)) = res
        {
            this.record(buf.get(..n).unwrap_or_default());
        }
        res
    }

    /// Vectored writes pass through: rustls hands over everything it has
    /// queued in one call, and a handshake that fails (a wrong ALPN, say) has
    /// one last chance to write its flight *and* the alert that ends it; with
    /// the default (first buffer only) the alert stayed unsent and the peer
    /// saw a bare close.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if this.direction == Direction::Writes
            && let Poll::Ready(Ok(n)) = res
        {
            let mut left = n;
            for b in bufs {
                if left == 0 {
                    break;
                }
                let take = left.min(b.len());
                this.record(b.get(..take).unwrap_or_default());
                left -= take;
            }
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn records_one_direction_until_finished() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut w = Recording::new(a, Direction::Writes);
        w.write_all(b"hello").await.unwrap();
        b.write_all(b"ignored").await.unwrap();
        let mut got = [0u8; 7];
        w.read_exact(&mut got).await.unwrap();
        assert_eq!(w.finish(), b"hello");
        w.write_all(b"later").await.unwrap();
        assert!(w.finish().is_empty());

        let (a, mut b) = tokio::io::duplex(1024);
        let mut r = Recording::new(a, Direction::Reads);
        b.write_all(b"from peer").await.unwrap();
        r.write_all(b"not recorded").await.unwrap();
        let mut got = [0u8; 9];
        r.read_exact(&mut got).await.unwrap();
        assert_eq!(r.finish(), b"from peer");
    }
}
