//! mls-rs: one `Client` per member (RustCrypto provider, basic identities, the
//! default in-memory storage), with `write_to_storage` after every operation.

use mls_rs::client_builder::{BaseConfig, WithCryptoProvider, WithIdentityProvider};
use mls_rs::group::{CommitEffect, ReceivedMessage};
use mls_rs::identity::SigningIdentity;
use mls_rs::identity::basic::{BasicCredential, BasicIdentityProvider};
use mls_rs::{CipherSuite, CipherSuiteProvider, Client, CryptoProvider, Group, MlsMessage};
use mls_rs_crypto_rustcrypto::RustCryptoProvider;

use crate::Protocol;

const SUITE: CipherSuite = CipherSuite::CURVE25519_AES128;

type Config =
    WithCryptoProvider<RustCryptoProvider, WithIdentityProvider<BasicIdentityProvider, BaseConfig>>;

struct Member {
    /// Kept for the life of the member: it owns the storage.
    _client: Client<Config>,
    group: Group<Config>,
}

/// A client that is not in the group yet, with its published key package.
pub struct Joiner {
    client: Client<Config>,
    /// The serialized key package message, as a delivery service hands it out.
    key_package: Vec<u8>,
}

/// A group of mls-rs members; member 0 created it and makes every change.
pub struct MlsRs {
    members: Vec<Member>,
    next_name: usize,
}

fn client(name: &str) -> Client<Config> {
    let crypto = RustCryptoProvider::default();
    let suite = crypto.cipher_suite_provider(SUITE).expect("cipher suite");
    let (secret, public) = suite.signature_key_generate().expect("signature key");
    let credential = BasicCredential::new(name.as_bytes().to_vec()).into_credential();
    Client::builder()
        .identity_provider(BasicIdentityProvider)
        .crypto_provider(crypto)
        .signing_identity(SigningIdentity::new(credential, public), secret, SUITE)
        .build()
}

fn receive(m: &mut Member, bytes: &[u8]) -> ReceivedMessage {
    let msg = MlsMessage::from_bytes(bytes).expect("parse");
    let r = m.group.process_incoming_message(msg).expect("process");
    m.group.write_to_storage().expect("persist");
    r
}

fn receive_commit(m: &mut Member, bytes: &[u8]) -> CommitEffect {
    match receive(m, bytes) {
        ReceivedMessage::Commit(c) => c.effect,
        _ => panic!("not a commit"),
    }
}

impl MlsRs {
    fn joiner(&mut self) -> Joiner {
        self.next_name += 1;
        let client = client(&format!("member-{}", self.next_name));
        let key_package = client
            .generate_key_package_message(Default::default(), Default::default(), None)
            .expect("key package")
            .to_bytes()
            .expect("serialize key package");
        Joiner {
            client,
            key_package,
        }
    }

    /// Member 0 adds `joiners` in one commit; every member processes it and
    /// every joiner its welcome.
    fn add_all(&mut self, joiners: Vec<Joiner>) {
        let (adder, others) = self.members.split_first_mut().expect("creator");
        let mut builder = adder.group.commit_builder();
        for j in &joiners {
            let kp = MlsMessage::from_bytes(&j.key_package).expect("parse key package");
            builder = builder.add_member(kp).expect("add");
        }
        let out = builder.build().expect("commit");
        adder
            .group
            .apply_pending_commit()
            .expect("apply own commit");
        adder.group.write_to_storage().expect("persist");
        let commit = out.commit_message.to_bytes().expect("serialize commit");
        let welcome = out.welcome_messages[0]
            .to_bytes()
            .expect("serialize welcome");
        for m in others {
            receive_commit(m, &commit);
        }
        for j in joiners {
            let w = MlsMessage::from_bytes(&welcome).expect("parse welcome");
            let (mut group, _) = j.client.join_group(None, &w, None).expect("join");
            group.write_to_storage().expect("persist");
            self.members.push(Member {
                _client: j.client,
                group,
            });
        }
    }

    /// Member `i` commits an update of its own path; the others process it.
    fn self_update(&mut self, i: usize) {
        let m = &mut self.members[i];
        let out = m.group.commit(Vec::new()).expect("commit");
        m.group.apply_pending_commit().expect("apply own commit");
        m.group.write_to_storage().expect("persist");
        let commit = out.commit_message.to_bytes().expect("serialize commit");
        for (j, other) in self.members.iter_mut().enumerate() {
            if j != i {
                receive_commit(other, &commit);
            }
        }
    }
}

impl Protocol for MlsRs {
    type Joiner = Joiner;

    fn name() -> &'static str {
        "mls-rs"
    }

    fn setup(n: usize, _spare: usize) -> Self {
        let creator = client("member-0");
        let mut group = creator
            .create_group(Default::default(), Default::default(), None)
            .expect("group");
        group.write_to_storage().expect("persist");
        let mut g = Self {
            members: vec![Member {
                _client: creator,
                group,
            }],
            next_name: 0,
        };
        let joiners = (1..n).map(|_| g.joiner()).collect();
        g.add_all(joiners);
        // A group in use: every even leaf commits once (see the OpenMLS side).
        for i in (0..n).step_by(2) {
            g.self_update(i);
        }
        g
    }

    fn size(&self) -> usize {
        self.members.len()
    }

    fn send(&mut self, from: usize, body: &[u8]) {
        let (before, rest) = self.members.split_at_mut(from);
        let (sender, after) = rest.split_first_mut().expect("sender");
        let msg = sender
            .group
            .encrypt_application_message(body, Vec::new())
            .expect("encrypt");
        sender.group.write_to_storage().expect("persist");
        let bytes = msg.to_bytes().expect("serialize");
        for m in before.iter_mut().chain(after.iter_mut()) {
            match receive(m, &bytes) {
                ReceivedMessage::ApplicationMessage(a) => assert_eq!(a.data().len(), body.len()),
                _ => panic!("not an application message"),
            }
        }
    }

    fn prepare_joiner(&mut self) -> Joiner {
        self.joiner()
    }

    fn add(&mut self, joiner: Joiner) {
        self.add_all(vec![joiner]);
    }

    fn remove(&mut self, i: usize) {
        assert!(i > 0, "member 0 removes");
        let target = self.members[i].group.current_member_index();
        let (adder, others) = self.members.split_first_mut().expect("creator");
        let out = adder
            .group
            .commit_builder()
            .remove_member(target)
            .expect("remove")
            .build()
            .expect("commit");
        adder
            .group
            .apply_pending_commit()
            .expect("apply own commit");
        adder.group.write_to_storage().expect("persist");
        let commit = out.commit_message.to_bytes().expect("serialize commit");
        // Every other member, the removed one included (it learns it is out).
        for (j, m) in others.iter_mut().enumerate() {
            let effect = receive_commit(m, &commit);
            if j + 1 == i {
                assert!(matches!(effect, CommitEffect::Removed { .. }));
            }
        }
        self.members.remove(i);
    }

    fn check(&self) {
        let n = self.members.len();
        for m in &self.members {
            assert_eq!(m.group.roster().members_iter().count(), n);
        }
    }
}
