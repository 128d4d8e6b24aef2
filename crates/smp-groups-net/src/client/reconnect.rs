//! A client that reconnects with backoff and subscribes again to the queues it was
//! subscribed to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use smp_groups_crypto::ed25519::SigningKey;
use smp_groups_crypto::x25519;
use smp_groups_wire::smp::{MsgFlags, ProtocolServer, QueueIds, ServerMsg};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::SmpClient;
use super::config::ReconnectConfig;
use super::error::ClientError;
use super::event::{ConnectionEvent, EventReceiver};
use crate::dial::{Dialer, TcpDialer};

/// Subscriptions to restore: recipient id to recipient key.
type Subscriptions = HashMap<Vec<u8>, SigningKey>;

#[derive(Debug)]
struct Shared {
    current: Mutex<Option<SmpClient>>,
    subs: Mutex<Subscriptions>,
    events: Mutex<Option<EventReceiver>>,
}

/// A connection to one relay that is re-established after it fails, with a doubling
/// backoff, re-sending `SUB` for every queue subscribed through it (with
/// [`sub`](Self::sub) or [`new_queue`](Self::new_queue) with `subscribe`). Queues are
/// forgotten after `DEL`, `OFF`, `END` or `DELD`.
///
/// Events of every connection go to one stream ([`take_events`](Self::take_events)),
/// with [`ConnectionEvent::Disconnected`] when a connection ends and
/// [`ConnectionEvent::Reconnected`] when the next one is up. Clones share the connection;
/// reconnecting stops when every clone is dropped.
#[derive(Debug, Clone)]
pub struct ReconnectingClient {
    shared: Arc<Shared>,
    _stop: Arc<watch::Sender<()>>,
}

impl ReconnectingClient {
    /// Connects (the first attempt's error is returned) and starts the task that
    /// reconnects.
    pub async fn connect(
        server: ProtocolServer,
        config: ReconnectConfig,
    ) -> Result<Self, ClientError> {
        Self::connect_via(Arc::new(TcpDialer), server, config).await
    }

    /// [`connect`](Self::connect) with every connection's stream opened by
    /// `dialer`.
    pub async fn connect_via(
        dialer: Arc<dyn Dialer>,
        server: ProtocolServer,
        config: ReconnectConfig,
    ) -> Result<Self, ClientError> {
        let client = SmpClient::connect_via(&*dialer, &server, config.client.clone()).await?;
        let first_events = client.take_events().ok_or(ClientError::Closed)?;
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            current: Mutex::new(Some(client)),
            subs: Mutex::new(HashMap::new()),
            events: Mutex::new(Some(events_rx)),
        });
        let (stop, stopped) = watch::channel(());
        tokio::spawn(supervise(
            server,
            config,
            dialer,
            shared.clone(),
            first_events,
            events_tx,
            stopped,
        ));
        Ok(Self {
            shared,
            _stop: Arc::new(stop),
        })
    }

    /// The event stream of all connections; it can be taken once.
    pub fn take_events(&self) -> Option<EventReceiver> {
        self.shared.events.lock().ok().and_then(|mut e| e.take())
    }

    /// The current connection, or [`ClientError::NotConnected`] while reconnecting.
    pub fn client(&self) -> Result<SmpClient, ClientError> {
        self.shared
            .current
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .filter(|c| !c.is_closed())
            .ok_or(ClientError::NotConnected)
    }

    /// The recipient ids of the queues that are restored after a reconnection.
    pub fn subscriptions(&self) -> Vec<Vec<u8>> {
        self.shared
            .subs
            .lock()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn remember(&self, rcv_id: &[u8], rcv_key: &SigningKey) {
        if let Ok(mut s) = self.shared.subs.lock() {
            s.insert(rcv_id.to_vec(), rcv_key.clone());
        }
    }

    fn forget(&self, rcv_id: &[u8]) {
        if let Ok(mut s) = self.shared.subs.lock() {
            s.remove(rcv_id);
        }
    }

    /// `NEW` (see [`SmpClient::new_queue`]); remembered when `subscribe`.
    pub async fn new_queue(
        &self,
        rcv_key: &SigningKey,
        rcv_dh_key: &x25519::PublicKey,
        subscribe: bool,
    ) -> Result<QueueIds, ClientError> {
        let ids = self
            .client()?
            .new_queue(rcv_key, rcv_dh_key, subscribe)
            .await?;
        if subscribe {
            self.remember(ids.rcv_id.as_slice(), rcv_key);
        }
        Ok(ids)
    }

    /// `SUB`, remembered for resubscription.
    pub async fn sub(&self, rcv_id: &[u8], rcv_key: &SigningKey) -> Result<(), ClientError> {
        self.client()?.sub(rcv_id, rcv_key).await?;
        self.remember(rcv_id, rcv_key);
        Ok(())
    }

    /// `SEND` (see [`SmpClient::send`]).
    pub async fn send(
        &self,
        snd_id: &[u8],
        snd_key: Option<&SigningKey>,
        flags: MsgFlags,
        body: &[u8],
    ) -> Result<(), ClientError> {
        self.client()?.send(snd_id, snd_key, flags, body).await
    }

    /// `ACK` (see [`SmpClient::ack`]).
    pub async fn ack(
        &self,
        rcv_id: &[u8],
        rcv_key: &SigningKey,
        msg_id: &[u8],
    ) -> Result<(), ClientError> {
        self.client()?.ack(rcv_id, rcv_key, msg_id).await
    }

    /// `OFF`; the queue is no longer restored.
    pub async fn off(&self, rcv_id: &[u8], rcv_key: &SigningKey) -> Result<(), ClientError> {
        self.client()?.off(rcv_id, rcv_key).await?;
        self.forget(rcv_id);
        Ok(())
    }

    /// `DEL`; the queue is no longer restored.
    pub async fn del(&self, rcv_id: &[u8], rcv_key: &SigningKey) -> Result<(), ClientError> {
        self.client()?.del(rcv_id, rcv_key).await?;
        self.forget(rcv_id);
        Ok(())
    }

    /// `PING`.
    pub async fn ping(&self) -> Result<(), ClientError> {
        self.client()?.ping().await
    }
}

