//! The runtime's rule, checked at the moment it acts: a relay operation is
//! performed only once the commit holding it returned (the core's record of
//! the operation, `Key::Op`, is in the database, read through a second
//! connection), a message is
//! acknowledged to the relay only once its processing is committed, and an
//! event reaches a subscriber only once it is stored. Checked while a burst
//! of concurrent commands is gathered into group commits (fewer commits than
//! inputs), and every message arrives once.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::{RELAY_A, RELAY_B, WAIT, relays, temp_db};
use smp_groups_agent::records::{encode_key, queue_key};
use smp_groups_agent::{
    Agent, AgentConfig, NetworkRelay, RelayClient, RelayConnector, RelayContext,
};
use smp_groups_core::{Command, Config, Key, RelayOp};
use smp_groups_store::Store;
use smp_groups_wire::base64url;
use smp_groups_wire::client::AgentEvent;

/// The real relay client (over in-memory pipes to relays in this process), with every
/// operation checked against the agent's database before it is performed.
struct Watching {
    inner: NetworkRelay,
    db: PathBuf,
    problems: Arc<Mutex<Vec<String>>>,
}

struct WatchingClient {
    inner: Box<dyn RelayClient>,
    db: Store,
    problems: Arc<Mutex<Vec<String>>>,
}

impl RelayConnector for Watching {
    fn connect(
        &self,
        context: RelayContext,
    ) -> Result<Box<dyn RelayClient>, smp_groups_agent::Error> {
        Ok(Box::new(WatchingClient {
            inner: self.inner.connect(context)?,
            db: Store::open(&self.db)?,
            problems: Arc::clone(&self.problems),
        }))
    }
}

impl RelayClient for WatchingClient {
    fn perform(&mut self, op: RelayOp) {
        let own = op.op().0 >= 1 << 63;
        if !own {
            // The record is the core's `PendingOp` after its layout byte;
            // its first field is the operation itself (postcard), so it
            // starts with the operation.
            let key = Key::Op(op.op().0);
            let mut body = vec![smp_groups_core::store::layout(&key)];
            body.extend(postcard::to_allocvec(&op).unwrap());
            let record = self.db.get(&encode_key(&key)).unwrap();
            if !record.is_some_and(|r| r.starts_with(&body)) {
                self.problems
                    .lock()
                    .unwrap()
                    .push(format!("performed before its commit: {op:?}"));
            }
        }
        if let RelayOp::Ack {
            server,
            rcv_id,
            msg_id,
            ..
        } = &op
        {
            let queue = queue_key(server, rcv_id).unwrap();
            if !self.db.is_processed(&queue, msg_id).unwrap() {
                self.problems.lock().unwrap().push(format!(
                    "acknowledged before its processing was committed: {op:?}"
                ));
            }
        }
        self.inner.perform(op);
    }
}

fn config(name: &str, relay: &str, db: PathBuf) -> AgentConfig {
    let mut c = AgentConfig::new(name, relay, Some(db));
    c.core = Config {
        server: relay.to_owned(),
        check_interval_ms: None,
        check_every_messages: None,
        ..Config::default()
    };
    c
}

const BURST: usize = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_act_only_after_their_commit_and_a_burst_is_group_committed() {
    let hub = relays().await;
    let problems = Arc::new(Mutex::new(Vec::new()));
    let (db_a, db_b) = (temp_db("alice"), temp_db("bob"));
    let watch = |db: &PathBuf| -> Arc<dyn RelayConnector> {
        Arc::new(Watching {
            inner: hub.client(),
            db: db.clone(),
            problems: Arc::clone(&problems),
        })
    };
    let a = Agent::open(config("alice", RELAY_A, db_a.clone()), watch(&db_a)).unwrap();
    let b = Agent::open(config("bob", RELAY_B, db_b.clone()), watch(&db_b)).unwrap();
    let mut ea = a.events_unconfirmed().await.unwrap();
    let mut eb = b.events_unconfirmed().await.unwrap();
    let (check_a, check_b) = (Store::open(&db_a).unwrap(), Store::open(&db_b).unwrap());
    // Every event a subscriber gets is stored (or was confirmed) by then.
    // Pending first: an event confirmed between the two reads has then left
    // the pending list and shows in `delivered_upto`.
    let stored = |s: &Store, seq: u64| {
        s.pending_events().unwrap().iter().any(|e| e.seq == seq)
            || s.delivered_upto().unwrap() >= seq
    };

    let conn = a.new_connection(None).await.unwrap();
    let inv = loop {
        let d = tokio::time::timeout(WAIT, ea.next())
            .await
            .unwrap()
            .unwrap();
        assert!(
            stored(&check_a, d.seq),
            "event {} delivered before its commit",
            d.seq
        );
        if let AgentEvent::Inv {
            conn: c,
            invitation,
        } = d.event
            && c.as_str() == conn
        {
            break invitation.as_str().to_owned();
        }
    };
    let bob_conn = b
        .join_connection(
            None,
            base64url::decode_unpadded(&inv, "invitation").unwrap(),
        )
        .await
        .unwrap();
    loop {
        let d = tokio::time::timeout(WAIT, eb.next())
            .await
            .unwrap()
            .unwrap();
        assert!(
            stored(&check_b, d.seq),
            "event {} delivered before its commit",
            d.seq
        );
        if matches!(d.event, AgentEvent::Con { .. }) {
            break;
        }
    }

    // A burst of sends from concurrent tasks: they queue while a commit runs
    // and are committed together.
    let before = a.metrics().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..BURST {
        let (a, conn) = (a.clone(), conn.clone());
        tasks.push(tokio::spawn(async move {
            a.command(Command::SendConn {
                alias: conn,
                body: format!("message {i}").into_bytes(),
            })
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut got = BTreeSet::new();
    while got.len() < BURST {
        let d = tokio::time::timeout(WAIT, eb.next())
            .await
            .unwrap()
            .unwrap();
        assert!(
            stored(&check_b, d.seq),
            "event {} delivered before its commit",
            d.seq
        );
        if let AgentEvent::Msg {
            conn, msg_id, body, ..
        } = d.event
        {
            assert_eq!(conn.as_str(), bob_conn);
            assert!(
                got.insert(String::from_utf8(body).unwrap()),
                "a message twice"
            );
            b.command(Command::AckConn {
                alias: bob_conn.clone(),
                msg_id,
            })
            .await
            .unwrap();
        }
        b.confirm(d.seq).await;
    }
    let expected: BTreeSet<String> = (0..BURST).map(|i| format!("message {i}")).collect();
    assert_eq!(got, expected);
    let after = a.metrics().await.unwrap();
    let (inputs, commits) = (after.inputs - before.inputs, after.commits - before.commits);
    assert!(inputs >= BURST as u64, "{inputs} inputs");
    assert!(
        commits < inputs,
        "{commits} commits for {inputs} inputs: nothing was grouped"
    );
    assert!(after.operations > before.operations);
    let problems = problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "{problems:#?}");
    a.shutdown().await;
    b.shutdown().await;
}
