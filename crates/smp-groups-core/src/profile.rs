//! The group's information (`gInfo`) and the members' profiles, and their
//! updates (`GINFO`, `PROFILE`).
//!
//! Any member may replace the group's information; each member may replace
//! its own profile. An update goes to every member we have a connection with
//! (pending ones included: it waits in the connection's outbox). Concurrent
//! updates converge by last writer wins:
//!
//! * the group information held is the one with the greatest stamp
//!   `(ts, author)`, the author's clock in milliseconds then its member id
//!   (no stamp, the value from `NEW` or `GROUP`, is below every stamp);
//! * a member's profile held is the one with the greatest `(ts, bytes)`; a
//!   profile from a `memberInfo` (no stamp) is taken only while no `PROFILE`
//!   of that member was.
//!
//! Our own stamps are `max(now, held + 1)`, so an update made after seeing
//! another wins over it even when our clock is behind. An update equal to
//! the one held is a duplicate, an older one lost the race: both are counted
//! and dropped. A member joining later is sent the current values: when a
//! connection with a member completes and our own join is done, we send it
//! our stamped group information (if it was ever updated) and our profile
//! (if we ever set it), as `docs/groups.md` explains.
//!
//! What is held survives a restart: the stamps and our own profile in one
//! record per group ([`Key::Profiles`]), the values in the group and member
//! records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use smp_groups_wire::agent::{
    AMessage, GroupEnvelope, GroupInfo, MAX_GROUP_INFO_LEN, MAX_PROFILE_LEN, MemberId, Profile,
};

use crate::Agent;
use crate::api::{CommandError, Event};
use crate::fault::{At, FaultKind, FaultSource};
use crate::state::{Mid, Note};
use crate::store::Key;

/// What one group holds about its information's and profiles' updates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Profiles {
    /// The stamp `(ts, author)` of the group information held; `None` while
    /// it is the one the group started with.
    pub(crate) info_stamp: Option<(u64, Mid)>,
    /// Our own profile in the group.
    #[serde(with = "crate::serde_bytes")]
    pub(crate) mine: Vec<u8>,
    /// When we last set it (0: never).
    pub(crate) mine_ts: u64,
    /// The stamp of each member's profile held, once a `PROFILE` of it was.
    pub(crate) stamps: BTreeMap<Mid, u64>,
}

impl Agent {
    /// `G:g INFO gInfo`: replace the group's information for every member.
    pub(crate) fn cmd_set_info(
        &mut self,
        group: &str,
        info: Vec<u8>,
    ) -> Result<Event, CommandError> {
        if info.len() > MAX_GROUP_INFO_LEN {
            return Err(CommandError::TooLarge {
                len: info.len(),
                max: MAX_GROUP_INFO_LEN,
            });
        }
        let wire =
            GroupInfo::new(info.clone()).map_err(|e| CommandError::Internal(e.to_string()))?;
        let now = self.now;
        let g = self.active_group(group)?;
        let held = g.profiles.info_stamp.map_or(0, |(ts, _)| ts);
        let ts = now.max(held.saturating_add(1));
        g.profiles.info_stamp = Some((ts, g.me));
        g.info = info;
        let env = GroupEnvelope::Info {
            ts,
            author: MemberId(g.me),
            info: wire,
        };
        self.broadcast(group, &env);
        self.touch_profiles(group);
        Ok(Event::Ok {
            alias: group.to_owned(),
        })
    }

    /// `G:g PROFILE profile`: replace our own profile for every member.
    pub(crate) fn cmd_set_profile(
        &mut self,
        group: &str,
        profile: Vec<u8>,
    ) -> Result<Event, CommandError> {
        if profile.len() > MAX_PROFILE_LEN {
            return Err(CommandError::TooLarge {
                len: profile.len(),
                max: MAX_PROFILE_LEN,
            });
        }
        let wire =
            Profile::new(profile.clone()).map_err(|e| CommandError::Internal(e.to_string()))?;
        let now = self.now;
        let g = self.active_group(group)?;
        let ts = now.max(g.profiles.mine_ts.saturating_add(1));
        g.profiles.mine_ts = ts;
        g.profiles.mine = profile;
        self.broadcast(group, &GroupEnvelope::Profile { ts, profile: wire });
        self.touch_profiles(group);
        Ok(Event::Ok {
            alias: group.to_owned(),
        })
    }

    /// `GINFO` from `sender`: take it if its stamp is the greatest.
    pub(crate) fn on_info(&mut self, group: &str, sender: Mid, stamp: (u64, Mid), info: GroupInfo) {
        let at = At::member(group, Some(sender), None);
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        if stamp.1 == g.me {
            // Our own updates are never sent back to us: a forgery.
            self.refuse(
                FaultSource::Peer,
                FaultKind::Unexpected,
                at,
                &"GINFO naming us as its author",
            );
            return;
        }
        match g.profiles.info_stamp {
            Some(held) if held == stamp => {
                self.refuse(
                    FaultSource::Nobody,
                    FaultKind::Duplicate,
                    at,
                    &format!("GINFO at {} already held", stamp.0),
                );
            }
            Some(held) if held > stamp => {
                self.refuse(
                    FaultSource::Nobody,
                    FaultKind::Stale,
                    at,
                    &format!("GINFO at {} older than the one held ({})", stamp.0, held.0),
                );
            }
            _ => {
                g.profiles.info_stamp = Some(stamp);
                g.info = info.into_vec();
                let info = g.info.clone();
                self.touch_profiles(group);
                self.event(Event::GroupInfo {
                    group: group.to_owned(),
                    member: MemberId(stamp.1),
                    info,
                });
            }
        }
    }

