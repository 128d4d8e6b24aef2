//! The client text protocol on TCP (`docs/protocol-client.md`).
//!
//! Each accepted connection is one client session: its lines are decoded
//! incrementally ([`LineDecoder`]), each command is answered with its response
//! (`OK`, the command's event, or `ERR CODE detail`) carrying its corrId, and
//! the agent's own events (empty corrId) are written to every connected
//! client. A line that cannot be accepted (unknown command or entity, a payload
//! over the limit, bytes that are not a transmission) is answered with `ERR`
//! and the session goes on. An event is confirmed as delivered once written
//! to a client socket, except a message (`MSG`), which is confirmed once the
//! client answers it with `ACK` (see [`held`]); unconfirmed events are
//! delivered again after a restart, and events produced while no client is
//! connected wait for the next one.

mod held;

use std::sync::{Arc, Mutex};

use held::{Held, ack_key, event_key};

use smp_groups_wire::client::{AgentEvent, ClientCommand, FrameLimits, LineDecoder, Transmission};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::agent::Agent;
use crate::events::{error_event, response, to_command};

/// Accepts clients on `listener` until the agent stops or accepting fails.
pub async fn serve(listener: TcpListener, agent: Agent) -> std::io::Result<()> {
    loop {
        let (socket, peer) = listener.accept().await?;
        let agent = agent.clone();
        let span = tracing::info_span!("client", %peer);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                if let Err(e) = session(socket, agent).await {
                    tracing::debug!(error = %e, "client session ended");
                }
            },
            span,
        ));
    }
}

enum Out {
    Line(Vec<u8>),
    Event(Vec<u8>, u64, Option<held::MsgKey>),
}

fn lock(h: &Mutex<Held>) -> std::sync::MutexGuard<'_, Held> {
    h.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One client session.
pub async fn session(socket: TcpStream, agent: Agent) -> std::io::Result<()> {
    let (mut reader, mut writer) = socket.into_split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Out>();
    let confirm = agent.clone();
    let held = Arc::new(Mutex::new(Held::default()));
    let write_held = Arc::clone(&held);
    let write_task = tokio::spawn(async move {
        while let Some(out) = out_rx.recv().await {
            match out {
                Out::Line(bytes) => writer.write_all(&bytes).await?,
                Out::Event(bytes, seq, key) => {
                    writer.write_all(&bytes).await?;
                    writer.flush().await?;
                    let release = lock(&write_held).written(seq, key);
                    if let Some(seq) = release {
                        confirm.confirm(seq).await;
                    }
                }
            }
        }
        Ok::<(), std::io::Error>(())
    });
    let mut events = agent
        .events_unconfirmed()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let ev_tx = out_tx.clone();
    let event_task = tokio::spawn(async move {
        while let Some(d) = events.next().await {
            let key = event_key(&d.event);
            let bytes =
                Transmission::new(smp_groups_wire::client::CorrId::empty(), d.event).to_bytes();
            if ev_tx.send(Out::Event(bytes, d.seq, key)).is_err() {
                break;
            }
        }
    });
    let mut decoder = LineDecoder::<ClientCommand>::new(FrameLimits::default());
    let mut buf = vec![0u8; 16 * 1024];
    let result = loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        decoder.push(buf.get(..n).unwrap_or_default());
        while let Some(item) = decoder.next() {
            let reply: Transmission<AgentEvent> = match item {
                Err(e) => e.into(),
                Ok(t) => {
                    let entity = t.msg.entity();
                    let ev = match to_command(&t.msg) {
                        Err(r) => error_event(entity, r.code, &r.detail),
                        Ok(cmd) => match agent.command(cmd).await {
                            Ok(event) => {
                                // Answered (accepted, or refused as already
                                // acknowledged): the message may be confirmed.
                                let release =
                                    ack_key(&t.msg).and_then(|k| lock(&held).answered(&k));
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
            if out_tx.send(Out::Line(reply.to_bytes())).is_err() {
                break;
            }
        }
    };
    event_task.abort();
    drop(out_tx);
    let _ = write_task.await;
    result
}
