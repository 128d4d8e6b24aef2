//! An in-memory model of SMP relays: queues with a recipient and a sender id,
//! secured by the sender's key, delivering one message at a time until it is
//! acknowledged.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use smp_groups_crypto::ed25519::SigningKey;

use crate::relay::{RelayError, RelayOp};

/// One queue.
#[derive(Debug)]
pub(crate) struct Queue {
    pub(crate) owner: usize,
    pub(crate) snd_id: Vec<u8>,
    pub(crate) sender_key: Option<[u8; 32]>,
    /// The last seed that proved to match `sender_key`: a send authorized by
    /// it needs no key derivation (which would dominate the simulation's
    /// cost; a real relay verifies a signature instead).
    pub(crate) sender_seed: Option<[u8; 32]>,
    /// Messages waiting: the relay's id, its timestamp (the virtual time
    /// the relay accepted the `SEND`), the body.
    pub(crate) messages: VecDeque<(Vec<u8>, u64, Vec<u8>)>,
    /// The message delivered and not yet acknowledged.
    pub(crate) delivering: Option<Vec<u8>>,
    pub(crate) subscribed: bool,
}

/// A message to deliver: owner, server, recipient id, message id, the
/// relay's timestamp, body.
pub(crate) type Delivery = (usize, String, Vec<u8>, Vec<u8>, u64, Vec<u8>);

/// What executing an operation produced for the issuing agent.
#[derive(Debug)]
pub(crate) enum OpResult {
    Created { rcv_id: Vec<u8>, snd_id: Vec<u8> },
    Done,
    Failed(RelayError),
}

/// All relays (keyed by server and recipient id).
#[derive(Debug, Default)]
pub(crate) struct Relays {
    pub(crate) queues: BTreeMap<(String, Vec<u8>), Queue>,
    pub(crate) by_sender: BTreeMap<(String, Vec<u8>), Vec<u8>>,
    /// Queues whose delivery state may have changed.
    touched: BTreeSet<(String, Vec<u8>)>,
    next: u64,
    /// The longest body a `SEND` may carry, as a relay with a smaller block
    /// would have it (longer ones are refused, [`RelayError::Refused`]).
    pub(crate) max_body: Option<usize>,
}

impl Relays {
    fn fresh(&mut self, tag: u8) -> Vec<u8> {
        self.next += 1;
        let mut id = vec![tag];
        id.extend_from_slice(&self.next.to_be_bytes());
        id
    }

    /// Executes `op` from agent `agent` at virtual time `now`.
    pub(crate) fn execute(&mut self, agent: usize, op: &RelayOp, now: u64) -> OpResult {
        let server = op.server().to_owned();
        match op {
            RelayOp::CreateQueue { .. } => {
                let rcv_id = self.fresh(b'r');
                let snd_id = self.fresh(b's');
                self.by_sender
                    .insert((server.clone(), snd_id.clone()), rcv_id.clone());
                self.queues.insert(
                    (server, rcv_id.clone()),
                    Queue {
                        owner: agent,
                        snd_id: snd_id.clone(),
                        sender_key: None,
                        sender_seed: None,
                        messages: VecDeque::new(),
                        delivering: None,
                        subscribed: true,
                    },
                );
                OpResult::Created { rcv_id, snd_id }
            }
            RelayOp::Secure {
                rcv_id, sender_key, ..
            } => match self.queues.get_mut(&(server, rcv_id.clone())) {
                None => OpResult::Failed(RelayError::NoQueue),
                Some(q) if q.owner != agent => OpResult::Failed(RelayError::Auth),
                Some(q) => match q.sender_key {
                    Some(k) if k != *sender_key => OpResult::Failed(RelayError::Auth),
                    _ => {
                        q.sender_key = Some(*sender_key);
                        OpResult::Done
                    }
                },
            },
            RelayOp::Subscribe { rcv_id, .. } => {
                match self.queues.get_mut(&(server.clone(), rcv_id.clone())) {
                    Some(q) if q.owner == agent => {
                        q.subscribed = true;
                        q.delivering = None;
                        self.touched.insert((server, rcv_id.clone()));
                        OpResult::Done
                    }
                    Some(_) => OpResult::Failed(RelayError::Auth),
                    None => OpResult::Failed(RelayError::NoQueue),
                }
            }
            RelayOp::Send {
                snd_id, auth, body, ..
            } => {
                if self.max_body.is_some_and(|max| body.len() > max) {
                    return OpResult::Failed(RelayError::Refused);
                }
                let Some(rcv_id) = self
                    .by_sender
                    .get(&(server.clone(), snd_id.clone()))
                    .cloned()
                else {
                    return OpResult::Failed(RelayError::NoQueue);
                };
                let msg_id = self.fresh(b'm');
                let key = (server, rcv_id);
                let Some(q) = self.queues.get_mut(&key) else {
                    return OpResult::Failed(RelayError::NoQueue);
                };
                if let Some(key) = q.sender_key {
                    let ok = auth.is_some_and(|seed| {
                        q.sender_seed == Some(seed)
                            || *SigningKey::from_seed(seed).public_key().as_bytes() == key
                    });
                    if !ok {
                        return OpResult::Failed(RelayError::Auth);
                    }
                    q.sender_seed = *auth;
                }
                q.messages.push_back((msg_id, now, body.clone()));
                self.touched.insert(key);
                OpResult::Done
            }
            RelayOp::Ack { rcv_id, msg_id, .. } => {
                if let Some(q) = self.queues.get_mut(&(server.clone(), rcv_id.clone()))
                    && q.owner == agent
                    && q.delivering.as_ref() == Some(msg_id)
                {
                    q.delivering = None;
                    q.messages.pop_front();
                    self.touched.insert((server, rcv_id.clone()));
                }
                OpResult::Done
            }
            RelayOp::Delete { rcv_id, .. } => {
                match self.queues.get(&(server.clone(), rcv_id.clone())) {
                    Some(q) if q.owner == agent => {
                        let snd = q.snd_id.clone();
                        self.queues.remove(&(server.clone(), rcv_id.clone()));
                        self.by_sender.remove(&(server, snd));
                        OpResult::Done
                    }
                    Some(_) => OpResult::Failed(RelayError::Auth),
                    None => OpResult::Done,
                }
            }
        }
    }

    /// Messages ready to deliver now: (owner, server, rcv_id, msg_id, ts,
    /// body); each becomes the queue's delivering message.
    pub(crate) fn deliverable(&mut self, online: &[bool]) -> Vec<Delivery> {
        let mut out = Vec::new();
        for key in std::mem::take(&mut self.touched) {
            let Some(q) = self.queues.get_mut(&key) else {
                continue;
            };
            let (server, rcv_id) = key;
            if q.delivering.is_some()
                || !q.subscribed
                || !online.get(q.owner).copied().unwrap_or(false)
            {
                continue;
            }
            if let Some((id, ts, body)) = q.messages.front() {
                q.delivering = Some(id.clone());
                out.push((q.owner, server, rcv_id, id.clone(), *ts, body.clone()));
            }
        }
        out
    }

    /// An agent went offline: its subscriptions end.
    pub(crate) fn disconnect(&mut self, agent: usize) {
        for q in self.queues.values_mut() {
            if q.owner == agent {
                q.subscribed = false;
                q.delivering = None;
            }
        }
    }
}
