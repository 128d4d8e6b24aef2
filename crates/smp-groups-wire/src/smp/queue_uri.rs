//! The SMP queue URI an agent hands out of band (reference `SMPQueueUri`):
//!
//! ```text
//! smp://<keyHash>@<host>[,<host>...][:<port>]/<senderId>#/?v=<min>[-<max>]&dh=<key>[&q=m|c][&k=s][&srv=<hosts>]
//! ```
//!
//! `senderId` and `dh` (the recipient's X25519 DER key) are padded base64url,
//! query values are percent-encoded (`=` becomes `%3D`). `v` is the SMP *client*
//! version range (1..=4 in the reference). When the range's minimum is below 2,
//! the address keeps one host and the others go in `srv`.

use super::base64url;
use super::keys::X25519PublicKey;
use super::new_queue::QueueMode;
use super::server::{Host, ProtocolServer};
use super::version::{Version, VersionRange};
use crate::{Error, ShortBytes};

/// The longest queue URI text accepted.
pub const MAX_QUEUE_URI_LEN: usize = 4096;

/// The first SMP client version whose addresses carry all hosts.
pub const CLIENT_VERSION_SRV_HOSTNAMES: Version = Version(2);
/// The first SMP client version with short links (queue mode `q` replaces `k`).
pub const CLIENT_VERSION_SHORT_LINKS: Version = Version(4);

/// A queue address for senders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmpQueueUri {
    /// SMP client versions (not relay versions) the recipient supports.
    pub client_versions: VersionRange,
    /// The relay.
    pub server: ProtocolServer,
    /// The sender's queue id.
    pub sender_id: ShortBytes,
    /// The recipient's X25519 key for the end-to-end DH.
    pub dh_key: X25519PublicKey,
    /// The queue mode (`q`, or `k=s` from older clients).
    pub queue_mode: Option<QueueMode>,
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn url_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

fn url_decode(s: &str) -> Result<String, Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| Error::invalid("queue URI query", "bad percent escape"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| Error::invalid("queue URI query", "not UTF-8"))
}

impl std::fmt::Display for SmpQueueUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let min = self.client_versions.min();
        let full_hosts = min >= CLIENT_VERSION_SRV_HOSTNAMES;
        self.server.fmt_hosts(f, full_hosts)?;
        write!(f, "/{}#/?", base64url::encode(self.sender_id.as_slice()))?;
        let mut params: Vec<(&str, String)> = vec![
            ("v", self.client_versions.to_string()),
            ("dh", base64url::encode(&self.dh_key.to_der())),
        ];
        match self.queue_mode {
            Some(QueueMode::Messaging) => params.push(("q", "m".into())),
            Some(QueueMode::Contact) => params.push(("q", "c".into())),
            None => {}
        }
        if self.queue_mode == Some(QueueMode::Messaging) && min < CLIENT_VERSION_SHORT_LINKS {
            params.push(("k", "s".into()));
        }
        if !full_hosts && self.server.hosts().len() > 1 {
            let rest: Vec<&str> = self.server.hosts()[1..].iter().map(Host::as_str).collect();
            params.push(("srv", rest.join(",")));
        }
        let mut q = String::new();
        for (i, (k, v)) in params.iter().enumerate() {
            if i > 0 {
                q.push('&');
            }
            q.push_str(k);
            q.push('=');
            url_encode(v, &mut q);
        }
        f.write_str(&q)
    }
}

