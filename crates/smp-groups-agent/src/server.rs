//! The client text protocol (`docs/protocol-client.md`) on a Unix domain
//! socket or on TCP.
//!
//! Each accepted connection is one client session: its lines are decoded
//! incrementally ([`LineDecoder`]), each command is answered with its response
//! (`OK`, the command's event, or `ERR CODE detail`) carrying its corrId, and
//! the agent's own events (empty corrId) are written to every connected
//! client. A line that cannot be accepted (unknown command or entity, a payload
//! over the limit, bytes that are not a transmission) is answered with `ERR`
//! and the session goes on. An event is confirmed as delivered once written
//! to a client socket, except a message (`MSG`), which is confirmed once the
//! client answers it with `ACK` (the server's `held` module); unconfirmed events are
//! delivered again after a restart, and events produced while no client is
//! connected wait for the next one.
//!
//! **Who may connect.** The Unix socket ([`UnixServer`]) is made readable by
//! its owner only (mode 0600) and a peer of another user is refused (its
//! credentials are checked on accept). On TCP ([`serve_tcp`]) the first line
//! of a session must be `AUTH <token>` (the token is in a 0600 file,
//! [`Token::load_or_create`]); the server answers `AUTH OK`, or `AUTH ERR`
//! and closes, and sends nothing before.
//!
//! **Bounds.** At most [`ServerConfig::max_clients`] sessions; beyond, a new
//! connection is closed at once. Each session has at most
//! [`ServerConfig::max_queued_lines`] lines waiting to be written: when they
//! are there, its commands are not read (a client that writes and does not
//! read is slowed, not buffered), and a write that stalls for
//! [`ServerConfig::write_timeout`] ends the session. Events are read from the
//! agent's log at the session's pace. Accept failures (out of file
//! descriptors, say) are logged at most once per interval and retried after
//! a back-off; they never end the server.

mod held;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use held::{Held, ack_key, event_key};

use smp_groups_wire::client::{AgentEvent, ClientCommand, FrameLimits, LineDecoder, Transmission};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::Error;
use crate::agent::Agent;
use crate::events::{error_event, response, to_command};

/// Default limit on client sessions at once.
pub const DEFAULT_MAX_CLIENTS: usize = 64;

/// Settings of the text protocol server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Sessions at once; beyond, a new connection is closed at once.
    pub max_clients: usize,
    /// Lines waiting to be written to one client; while they are there, the
    /// client's commands are not read.
    pub max_queued_lines: usize,
    /// A write to a client that stalls this long ends its session.
    pub write_timeout: Duration,
    /// How long a TCP client has to send its `AUTH` line.
    pub auth_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_clients: DEFAULT_MAX_CLIENTS,
            max_queued_lines: 256,
            write_timeout: Duration::from_secs(60),
            auth_timeout: Duration::from_secs(10),
        }
    }
}

/// The secret a TCP client sends first (`AUTH <token>`).
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// The longest `AUTH` line read.
const MAX_AUTH_LINE: usize = 512;

impl Token {
    /// A token with this text (printable ASCII, no spaces).
    pub fn new(text: &str) -> Option<Self> {
        let ok = !text.is_empty()
            && text.len() <= MAX_AUTH_LINE - 8
            && text.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(text.to_owned()))
    }

    /// A fresh random token (32 bytes, base64url).
    pub fn generate() -> Self {
        let mut b = [0u8; 32];
        smp_groups_crypto::RngCore::fill_bytes(&mut smp_groups_crypto::rng::system(), &mut b);
        Self(smp_groups_wire::base64url::encode_unpadded(&b))
    }

    /// The token in file `path`, created (mode 0600, a fresh token) if it does
    /// not exist; an existing file is made 0600.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                restrict(path)?;
                Self::new(text.trim()).ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: not a token", path.display()),
                    )
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let token = Self::generate();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                let mut f = options.open(path)?;
                std::io::Write::write_all(&mut f, format!("{}\n", token.0).as_bytes())?;
                f.sync_all()?;
                Ok(token)
            }
            Err(e) => Err(e),
        }
    }

    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this token (compared in constant time, hashed
    /// first so the length does not show either).
    fn matches(&self, given: &[u8]) -> bool {
        smp_groups_crypto::ct_eq(
            &smp_groups_crypto::sha256(given),
            &smp_groups_crypto::sha256(self.0.as_bytes()),
        )
    }
}

