//! Groups: each file owns the rules of one part of a group's life.
//!
//! - `add`: adding a member, as its introducer (`INTRO`, `INV`, `MEM`) and
//!   when it connects;
//! - `join`: our own join and the introductions of others to us (`GROUP`,
//!   `JOIN`, `INTRO`, `FWD`, `MEM`);
//! - `open`: open invitations (`OINV`) and the adds that use them;
//! - `approve`: membership changes waiting for the client's approval;
//! - `remove`: removals (`REM`, `REMT`, `REMD`, `OUT`) and members gone;
//! - `leave`: leaving and deleting (`LEFT`, `EMPTY`, `DEL`, `DELD`);
//! - `send`: our group messages and their delivery tracking (`MSG`,
//!   `CATCHUP`);
//! - `receipt`: receipts (`RCVD`, `RCVDS`), sent and received;
//! - `check`: `G_CHECK` rounds;
//! - `dispatch`: a group envelope from a member, checked and handed to the
//!   file that owns its kind.
//!
//! This file: creating a group.

mod add;
mod approve;
mod check;
mod dispatch;
mod join;
mod leave;
mod open;
mod receipt;
mod remove;
mod send;
#[cfg(test)]
pub(crate) mod testing;

use std::collections::{BTreeMap, BTreeSet};

use rand_core::RngCore;
use smp_groups_crypto::ed25519::SigningKey;
use smp_groups_integrity::{GroupIntegrity, MAX_MEMBERS, Timestamp};
use smp_groups_wire::agent::MemberId;

use crate::Agent;
use crate::api::{CommandError, Event};
use crate::state::{Group, GroupStatus, Mid};

impl Agent {
    fn random_bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.rng.fill_bytes(&mut b);
        b
    }

    fn new_group_state(&mut self, id: [u8; 16], me: Mid, info: Vec<u8>) -> Group {
        let signing_seed: [u8; 32] = self.random_bytes();
        let mut config = smp_groups_integrity::Config::new(smp_groups_wire::agent::GroupId(id));
        config.check_interval_ms = self.cfg.check_interval_ms;
        config.check_every_messages = self.cfg.check_every_messages;
        // A member behind another's check gets one check interval to catch
        // up (60 s at most, the integrity default), so a withholding is
        // reported within two rounds however short the interval is.
        if let Some(t) = self.cfg.check_interval_ms {
            config.lag_grace_ms = config.lag_grace_ms.min(t.max(1));
        }
        config.max_members = MAX_MEMBERS;
        config.window = self.cfg.check_window.max(1);
        config.max_held = self.cfg.check_window.max(1);
        let mut integrity =
            GroupIntegrity::new(config, MemberId(me), Timestamp::from_millis(self.now));
        let signing_key = SigningKey::from_seed(signing_seed);
        integrity.set_own_signing_key(signing_key.public_key());
        Group {
            id,
            info,
            me,
            signing_key,
            status: GroupStatus::Active,
            members: BTreeMap::new(),
            integrity,
            next_msg_id: 1,
            sends: BTreeMap::new(),
            ext_to_int: BTreeMap::new(),
            recvs: BTreeMap::new(),
            adds: BTreeMap::new(),
            join: None,
            removals: BTreeMap::new(),
            approvals: BTreeMap::new(),
            open_invs: BTreeMap::new(),
            open_offered: BTreeMap::new(),
            gone: BTreeSet::new(),
            had_members: false,
            history: BTreeMap::new(),
            history_dropped: false,
            direct: crate::direct::DirectBook::default(),
            profiles: crate::profile::Profiles::default(),
            shared: BTreeMap::new(),
            history_seen: BTreeSet::new(),
            members_mismatch: BTreeMap::new(),
            proofs: crate::proof::ProofBook::default(),
        }
    }

    pub(crate) fn active_group(&mut self, alias: &str) -> Result<&mut Group, CommandError> {
        let g = self.group_mut(alias)?;
        if g.status != GroupStatus::Active {
            return Err(CommandError::State("the group is being deleted"));
        }
        Ok(g)
    }

    pub(crate) fn cmd_new_group(
        &mut self,
        alias: Option<String>,
        info: Vec<u8>,
    ) -> Result<Event, CommandError> {
        let alias = self.take_alias(alias, "g")?;
        let id: [u8; 16] = self.random_bytes();
        let me: Mid = self.random_bytes();
        let g = self.new_group_state(id, me, info);
        self.groups.insert(alias.clone(), g);
        self.touch_group(&alias);
        Ok(Event::Ok { alias })
    }
}