impl std::str::FromStr for SmpQueueUri {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.len() > MAX_QUEUE_URI_LEN {
            return Err(Error::TooLong {
                what: "queue URI",
                len: s.len(),
                max: MAX_QUEUE_URI_LEN,
            });
        }
        let (server, rest) = ProtocolServer::parse_prefix(s)?;
        let rest = rest
            .strip_prefix('/')
            .ok_or_else(|| Error::invalid("queue URI", "no / after the server"))?;
        let (id_text, rest) = rest
            .split_once('#')
            .ok_or_else(|| Error::invalid("queue URI", "no # after the sender id"))?;
        let id_text = id_text.strip_suffix('/').unwrap_or(id_text);
        if id_text.is_empty() {
            return Err(Error::invalid("queue URI", "empty sender id"));
        }
        let sender_id = ShortBytes::new(base64url::decode(id_text, "sender id")?)?;
        let query = rest.strip_prefix('/').unwrap_or(rest);
        let query = query
            .strip_prefix('?')
            .ok_or_else(|| Error::invalid("queue URI", "no query after #"))?;
        let mut v = None;
        let mut dh = None;
        let mut q = None;
        let mut k = None;
        let mut srv = None;
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = url_decode(value)?;
            let slot = match name {
                "v" => &mut v,
                "dh" => &mut dh,
                "q" => &mut q,
                "k" => &mut k,
                "srv" => &mut srv,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        let client_versions: VersionRange = v
            .ok_or_else(|| Error::invalid("queue URI", "no v parameter"))?
            .parse()?;
        let dh_der = base64url::decode(
            &dh.ok_or_else(|| Error::invalid("queue URI", "no dh parameter"))?,
            "dh key",
        )?;
        let dh_key = X25519PublicKey::from_der(&dh_der)?;
        let queue_mode = match q.as_deref() {
            Some("m") => Some(QueueMode::Messaging),
            Some("c") => Some(QueueMode::Contact),
            _ if k.as_deref() == Some("s") => Some(QueueMode::Messaging),
            _ => None,
        };
        let mut hosts = server.hosts().to_vec();
        if let Some(extra) = srv.filter(|s| !s.is_empty()) {
            for h in extra.split(',') {
                hosts.push(Host::new(h)?);
            }
        }
        let server = ProtocolServer::new(hosts, server.port, server.key_hash)?;
        Ok(Self {
            client_versions,
            server,
            sender_id,
            dh_key,
            queue_mode,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::smp::server::{KeyHash, Port};

    fn uri(min: u16, hosts: &[&str], mode: Option<QueueMode>) -> SmpQueueUri {
        SmpQueueUri {
            client_versions: VersionRange::new(Version(min), Version(4)).unwrap(),
            server: ProtocolServer::new(
                hosts.iter().map(|h| Host::new(*h).unwrap()).collect(),
                Port::new(5223),
                KeyHash::from([3; 32]),
            )
            .unwrap(),
            sender_id: ShortBytes::new(vec![0xab; 24]).unwrap(),
            dh_key: X25519PublicKey([5; 32]),
            queue_mode: mode,
        }
    }

    #[test]
    fn reference_layout() {
        let u = uri(2, &["a.example", "b.example"], Some(QueueMode::Messaging));
        let text = u.to_string();
        assert_eq!(
            text,
            "smp://AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=@a.example,b.example:5223/\
             q6urq6urq6urq6urq6urq6urq6urq6ur#/?v=2-4&dh=MCowBQYDK2VuAyEABQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU%3D&q=m&k=s"
        );
        assert_eq!(text.parse::<SmpQueueUri>(), Ok(u));
    }

    #[test]
    fn legacy_hosts_go_in_srv() {
        let u = uri(1, &["a.example", "b.example"], None);
        let text = u.to_string();
        assert!(
            text.starts_with("smp://AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=@a.example:5223/")
        );
        assert!(text.ends_with("&srv=b.example"));
        assert_eq!(text.parse::<SmpQueueUri>(), Ok(u));
    }

    #[test]
    fn rejections() {
        let good = uri(2, &["a"], None).to_string();
        assert!(
            good.replace("v=2-4", "v=5-4")
                .parse::<SmpQueueUri>()
                .is_err()
        );
        assert!(good.replace("&dh=", "&xx=").parse::<SmpQueueUri>().is_err());
        assert!(matches!(
            good.replace("#/?", "/?").parse::<SmpQueueUri>(),
            Err(Error::InvalidValue { .. })
        ));
        let long = format!("{good}&{}", "x".repeat(MAX_QUEUE_URI_LEN));
        assert!(matches!(
            long.parse::<SmpQueueUri>(),
            Err(Error::TooLong { .. })
        ));
    }
}
