//! The background task of a connection: it writes queued transmissions in batches,
//! matches responses to commands by correlation id and routes relay events.
//!
//! Blocks are read by a helper task that owns the reading half and hands whole
//! blocks over a channel, so that waiting for a block never competes with writing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smp_groups_crypto::RngCore;
use smp_groups_crypto::sbc::BLOCK_SIZE;
use smp_groups_wire::ShortBytes;
use smp_groups_wire::smp::{
    Command, ServerMsg, SmpEncode, Transmission, TransmissionAuth, Version, decode_batch, limits,
    pack_batches,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Interval, interval_at};

use super::error::ClientError;
use super::event::ConnectionEvent;
use crate::{BlockWriter, SmpTransport};

/// The correlation id of a command: 24 random bytes.
pub(crate) type CorrId = [u8; limits::CORR_ID_SIZE];

/// At most this many queued transmissions are taken for one round of writing.
const MAX_DRAIN: usize = 4 * limits::MAX_BATCH_TRANSMISSIONS;

/// The room for transmissions (with their 2-byte lengths) in one block.
pub(crate) const BLOCK_ROOM: usize = BLOCK_SIZE - limits::BATCH_OVERHEAD;

/// A command on its way to the worker.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) corr_id: CorrId,
    pub(crate) entity_id: Vec<u8>,
    /// The encoded transmission.
    pub(crate) bytes: Vec<u8>,
    /// A `MSG` response is also delivered as an event (`SUB`, `ACK`).
    pub(crate) msg_is_event: bool,
    pub(crate) reply: oneshot::Sender<Result<ServerMsg, ClientError>>,
}

/// A command written and waiting for its response.
#[derive(Debug)]
struct Pending {
    entity_id: Vec<u8>,
    msg_is_event: bool,
    /// `None` for keep-alive pings.
    reply: Option<oneshot::Sender<Result<ServerMsg, ClientError>>>,
}

/// Why the connection ended, once it has.
#[derive(Debug, Default)]
pub(crate) struct CloseReason(Mutex<Option<ClientError>>);

impl CloseReason {
    /// The reason, or [`ClientError::Closed`].
    pub(crate) fn get(&self) -> ClientError {
        match self.0.lock() {
            Ok(g) => g.clone().unwrap_or(ClientError::Closed),
            Err(_) => ClientError::Closed,
        }
    }

    fn set(&self, e: ClientError) {
        if let Ok(mut g) = self.0.lock() {
            g.get_or_insert(e);
        }
    }
}

/// Keep-alive bookkeeping.
#[derive(Debug)]
struct KeepAlive {
    interval: Interval,
    max_missed: u32,
    missed: u32,
    wrote: bool,
    ping: Option<CorrId>,
}

/// What the worker needs besides the connection.
pub(crate) struct WorkerParts {
    pub(crate) commands: mpsc::Receiver<Request>,
    pub(crate) events: mpsc::UnboundedSender<ConnectionEvent>,
    pub(crate) close: Arc<CloseReason>,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) keepalive_max_missed: u32,
}

struct Worker<W> {
    writer: BlockWriter<W>,
    version: Version,
    session_id: Vec<u8>,
    pending: HashMap<CorrId, Pending>,
    events: mpsc::UnboundedSender<ConnectionEvent>,
    keepalive: Option<KeepAlive>,
}