/// Forwards events, and after a disconnection reconnects and resubscribes, until the
/// last handle is dropped.
async fn supervise(
    server: ProtocolServer,
    config: ReconnectConfig,
    dialer: Arc<dyn Dialer>,
    shared: Arc<Shared>,
    mut events: EventReceiver,
    out: mpsc::UnboundedSender<ConnectionEvent>,
    mut stopped: watch::Receiver<()>,
) {
    loop {
        // Forward this connection's events until it ends.
        loop {
            let event = tokio::select! {
                e = events.recv() => e,
                _ = stopped.changed() => return,
            };
            let Some(event) = event else { break };
            let ended = matches!(event, ConnectionEvent::Disconnected(_));
            if let ConnectionEvent::Queue {
                entity_id,
                msg: ServerMsg::End | ServerMsg::Deld,
            } = &event
                && let Ok(mut s) = shared.subs.lock()
            {
                s.remove(entity_id);
            }
            if let Ok(mut c) = shared.current.lock()
                && ended
            {
                *c = None;
            }
            let _ = out.send(event);
            if ended {
                break;
            }
        }
        // Reconnect with a doubling backoff.
        let mut backoff = config.initial_backoff;
        let client = loop {
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stopped.changed() => return,
            }
            let attempt = tokio::select! {
                c = SmpClient::connect_via(&*dialer, &server, config.client.clone()) => c,
                _ = stopped.changed() => return,
            };
            match attempt {
                Ok(c) => break c,
                Err(_) => backoff = (backoff * 2).min(config.max_backoff),
            }
        };
        let Some(next_events) = client.take_events() else {
            return;
        };
        events = next_events;
        let (resubscribed, failed) = resubscribe(&client, &shared).await;
        if let Ok(mut c) = shared.current.lock() {
            *c = Some(client);
        }
        let _ = out.send(ConnectionEvent::Reconnected {
            resubscribed,
            failed,
        });
    }
}

/// How many times a queue's `SUB` is sent on a new connection when it fails
/// without an answer from the relay (a timeout) while the connection stays up.
const RESUBSCRIBE_ATTEMPTS: usize = 3;

/// Sends `SUB` for every remembered queue at once; queues the relay refuses are
/// forgotten. A `SUB` that fails otherwise while the connection is still up (it
/// timed out) is sent again, up to [`RESUBSCRIBE_ATTEMPTS`] times; one that
/// still fails stays remembered for the next connection. Returns how many
/// succeeded and how many did not. A connection failure here is reported by
/// the connection's own `Disconnected` event.
async fn resubscribe(client: &SmpClient, shared: &Shared) -> (usize, usize) {
    let mut todo: Vec<(Vec<u8>, SigningKey)> = shared
        .subs
        .lock()
        .map(|s| s.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let (mut ok, mut failed) = (0, 0);
    for attempt in 1..=RESUBSCRIBE_ATTEMPTS {
        let mut tasks = JoinSet::new();
        for (rcv_id, key) in std::mem::take(&mut todo) {
            let client = client.clone();
            tasks.spawn(async move {
                let r = client.sub(&rcv_id, &key).await;
                (rcv_id, key, r)
            });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((_, _, Ok(()))) => ok += 1,
                Ok((rcv_id, _, Err(ClientError::Server(_)))) => {
                    failed += 1;
                    if let Ok(mut s) = shared.subs.lock() {
                        s.remove(&rcv_id);
                    }
                }
                Ok((rcv_id, key, Err(_))) => todo.push((rcv_id, key)),
                // The task panicked: nothing to retry with.
                Err(_) => failed += 1,
            }
        }
        if todo.is_empty() || client.is_closed() || attempt == RESUBSCRIBE_ATTEMPTS {
            break;
        }
    }
    (ok, failed + todo.len())
}