fn restrict(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// A Unix domain socket for the text protocol, readable by its owner only.
#[derive(Debug)]
pub struct UnixServer {
    listener: UnixListener,
    path: PathBuf,
    owner: u32,
}

impl UnixServer {
    /// Binds `path` (a stale socket left there is removed) and makes it 0600.
    pub fn bind(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        if let Ok(m) = std::fs::symlink_metadata(path)
            && m.file_type().is_socket()
        {
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        restrict(path)?;
        let owner = std::fs::metadata(path)?.uid();
        Ok(Self {
            listener,
            path: path.to_owned(),
            owner,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

enum Listener {
    Tcp(TcpListener, Token),
    Unix(UnixServer),
}

impl Listener {
    /// The next connection, or `None` for one refused (another user's).
    async fn accept(&self) -> std::io::Result<Option<(Box<dyn Io>, String)>> {
        match self {
            Self::Tcp(l, _) => {
                let (s, peer) = l.accept().await?;
                Ok(Some((Box::new(s), peer.to_string())))
            }
            Self::Unix(u) => {
                let (s, _) = u.listener.accept().await?;
                let uid = s.peer_cred()?.uid();
                if uid != u.owner {
                    tracing::warn!(uid, "text client of another user refused");
                    return Ok(None);
                }
                Ok(Some((Box::new(s), format!("uid {uid}"))))
            }
        }
    }

    fn token(&self) -> Option<&Token> {
        match self {
            Self::Tcp(_, t) => Some(t),
            Self::Unix(_) => None,
        }
    }
}

/// Serves the text protocol on TCP, each session authenticated with `token`,
/// until the agent stops; returns why it stopped.
pub async fn serve_tcp(
    listener: TcpListener,
    agent: Agent,
    token: Token,
    config: ServerConfig,
) -> Error {
    serve(Listener::Tcp(listener, token), agent, config).await
}

/// Serves the text protocol on a Unix domain socket until the agent stops;
/// returns why it stopped.
pub async fn serve_unix(listener: UnixServer, agent: Agent, config: ServerConfig) -> Error {
    serve(Listener::Unix(listener), agent, config).await
}

/// Counts a refusal of one kind, logging at most once per interval.
#[derive(Debug, Default)]
struct Refused {
    count: u64,
    unlogged: u64,
    last: Option<Instant>,
}

impl Refused {
    fn hit(&mut self, what: &str, cause: &str) {
        self.count += 1;
        self.unlogged += 1;
        if self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(5))
        {
            tracing::warn!(count = self.unlogged, total = self.count, cause, "{what}");
            self.unlogged = 0;
            self.last = Some(Instant::now());
        }
    }
}

/// How long sessions get to finish writing when the agent has stopped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a session still reads commands once the agent has stopped, so
/// that a command in flight gets its answer rather than a closed connection.
const STOP_DRAIN: Duration = Duration::from_millis(200);

/// How long a session holds back events while one of its commands is being
/// answered, so that the answer comes before the events the command caused
/// (`INV` after `NEW`'s `OK`, `SENT` after `SEND`'s). Bounded, so that a
/// command that takes long never holds events back for longer.
const ANSWER_FIRST: Duration = Duration::from_secs(1);

async fn serve(listener: Listener, agent: Agent, config: ServerConfig) -> Error {
    let active = Arc::new(AtomicUsize::new(0));
    let mut sessions = JoinSet::new();
    let mut accept_errors = Refused::default();
    let mut over_cap = Refused::default();
    let mut backoff = Duration::ZERO;
    let stopped = agent.stopped();
    tokio::pin!(stopped);
    let why = loop {
        tokio::select! {
            why = &mut stopped => break why,
            accepted = listener.accept() => match accepted {
                Ok(Some((io, peer))) => {
                    backoff = Duration::ZERO;
                    if active.load(Ordering::Relaxed) >= config.max_clients {
                        over_cap.hit("text client refused", "max_clients sessions are open");
                        drop(io);
                        continue;
                    }
                    active.fetch_add(1, Ordering::Relaxed);
                    let (agent, config, active) = (agent.clone(), config.clone(), Arc::clone(&active));
                    let token = listener.token().cloned();
                    let span = tracing::info_span!("client", %peer);
                    sessions.spawn(tracing::Instrument::instrument(
                        async move {
                            if let Err(e) = session(io, agent, token, &config).await {
                                tracing::debug!(error = %e, "client session ended");
                            }
                            active.fetch_sub(1, Ordering::Relaxed);
                        },
                        span,
                    ));
                }
                Ok(None) => {}
                Err(e) => {
                    accept_errors.hit("accept failed; backing off", &e.to_string());
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    tokio::time::sleep(backoff).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    };
    // Sessions end once the agent has stopped (their event streams end);
    // they get a moment to write what they have.
    let closing = async { while sessions.join_next().await.is_some() {} };
    if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
        sessions.abort_all();
    }
    why
}

enum Out {
    Line(Vec<u8>),
    Event(Vec<u8>, u64, Option<held::MsgKey>),
}

fn lock(h: &Mutex<Held>) -> std::sync::MutexGuard<'_, Held> {
    h.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads the `AUTH <token>` line; returns the bytes read after it.
async fn authenticate<R: AsyncRead + Unpin>(
    reader: &mut R,
    token: &Token,
    limit: Duration,
) -> std::io::Result<Result<Vec<u8>, &'static str>> {
    let mut buf = Vec::with_capacity(128);
    let read = async {
        let mut chunk = [0u8; 128];
        loop {
            if let Some(end) = buf.iter().position(|&b| b == b'\n') {
                return Ok::<_, std::io::Error>(Some(end));
            }
            if buf.len() > MAX_AUTH_LINE {
                return Ok(None);
            }
            let n = reader.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    };
    let end = match tokio::time::timeout(limit, read).await {
        Err(_) => return Ok(Err("no AUTH line in time")),
        Ok(r) => r?,
    };
    let Some(end) = end else {
        return Ok(Err("no AUTH line"));
    };
    let line = buf.get(..end).unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(given) = line.strip_prefix(b"AUTH ") else {
        return Ok(Err("the first line is not AUTH"));
    };
    if !token.matches(given) {
        return Ok(Err("wrong token"));
    }
    Ok(Ok(buf.get(end + 1..).unwrap_or_default().to_vec()))
}

/// One client session.
async fn session(
    io: Box<dyn Io>,
    agent: Agent,
    token: Option<Token>,
    config: &ServerConfig,
) -> std::io::Result<()> {
    let (mut reader, mut writer) = tokio::io::split(io);
    let mut decoder = LineDecoder::<ClientCommand>::new(FrameLimits::default());
    if let Some(token) = &token {
        match authenticate(&mut reader, token, config.auth_timeout).await? {
            Ok(rest) => {
                writer.write_all(b"AUTH OK\r\n").await?;
                decoder.push(&rest);
            }
            Err(cause) => {
                tracing::warn!(cause, "text client not authenticated");
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), writer.write_all(b"AUTH ERR\r\n"))
                        .await;
                return Ok(());
            }
        }
    }
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(config.max_queued_lines.max(1));
    let confirm = agent.clone();
    let held = Arc::new(Mutex::new(Held::default()));
    let write_held = Arc::clone(&held);
    let stall = config.write_timeout;
    let mut write_task = tokio::spawn(async move {
        let timed = |r: Result<std::io::Result<()>, tokio::time::error::Elapsed>| {
            r.unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client does not read",
                ))
            })
        };
        while let Some(out) = out_rx.recv().await {
            match out {
                Out::Line(bytes) => {
                    timed(tokio::time::timeout(stall, writer.write_all(&bytes)).await)?;
                }
                Out::Event(bytes, seq, key) => {
                    let write = async {
                        writer.write_all(&bytes).await?;
                        writer.flush().await
                    };
                    timed(tokio::time::timeout(stall, write).await)?;
                    let release = lock(&write_held).written(seq, key);
                    if let Some(seq) = release {
                        confirm.confirm(seq).await;
                    }
                }
            }
        }
        let _ = tokio::time::timeout(stall, writer.flush()).await;
        Ok::<(), std::io::Error>(())
    });
    let mut events = agent
        .events_unconfirmed()
        .await
        .map_err(std::io::Error::other)?;
    let ev_tx = out_tx.clone();
    // True while a command of this session is being answered.
    let (answering_tx, mut answering_rx) = tokio::sync::watch::channel(false);
    let mut event_task = tokio::spawn(async move {
        // Waits for room: an event is taken from the agent's log only when
        // the session can queue it.
        while let Some(d) = events.next().await {
            // The answer to the command in flight goes first.
            let _ = tokio::time::timeout(ANSWER_FIRST, answering_rx.wait_for(|busy| !*busy)).await;
            let key = event_key(&d.event);
            let bytes =
                Transmission::new(smp_groups_wire::client::CorrId::empty(), d.event).to_bytes();
            if ev_tx.send(Out::Event(bytes, d.seq, key)).await.is_err() {
                break;
            }
        }
    });
    let result = {
        let read = read_commands(
            &mut reader,
            &mut decoder,
            &agent,
            &held,
            &out_tx,
            &answering_tx,
        );
        tokio::pin!(read);
        let writer_ended = |w: Result<std::io::Result<()>, tokio::task::JoinError>| match w {
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "text client session ended: it does not read");
                Err(e)
            }
            Ok(Ok(())) => Ok(()),
            Err(e) => Err(std::io::Error::other(e)),
        };
        tokio::select! {
            // The writer first: when it gives up on a client that does not
            // read, the reader sees its queue closed at the same moment, and
            // the cause is the writer's.
            biased;
            w = &mut write_task => writer_ended(w),
            r = &mut read => match r {
                Ok(ReadEnd::WriterGone) => writer_ended((&mut write_task).await),
                Ok(ReadEnd::Eof) => {
                    tracing::debug!("text client closed its side");
                    Ok(())
                }
                Err(e) => Err(e),
            },
            // The agent stopped: the command in flight, if any, is answered
            // (with why the agent stopped) and queued; then what is queued is
            // written and the session closes.
            _ = &mut event_task => {
                let _ = tokio::time::timeout(STOP_DRAIN, &mut read).await;
                Ok(())
            }
        }
    };
    event_task.abort();
    drop(out_tx);
    if !write_task.is_finished()
        && tokio::time::timeout(CLOSE_TIMEOUT, &mut write_task)
            .await
            .is_err()
    {
        write_task.abort();
    }
    result
}