    /// `PROFILE` from `sender`: its own profile, taken if its stamp is the
    /// greatest.
    pub(crate) fn on_profile(&mut self, group: &str, sender: Mid, ts: u64, profile: Profile) {
        let at = At::member(group, Some(sender), None);
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let Some(m) = g.members.get(&sender) else {
            self.refuse(
                FaultSource::Nobody,
                FaultKind::Stale,
                at,
                &"PROFILE from a member we no longer hold",
            );
            return;
        };
        let new = (ts, profile.as_slice());
        let order = g
            .profiles
            .stamps
            .get(&sender)
            .map(|t| (*t, m.profile.as_slice()).cmp(&new));
        match order {
            Some(std::cmp::Ordering::Equal) => {
                self.refuse(
                    FaultSource::Nobody,
                    FaultKind::Duplicate,
                    at,
                    &format!("PROFILE at {ts} already held"),
                );
            }
            Some(std::cmp::Ordering::Greater) => {
                self.refuse(
                    FaultSource::Nobody,
                    FaultKind::Stale,
                    at,
                    &format!("PROFILE at {ts} older than the one held"),
                );
            }
            _ => {
                let profile = profile.into_vec();
                // The same bytes as held (from its member information, shown
                // with its `CON`): only the stamp is new, nothing to report.
                let changed = m.profile != profile;
                if let Some(m) = g.members.get_mut(&sender) {
                    m.profile.clone_from(&profile);
                }
                g.profiles.stamps.insert(sender, ts);
                self.touch_profiles(group);
                if changed {
                    self.event(Event::MemberProfile {
                        group: group.to_owned(),
                        member: MemberId(sender),
                        profile,
                    });
                }
            }
        }
    }

    /// The connection with `member` just completed: report its profile if
    /// it has one, and, if our own join is done, send it our stamped group
    /// information and our profile (a member joining later gets the current
    /// values even if an update crossed its introduction).
    pub(crate) fn profiles_on_connect(&mut self, group: &str, member: Mid, conn: u64) {
        let Some(g) = self.groups.get(group) else {
            return;
        };
        let profile = g
            .members
            .get(&member)
            .map(|m| m.profile.clone())
            .unwrap_or_default();
        let mut envs = Vec::new();
        if !g.joining() {
            if let Some((ts, author)) = g.profiles.info_stamp
                && let Ok(info) = GroupInfo::new(g.info.clone())
            {
                envs.push(GroupEnvelope::Info {
                    ts,
                    author: MemberId(author),
                    info,
                });
            }
            if g.profiles.mine_ts > 0
                && let Ok(profile) = Profile::new(g.profiles.mine.clone())
            {
                envs.push(GroupEnvelope::Profile {
                    ts: g.profiles.mine_ts,
                    profile,
                });
            }
        }
        if !profile.is_empty() {
            self.event(Event::MemberProfile {
                group: group.to_owned(),
                member: MemberId(member),
                profile,
            });
        }
        for env in envs {
            self.enqueue(conn, &AMessage::Group(env), Note::None);
        }
    }

    /// Sends `env` to every member we have a connection with.
    fn broadcast(&mut self, group: &str, env: &GroupEnvelope) {
        let conns: Vec<u64> = self
            .groups
            .get(group)
            .map(|g| {
                g.members
                    .iter()
                    .filter(|(id, _)| !g.gone.contains(*id))
                    .filter_map(|(_, m)| m.conn)
                    .collect()
            })
            .unwrap_or_default();
        let msg = AMessage::Group(env.clone());
        for c in conns {
            if self.conns.get(&c).is_some_and(|c| c.peer_gone_at.is_none()) {
                self.enqueue(c, &msg, Note::None);
            }
        }
    }

    /// The group's profile record and its group record are to be written.
    fn touch_profiles(&mut self, group: &str) {
        self.touch_group(group);
        self.dirty.insert(Key::Profiles(group.to_owned()));
    }
}

impl Agent {
    /// The group's information as held now (the last writer's), if the
    /// group exists.
    pub fn group_info(&self, group: &str) -> Option<&[u8]> {
        self.groups.get(group).map(|g| g.info.as_slice())
    }

    /// Our own profile in the group (empty until set), if the group exists.
    pub fn own_profile(&self, group: &str) -> Option<&[u8]> {
        self.groups.get(group).map(|g| g.profiles.mine.as_slice())
    }

    /// The profile held for `member` of the group, if it is a member.
    pub fn member_profile(&self, group: &str, member: MemberId) -> Option<&[u8]> {
        self.groups
            .get(group)?
            .members
            .get(&member.0)
            .map(|m| m.profile.as_slice())
    }
}
