//! The hex examples in docs/protocol-smp.md, produced by the encoders and read
//! back by the decoders.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use smp_groups_wire::ShortBytes;
use smp_groups_wire::smp::{
    self, Command, MsgFlags, SenderCommand, SmpEncode, Transmission, TransmissionAuth, Version,
};

const SEND_HEX: &str = concat!(
    "40abababababababababababababababababababababababababababababababababababababab",
    "abababababababababababababababababababababababababab30180102030405060708090a0b",
    "0c0d0e0f101112131415161718182122232425262728292a2b2c2d2e2f30313233343536373853",
    "454e4420542068656c6c6f",
);

const PING_HEX: &str = "00184142434445464748494a4b4c4d4e4f5051525354555657580050494e47";

fn send() -> Transmission {
    let cmd = Command::Sender(SenderCommand::Send {
        flags: MsgFlags { notification: true },
        body: b"hello".to_vec(),
    });
    Transmission {
        auth: TransmissionAuth::Signature([0xab; 64]),
        service_sig: None,
        session_id: None,
        corr_id: ShortBytes::new((1..=24).collect::<Vec<u8>>()).unwrap(),
        entity_id: ShortBytes::new((0x21..=0x38).collect::<Vec<u8>>()).unwrap(),
        command: cmd.smp_bytes(Version(18)).unwrap(),
    }
}

#[test]
fn send_transmission_example() {
    let t = send();
    let wire = t.smp_bytes(Version(18)).unwrap();
    assert_eq!(hex::encode(&wire), SEND_HEX);
    assert_eq!(wire.len(), 128);
    assert_eq!(
        smp_groups_wire::decode_all_with::<Transmission, _>(&wire, Version(18)).unwrap(),
        t
    );
    let signed = t.for_auth(&[0x5e; 32]).unwrap();
    assert_eq!(
        hex::encode(signed),
        format!(
            "20{}180102030405060708090a0b0c0d0e0f101112131415161718\
             182122232425262728292a2b2c2d2e2f30313233343536373853454e4420542068656c6c6f",
            "5e".repeat(32)
        )
    );
}

#[test]
fn batch_example() {
    let ping = Transmission {
        auth: TransmissionAuth::None,
        service_sig: None,
        session_id: None,
        corr_id: ShortBytes::new((0x41..=0x58).collect::<Vec<u8>>()).unwrap(),
        entity_id: ShortBytes::default(),
        command: Command::Ping.smp_bytes(Version(18)).unwrap(),
    };
    let p = ping.smp_bytes(Version(18)).unwrap();
    assert_eq!(hex::encode(&p), PING_HEX);
    let batch = smp::encode_batch(&[send().smp_bytes(Version(18)).unwrap(), p]).unwrap();
    assert_eq!(
        hex::encode(&batch),
        format!("020080{SEND_HEX}001f{PING_HEX}")
    );
    let items = smp::decode_batch(&batch).unwrap();
    assert_eq!(items.len(), 2);
    let t = smp_groups_wire::decode_all_with::<Transmission, _>(items[1], Version(18)).unwrap();
    assert_eq!(
        smp_groups_wire::decode_all_with::<Command, _>(&t.command, Version(18)).unwrap(),
        Command::Ping
    );
}
