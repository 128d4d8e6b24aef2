//! SMP relay addresses: `smp://<keyHash>@host[,host2...][:port]` and the binary
//! `ProtocolServer` encoding `count:1 (short host)* short(port) short(keyHash)`.

use super::base64url;
use super::version::limits::MAX_HOSTS;
use crate::{Decode, Encode, Error, Reader, ShortBytes};

/// The relay identity: SHA-256 of its DER identity certificate.
///
/// The reference treats it as a byte string of any length up to 255 (an empty
/// one is valid in addresses that name no identity), so this type does too;
/// [`KeyHash::as_sha256`] gives the 32-byte form a TLS verifier pins.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyHash(ShortBytes);

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyHash({self})")
    }
}

impl std::fmt::Display for KeyHash {
    /// base64url with padding, as in server addresses.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&base64url::encode(self.0.as_slice()))
    }
}

impl std::str::FromStr for KeyHash {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(base64url::decode(s, "key hash")?)
    }
}

impl From<[u8; 32]> for KeyHash {
    fn from(hash: [u8; 32]) -> Self {
        Self(ShortBytes::from_array(hash))
    }
}

impl KeyHash {
    /// A key hash of any length up to 255 bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, Error> {
        ShortBytes::new(bytes).map(Self)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// The 32-byte SHA-256 form, if the hash has that length.
    pub fn as_sha256(&self) -> Option<[u8; 32]> {
        self.0.as_slice().try_into().ok()
    }

    /// True for an address that names no identity.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Encode for KeyHash {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
    }
}

impl<'a> Decode<'a> for KeyHash {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        ShortBytes::decode(r).map(Self)
    }
}

/// A relay host: a domain name, an IPv4 address or an onion address, in ASCII.
///
/// Allowed: 1 to 255 printable ASCII characters other than space and
/// `: # , ; / @ ? %`. (IPv6 literals are not supported.)
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Host(String);

impl Host {
    /// Validates `s` as a host.
    pub fn new(s: impl Into<String>) -> Result<Self, Error> {
        let s = s.into();
        if s.is_empty() {
            return Err(Error::invalid("host", "empty"));
        }
        if s.len() > 255 {
            return Err(Error::TooLong {
                what: "host",
                len: s.len(),
                max: 255,
            });
        }
        if let Some(c) = s.bytes().find(|&c| !Self::allowed(c)) {
            return Err(Error::invalid(
                "host",
                format!("character {:?} not allowed", char::from(c)),
            ));
        }
        Ok(Self(s))
    }

    fn allowed(c: u8) -> bool {
        c.is_ascii_graphic() && !b":#,;/@?%".contains(&c)
    }

    /// The host text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Host({:?})", self.0)
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A server port as the reference carries it: a decimal string, empty for the
/// default port (5223).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Port(Option<u16>);

impl Port {
    /// The default SMP port.
    pub const DEFAULT: u16 = 5223;

    /// An explicit port.
    pub fn new(p: u16) -> Self {
        Self(Some(p))
    }

    /// The default port (empty on the wire).
    pub fn default_port() -> Self {
        Self(None)
    }

    /// The explicit port, if any.
    pub fn explicit(&self) -> Option<u16> {
        self.0
    }

    /// The port to connect to.
    pub fn number(&self) -> u16 {
        self.0.unwrap_or(Self::DEFAULT)
    }

    /// Parses the decimal text (empty means default).
    pub fn parse(s: &[u8]) -> Result<Self, Error> {
        if s.is_empty() {
            return Ok(Self(None));
        }
        let canonical =
            s.len() <= 5 && s.iter().all(u8::is_ascii_digit) && (s[0] != b'0' || s.len() == 1);
        let n = canonical
            .then(|| std::str::from_utf8(s).ok()?.parse::<u16>().ok())
            .flatten()
            .ok_or_else(|| Error::invalid("port", "not a decimal port number"))?;
        Ok(Self(Some(n)))
    }

    fn text(&self) -> String {
        self.0.map(|p| p.to_string()).unwrap_or_default()
    }
}

/// An SMP relay: hosts (1 or more), port, identity key hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProtocolServer {
    hosts: Vec<Host>,
    /// The port.
    pub port: Port,
    /// The identity key hash.
    pub key_hash: KeyHash,
}

impl ProtocolServer {
    /// A server; `hosts` must hold 1 to [`MAX_HOSTS`] hosts.
    pub fn new(hosts: Vec<Host>, port: Port, key_hash: KeyHash) -> Result<Self, Error> {
        if hosts.is_empty() {
            return Err(Error::invalid("hosts", "empty host list"));
        }
        if hosts.len() > MAX_HOSTS {
            return Err(Error::TooLong {
                what: "hosts",
                len: hosts.len(),
                max: MAX_HOSTS,
            });
        }
        Ok(Self {
            hosts,
            port,
            key_hash,
        })
    }

