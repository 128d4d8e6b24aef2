//! A minimal SMP relay for the client tests, built on `SmpTransport::server`: it keeps
//! queues in memory, checks Ed25519 authorizations as relays do (`NEW` signed with the
//! new key, recipient commands with the recipient key, `SEND` with the sender key once
//! the queue is secured, `PING` unsigned), and delivers messages to subscribers on the
//! same connection. Behaviours for the tests: never answering one command (or only its
//! first few), answering a batch in reverse order, answering `PING` with an unknown tag
//! or a malformed block, and dropping every connection.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use smp_groups_crypto::ed25519::{PublicKey, Signature};
use smp_groups_crypto::rng;
use smp_groups_crypto::sbc::BLOCK_SIZE;
use smp_groups_net::{ServerIdentity, SmpTlsStream, SmpTransport, server_config};
use smp_groups_wire::ShortBytes;
use smp_groups_wire::smp::QueueMode;
use smp_groups_wire::smp::{
    AuthPublicKey, Command, ErrorType, Host, KeyHash, Port, ProtocolServer, QueueIds,
    RecipientCommand, SenderCommand, ServerMsg, SmpEncode, Transmission, TransmissionAuth, Version,
    VersionRange, X25519PublicKey, decode_batch, pack_batches,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How the test relay answers `PING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingReply {
    /// `PONG`.
    Pong,
    /// A response with an unknown tag, under the command's corrId.
    BadTag,
    /// A block that is not a batch.
    GarbageBlock,
}

/// Test behaviours.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// Commands with this tag are never answered.
    pub ignore: Option<&'static str>,
    /// Only the first this many commands with the `ignore` tag go unanswered
    /// (0: all of them).
    pub ignore_first: usize,
    /// The responses to a batch are sent in reverse order.
    pub reverse: bool,
    /// The answer to `PING`.
    pub ping: PingReply,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            ignore: None,
            ignore_first: 0,
            reverse: false,
            ping: PingReply::Pong,
        }
    }
}

#[derive(Debug)]
struct Queue {
    rcv_key: PublicKey,
    snd_id: Vec<u8>,
    snd_key: Option<PublicKey>,
    msgs: VecDeque<(Vec<u8>, Vec<u8>)>,
    delivered: bool,
    subscriber: Option<u64>,
}

/// What the relay saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// `(connection, tag, entity id)` of every command, in order.
    pub commands: Vec<(u64, String, Vec<u8>)>,
    /// The number of transmissions in each received block.
    pub batch_sizes: Vec<usize>,
    /// Connections accepted.
    pub connections: u64,
}

#[derive(Debug, Default)]
struct State {
    queues: HashMap<Vec<u8>, Queue>,
    senders: HashMap<Vec<u8>, Vec<u8>>,
    next_msg: u64,
    /// Commands left unanswered so far.
    ignored: usize,
    seen: Seen,
}

/// A running test relay.
pub struct TestServer {
    /// Its address.
    pub addr: SocketAddr,
    /// Its key hash.
    pub key_hash: [u8; 32],
    state: Arc<Mutex<State>>,
    kill: watch::Sender<u64>,
    dir: PathBuf,
}

impl TestServer {
    /// Starts a relay on 127.0.0.1 with a fresh identity.
    pub async fn start(name: &str, behaviour: Behaviour) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "smp-groups-net-client-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let identity = Arc::new(ServerIdentity::load_or_create(&dir).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let (kill, _) = watch::channel(0u64);
        let server = Self {
            addr,
            key_hash: identity.key_hash(),
            state: state.clone(),
            kill: kill.clone(),
            dir,
        };
        tokio::spawn(async move {
            let mut conn = 0u64;
            while let Ok((tcp, _)) = listener.accept().await {
                conn += 1;
                state.lock().unwrap().seen.connections += 1;
                let (identity, state, killed) = (identity.clone(), state.clone(), kill.subscribe());
                tokio::spawn(serve(tcp, conn, identity, state, behaviour, killed));
            }
        });
        server
    }

    /// The relay address `smp://keyHash@127.0.0.1:port`.
    pub fn address(&self) -> ProtocolServer {
        ProtocolServer::new(
            vec![Host::new("127.0.0.1").unwrap()],
            Port::new(self.addr.port()),
            KeyHash::from(self.key_hash),
        )
        .unwrap()
    }

    /// Closes every open connection (new ones are accepted).
    pub fn drop_connections(&self) {
        self.kill.send_modify(|n| *n += 1);
    }

    /// Reads what the relay saw.
    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.state.lock().unwrap().seen)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn serve(
    tcp: TcpStream,
    conn: u64,
    identity: Arc<ServerIdentity>,
    state: Arc<Mutex<State>>,
    behaviour: Behaviour,
    mut killed: watch::Receiver<u64>,
) {
    let Ok(cfg) = server_config(&identity) else {
        return;
    };
    let Ok(tls) = SmpTlsStream::accept(tcp, &cfg).await else {
        return;
    };
    let mut r = rng::seeded(conn);
    let Ok(mut transport) =
        SmpTransport::server(tls, &identity, VersionRange::SUPPORTED, &mut r).await
    else {
        return;
    };
    let v = transport.version();
    let sid = transport.session_id().to_vec();
    loop {
        let data = tokio::select! {
            d = transport.recv_block() => d,
            _ = killed.changed() => return,
        };
        let Ok(data) = data else { return };
        let Ok(batch) = decode_batch(&data) else {
            return;
        };
        let mut out = Vec::new();
        let mut garbage = false;
        {
            let mut st = state.lock().unwrap();
            st.seen.batch_sizes.push(batch.len());
            for bytes in batch {
                let Ok(t) = smp_groups_wire::decode_all_with::<Transmission, _>(bytes, v) else {
                    return;
                };
                match handle(&mut st, conn, v, &sid, &t, behaviour) {
                    Reply::None => {}
                    Reply::Garbage => garbage = true,
                    Reply::Msgs(msgs) => {
                        for (corr, entity, msg) in msgs {
                            out.push(encode(v, &sid, &corr, &entity, &msg));
                        }
                    }
                    Reply::Raw(corr, entity, command) => {
                        out.push(encode_raw(v, &sid, &corr, &entity, command));
                    }
                }
            }
        }
        if behaviour.reverse {
            out.reverse();
        }
        if garbage && transport.send_block(b"\x02\x00\x03abc").await.is_err() {
            return;
        }
        if out.is_empty() {
            continue;
        }
        for block in pack_batches(&out, BLOCK_SIZE).unwrap() {
            if transport.send_block(&block).await.is_err() {
                return;
            }
        }
    }
}

