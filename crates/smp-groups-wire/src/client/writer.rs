//! Building one transmission: `corrId SP entity SP word [SP args] CRLF [block CRLF]`.

use super::token::{Alias, CorrId, Entity, write_payload};

/// Writes one transmission into a byte vector.
pub(crate) struct LineWriter<'o, 'p> {
    out: &'o mut Vec<u8>,
    block: Option<&'p [u8]>,
}

impl<'o, 'p> LineWriter<'o, 'p> {
    /// Starts a line with its corrId, entity and command word.
    pub(crate) fn start(
        out: &'o mut Vec<u8>,
        corr_id: &CorrId,
        entity: &Entity,
        word: &str,
    ) -> Self {
        out.extend_from_slice(corr_id.as_str().as_bytes());
        out.push(b' ');
        entity.write(out);
        out.push(b' ');
        out.extend_from_slice(word.as_bytes());
        Self { out, block: None }
    }

    /// Appends `SP text`.
    pub(crate) fn word(self, text: &str) -> Self {
        self.out.push(b' ');
        self.out.extend_from_slice(text.as_bytes());
        self
    }

    /// Appends `SP number`.
    pub(crate) fn number(self, n: u64) -> Self {
        self.word(&n.to_string())
    }

    /// Appends `SP C:alias`.
    pub(crate) fn conn(self, a: &Alias) -> Self {
        self.entity(&Entity::Conn(Some(a.clone())))
    }

    /// Appends `SP C:alias` when present.
    pub(crate) fn opt_conn(self, a: Option<&Alias>) -> Self {
        match a {
            Some(a) => self.conn(a),
            None => self,
        }
    }

    /// Appends `SP entity`.
    pub(crate) fn entity(self, e: &Entity) -> Self {
        self.out.push(b' ');
        e.write(self.out);
        self
    }

    /// Appends `SP payload` (inline, or a length whose block follows the line).
    pub(crate) fn payload(mut self, payload: &'p [u8]) -> Self {
        self.out.push(b' ');
        self.block = write_payload(payload, self.out);
        self
    }

    /// Appends `SP length` of `block`, which follows the line (always the
    /// length form, even when empty).
    pub(crate) fn block(mut self, block: &'p [u8]) -> Self {
        self.out.push(b' ');
        self.out
            .extend_from_slice(block.len().to_string().as_bytes());
        self.block = Some(block);
        self
    }

    /// Ends the line with CRLF, then writes the block and its CRLF, if any.
    pub(crate) fn finish(self) {
        self.out.extend_from_slice(b"\r\n");
        if let Some(b) = self.block {
            self.out.extend_from_slice(b);
            self.out.extend_from_slice(b"\r\n");
        }
    }
}