    /// The hosts, first is preferred.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Parses the text form at the start of `s` and returns the rest (which
    /// starts with `/`, `#`, `?` or is empty).
    pub fn parse_prefix(s: &str) -> Result<(Self, &str), Error> {
        let rest = s
            .strip_prefix("smp://")
            .ok_or_else(|| Error::invalid("server address", "must start with smp://"))?;
        let (hash, rest) = rest
            .split_once('@')
            .ok_or_else(|| Error::invalid("server address", "no @ after the key hash"))?;
        if hash.contains(':') {
            return Err(Error::invalid(
                "server address",
                "basic auth is not allowed here",
            ));
        }
        let key_hash: KeyHash = hash.parse()?;
        let end = rest.find(['/', '#', '?']).unwrap_or(rest.len());
        let (hostport, rest) = rest.split_at(end);
        let (hosts_text, port) = match hostport.split_once(':') {
            Some((h, p)) if !p.is_empty() => (h, Port::parse(p.as_bytes())?),
            Some(_) => return Err(Error::invalid("port", "empty after ':'")),
            None => (hostport, Port::default_port()),
        };
        let hosts = hosts_text
            .split(',')
            .map(Host::new)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((Self::new(hosts, port, key_hash)?, rest))
    }

    /// The address with only the first host (the reference's legacy text form).
    pub(crate) fn fmt_hosts(&self, f: &mut dyn std::fmt::Write, all: bool) -> std::fmt::Result {
        write!(f, "smp://{}@", self.key_hash)?;
        let n = if all { self.hosts.len() } else { 1 };
        for (i, h) in self.hosts.iter().take(n).enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            f.write_str(h.as_str())?;
        }
        if let Some(p) = self.port.0 {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for ProtocolServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.fmt_hosts(f, true)
    }
}

impl std::str::FromStr for ProtocolServer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let (srv, rest) = Self::parse_prefix(s)?;
        if rest.is_empty() {
            Ok(srv)
        } else {
            Err(Error::TrailingBytes {
                what: "server address",
                count: rest.len(),
            })
        }
    }
}

impl Encode for ProtocolServer {
    fn encode(&self, out: &mut Vec<u8>) {
        #[allow(clippy::cast_possible_truncation)] // at most MAX_HOSTS, hosts at most 255
        {
            out.push(self.hosts.len() as u8);
            for h in &self.hosts {
                out.push(h.0.len() as u8);
                out.extend_from_slice(h.0.as_bytes());
            }
            let port = self.port.text();
            out.push(port.len() as u8);
            out.extend_from_slice(port.as_bytes());
        }
        self.key_hash.encode(out);
    }
}

impl<'a> Decode<'a> for ProtocolServer {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        let hosts = r.list("hosts", MAX_HOSTS, |r| {
            let b = r.short_bytes("host")?;
            Host::new(String::from_utf8_lossy(b).into_owned())
        })?;
        let port = Port::parse(r.short_bytes("port")?)?;
        let key_hash = KeyHash::decode(r)?;
        Self::new(hosts, port, key_hash)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::decode_all;

    #[test]
    fn text_round_trip() {
        let s =
            "smp://AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=@smp1.example.com,abc.onion:5224";
        let srv: ProtocolServer = s.parse().unwrap();
        assert_eq!(srv.hosts().len(), 2);
        assert_eq!(srv.port.number(), 5224);
        assert_eq!(srv.key_hash.as_bytes()[0], 1);
        assert_eq!(srv.to_string(), s);
        let d: ProtocolServer = "smp://AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=@h"
            .parse()
            .unwrap();
        assert_eq!(d.port, Port::default_port());
        assert_eq!(decode_all::<ProtocolServer>(&d.to_bytes()), Ok(d));
    }

    #[test]
    fn text_rejections() {
        // A key hash of another length is a byte string like any other, as in the reference.
        let short: ProtocolServer = "smp://AQID@h".parse().unwrap();
        assert_eq!(short.key_hash.as_bytes(), [1, 2, 3]);
        assert_eq!(short.key_hash.as_sha256(), None);
        assert_eq!(short.to_string(), "smp://AQID@h");
        assert!(matches!(
            "smp://A$ID@h".parse::<ProtocolServer>(),
            Err(Error::BadBase64 { .. })
        ));
        let h = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
        assert!(
            format!("smp://{h}@h:99999")
                .parse::<ProtocolServer>()
                .is_err()
        );
        assert!(format!("smp://{h}@").parse::<ProtocolServer>().is_err());
        assert!(format!("smp://{h}:pw@h").parse::<ProtocolServer>().is_err());
        assert!(matches!(
            format!("smp://{h}@h/x").parse::<ProtocolServer>(),
            Err(Error::TrailingBytes { .. })
        ));
    }
}
