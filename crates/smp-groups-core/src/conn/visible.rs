//! Client commands on the pairwise connections the client sees.

use smp_groups_wire::agent::{AMessage, ConnInvitation, Content, Receipt};
use smp_groups_wire::decode_all;

use crate::Agent;
use crate::api::{CommandError, Event};
use crate::state::{Note, Owner};

impl Agent {
    pub(crate) fn cmd_new_conn(&mut self, alias: Option<String>) -> Result<Event, CommandError> {
        let alias = self.take_alias(alias, "c")?;
        self.new_inviter_conn(Owner::Visible(alias.clone()));
        Ok(Event::Ok { alias })
    }

    pub(crate) fn cmd_join_conn(
        &mut self,
        alias: Option<String>,
        invitation: &[u8],
        info: Vec<u8>,
    ) -> Result<Event, CommandError> {
        let invite = decode_all::<ConnInvitation>(invitation)
            .map_err(|e| CommandError::BadInvitation(e.to_string()))?;
        let alias = self.take_alias(alias, "c")?;
        self.new_joiner_conn(Owner::Visible(alias.clone()), &invite, None, None, info)?;
        Ok(Event::Ok { alias })
    }

    pub(crate) fn take_alias(
        &mut self,
        alias: Option<String>,
        prefix: &str,
    ) -> Result<String, CommandError> {
        match alias {
            Some(a) if a.is_empty() => Ok(self.fresh_alias(prefix)),
            Some(a) => {
                if let Err(e) = smp_groups_wire::client::Alias::new(&a) {
                    return Err(CommandError::BadAlias {
                        alias: a,
                        reason: e.to_string(),
                    });
                }
                if self.alias_taken(&a) {
                    return Err(CommandError::Duplicate(a));
                }
                Ok(a)
            }
            None => Ok(self.fresh_alias(prefix)),
        }
    }

    pub(crate) fn visible_conn(&self, alias: &str) -> Result<u64, CommandError> {
        self.conns
            .iter()
            .find(|(_, c)| matches!(&c.owner, Owner::Visible(a) if a == alias) && !c.closing)
            .map(|(id, _)| *id)
            .ok_or_else(|| CommandError::NoConn(alias.to_owned()))
    }

    pub(crate) fn cmd_send_conn(
        &mut self,
        alias: &str,
        body: Vec<u8>,
    ) -> Result<Event, CommandError> {
        let id = self.visible_conn(alias)?;
        if body.len() > self.cfg.max_message_len {
            return Err(CommandError::TooLarge {
                len: body.len(),
                max: self.cfg.max_message_len,
            });
        }
        let conn = self
            .conns
            .get_mut(&id)
            .ok_or_else(|| CommandError::NoConn(alias.to_owned()))?;
        let content = Content::new(body).map_err(|e| CommandError::Internal(e.to_string()))?;
        let msg_id = conn.next_msg_id;
        conn.next_msg_id += 1;
        let msg = AMessage::UserMsg {
            snd_ts: self.now,
            content,
        };
        self.enqueue(id, &msg, Note::ConnMsg { msg_id });
        Ok(Event::Queued {
            alias: alias.to_owned(),
            msg_id,
        })
    }

    pub(crate) fn cmd_ack_conn(&mut self, alias: &str, msg_id: u64) -> Result<Event, CommandError> {
        let id = self.visible_conn(alias)?;
        let conn = self
            .conns
            .get_mut(&id)
            .ok_or_else(|| CommandError::NoConn(alias.to_owned()))?;
        let (peer_id, digest) = conn
            .unacked
            .remove(&msg_id)
            .ok_or(CommandError::NoId(msg_id))?;
        let receipt = Receipt {
            msg_id: peer_id,
            digest: smp_groups_wire::agent::Digest(digest),
        };
        self.enqueue(id, &AMessage::Receipts(vec![receipt]), Note::None);
        Ok(Event::Ok {
            alias: alias.to_owned(),
        })
    }

    pub(crate) fn cmd_del_conn(&mut self, alias: &str) -> Result<Event, CommandError> {
        let id = self.visible_conn(alias)?;
        if let Some(c) = self.conns.get_mut(&id) {
            c.outbox.retain(|_| false);
        }
        self.close_conn(id);
        Ok(Event::Ok {
            alias: alias.to_owned(),
        })
    }
}
