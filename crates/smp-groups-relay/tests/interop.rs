//! The transport client of `smp-groups-net` (which agents use) against this
//! relay: it checks the relay's certificate chain and signed session key, and
//! both sides agree on the version, the session id and the block encryption.
//! Also the `smp-relay` binary: address on the first line, clean stop on SIGTERM.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)] // tests fail by panicking

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::temp_dir;
use smp_groups_crypto::{ed25519, rng, x25519};
use smp_groups_net::{SmpTlsStream, SmpTransport, client_config};
use smp_groups_relay::Relay;
use smp_groups_wire::ShortBytes;
use smp_groups_wire::smp::{
    self as wsmp, AuthPublicKey, Ed25519PublicKey, MsgFlags, RecipientCommand, SenderCommand,
    ServerMsg, SmpEncode, Transmission, TransmissionAuth, Version, VersionRange, X25519PublicKey,
};
use smp_groups_wire::smp::{NewQueue, QueueReqData, SubscriptionMode};

fn transmission(
    v: Version,
    sid: &[u8],
    key: Option<&ed25519::SigningKey>,
    corr: &[u8],
    cmd: &[u8],
) -> Vec<u8> {
    let for_auth = wsmp::encode_for_auth(sid, corr, &[], cmd).unwrap();
    let t = Transmission {
        auth: key.map_or(TransmissionAuth::None, |k| {
            TransmissionAuth::Signature(k.sign(&for_auth).to_bytes())
        }),
        service_sig: None,
        session_id: None,
        corr_id: ShortBytes::new(corr.to_vec()).unwrap(),
        entity_id: ShortBytes::new(Vec::new()).unwrap(),
        command: cmd.to_vec(),
    };
    let mut out = Vec::new();
    t.smp_encode(v, &mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn net_transport_client_talks_to_the_relay() {
    let dir = temp_dir("interop");
    let relay = Relay::spawn_local(&dir).await.unwrap();
    for max in [7u16, 11, 18] {
        let tcp = tokio::net::TcpStream::connect(relay.local_addr())
            .await
            .unwrap();
        let tls = SmpTlsStream::connect(tcp, &client_config(relay.key_hash()).unwrap())
            .await
            .unwrap();
        let versions = VersionRange::new(Version(6), Version(max)).unwrap();
        let mut t = SmpTransport::client(tls, relay.key_hash(), versions, &mut rng::seeded(1))
            .await
            .unwrap();
        assert_eq!(t.version(), Version(max));
        assert_eq!(t.block_encryption(), max >= 11);
        let v = t.version();
        let sid = t.session_id().to_vec();
        let k = ed25519::SigningKey::generate(&mut rng::seeded(2));
        let dh = x25519::SecretKey::generate(&mut rng::seeded(3));
        let new = wsmp::Command::Recipient(RecipientCommand::New(Box::new(NewQueue {
            rcv_auth_key: AuthPublicKey::Ed25519(Ed25519PublicKey(*k.public_key().as_bytes())),
            rcv_dh_key: X25519PublicKey(*dh.public_key().as_bytes()),
            basic_auth: None,
            subscribe_mode: SubscriptionMode::OnlyCreate,
            queue_req: (v >= Version::SND_AUTH_KEY).then_some(QueueReqData::Messaging(None)),
            ntf_creds: None,
        })));
        let mut new_bytes = Vec::new();
        new.smp_encode(v, &mut new_bytes).unwrap();
        let batch = wsmp::encode_batch(&[
            transmission(v, &sid, None, &[1; 24], b"PING"),
            transmission(v, &sid, Some(&k), &[2; 24], &new_bytes),
        ])
        .unwrap();
        t.send_block(&batch).await.unwrap();
        let block = t.recv_block().await.unwrap();
        let ts = wsmp::decode_batch(&block).unwrap();
        assert_eq!(ts.len(), 2, "both answers in one batch");
        let pong = smp_groups_wire::decode_all_with::<Transmission, _>(ts[0], v).unwrap();
        assert_eq!(pong.corr_id.as_slice(), &[1; 24]);
        assert_eq!(
            smp_groups_wire::decode_all_with::<ServerMsg, _>(&pong.command, v).unwrap(),
            ServerMsg::Pong
        );
        let ids = smp_groups_wire::decode_all_with::<Transmission, _>(ts[1], v).unwrap();
        assert!(
            matches!(
                smp_groups_wire::decode_all_with::<ServerMsg, _>(&ids.command, v).unwrap(),
                ServerMsg::Ids(_)
            ),
            "v{max}"
        );
    }
    relay.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A transmission on entity `entity`, signed by `key` when given.
fn on_entity(
    v: Version,
    sid: &[u8],
    key: Option<&ed25519::SigningKey>,
    entity: &[u8],
    cmd: &wsmp::Command,
) -> Vec<u8> {
    let mut command = Vec::new();
    cmd.smp_encode(v, &mut command).unwrap();
    let corr = [5u8; 24];
    let for_auth = wsmp::encode_for_auth(sid, &corr, entity, &command).unwrap();
    let t = Transmission {
        auth: key.map_or(TransmissionAuth::None, |k| {
            TransmissionAuth::Signature(k.sign(&for_auth).to_bytes())
        }),
        service_sig: None,
        session_id: None,
        corr_id: ShortBytes::new(corr.to_vec()).unwrap(),
        entity_id: ShortBytes::new(entity.to_vec()).unwrap(),
        command,
    };
    let mut out = Vec::new();
    t.smp_encode(v, &mut out).unwrap();
    wsmp::encode_batch(&[out]).unwrap()
}

/// A `SEND` to a queue its own connection is subscribed to is answered with
/// its `OK` and the `MSG` in one block, every time (the relay hands a
/// connection everything a store batch made for it at once; one by one, the
/// writer often woke between the two and wrote two padded blocks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_and_its_delivery_share_a_block() {
    let dir = temp_dir("one-block");
    let relay = Relay::spawn_local(&dir).await.unwrap();
    let tcp = tokio::net::TcpStream::connect(relay.local_addr())
        .await
        .unwrap();
    let tls = SmpTlsStream::connect(tcp, &client_config(relay.key_hash()).unwrap())
        .await
        .unwrap();
    let versions = VersionRange::new(Version(6), Version(11)).unwrap();
    let mut t = SmpTransport::client(tls, relay.key_hash(), versions, &mut rng::seeded(1))
        .await
        .unwrap();
    let (v, sid) = (t.version(), t.session_id().to_vec());
    let k = ed25519::SigningKey::generate(&mut rng::seeded(2));
    let dh = x25519::SecretKey::generate(&mut rng::seeded(3));
    let new = wsmp::Command::Recipient(RecipientCommand::New(Box::new(NewQueue {
        rcv_auth_key: AuthPublicKey::Ed25519(Ed25519PublicKey(*k.public_key().as_bytes())),
        rcv_dh_key: X25519PublicKey(*dh.public_key().as_bytes()),
        basic_auth: None,
        subscribe_mode: SubscriptionMode::Subscribe,
        queue_req: Some(QueueReqData::Messaging(None)),
        ntf_creds: None,
    })));
    t.send_block(&on_entity(v, &sid, Some(&k), &[], &new))
        .await
        .unwrap();
    let block = t.recv_block().await.unwrap();
    let ids = smp_groups_wire::decode_all_with::<Transmission, _>(
        wsmp::decode_batch(&block).unwrap()[0],
        v,
    )
    .unwrap();
    let ServerMsg::Ids(ids) =
        smp_groups_wire::decode_all_with::<ServerMsg, _>(&ids.command, v).unwrap()
    else {
        panic!("IDS expected")
    };
    let send = wsmp::Command::Sender(SenderCommand::Send {
        flags: MsgFlags {
            notification: false,
        },
        body: vec![0x55; 16_000],
    });
    for _ in 0..20 {
        t.send_block(&on_entity(v, &sid, None, ids.snd_id.as_slice(), &send))
            .await
            .unwrap();
        let block = t.recv_block().await.unwrap();
        let ts = wsmp::decode_batch(&block).unwrap();
        assert_eq!(ts.len(), 2, "OK and MSG in one block");
        let mut msg_id = None;
        for tr in ts {
            match smp_groups_wire::decode_all_with::<ServerMsg, _>(
                &smp_groups_wire::decode_all_with::<Transmission, _>(tr, v)
                    .unwrap()
                    .command,
                v,
            )
            .unwrap()
            {
                ServerMsg::Ok => {}
                ServerMsg::Msg { msg_id: id, .. } => msg_id = Some(id),
                other => panic!("{other:?}"),
            }
        }
        let ack = wsmp::Command::Recipient(RecipientCommand::Ack(msg_id.unwrap()));
        t.send_block(&on_entity(v, &sid, Some(&k), ids.rcv_id.as_slice(), &ack))
            .await
            .unwrap();
        let block = t.recv_block().await.unwrap();
        let ok = smp_groups_wire::decode_all_with::<Transmission, _>(
            wsmp::decode_batch(&block).unwrap()[0],
            v,
        )
        .unwrap();
        assert_eq!(
            smp_groups_wire::decode_all_with::<ServerMsg, _>(&ok.command, v).unwrap(),
            ServerMsg::Ok
        );
    }
    relay.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn binary_prints_its_address_and_stops_on_sigterm() {
    let dir = temp_dir("binary");
    let mut child = Command::new(env!("CARGO_BIN_EXE_smp-relay"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: wsmp::ProtocolServer = line.trim().parse().unwrap();
    assert_eq!(addr.hosts()[0].as_str(), "127.0.0.1");
    assert!(addr.port.number() > 0);
    // The identity is kept: the same key hash after a restart.
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "clean stop on SIGTERM: {exit:?}");
    let mut again = Command::new(env!("CARGO_BIN_EXE_smp-relay"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line2 = String::new();
    BufReader::new(again.stdout.take().unwrap())
        .read_line(&mut line2)
        .unwrap();
    let addr2: wsmp::ProtocolServer = line2.trim().parse().unwrap();
    assert_eq!(addr2.key_hash, addr.key_hash);
    Command::new("kill")
        .arg("-INT")
        .arg(again.id().to_string())
        .status()
        .unwrap();
    assert!(again.wait().unwrap().success(), "clean stop on SIGINT");
    let _ = std::fs::remove_dir_all(&dir);
}
