//! Incremental framing of client protocol transmissions from a byte stream.
//!
//! A [`LineDecoder`] takes bytes as they arrive and yields complete transmissions,
//! or a [`LineError`] for a transmission it had to reject, after which it carries on
//! with the next line:
//!
//! * lines end with CRLF; a bare LF ends the line with a `SYNTAX` error;
//! * an empty line (just CRLF) is skipped;
//! * a line longer than the maximum is a `LARGE` error and is skipped up to its LF;
//! * a command whose payload is `<length>` is followed by that many bytes and CRLF;
//!   a length above the maximum payload is a `LARGE` error, and the announced bytes
//!   are skipped (up to [`MAX_SKIP`]; a larger announcement is not trusted and the
//!   decoder resumes at the next line instead); a block not followed by CRLF is a
//!   `SYNTAX` error and the decoder resumes after the next LF.

use std::marker::PhantomData;

use super::error::{ErrorCode, LineError};
use super::token::{CorrId, Cursor, DEFAULT_MAX_PAYLOAD, Entity};
use super::transmission::{LineMessage, Transmission};

/// The default longest line, CRLF excluded.
pub const DEFAULT_MAX_LINE: usize = 16 * 1024;
/// The most bytes of an over-large payload the decoder skips to stay in sync.
pub const MAX_SKIP: u64 = 64 * 1024 * 1024;

/// Limits of a [`LineDecoder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    /// The longest line, CRLF excluded.
    pub max_line: usize,
    /// The longest length-prefixed payload.
    pub max_payload: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self {
            max_line: DEFAULT_MAX_LINE,
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }
}

#[derive(Debug)]
enum State {
    /// Waiting for a line.
    Line,
    /// Waiting for `len` bytes and CRLF after `line`.
    Block { line: Vec<u8>, len: usize },
    /// Dropping bytes up to and including the next LF.
    ToNextLine,
    /// Dropping this many more bytes.
    Skip(u64),
}

/// Turns a byte stream into transmissions of type `T` ([`super::ClientCommand`] on
/// the agent side, [`super::AgentEvent`] on the client side).
#[derive(Debug)]
pub struct LineDecoder<T> {
    limits: FrameLimits,
    buf: Buffer,
    /// How many bytes at the front of `buf` are known to hold no LF (so bytes that
    /// arrive one by one are scanned once, not again on every call).
    scanned: usize,
    state: State,
    _msg: PhantomData<fn() -> T>,
}

impl<T: LineMessage> Default for LineDecoder<T> {
    fn default() -> Self {
        Self::new(FrameLimits::default())
    }
}

impl<T: LineMessage> LineDecoder<T> {
    /// A decoder with `limits`.
    pub fn new(limits: FrameLimits) -> Self {
        Self {
            limits,
            buf: Buffer::default(),
            scanned: 0,
            state: State::Line,
            _msg: PhantomData,
        }
    }