/// Why [`read_commands`] returned.
enum ReadEnd {
    /// The client closed its side.
    Eof,
    /// The session's writer is gone (it gave up on the client, or failed).
    WriterGone,
}

/// Reads and answers commands; each answer waits for room in the session's
/// queue before the next bytes are read.
async fn read_commands<R: AsyncRead + Unpin>(
    reader: &mut R,
    decoder: &mut LineDecoder<ClientCommand>,
    agent: &Agent,
    held: &Mutex<Held>,
    out_tx: &mpsc::Sender<Out>,
    answering: &tokio::sync::watch::Sender<bool>,
) -> std::io::Result<ReadEnd> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(item) = decoder.next() {
            answering.send_replace(true);
            let reply: Transmission<AgentEvent> = match item {
                Err(e) => e.into(),
                Ok(t) => {
                    let entity = t.msg.entity();
                    let query = crate::status::answer(agent, &t.msg).await;
                    let ev = match query.ok_or_else(|| to_command(&t.msg)) {
                        Ok(answer) => answer,
                        Err(Err(r)) => error_event(entity, r.code, &r.detail),
                        Err(Ok(cmd)) => match agent.command(cmd).await {
                            Ok(event) => {
                                // Answered (accepted, or refused as already
                                // acknowledged): the message may be confirmed.
                                let release = ack_key(&t.msg).and_then(|k| lock(held).answered(&k));
                                if let Some(seq) = release {
                                    agent.confirm(seq).await;
                                }
                                response(&entity, &event)
                            }
                            Err(e) => error_event(
                                entity,
                                smp_groups_wire::client::ErrorCode::Internal,
                                &e.to_string(),
                            ),
                        },
                    };
                    tracing::debug!(
                        corr = t.corr_id.as_str(),
                        command = t.msg.word(),
                        answer = ev.word(),
                        "client line answered"
                    );
                    Transmission::new(t.corr_id, ev)
                }
            };
            let queued = out_tx.send(Out::Line(reply.to_bytes())).await;
            answering.send_replace(false);
            if queued.is_err() {
                return Ok(ReadEnd::WriterGone);
            }
        }
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(ReadEnd::Eof);
        }
        decoder.push(buf.get(..n).unwrap_or_default());
    }
}
