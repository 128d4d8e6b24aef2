//! Multi-row answers to status queries: a block of records, one per line
//! (CRLF between lines), each `key=value` fields separated by spaces. The
//! block is followed by the transmission's CRLF, so on the wire every record
//! is a line of its own.
//!
//! ```text
//! rows  = [row *(CRLF row)]
//! row   = field *(SP field)
//! field = key "=" value
//! key   = 1*32(%x61-7A / DIGIT / "_")       ; lowercase letters, digits, _
//! value = 1*256(%x21-7E)                    ; printable ASCII, no space
//! ```

use std::fmt;

use super::error::{ErrorCode, LineError};

/// Most rows in one answer.
pub const MAX_ROWS: usize = 65_536;
/// Most fields in one row.
pub const MAX_FIELDS: usize = 32;
/// Longest key.
pub const MAX_KEY_LEN: usize = 32;
/// Longest value.
pub const MAX_VALUE_LEN: usize = 256;

/// One record of a status answer: `key=value` fields in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Row {
    fields: Vec<(String, String)>,
}

fn valid_key(k: &[u8]) -> bool {
    !k.is_empty()
        && k.len() <= MAX_KEY_LEN
        && k.iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

fn valid_value(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= MAX_VALUE_LEN && v.iter().all(|b| (0x21..0x7f).contains(b))
}

impl Row {
    /// An empty row.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `key=value`. A key that is not 1 to 32 lowercase letters,
    /// digits or `_`, or a row that already has [`MAX_FIELDS`] fields, is
    /// refused. The value is made printable: characters outside `!`..=`~`
    /// become `?`, it is cut to [`MAX_VALUE_LEN`] bytes, and an empty value
    /// becomes `-`.
    pub fn with(mut self, key: &str, value: impl fmt::Display) -> Result<Self, LineError> {
        if !valid_key(key.as_bytes()) {
            return Err(LineError::syntax("bad row key"));
        }
        if self.fields.len() >= MAX_FIELDS {
            return Err(LineError::new(ErrorCode::Large, "too many fields in a row"));
        }
        let mut v: String = value
            .to_string()
            .chars()
            .map(|c| if ('!'..='~').contains(&c) { c } else { '?' })
            .take(MAX_VALUE_LEN)
            .collect();
        if v.is_empty() {
            v.push('-');
        }
        self.fields.push((key.to_owned(), v));
        Ok(self)
    }

    /// The fields, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of the first field named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    fn write(&self, out: &mut Vec<u8>) {
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
        }
    }

    fn parse(line: &[u8]) -> Result<Self, LineError> {
        let mut fields = Vec::new();
        for f in line.split(|b| *b == b' ') {
            if fields.len() >= MAX_FIELDS {
                return Err(LineError::new(ErrorCode::Large, "too many fields in a row"));
            }
            let eq = f
                .iter()
                .position(|b| *b == b'=')
                .ok_or_else(|| LineError::syntax("a row field must be key=value"))?;
            let (k, v) = f.split_at(eq);
            let v = v.get(1..).unwrap_or_default();
            if !valid_key(k) {
                return Err(LineError::syntax("bad row key"));
            }
            if !valid_value(v) {
                return Err(LineError::syntax("bad row value"));
            }
            // Both are ASCII, checked above.
            fields.push((
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ));
        }
        Ok(Self { fields })
    }
}

/// The block of `rows`: CRLF between rows (none after the last).
pub(crate) fn encode_rows(rows: &[Row]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        r.write(&mut out);
    }
    out
}

/// Parses a block of rows (CRLF between rows; an empty block has none, an
/// empty row is refused).
pub(crate) fn parse_rows(block: &[u8]) -> Result<Vec<Row>, LineError> {
    if block.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows = Vec::new();
    let mut rest = block;
    loop {
        let (line, next) = match rest.windows(2).position(|w| w == b"\r\n") {
            Some(i) => {
                let (line, tail) = rest.split_at(i);
                (line, Some(tail.get(2..).unwrap_or_default()))
            }
            None => (rest, None),
        };
        if rows.len() >= MAX_ROWS {
            return Err(LineError::new(ErrorCode::Large, "too many rows"));
        }
        if line.is_empty() {
            return Err(LineError::syntax("empty row"));
        }
        rows.push(Row::parse(line)?);
        match next {
            Some(n) => rest = n,
            None => return Ok(rows),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_sanitize() {
        let rows = vec![
            Row::new()
                .with("alias", "club")
                .and_then(|r| r.with("members", 2))
                .unwrap(),
            Row::new().with("info", "a b\u{e9}").unwrap(),
        ];
        let block = encode_rows(&rows);
        assert_eq!(block, b"alias=club members=2\r\ninfo=a?b?");
        assert_eq!(parse_rows(&block).unwrap(), rows);
        assert_eq!(parse_rows(b"").unwrap(), Vec::new());
        assert_eq!(rows[0].get("members"), Some("2"));
        assert_eq!(Row::new().with("x", "").unwrap().get("x"), Some("-"));
    }

    #[test]
    fn bad_rows_are_typed_errors() {
        assert!(Row::new().with("Bad", 1).is_err());
        assert!(Row::new().with("", 1).is_err());
        for bad in [
            &b"a=1\r\n"[..],
            b"a=1\r\n\r\nb=2",
            b"\r\n",
            b"a",
            b"a=",
            b"=1",
            b"A=1",
            b"a=1  b=2",
            b"a=\x01",
            b"a=1\rb=2",
            b"a=1\nb=2",
            b" a=1",
        ] {
            assert!(parse_rows(bad).is_err(), "{bad:?}");
        }
        let many = "a=1 ".repeat(MAX_FIELDS) + "a=1";
        assert_eq!(
            parse_rows(many.as_bytes()).unwrap_err().code,
            ErrorCode::Large
        );
        let mut r = Row::new();
        for _ in 0..MAX_FIELDS {
            r = r.with("a", 1).unwrap();
        }
        assert!(r.with("a", 1).is_err());
        let long = format!("a={}", "x".repeat(MAX_VALUE_LEN + 1));
        assert!(parse_rows(long.as_bytes()).is_err());
    }
}