enum Reply {
    None,
    Garbage,
    /// `(corrId, entityId, msg)` transmissions.
    Msgs(Vec<(Vec<u8>, Vec<u8>, ServerMsg)>),
    Raw(Vec<u8>, Vec<u8>, Vec<u8>),
}

fn encode(v: Version, sid: &[u8], corr: &[u8], entity: &[u8], msg: &ServerMsg) -> Vec<u8> {
    let mut command = Vec::new();
    msg.smp_encode(v, &mut command).unwrap();
    encode_raw(v, sid, corr, entity, command)
}

fn encode_raw(v: Version, sid: &[u8], corr: &[u8], entity: &[u8], command: Vec<u8>) -> Vec<u8> {
    let t = Transmission {
        auth: TransmissionAuth::None,
        service_sig: None,
        session_id: (v < Version::AUTH_CMDS).then(|| ShortBytes::new(sid.to_vec()).unwrap()),
        corr_id: ShortBytes::new(corr.to_vec()).unwrap(),
        entity_id: ShortBytes::new(entity.to_vec()).unwrap(),
        command,
    };
    let mut out = Vec::new();
    t.smp_encode(v, &mut out).unwrap();
    out
}

fn ed_key(k: &AuthPublicKey) -> Option<PublicKey> {
    match k {
        AuthPublicKey::Ed25519(k) => Some(PublicKey::from_bytes(k.0)),
        AuthPublicKey::X25519(_) => None,
    }
}

fn verified(t: &Transmission, sid: &[u8], key: &PublicKey) -> bool {
    let TransmissionAuth::Signature(sig) = &t.auth else {
        return false;
    };
    key.verify(&t.for_auth(sid).unwrap(), &Signature::from_bytes(*sig))
        .is_ok()
}

