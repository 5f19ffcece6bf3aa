//! nftables over netlink: the whole quarantine table as one `NETLINK_NETFILTER` batch,
//! committed by the kernel as a single transaction, with no `nft` binary on the host.
//!
//! * [`encode`] spells Cordon's table in nf_tables messages, byte for byte what `nft -f`
//!   sends for [`cordon_policy::render::nft::render_apply`] (golden tests pin this);
//! * [`decode`] reads the kernel's dumps back into a normalized listing for `inspect()`;
//! * `socket` moves the bytes.
//!
//! Linux only (the crate leaves this module out elsewhere): the constants come from the
//! `libc` crate's Linux definitions.
//!
//! The socket belongs to the network namespace of the thread that opens it; every method
//! opens a fresh one, so the backend follows the caller's namespace.

pub mod consts;
pub mod decode;
pub mod encode;
mod socket;

use cordon_policy::render::nft;
use cordon_policy::{Policy, TableName};

use std::sync::Mutex;

use crate::{BackendKind, Firewall, FirewallError, Inspection};

/// The netlink backend for one table name.
///
/// It keeps one socket, opened by [`Netlink::probe`] in the caller's network namespace,
/// and every call goes through it. Reuse matters for speed: closing a netfilter socket
/// waits for the kernel to finish releasing the objects of the last transaction (an RCU
/// grace period, 5–20 ms), while the transaction itself takes well under a millisecond.
pub struct Netlink {
    table: TableName,
    conn: Mutex<imp::Conn>,
}

impl Netlink {
    /// Succeeds when a netfilter netlink socket opens and nf_tables answers a request
    /// for the ruleset generation; otherwise says why (no privilege, no nf_tables).
    pub fn probe(table: TableName) -> Result<Self, FirewallError> {
        let conn = imp::probe()?;
        Ok(Netlink {
            table,
            conn: Mutex::new(conn),
        })
    }

    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// Sends a batch built with [`encode`] (with `ack = true` and a sequence number from
    /// [`Netlink::next_seq`]) as one transaction. `apply` is this with the policy's batch;
    /// tests use it to inject faults, benchmarks to time the kernel side alone.
    pub fn send_batch(&self, batch: &encode::EncodedBatch) -> Result<(), FirewallError> {
        imp::with(&self.conn, |c| imp::send_batch(c, batch, "sending a batch"))
    }

    /// A sequence number block for a batch of up to `messages` messages.
    pub fn next_seq(messages: u32) -> u32 {
        imp::next_seq(messages)
    }

    /// The ruleset generation: the kernel bumps it once per committed transaction, so
    /// "after = before + 1" proves an apply was a single commit.
    pub fn generation(&self) -> Result<u32, FirewallError> {
        imp::with(&self.conn, imp::generation)
    }

    /// The exact bytes `apply` sends (with per-message ACK requests), for debugging and
    /// benchmarks of the encoder alone.
    pub fn encode_apply(&self, policy: &Policy) -> Vec<u8> {
        encode::apply_batch(&self.table, policy, 0, true).bytes
    }
}

impl Firewall for Netlink {
    fn kind(&self) -> BackendKind {
        BackendKind::Netlink
    }

    fn render(&self, policy: &Policy) -> Result<String, FirewallError> {
        let batch = encode::apply_batch(&self.table, policy, 0, true);
        Ok(format!(
            "# netlink backend: this nft batch is sent as one NETLINK_NETFILTER transaction\n\
             # ({} messages, {} bytes), encoded natively; no `nft` binary is used.\n{}",
            batch.messages,
            batch.bytes.len(),
            nft::render_apply(&self.table, policy)
        ))
    }

    fn apply(&self, policy: &Policy) -> Result<(), FirewallError> {
        // First apply: create without deleting anything (fast, and no RCU wait when the
        // socket closes). If our table exists, replace it atomically instead.
        let create = encode::create_batch(&self.table, policy, imp::next_seq(1 << 16), true);
        match imp::with(&self.conn, |c| {
            imp::send_batch(c, &create, "creating the quarantine table")
        }) {
            Err(FirewallError::Rejected(msg)) if msg.contains("os error 17") => {
                let batch = encode::apply_batch(&self.table, policy, imp::next_seq(1 << 16), true);
                imp::with(&self.conn, |c| {
                    imp::send_batch(c, &batch, "applying the quarantine table")
                })
            }
            other => other,
        }
    }

    fn remove(&self) -> Result<(), FirewallError> {
        let batch = encode::remove_batch(&self.table, imp::next_seq(8), true);
        imp::with(&self.conn, |c| {
            imp::send_batch(c, &batch, "removing the quarantine table")
        })
    }

