//! `cargo xtask vectors FILE`: runs every known-answer vector of a file in the
//! `smp-vectors/1` format against the project's own wire and crypto code.
//!
//! Each kind computes its outputs from the inputs; a vector passes when every
//! field under `expect` equals the computed one (an `expect` naming no field
//! fails), or, for `"error": true`, when the project's code refuses the input:
//! an error of the runner itself (an unknown kind, an input it cannot read or
//! does not support) fails the vector either way. A file without vectors
//! fails.

use std::collections::BTreeMap;

use serde_json::Value;
use smp_groups_crypto::sbc::{self, ChainKey};
use smp_groups_crypto::{ed25519, nacl, sha256, sha512, x25519};
use smp_groups_wire::smp::{
    self, AuthPublicKey, ClientHello, ClientMessage, ClientMsgEnvelope, Command, Host, KeyHash,
    MsgFlags, Port, PrivHeader, ProtocolServer, RecipientCommand, SenderCommand, SmpEncode,
    TransmissionAuth, Version, X25519PublicKey,
};
use smp_groups_wire::smp::{BasicAuth, NewQueue, QueueReqData, SubscriptionMode};
use smp_groups_wire::{Encode, ShortBytes, pad};

/// The computed output fields of one vector.
type Outputs = BTreeMap<&'static str, Value>;