    /// Appends received bytes. Call [`Self::next`] until it returns `None` before
    /// pushing more, so the buffer stays bounded.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend(bytes);
    }

    /// How many received bytes are buffered and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// True if the decoder is between transmissions (nothing partial is buffered).
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && matches!(self.state, State::Line)
    }

    /// The next complete transmission or error, or `None` if more bytes are needed.
    #[allow(clippy::should_implement_trait)] // not an iterator: `None` means "push more"
    pub fn next(&mut self) -> Option<Result<Transmission<T>, LineError>> {
        loop {
            let state = std::mem::replace(&mut self.state, State::Line);
            if !matches!(state, State::Line) {
                self.scanned = 0;
            }
            match state {
                State::Skip(n) => {
                    let k = usize::try_from(n).unwrap_or(usize::MAX).min(self.buf.len());
                    self.buf.consume(k);
                    let left = n - k as u64;
                    if left > 0 {
                        self.state = State::Skip(left);
                        return None;
                    }
                }
                State::ToNextLine => {
                    if let Some(i) = self.buf.as_slice().iter().position(|&b| b == b'\n') {
                        self.buf.consume(i + 1);
                    } else {
                        self.buf.clear();
                        self.state = State::ToNextLine;
                        return None;
                    }
                }
                State::Block { line, len } => {
                    if self.buf.len() < len.saturating_add(2) {
                        self.state = State::Block { line, len };
                        return None;
                    }
                    let block = self.buf.take_vec(len);
                    let cr = self.buf.pop_front();
                    let lf = self.buf.pop_front();
                    if (cr, lf) != (Some(b'\r'), Some(b'\n')) {
                        if lf != Some(b'\n') {
                            self.state = State::ToNextLine;
                        }
                        return Some(Err(recover(
                            &line,
                            ErrorCode::Syntax,
                            "payload block must end with CRLF",
                        )));
                    }
                    return Some(Transmission::parse(&line, Some(&block)));
                }
                State::Line => return self.next_line(),
            }
        }
    }

    fn next_line(&mut self) -> Option<Result<Transmission<T>, LineError>> {
        loop {
            let window = self.limits.max_line.saturating_add(2);
            let found = self
                .buf
                .as_slice()
                .iter()
                .take(window)
                .skip(self.scanned)
                .position(|&b| b == b'\n')
                .map(|i| i + self.scanned);
            let Some(lf) = found else {
                self.scanned = self.buf.len().min(window);
                if self.buf.len() > self.limits.max_line.saturating_add(1) {
                    self.scanned = 0;
                    let head = self
                        .buf
                        .as_slice()
                        .iter()
                        .take(MAX_HEAD)
                        .copied()
                        .collect::<Vec<u8>>();
                    self.buf.clear();
                    self.state = State::ToNextLine;
                    return Some(Err(recover(&head, ErrorCode::Large, "line too long")));
                }
                return None;
            };
            self.scanned = 0;
            let mut line = self.buf.take_vec(lf + 1);
            line.pop(); // LF
            if line.last() == Some(&b'\r') {
                line.pop();
            } else {
                return Some(Err(recover(
                    &line,
                    ErrorCode::Syntax,
                    "line must end with CRLF",
                )));
            }
            if line.len() > self.limits.max_line {
                return Some(Err(recover(&line, ErrorCode::Large, "line too long")));
            }
            if line.is_empty() {
                continue;
            }
            return match self.block_len(&line) {
                Ok(None) => Some(Transmission::parse(&line, None)),
                Ok(Some(len)) => {
                    self.state = State::Block { line, len };
                    self.next()
                }
                Err(e) => Some(Err(e)),
            };
        }
    }

    /// The length of the block announced at the end of `line`, if its command has a
    /// payload given as `<length>`.
    fn block_len(&mut self, line: &[u8]) -> Result<Option<usize>, LineError> {
        let mut c = Cursor::new(line, None);
        c.token();
        let kind = match Entity::parse(c.token()) {
            Ok(e) => e.kind(),
            Err(_) => return Ok(None), // the parser reports it
        };
        let word = c.token();
        let mut args = c.clone();
        let Some(index) = T::payload_index(kind, word, args.rest()) else {
            return Ok(None);
        };
        for _ in 0..index {
            c.token();
        }
        let spec = c.rest();
        if spec.is_empty() || !spec.iter().all(u8::is_ascii_digit) {
            return Ok(None); // inline payload, or a syntax error the parser reports
        }
        let Ok(len) = crate::agent::parse_decimal(spec, "payload length") else {
            return Ok(None);
        };
        if u64::try_from(self.limits.max_payload).is_ok_and(|max| len > max) {
            if len <= MAX_SKIP {
                self.state = State::Skip(len + 2);
            }
            return Err(recover(line, ErrorCode::Large, "payload too large"));
        }
        Ok(usize::try_from(len).ok())
    }
}

/// How much of an over-long line is kept to recover its corrId and entity.
const MAX_HEAD: usize = 256;

/// A framing error, with the corrId and entity of `line` when they can be read.
fn recover(line: &[u8], code: ErrorCode, detail: &str) -> LineError {
    let mut c = Cursor::new(line, None);
    let corr = CorrId::new(c.token()).unwrap_or_else(|_| CorrId::empty());
    let entity = if c.at_end() {
        Entity::None
    } else {
        Entity::parse(c.token()).unwrap_or(Entity::None)
    };
    LineError::new(code, detail).at(&corr, &entity)
}

/// Received bytes not yet decoded: a vector read from `start`, compacted when the
/// read part is at least half of it, so bytes are copied in bulk.
#[derive(Debug, Default)]
struct Buffer {
    bytes: Vec<u8>,
    start: usize,
}

impl Buffer {
    fn extend(&mut self, more: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.bytes.len() {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        self.bytes.extend_from_slice(more);
    }

    fn as_slice(&self) -> &[u8] {
        self.bytes.get(self.start..).unwrap_or(&[])
    }

    fn len(&self) -> usize {
        self.bytes.len() - self.start
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.bytes.len() {
            self.clear();
        }
    }

    fn take_vec(&mut self, n: usize) -> Vec<u8> {
        let out = self.as_slice().get(..n).unwrap_or(self.as_slice()).to_vec();
        self.consume(n);
        out
    }

    fn pop_front(&mut self) -> Option<u8> {
        let b = self.as_slice().first().copied();
        self.consume(1);
        b
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.start = 0;
    }
}