    fn inspect(&self) -> Result<Option<Inspection>, FirewallError> {
        imp::with(&self.conn, |c| imp::inspect(c, &self.table))
    }
}

mod imp {
    use std::sync::Mutex;

    use cordon_policy::TableName;

    use super::consts::*;
    use super::socket::{str_attrs, NlError, Socket};
    use super::{decode, encode};
    use crate::{digest, FirewallError, Inspection};

    /// The open socket of a [`super::Netlink`]; `None` after an error, reopened on the
    /// next call.
    pub type Conn = Option<Socket>;

    fn open() -> Result<Socket, FirewallError> {
        Socket::open().map_err(|e| map_err(e, "opening a netfilter netlink socket", None))
    }

    pub fn probe() -> Result<Conn, FirewallError> {
        let mut s = open()?;
        match s.request(NFT_MSG_GETGEN, 0, &[]) {
            Ok(_) => Ok(Some(s)),
            // Any refusal other than "not permitted" means nf_tables cannot serve us here
            // (a kernel without nf_tables answers EINVAL or EOPNOTSUPP for its subsystem).
            Err(NlError::Kernel(e)) if e.errno != libc::EPERM && e.errno != libc::EACCES => {
                Err(FirewallError::Unsupported(format!(
                    "nf_tables did not answer over netlink ({}); is the nf_tables module available? (modprobe nf_tables)",
                    std::io::Error::from_raw_os_error(e.errno)
                )))
            }
            Err(e) => Err(map_err(e, "asking nf_tables for its generation", None)),
        }
    }

    /// Runs `f` on the connection, opening it if needed. After any error the socket is
    /// dropped, so a half-read reply can never be mistaken for the next answer.
    pub fn with<T>(
        conn: &Mutex<Conn>,
        f: impl FnOnce(&mut Socket) -> Result<T, FirewallError>,
    ) -> Result<T, FirewallError> {
        // A panic while holding the lock leaves at worst a socket with unread replies,
        // which the next request skips by sequence number; keep going.
        let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let sock = match guard.as_mut() {
            Some(s) => s,
            None => guard.insert(open()?),
        };
        let r = f(sock);
        if r.is_err() {
            *guard = None;
        }
        r
    }

    pub fn send_batch(s: &mut Socket, batch: &encode::EncodedBatch, ctx: &str) -> Result<(), FirewallError> {
        s.transact(batch).map_err(|e| map_err(e, ctx, Some(batch)))
    }

    pub fn next_seq(messages: u32) -> u32 {
        super::socket::next_seq(messages)
    }

    pub fn inspect(s: &mut Socket, table: &TableName) -> Result<Option<Inspection>, FirewallError> {
        let ctx = "reading back the quarantine table";
        // The dumps are separate requests; if the ruleset changed in between (generation
        // moved, or a set vanished between listing sets and reading its elements), the
        // listing could mix two states, so read again.
        let mut last = None;
        for _ in 0..5 {
            let before = generation(s)?;
            match read_once(s, table.as_str()) {
                Ok(None) => return Ok(None),
                Ok(Some(listing)) => {
                    if generation(s)? == before {
                        return Ok(Some(digest::inspection(listing)));
                    }
                    last = Some(listing);
                }
                Err(NlError::Kernel(e)) if e.errno == libc::ENOENT => continue,
                Err(e) => return Err(map_err(e, ctx, None)),
            }
        }
        // The ruleset keeps changing under us; report the last reading rather than fail.
        Ok(last.map(digest::inspection))
    }

    /// One reading of table `t`: `None` when it does not exist.
    fn read_once(s: &mut Socket, t: &str) -> Result<Option<String>, NlError> {
        let table_dump = match s.request(NFT_MSG_GETTABLE, 0, &str_attrs(&[(NFTA_TABLE_NAME, t)])) {
            Ok(d) => d,
            Err(NlError::Kernel(e)) if e.errno == libc::ENOENT => return Ok(None),
            Err(e) => return Err(e),
        };
        // The kernel filters rule and set dumps by table; chains are filtered in the decoder.
        let chains = s.request(NFT_MSG_GETCHAIN, NLM_F_DUMP, &str_attrs(&[(NFTA_CHAIN_TABLE, t)]))?;
        let sets = s.request(NFT_MSG_GETSET, NLM_F_DUMP, &str_attrs(&[(NFTA_SET_TABLE, t)]))?;
        let mut elements = Vec::new();
        for m in decode::data_msgs(&sets)? {
            let info = decode::set(&m)?;
            if info.table != t {
                continue;
            }
            let attrs = str_attrs(&[(NFTA_SET_ELEM_LIST_TABLE, t), (NFTA_SET_ELEM_LIST_SET, &info.name)]);
            elements.extend(s.request(NFT_MSG_GETSETELEM, NLM_F_DUMP, &attrs)?);
        }
        let rules = s.request(NFT_MSG_GETRULE, NLM_F_DUMP, &str_attrs(&[(NFTA_RULE_TABLE, t)]))?;
        let dumps = decode::Dumps {
            table: table_dump,
            chains,
            sets,
            elements,
            rules,
        };
        Ok(Some(decode::listing(t, &dumps)?))
    }