/// Runs the connection until it fails or every client handle is dropped.
pub(crate) async fn run<S>(transport: SmpTransport<S>, parts: WorkerParts)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let WorkerParts {
        mut commands,
        events,
        close,
        keepalive,
        keepalive_max_missed,
    } = parts;
    let version = transport.version();
    let session_id = transport.session_id().to_vec();
    let (mut reader, writer) = transport.into_split();
    let (block_tx, mut blocks) = mpsc::channel(4);
    let read_task = tokio::spawn(async move {
        loop {
            let block = reader.recv().await;
            let failed = block.is_err();
            if block_tx.send(block).await.is_err() || failed {
                break;
            }
        }
    });
    let mut w = Worker {
        writer,
        version,
        session_id,
        pending: HashMap::new(),
        events,
        keepalive: keepalive.map(|every| KeepAlive {
            interval: interval_at(Instant::now() + every, every),
            max_missed: keepalive_max_missed.max(1),
            missed: 0,
            wrote: false,
            ping: None,
        }),
    };
    let reason = loop {
        let step = tokio::select! {
            req = commands.recv() => match req {
                Some(first) => w.write_requests(first, &mut commands).await,
                None => Err(ClientError::Closed),
            },
            block = blocks.recv() => match block {
                Some(Ok(data)) => w.handle_block(&data),
                Some(Err(e)) => Err(e.into()),
                None => Err(ClientError::Closed),
            },
            () = tick(w.keepalive.as_mut()) => w.on_tick().await,
        };
        if let Err(e) = step {
            break e;
        }
    };
    read_task.abort();
    close.set(reason.clone());
    commands.close();
    while let Ok(req) = commands.try_recv() {
        let _ = req.reply.send(Err(reason.clone()));
    }
    for (_, p) in w.pending.drain() {
        if let Some(reply) = p.reply {
            let _ = reply.send(Err(reason.clone()));
        }
    }
    let _ = w.events.send(ConnectionEvent::Disconnected(reason));
}