fn handle(
    st: &mut State,
    conn: u64,
    v: Version,
    sid: &[u8],
    t: &Transmission,
    behaviour: Behaviour,
) -> Reply {
    let corr = t.corr_id.as_slice().to_vec();
    let entity = t.entity_id.as_slice().to_vec();
    let one = |msg| Reply::Msgs(vec![(corr.clone(), entity.clone(), msg)]);
    let err = |e| one(ServerMsg::Err(e));
    let Ok(cmd) = smp_groups_wire::decode_all_with::<Command, _>(&t.command, v) else {
        return err(ErrorType::Block);
    };
    st.seen
        .commands
        .push((conn, cmd.tag().to_string(), entity.clone()));
    if behaviour.ignore == Some(cmd.tag())
        && (behaviour.ignore_first == 0 || st.ignored < behaviour.ignore_first)
    {
        st.ignored += 1;
        return Reply::None;
    }
    match cmd {
        Command::Ping => match behaviour.ping {
            PingReply::Pong => one(ServerMsg::Pong),
            PingReply::BadTag => Reply::Raw(corr, entity, b"PONGO".to_vec()),
            PingReply::GarbageBlock => Reply::Garbage,
        },
        Command::Recipient(RecipientCommand::New(new)) => {
            let Some(key) = ed_key(&new.rcv_auth_key) else {
                return err(ErrorType::Auth);
            };
            if !entity.is_empty() || !verified(t, sid, &key) {
                return err(ErrorType::Auth);
            }
            // Ids derived from the key, so that a test can tell which NEW an IDS answers.
            let rcv_id = key.as_bytes()[..24].to_vec();
            let snd_id = key.as_bytes()[8..].to_vec();
            let subscribe = new.subscribe_mode == smp_groups_wire::smp::SubscriptionMode::Subscribe;
            st.senders.insert(snd_id.clone(), rcv_id.clone());
            st.queues.insert(
                rcv_id.clone(),
                Queue {
                    rcv_key: key,
                    snd_id: snd_id.clone(),
                    snd_key: None,
                    msgs: VecDeque::new(),
                    delivered: false,
                    subscriber: subscribe.then_some(conn),
                },
            );
            one(ServerMsg::Ids(QueueIds {
                rcv_id: ShortBytes::new(rcv_id).unwrap(),
                snd_id: ShortBytes::new(snd_id).unwrap(),
                srv_dh_key: X25519PublicKey([7; 32]),
                queue_mode: (v >= Version::SND_AUTH_KEY).then_some(QueueMode::Messaging),
                link_id: None,
                service_id: None,
                ntf_creds: None,
            }))
        }
        Command::Recipient(rcmd) => {
            let Some(q) = st.queues.get_mut(&entity) else {
                return err(ErrorType::Auth);
            };
            if !verified(t, sid, &q.rcv_key) {
                return err(ErrorType::Auth);
            }
            match rcmd {
                RecipientCommand::Sub => {
                    q.subscriber = Some(conn);
                    q.delivered = false;
                    match q.msgs.front() {
                        Some((id, body)) => {
                            q.delivered = true;
                            one(msg(id, body))
                        }
                        None => one(ServerMsg::Ok),
                    }
                }
                RecipientCommand::Key(k) => {
                    q.snd_key = ed_key(&k);
                    one(ServerMsg::Ok)
                }
                RecipientCommand::Ack(id) => {
                    if !q.delivered || q.msgs.front().map(|m| m.0.as_slice()) != Some(id.as_slice())
                    {
                        return err(ErrorType::NoMsg);
                    }
                    q.msgs.pop_front();
                    q.delivered = false;
                    match q.msgs.front() {
                        Some((id, body)) if q.subscriber == Some(conn) => {
                            q.delivered = true;
                            one(msg(id, body))
                        }
                        _ => one(ServerMsg::Ok),
                    }
                }
                RecipientCommand::Get => match q.msgs.front() {
                    Some((id, body)) => {
                        q.delivered = true;
                        one(msg(id, body))
                    }
                    None => one(ServerMsg::Ok),
                },
                RecipientCommand::Off => one(ServerMsg::Ok),
                RecipientCommand::Del => {
                    let snd = q.snd_id.clone();
                    st.queues.remove(&entity);
                    st.senders.remove(&snd);
                    one(ServerMsg::Ok)
                }
                _ => err(ErrorType::Block),
            }
        }
        Command::Sender(scmd) => {
            let Some(rcv_id) = st.senders.get(&entity).cloned() else {
                return err(ErrorType::Auth);
            };
            st.next_msg += 1;
            let msg_id = st.next_msg.to_be_bytes().to_vec();
            let Some(q) = st.queues.get_mut(&rcv_id) else {
                return err(ErrorType::Auth);
            };
            match scmd {
                SenderCommand::SKey(k) => {
                    let Some(k) = ed_key(&k) else {
                        return err(ErrorType::Auth);
                    };
                    if q.snd_key.is_some() || !verified(t, sid, &k) {
                        return err(ErrorType::Auth);
                    }
                    q.snd_key = Some(k);
                    one(ServerMsg::Ok)
                }
                SenderCommand::Send { body, .. } => {
                    let ok = match &q.snd_key {
                        Some(k) => verified(t, sid, k),
                        None => t.auth.is_none(),
                    };
                    if !ok {
                        return err(ErrorType::Auth);
                    }
                    q.msgs.push_back((msg_id.clone(), body.clone()));
                    let mut out = vec![(corr, entity, ServerMsg::Ok)];
                    if q.subscriber == Some(conn) && !q.delivered {
                        q.delivered = true;
                        out.push((Vec::new(), rcv_id, msg(&msg_id, &body)));
                    }
                    Reply::Msgs(out)
                }
                _ => err(ErrorType::Block),
            }
        }
        _ => err(ErrorType::Block),
    }
}

fn msg(id: &[u8], body: &[u8]) -> ServerMsg {
    ServerMsg::Msg {
        msg_id: ShortBytes::new(id.to_vec()).unwrap(),
        body: body.to_vec(),
    }
}