    pub fn generation(s: &mut Socket) -> Result<u32, FirewallError> {
        let ctx = "asking nf_tables for its generation";
        let reply = s.request(NFT_MSG_GETGEN, 0, &[]).map_err(|e| map_err(e, ctx, None))?;
        let msgs = decode::data_msgs(&reply).map_err(|e| decode_err(e, ctx))?;
        let m = msgs
            .first()
            .ok_or_else(|| FirewallError::Rejected(format!("{ctx}: empty reply")))?;
        decode::gen_id(m).map_err(|e| decode_err(e, ctx))
    }

    fn decode_err(e: decode::DecodeError, ctx: &str) -> FirewallError {
        FirewallError::Rejected(format!("{ctx}: {e}"))
    }

    /// Names the message of a batch an error refers to, so the message says which object
    /// the kernel refused.
    fn which(batch: &encode::EncodedBatch, seq: u32) -> String {
        let idx = seq.wrapping_sub(batch.first_seq);
        if idx >= batch.messages {
            return "the batch as a whole".into();
        }
        // Walk the batch: skip BEGIN, then count messages.
        let Ok(msgs) = decode::messages(&batch.bytes) else {
            return format!("message {idx}");
        };
        let Some(m) = msgs.get(idx as usize + 1) else {
            return format!("message {idx}");
        };
        let kind = match m.ty & 0xff {
            NFT_MSG_NEWTABLE => "creating the table",
            NFT_MSG_DELTABLE => "deleting the old table",
            NFT_MSG_NEWCHAIN => "creating a chain",
            NFT_MSG_NEWSET => "creating a set",
            NFT_MSG_NEWSETELEM => "adding set elements",
            NFT_MSG_NEWRULE => "adding a rule",
            _ => "a batch message",
        };
        format!("message {idx} ({kind})")
    }

    fn map_err(e: NlError, ctx: &str, batch: Option<&encode::EncodedBatch>) -> FirewallError {
        let errno = e.errno();
        let detail = match &e {
            NlError::Io { context, err } => format!("{context}: {err}"),
            NlError::Kernel(k) => {
                let what = batch.map(|b| format!(" at {}", which(b, k.seq))).unwrap_or_default();
                let text = k.text.as_ref().map(|t| format!(" ({t})")).unwrap_or_default();
                format!(
                    "nf_tables refused{what}: {}{text}",
                    std::io::Error::from_raw_os_error(k.errno)
                )
            }
            NlError::Decode(d) => d.to_string(),
        };
        match errno {
            Some(libc::EPERM) | Some(libc::EACCES) => FirewallError::NotPermitted(format!(
                "{ctx}: {detail}; nf_tables needs root (CAP_NET_ADMIN in this network namespace)"
            )),
            Some(libc::EPROTONOSUPPORT) | Some(libc::EAFNOSUPPORT) => FirewallError::Unsupported(format!(
                "{ctx}: {detail}; this kernel has no netfilter netlink support (CONFIG_NETFILTER_NETLINK)"
            )),
            Some(libc::EOPNOTSUPP) => FirewallError::Unsupported(format!(
                "{ctx}: {detail}; nf_tables or one of its modules is missing (modprobe nf_tables)"
            )),
            Some(libc::ENOENT) if batch.is_none() => FirewallError::Unsupported(format!(
                "{ctx}: {detail}; nf_tables is not available in this kernel (modprobe nf_tables)"
            )),
            Some(libc::ENOENT) => FirewallError::Rejected(format!(
                "{ctx}: {detail}; an object or kernel module it needs is missing (nf_tables expression modules such as nft_ct, nft_meta?); nothing was changed"
            )),
            _ => match e {
                NlError::Io { err, .. } => FirewallError::Io { context: format!("{ctx}: {detail}"), source: err },
                _ => FirewallError::Rejected(format!("{ctx}: {detail}; nothing was changed")),
            },
        }
    }
}