/// The next keep-alive tick, or never.
async fn tick(k: Option<&mut KeepAlive>) {
    match k {
        Some(k) => {
            k.interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl<W: AsyncWrite + Unpin> Worker<W> {
    /// Writes `first` and whatever else is queued, packed into as few blocks as fit.
    async fn write_requests(
        &mut self,
        first: Request,
        commands: &mut mpsc::Receiver<Request>,
    ) -> Result<(), ClientError> {
        let mut batch = vec![first.bytes];
        self.add_pending(
            first.corr_id,
            first.entity_id,
            first.msg_is_event,
            first.reply,
        );
        while batch.len() < MAX_DRAIN {
            let Ok(req) = commands.try_recv() else { break };
            batch.push(req.bytes);
            self.add_pending(req.corr_id, req.entity_id, req.msg_is_event, req.reply);
        }
        self.write(&batch).await
    }

    fn add_pending(
        &mut self,
        corr_id: CorrId,
        entity_id: Vec<u8>,
        msg_is_event: bool,
        reply: oneshot::Sender<Result<ServerMsg, ClientError>>,
    ) {
        self.pending.insert(
            corr_id,
            Pending {
                entity_id,
                msg_is_event,
                reply: Some(reply),
            },
        );
    }

    /// Writes encoded transmissions (each of which fits in a block).
    async fn write(&mut self, transmissions: &[Vec<u8>]) -> Result<(), ClientError> {
        let blocks = pack_batches(transmissions, BLOCK_SIZE).map_err(ClientError::Encode)?;
        for block in blocks {
            self.writer.send(&block).await?;
        }
        if let Some(k) = &mut self.keepalive {
            k.wrote = true;
        }
        Ok(())
    }

    /// Handles one received block: a batch of responses and events.
    fn handle_block(&mut self, data: &[u8]) -> Result<(), ClientError> {
        if let Some(k) = &mut self.keepalive {
            k.missed = 0;
            k.ping = None;
        }
        let batch = decode_batch(data).map_err(ClientError::Protocol)?;
        for bytes in batch {
            let t = smp_groups_wire::decode_all_with::<Transmission, _>(bytes, self.version)
                .map_err(ClientError::Protocol)?;
            if let Some(sid) = &t.session_id
                && sid.as_slice() != self.session_id.as_slice()
            {
                return Err(ClientError::SessionMismatch);
            }
            let msg = smp_groups_wire::decode_all_with::<ServerMsg, _>(&t.command, self.version);
            let pending = <CorrId>::try_from(t.corr_id.as_slice())
                .ok()
                .and_then(|c| self.pending.remove(&c));
            if let Some(p) = pending {
                self.respond(p, msg.map_err(ClientError::Protocol));
                continue;
            }
            // An event, or a late response to a command that timed out: only queue
            // events are kept.
            let msg = msg.map_err(ClientError::Protocol)?;
            if matches!(
                msg,
                ServerMsg::Msg { .. } | ServerMsg::End | ServerMsg::Deld
            ) {
                self.event(t.entity_id.as_slice().to_vec(), msg);
            }
        }
        self.pending
            .retain(|_, p| p.reply.as_ref().is_none_or(|r| !r.is_closed()));
        Ok(())
    }

    fn respond(&mut self, p: Pending, msg: Result<ServerMsg, ClientError>) {
        if p.msg_is_event
            && let Ok(m @ ServerMsg::Msg { .. }) = &msg
        {
            self.event(p.entity_id, m.clone());
        }
        if let Some(reply) = p.reply {
            let _ = reply.send(msg);
        }
    }

    fn event(&self, entity_id: Vec<u8>, msg: ServerMsg) {
        let _ = self.events.send(ConnectionEvent::Queue { entity_id, msg });
    }

    /// A keep-alive tick: counts an unanswered ping, and pings when nothing was written
    /// since the last tick.
    async fn on_tick(&mut self) -> Result<(), ClientError> {
        let Some(k) = &mut self.keepalive else {
            return Ok(());
        };
        if k.ping.is_some() {
            k.missed += 1;
            if k.missed >= k.max_missed {
                return Err(ClientError::KeepAlive(k.missed));
            }
        }
        if k.wrote && k.ping.is_none() {
            k.wrote = false;
            return Ok(());
        }
        k.wrote = false;
        let corr_id = random_corr_id();
        if let Some(old) = k.ping.replace(corr_id) {
            self.pending.remove(&old);
        }
        let bytes = encode_transmission(
            self.version,
            &self.session_id,
            &corr_id,
            &[],
            &Command::Ping,
            None,
        )?;
        self.pending.insert(
            corr_id,
            Pending {
                entity_id: Vec::new(),
                msg_is_event: false,
                reply: None,
            },
        );
        self.write(&[bytes]).await
    }
}

/// 24 random bytes from the system generator.
pub(crate) fn random_corr_id() -> CorrId {
    let mut c = [0u8; limits::CORR_ID_SIZE];
    smp_groups_crypto::rng::system().fill_bytes(&mut c);
    c
}

/// Encodes a command as a transmission, signed with `key` when given: the signature
/// covers `short(sessionId) || short(corrId) || short(entityId) || command`.
pub(crate) fn encode_transmission(
    version: Version,
    session_id: &[u8],
    corr_id: &CorrId,
    entity_id: &[u8],
    command: &Command,
    key: Option<&smp_groups_crypto::ed25519::SigningKey>,
) -> Result<Vec<u8>, ClientError> {
    let mut cmd = Vec::new();
    command
        .smp_encode(version, &mut cmd)
        .map_err(ClientError::Encode)?;
    let auth = match key {
        Some(key) => {
            let signed =
                smp_groups_wire::smp::encode_for_auth(session_id, corr_id, entity_id, &cmd)
                    .map_err(ClientError::Encode)?;
            TransmissionAuth::Signature(key.sign(&signed).to_bytes())
        }
        None => TransmissionAuth::None,
    };
    let short = |b: &[u8]| ShortBytes::new(b.to_vec()).map_err(ClientError::Encode);
    let t = Transmission {
        auth,
        service_sig: None,
        session_id: if version < Version::AUTH_CMDS {
            Some(short(session_id)?)
        } else {
            None
        },
        corr_id: short(corr_id)?,
        entity_id: short(entity_id)?,
        command: cmd,
    };
    let mut out = Vec::with_capacity(t.command.len() + 128);
    t.smp_encode(version, &mut out)
        .map_err(ClientError::Encode)?;
    let len = out.len() + 2;
    if len > BLOCK_ROOM {
        return Err(ClientError::TooLarge {
            len,
            max: BLOCK_ROOM,
        });
    }
    Ok(out)
}
