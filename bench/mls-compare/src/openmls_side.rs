//! OpenMLS: one `OpenMlsRustCrypto` provider (RustCrypto primitives and the
//! default in-memory storage, which OpenMLS writes inside every call) per member.

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;

use crate::Protocol;

const SUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

struct Member {
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    group: MlsGroup,
}

/// A client that is not in the group yet, with its published key package.
pub struct Joiner {
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    /// The serialized key package, as a delivery service hands it out.
    key_package: Vec<u8>,
}

/// A group of OpenMLS members; member 0 created it and makes every change.
pub struct OpenMls {
    members: Vec<Member>,
    create: MlsGroupCreateConfig,
    join: MlsGroupJoinConfig,
    next_name: usize,
}

fn client(name: &str) -> (OpenMlsRustCrypto, SignatureKeyPair, CredentialWithKey) {
    let provider = OpenMlsRustCrypto::default();
    let signer = SignatureKeyPair::new(SUITE.signature_algorithm()).expect("signature key");
    signer.store(provider.storage()).expect("store signer");
    let credential = CredentialWithKey {
        credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
        signature_key: signer.to_public_vec().into(),
    };
    (provider, signer, credential)
}

/// Parses `bytes` as an MLS message and decrypts it in `m`'s group: the
/// length of the application message.
fn receive_application(m: &mut Member, bytes: &[u8]) -> usize {
    let msg = MlsMessageIn::tls_deserialize_exact(bytes).expect("parse");
    let msg = msg.try_into_protocol_message().expect("protocol message");
    let processed = m
        .group
        .process_message(&m.provider, msg)
        .expect("process message");
    match processed.into_content() {
        ProcessedMessageContent::ApplicationMessage(a) => a.into_bytes().len(),
        _ => panic!("not an application message"),
    }
}

impl OpenMls {
    fn joiner(&mut self) -> Joiner {
        self.next_name += 1;
        let (provider, signer, credential) = client(&format!("member-{}", self.next_name));
        let bundle = KeyPackage::builder()
            .build(SUITE, &provider, &signer, credential)
            .expect("key package");
        let key_package = bundle
            .key_package()
            .tls_serialize_detached()
            .expect("serialize key package");
        Joiner {
            provider,
            signer,
            key_package,
        }
    }

    /// Member 0 adds `joiners` in one commit; every member (removed ones
    /// aside) processes it and every joiner its welcome.
    fn add_all(&mut self, joiners: Vec<Joiner>) {
        let (adder, others) = self.members.split_first_mut().expect("creator");
        let key_packages: Vec<KeyPackage> = joiners
            .iter()
            .map(|j| {
                KeyPackageIn::tls_deserialize_exact(j.key_package.as_slice())
                    .expect("parse key package")
                    .validate(adder.provider.crypto(), ProtocolVersion::Mls10)
                    .expect("valid key package")
            })
            .collect();
        let (commit, welcome, _) = adder
            .group
            .add_members(&adder.provider, &adder.signer, &key_packages)
            .expect("add");
        adder
            .group
            .merge_pending_commit(&adder.provider)
            .expect("merge own commit");
        let commit = commit.tls_serialize_detached().expect("serialize commit");
        let welcome = welcome.tls_serialize_detached().expect("serialize welcome");
        for m in others {
            receive_commit(m, &commit);
        }
        for j in joiners {
            let msg = MlsMessageIn::tls_deserialize_exact(welcome.as_slice()).expect("parse");
            let MlsMessageBodyIn::Welcome(w) = msg.extract() else {
                panic!("not a welcome");
            };
            let group = StagedWelcome::new_from_welcome(&j.provider, &self.join, w, None)
                .expect("stage welcome")
                .into_group(&j.provider)
                .expect("join");
            self.members.push(Member {
                provider: j.provider,
                signer: j.signer,
                group,
            });
        }
    }

    /// Member `i` commits an update of its own path; the others process it.
    fn self_update(&mut self, i: usize) {
        let m = &mut self.members[i];
        let commit = m
            .group
            .self_update(&m.provider, &m.signer, LeafNodeParameters::default())
            .expect("self update")
            .into_commit();
        m.group
            .merge_pending_commit(&m.provider)
            .expect("merge own commit");
        let commit = commit.tls_serialize_detached().expect("serialize commit");
        for (j, other) in self.members.iter_mut().enumerate() {
            if j != i {
                receive_commit(other, &commit);
            }
        }
    }
}

fn receive_commit(m: &mut Member, bytes: &[u8]) {
    let msg = MlsMessageIn::tls_deserialize_exact(bytes).expect("parse");
    let msg = msg.try_into_protocol_message().expect("protocol message");
    let processed = m
        .group
        .process_message(&m.provider, msg)
        .expect("process commit");
    let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
        panic!("not a commit");
    };
    m.group
        .merge_staged_commit(&m.provider, *staged)
        .expect("merge commit");
}

impl Protocol for OpenMls {
    type Joiner = Joiner;

    fn name() -> &'static str {
        "OpenMLS"
    }

    fn setup(n: usize, _spare: usize) -> Self {
        let create = MlsGroupCreateConfig::builder()
            .ciphersuite(SUITE)
            .use_ratchet_tree_extension(true)
            .build();
        let join = create.join_config().clone();
        let (provider, signer, credential) = client("member-0");
        let group = MlsGroup::new(&provider, &signer, &create, credential).expect("group");
        let mut g = Self {
            members: vec![Member {
                provider,
                signer,
                group,
            }],
            create,
            join,
            next_name: 0,
        };
        let joiners = (1..n).map(|_| g.joiner()).collect();
        g.add_all(joiners);
        // A group in use: every even leaf commits once, so that every node of
        // the tree is set (a fresh group has blank nodes, which makes commits
        // encrypt to more recipients).
        for i in (0..n).step_by(2) {
            g.self_update(i);
        }
        let _ = &g.create;
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
            .create_message(&sender.provider, &sender.signer, body)
            .expect("encrypt");
        let bytes = msg.tls_serialize_detached().expect("serialize");
        for m in before.iter_mut().chain(after.iter_mut()) {
            assert_eq!(receive_application(m, &bytes), body.len());
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
        let target = self.members[i].group.own_leaf_index();
        let (adder, others) = self.members.split_first_mut().expect("creator");
        let (commit, _, _) = adder
            .group
            .remove_members(&adder.provider, &adder.signer, &[target])
            .expect("remove");
        adder
            .group
            .merge_pending_commit(&adder.provider)
            .expect("merge own commit");
        let commit = commit.tls_serialize_detached().expect("serialize commit");
        // Every other member, the removed one included (it learns it is out).
        for m in others.iter_mut() {
            receive_commit(m, &commit);
        }
        let removed = self.members.remove(i);
        assert!(!removed.group.is_active(), "the removed member knows");
    }

    fn check(&self) {
        let n = self.members.len();
        for m in &self.members {
            assert_eq!(m.group.members().count(), n);
        }
    }
}