/// Runs the file at `path`; prints one line per failure and a summary line.
/// Returns whether everything passed.
pub(crate) fn run_file(path: &str) -> Result<bool, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let file: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    if file["format"] != "smp-vectors/1" {
        return Err(format!("{path}: not an smp-vectors/1 file"));
    }
    let vectors = file["vectors"]
        .as_array()
        .ok_or_else(|| format!("{path}: no vectors array"))?;
    if vectors.is_empty() {
        return Err(format!("{path}: no vectors"));
    }
    let (mut passed, mut failed) = (0usize, 0usize);
    for (i, v) in vectors.iter().enumerate() {
        let kind = v["kind"].as_str().unwrap_or("<no kind>");
        match check(kind, &v["input"], &v["expect"]) {
            Ok(()) => passed += 1,
            Err(why) => {
                failed += 1;
                println!("FAIL #{i} {kind}: {why}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(failed == 0)
}

fn check(kind: &str, input: &Value, expect: &Value) -> Result<(), String> {
    let computed = compute(kind, input);
    if expect["error"] == true {
        return match computed {
            Err(e) if e.starts_with(REFUSED) => Ok(()),
            Err(e) => Err(format!(
                "expected the code to refuse the input; the runner failed: {e}"
            )),
            Ok(out) => Err(format!("expected an error, got {}", show(&out))),
        };
    }
    let out = computed?;
    let expect = expect.as_object().ok_or("expect is not an object")?;
    if expect.is_empty() {
        return Err("expect names no field".into());
    }
    for (field, want) in expect {
        match out.get(field.as_str()) {
            Some(got) if got == want => {}
            Some(got) => return Err(format!("{field}: expected {want}, got {got}")),
            None => return Err(format!("{field}: not computed for this kind")),
        }
    }
    Ok(())
}

fn show(out: &Outputs) -> String {
    serde_json::to_string(out).unwrap_or_default()
}

fn compute(kind: &str, i: &Value) -> Result<Outputs, String> {
    let mut o = Outputs::new();
    match kind {
        "pad" => {
            let out = pad::pad(&bytes(i, "msg")?, int(i, "len")?).map_err(err)?;
            o.insert("out", hex(&out));
        }
        "smp.transmission" => {
            let out = smp::encode_to_send(
                &bytes(i, "corr_id")?,
                &bytes(i, "entity_id")?,
                &bytes(i, "command")?,
            )
            .map_err(err)?;
            o.insert("out", hex(&out));
        }
        "smp.transmission_for_auth" => {
            let (c, e, cmd) = (
                bytes(i, "corr_id")?,
                bytes(i, "entity_id")?,
                bytes(i, "command")?,
            );
            let for_auth =
                smp::encode_for_auth(&bytes(i, "session_id")?, &c, &e, &cmd).map_err(err)?;
            o.insert("for_auth", hex(&for_auth));
            o.insert(
                "to_send",
                hex(&smp::encode_to_send(&c, &e, &cmd).map_err(err)?),
            );
        }
        "smp.batch1" => {
            let auth = match opt_bytes(i, "auth")? {
                None => TransmissionAuth::None,
                Some(a) => TransmissionAuth::from_bytes(&a).map_err(err)?,
            };
            let out =
                smp::encode_batch1(Version(19), &auth, None, &bytes(i, "to_send")?).map_err(err)?;
            o.insert("out", hex(&out));
        }
        "smp.command" => {
            let v = Version(u16::try_from(int(i, "version")?).map_err(err)?);
            o.insert("out", hex(&command(i)?.smp_bytes(v).map_err(err)?));
        }
        "smp.client_hello" => {
            let hello = ClientHello {
                version: Version(u16::try_from(int(i, "version")?).map_err(err)?),
                key_hash: key_hash(i)?,
                auth_key: opt_bytes(i, "auth_pub_key")?
                    .map(|d| X25519PublicKey::from_der(&d))
                    .transpose()
                    .map_err(err)?,
                proxy_server: i["proxy_server"].as_bool().unwrap_or(false),
                service: None,
            };
            o.insert("out", hex(&hello.encode().map_err(err)?));
        }
        "smp.protocol_server" => {
            let hosts = i["hosts"]
                .as_array()
                .ok_or("hosts is not an array")?
                .iter()
                .map(|h| Host::new(h.as_str().unwrap_or_default()).map_err(err))
                .collect::<Result<Vec<_>, _>>()?;
            let port = Port::parse(text(i, "port")?.as_bytes()).map_err(err)?;
            let server = ProtocolServer::new(hosts, port, key_hash(i)?).map_err(err)?;
            o.insert("out", hex(&server.to_bytes()));
        }
        "smp.client_msg_envelope" => {
            let env = ClientMsgEnvelope {
                client_version: Version(u16::try_from(int(i, "client_version")?).map_err(err)?),
                e2e_key: opt_bytes(i, "e2e_pub_key")?
                    .map(|d| X25519PublicKey::from_der(&d))
                    .transpose()
                    .map_err(err)?,
                nonce: array(i, "nonce")?,
                enc_body: bytes(i, "enc_body")?,
            };
            o.insert("out", hex(&env.to_bytes()));
        }
        "smp.client_message" => {
            let header = match text(i, "priv_header")? {
                "empty" => PrivHeader::Empty,
                "confirmation" => PrivHeader::Confirmation(
                    AuthPublicKey::from_der(&bytes(i, "auth_key")?).map_err(err)?,
                ),
                other => return Err(format!("unknown priv_header {other:?}")),
            };
            let msg = ClientMessage {
                header,
                body: bytes(i, "body")?,
            };
            o.insert("out", hex(&msg.to_bytes()));
        }
        "crypto.x25519" => {
            o.insert(
                "shared",
                hex(&x25519::x25519(array(i, "priv")?, array(i, "pub")?)),
            );
        }
        "crypto.x25519_pub" => {
            o.insert("pub", hex(&x25519::x25519_base(array(i, "priv")?)));
        }
        "crypto.ed25519_sign" => {
            let (sig, public) = ed25519::sign_with_seed(array(i, "seed")?, &bytes(i, "msg")?);
            o.insert("sig", hex(&sig.to_bytes()));
            o.insert("pub", hex(public.as_bytes()));
        }
        "crypto.sha512" => {
            o.insert("digest", hex(&sha512(&bytes(i, "msg")?)));
        }
        "crypto.cb_encrypt" => {
            let dh: [u8; 32] = array(i, "dh_secret")?;
            if let (Some(p), Some(q)) = (opt_bytes(i, "priv")?, opt_bytes(i, "pub")?) {
                let derived = x25519::x25519(fixed(&p, "priv")?, fixed(&q, "pub")?);
                if derived != dh {
                    return Err("dh_secret is not X25519(priv, pub)".into());
                }
            }
            let out = nacl::cb_encrypt(
                &dh,
                &array(i, "nonce")?,
                &bytes(i, "msg")?,
                int(i, "pad_len")?,
            )
            .map_err(err)?;
            o.insert("out", hex(&out));
        }
        "crypto.sb_encrypt" => {
            let out = nacl::sb_encrypt(
                &array(i, "key")?,
                &array(i, "nonce")?,
                &bytes(i, "msg")?,
                int(i, "pad_len")?,
            )
            .map_err(err)?;
            o.insert("out", hex(&out));
        }
        "crypto.cb_authenticator" => {
            let out = nacl::cb_authenticator(
                &x25519::PublicKey::from_bytes(array(i, "peer_pub")?),
                &x25519::SecretKey::from_bytes(array(i, "own_priv")?),
                &array(i, "nonce")?,
                &bytes(i, "msg")?,
            );
            o.insert("out", hex(&out));
        }
        "smp.sbc_init" => {
            let keys = sbc::sbc_init(&bytes(i, "session_id")?, &bytes(i, "secret")?);
            o.insert("snd_chain_key", hex(&keys.snd.0));
            o.insert("rcv_chain_key", hex(&keys.rcv.0));
        }
        "smp.sbc_hkdf" => {
            let k = sbc::sbc_hkdf(&ChainKey(array(i, "chain_key")?));
            o.insert("key", hex(&k.key));
            o.insert("nonce", hex(&k.nonce));
            o.insert("next_chain_key", hex(&k.next_chain_key.0));
        }
        "smp.block_encrypt" => {
            let (out, next) = sbc::block_encrypt_with(
                &ChainKey(array(i, "chain_key")?),
                &bytes(i, "block")?,
                int(i, "padded_len")?,
            )
            .map_err(err)?;
            o.insert("out_len", Value::from(out.len()));
            o.insert("out_sha256", hex(&sha256(&out)));
            o.insert("out_prefix64", hex(out.get(..64).unwrap_or(&out)));
            o.insert("next_chain_key", hex(&next.0));
        }
        other => return Err(format!("unknown kind {other:?}")),
    }
    Ok(o)
}

fn command(i: &Value) -> Result<Command, String> {
    let key = |f: &str| -> Result<AuthPublicKey, String> {
        AuthPublicKey::from_der(&bytes(i, f)?).map_err(err)
    };
    Ok(match text(i, "tag")? {
        "NEW" => {
            let queue_req = match i["queue_mode"].as_str() {
                Some("messaging") => Some(QueueReqData::Messaging(None)),
                Some("contact") => Some(QueueReqData::Contact(None)),
                None => None,
                Some(other) => return Err(format!("unknown queue_mode {other:?}")),
            };
            if !i["link_data"].is_null() || !i["ntf_creds"].is_null() {
                return Err("link_data and ntf_creds are not supported by this runner".into());
            }
            Command::Recipient(RecipientCommand::New(Box::new(NewQueue {
                rcv_auth_key: key("rcv_auth_key")?,
                rcv_dh_key: X25519PublicKey::from_der(&bytes(i, "rcv_dh_key")?).map_err(err)?,
                basic_auth: opt_bytes(i, "basic_auth")?
                    .map(BasicAuth::new)
                    .transpose()
                    .map_err(err)?,
                subscribe_mode: if i["subscribe"].as_bool().ok_or("subscribe is not a bool")? {
                    SubscriptionMode::Subscribe
                } else {
                    SubscriptionMode::OnlyCreate
                },
                queue_req,
                ntf_creds: None,
            })))
        }
        "KEY" => Command::Recipient(RecipientCommand::Key(key("key")?)),
        "SKEY" => Command::Sender(SenderCommand::SKey(key("key")?)),
        "ACK" => Command::Recipient(RecipientCommand::Ack(
            ShortBytes::new(bytes(i, "msg_id")?).map_err(err)?,
        )),
        "SEND" => Command::Sender(SenderCommand::Send {
            flags: MsgFlags {
                notification: i["notification"]
                    .as_bool()
                    .ok_or("notification is not a bool")?,
            },
            body: bytes(i, "body")?,
        }),
        "SUB" => Command::Recipient(RecipientCommand::Sub),
        "GET" => Command::Recipient(RecipientCommand::Get),
        "OFF" => Command::Recipient(RecipientCommand::Off),
        "DEL" => Command::Recipient(RecipientCommand::Del),
        "PING" => Command::Ping,
        other => return Err(format!("unknown command tag {other:?}")),
    })
}

fn key_hash(i: &Value) -> Result<KeyHash, String> {
    KeyHash::new(bytes(i, "key_hash")?).map_err(err)
}

/// The prefix of an error the project's code returned (as opposed to one of
/// the runner: an unknown kind, an input field it cannot read).
const REFUSED: &str = "refused: ";

/// An error the project's code returned for the input.
fn err(e: impl std::fmt::Display) -> String {
    format!("{REFUSED}{e}")
}

fn hex(b: &[u8]) -> Value {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    Value::String(s)
}

fn text<'a>(v: &'a Value, field: &str) -> Result<&'a str, String> {
    v[field]
        .as_str()
        .ok_or_else(|| format!("{field} is not a string"))
}

fn bytes(v: &Value, field: &str) -> Result<Vec<u8>, String> {
    let s = text(v, field)?;
    if s.len() % 2 != 0 {
        return Err(format!("{field}: odd hex length"));
    }
    (0..s.len())
        .step_by(2)
        .map(|k| u8::from_str_radix(&s[k..k + 2], 16).map_err(|e| format!("{field}: {e}")))
        .collect()
}

fn opt_bytes(v: &Value, field: &str) -> Result<Option<Vec<u8>>, String> {
    if v[field].is_null() {
        Ok(None)
    } else {
        bytes(v, field).map(Some)
    }
}

fn fixed<const N: usize>(b: &[u8], field: &str) -> Result<[u8; N], String> {
    b.try_into()
        .map_err(|_| format!("{field}: {} bytes, expected {N}", b.len()))
}

fn array<const N: usize>(v: &Value, field: &str) -> Result<[u8; N], String> {
    fixed(&bytes(v, field)?, field)
}

fn int(v: &Value, field: &str) -> Result<usize, String> {
    v[field]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("{field} is not a number"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
mod tests {
    use super::*;

    fn vector(kind: &str, input: Value, expect: Value) -> Result<(), String> {
        check(kind, &input, &expect)
    }

    #[test]
    fn an_error_vector_passes_only_when_the_code_refuses() {
        let error = serde_json::json!({ "error": true });
        // The code refuses: a message longer than the padded length.
        assert!(
            vector(
                "pad",
                serde_json::json!({"msg": "0011", "len": 1}),
                error.clone()
            )
            .is_ok()
        );
        // The runner fails: an unknown kind, an unreadable or missing input.
        assert!(vector("no.such.kind", serde_json::json!({}), error.clone()).is_err());
        assert!(
            vector(
                "pad",
                serde_json::json!({"msg": "0", "len": 9}),
                error.clone()
            )
            .is_err()
        );
        assert!(vector("pad", serde_json::json!({}), error).is_err());
    }

    #[test]
    fn an_empty_expect_fails() {
        let input = serde_json::json!({"msg": "00", "len": 8});
        assert!(vector("pad", input.clone(), serde_json::json!({})).is_err());
        let out = compute("pad", &input).unwrap();
        assert!(vector("pad", input, serde_json::json!({ "out": out["out"] })).is_ok());
    }

    #[test]
    fn a_file_without_vectors_fails() {
        let path = std::env::temp_dir().join(format!("xtask-empty-{}.json", std::process::id()));
        std::fs::write(&path, r#"{"format": "smp-vectors/1", "vectors": []}"#).unwrap();
        assert!(run_file(path.to_str().unwrap()).is_err());
        let _ = std::fs::remove_file(&path);
    }
}
