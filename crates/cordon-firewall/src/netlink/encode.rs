//! The nf_tables message encoder: the only place that knows how Cordon's table is spelled
//! in netlink bytes.
//!
//! The output mirrors what `nft -f` (nftables 1.0.x) sends for the text of
//! [`cordon_policy::render::nft::render_apply`], message for message and attribute for
//! attribute, so that `nft list table` shows a netlink-built table exactly like an
//! `nft`-built one (same expressions, same set user data). The golden tests at the bottom
//! compare whole batches byte for byte against captures of `nft` itself (see
//! `golden/capture.sh`).

use std::net::{IpAddr, SocketAddr};

use cordon_policy::model::Family;
use cordon_policy::render::nft::{CHAIN_PRIORITY, SET_NET4, SET_NET6, SET_TCP4, SET_TCP6, SET_UDP4, SET_UDP6};
use cordon_policy::render::{DHCP4_PORTS, DHCP6_PORTS, ICMPV6_ND_TYPES};
use cordon_policy::{Policy, TableName};
use ipnet::IpNet;

use super::consts::*;

/// Elements per NEWSETELEM message are capped so the nested element list stays well below
/// the 64 KiB limit of a netlink attribute length (u16).
const MAX_ELEMENTS_BYTES: usize = 32 * 1024;

/// One encoded batch and what its replies will look like.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    pub bytes: Vec<u8>,
    /// Sequence number of the first message inside BEGIN … END.
    pub first_seq: u32,
    /// Number of messages inside BEGIN … END (each gets one ACK when `ack` was set).
    pub messages: u32,
}

/// Builds one `NFNL_MSG_BATCH_BEGIN` … `NFNL_MSG_BATCH_END` batch.
pub struct Batch {
    buf: Vec<u8>,
    seq: u32,
    first_seq: u32,
    ack: bool,
    messages: u32,
    /// Set ids are batch-local handles that let later messages (elements, lookups) refer
    /// to a set created in the same, not yet committed, transaction.
    next_set_id: u32,
}

impl Batch {
    /// `seq` numbers the BEGIN message; `ack` asks the kernel to acknowledge every message
    /// (nft does not, so goldens are captured with `ack = false`).
    pub fn new(seq: u32, ack: bool) -> Batch {
        let mut b = Batch {
            buf: Vec::with_capacity(8192),
            seq,
            first_seq: seq.wrapping_add(1),
            ack,
            messages: 0,
            next_set_id: 1,
        };
        b.batch_marker(NFNL_MSG_BATCH_BEGIN);
        b
    }

    pub fn finish(mut self) -> EncodedBatch {
        self.batch_marker(NFNL_MSG_BATCH_END);
        EncodedBatch {
            bytes: self.buf,
            first_seq: self.first_seq,
            messages: self.messages,
        }
    }

    fn batch_marker(&mut self, ty: u16) {
        let start = self.header(ty, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        self.end_msg(start);
    }

    /// Writes nlmsghdr + nfgenmsg; returns the message start for [`Batch::end_msg`].
    fn header(&mut self, ty: u16, flags: u16, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in end_msg
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
        self.buf.push(family);
        self.buf.push(NFNETLINK_V0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
        start
    }

    fn begin(&mut self, msg: u16, flags: u16) -> usize {
        let flags = if self.ack { flags | NLM_F_ACK } else { flags };
        self.messages += 1;
        self.header(
            (u16::from(NFNL_SUBSYS_NFTABLES_ID) << 8) | msg,
            NLM_F_REQUEST | flags,
            NFPROTO_INET,
            0,
        )
    }

    fn end_msg(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    // ---- objects -------------------------------------------------------------------

    /// NFT_MSG_NEWTABLE without NLM_F_EXCL: succeeds whether or not the table exists.
    pub fn new_table(&mut self, table: &str) {
        let m = self.begin(NFT_MSG_NEWTABLE, 0);
        put_str(&mut self.buf, NFTA_TABLE_NAME, table);
        put_u32(&mut self.buf, NFTA_TABLE_FLAGS, 0);
        self.end_msg(m);
    }

    /// NFT_MSG_NEWTABLE with NLM_F_EXCL: fails with EEXIST when the table exists, so a
    /// first apply needs no delete (a delete costs an RCU grace period on socket close).
    pub fn create_table(&mut self, table: &str) {
        let m = self.begin(NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL);
        put_str(&mut self.buf, NFTA_TABLE_NAME, table);
        put_u32(&mut self.buf, NFTA_TABLE_FLAGS, 0);
        self.end_msg(m);
    }

    pub fn del_table(&mut self, table: &str) {
        let m = self.begin(NFT_MSG_DELTABLE, 0);
        put_str(&mut self.buf, NFTA_TABLE_NAME, table);
        self.end_msg(m);
    }

    /// A filter base chain with policy drop.
    pub fn new_base_chain(&mut self, table: &str, chain: &str, hook: u32, priority: i32) {
        let m = self.begin(NFT_MSG_NEWCHAIN, NLM_F_CREATE);
        put_str(&mut self.buf, NFTA_CHAIN_TABLE, table);
        put_str(&mut self.buf, NFTA_CHAIN_NAME, chain);
        put_str(&mut self.buf, NFTA_CHAIN_TYPE, "filter");
        put_u32(&mut self.buf, NFTA_CHAIN_POLICY, NF_DROP);
        let n = nest(&mut self.buf, NFTA_CHAIN_HOOK);
        put_u32(&mut self.buf, NFTA_HOOK_HOOKNUM, hook);
        // The kernel reads the priority as a big-endian s32; the bit pattern is what counts.
        put_u32(&mut self.buf, NFTA_HOOK_PRIORITY, priority as u32);
        nest_end(&mut self.buf, n);
        self.end_msg(m);
    }

    /// NFT_MSG_NEWSET; returns the batch-local set id.
    pub fn new_set(&mut self, table: &str, set: &SetSpec<'_>) -> u32 {
        let id = self.next_set_id;
        self.next_set_id += 1;
        let m = self.begin(NFT_MSG_NEWSET, NLM_F_CREATE);
        put_str(&mut self.buf, NFTA_SET_TABLE, table);
        put_str(&mut self.buf, NFTA_SET_NAME, set.name);
        put_u32(&mut self.buf, NFTA_SET_FLAGS, set.flags);
        put_u32(&mut self.buf, NFTA_SET_KEY_TYPE, set.key_type);
        put_u32(&mut self.buf, NFTA_SET_KEY_LEN, set.key_len);
        put_u32(&mut self.buf, NFTA_SET_ID, id);
        if let Some(size) = set.size {
            let n = nest(&mut self.buf, NFTA_SET_DESC);
            put_u32(&mut self.buf, NFTA_SET_DESC_SIZE, size);
            nest_end(&mut self.buf, n);
        }
        put(&mut self.buf, NFTA_SET_USERDATA, set.userdata);
        self.end_msg(m);
        id
    }

    /// NFT_MSG_NEWSETELEM messages for `elems` (none when empty, as nft does).
    pub fn new_elements(&mut self, table: &str, set: &str, set_id: u32, elems: &[Element]) {
        let mut rest = elems;
        while !rest.is_empty() {
            let m = self.begin(NFT_MSG_NEWSETELEM, NLM_F_CREATE);
            put_str(&mut self.buf, NFTA_SET_ELEM_LIST_TABLE, table);
            put_str(&mut self.buf, NFTA_SET_ELEM_LIST_SET, set);
            put_u32(&mut self.buf, NFTA_SET_ELEM_LIST_SET_ID, set_id);
            let list = nest(&mut self.buf, NFTA_SET_ELEM_LIST_ELEMENTS);
            let list_start = self.buf.len();
            let mut taken = 0;
            for (i, e) in rest.iter().enumerate() {
                if taken > 0 && self.buf.len() - list_start > MAX_ELEMENTS_BYTES {
                    break;
                }
                let n = nest(&mut self.buf, attr_index(i));
                if e.interval_end {
                    put_u32(&mut self.buf, NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
                }
                let k = nest(&mut self.buf, NFTA_SET_ELEM_KEY);
                put(&mut self.buf, NFTA_DATA_VALUE, &e.key);
                nest_end(&mut self.buf, k);
                if e.open_end {
                    // NFTNL_UDATA_SET_ELEM_FLAGS = NFTNL_SET_ELEM_F_INTERVAL_OPEN: tells nft
                    // that this interval runs to the top of the address space.
                    put(&mut self.buf, NFTA_SET_ELEM_USERDATA, &[1, 4, 1, 0, 0, 0]);
                }
                nest_end(&mut self.buf, n);
                taken += 1;
            }
            nest_end(&mut self.buf, list);
            self.end_msg(m);
            rest = &rest[taken..];
        }
    }

    /// NFT_MSG_NEWRULE appended to `chain`.
    pub fn new_rule(&mut self, table: &str, chain: &str, exprs: &[Expr<'_>]) {
        let m = self.begin(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
        put_str(&mut self.buf, NFTA_RULE_TABLE, table);
        put_str(&mut self.buf, NFTA_RULE_CHAIN, chain);
        let list = nest(&mut self.buf, NFTA_RULE_EXPRESSIONS);
        for e in exprs {
            encode_expr(&mut self.buf, e);
        }
        nest_end(&mut self.buf, list);
        self.end_msg(m);
    }
}

/// nft numbers list members 1, 2, 3 … in set element lists (the kernel ignores the type).
fn attr_index(i: usize) -> u16 {
    // Truncation is harmless: the kernel does not look at the type of list members.
    ((i + 1) & 0x7fff) as u16
}

/// Describes one NEWSET.
pub struct SetSpec<'a> {
    pub name: &'a str,
    pub flags: u32,
    pub key_type: u32,
    pub key_len: u32,
    /// NFTA_SET_DESC_SIZE, only for anonymous sets.
    pub size: Option<u32>,
    /// nft's user data (key byte order and `typeof` description) that `nft list` uses to
    /// print the set; copied from what nft sends.
    pub userdata: &'a [u8],
}

/// One set element as sent to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub key: Vec<u8>,
    pub interval_end: bool,
    pub open_end: bool,
}

impl Element {
    pub fn key(key: Vec<u8>) -> Element {
        Element {
            key,
            interval_end: false,
            open_end: false,
        }
    }
}

/// The expressions Cordon's rules use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr<'a> {
    Meta {
        key: u32,
        dreg: u32,
    },
    Cmp {
        sreg: u32,
        op: u32,
        data: Vec<u8>,
    },
    Payload {
        dreg: u32,
        base: u32,
        offset: u32,
        len: u32,
    },
    Lookup {
        sreg: u32,
        set: &'a str,
        set_id: u32,
    },
    Ct {
        key: u32,
        dreg: u32,
    },
    /// `op` is NFTA_BITWISE_OP, which nft sends for some bitwise expressions (tcp flags)
    /// and not others (ct state); `None` leaves it out, as nft does there.
    Bitwise {
        sreg: u32,
        dreg: u32,
        op: Option<u32>,
        len: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    Verdict {
        code: u32,
    },
}

/// Encodes one expression as a NFTA_LIST_ELEM of NFTA_RULE_EXPRESSIONS.
pub fn encode_expr(buf: &mut Vec<u8>, e: &Expr<'_>) {
    let elem = nest(buf, NFTA_LIST_ELEM);
    let name = match e {
        Expr::Meta { .. } => "meta",
        Expr::Cmp { .. } => "cmp",
        Expr::Payload { .. } => "payload",
        Expr::Lookup { .. } => "lookup",
        Expr::Ct { .. } => "ct",
        Expr::Bitwise { .. } => "bitwise",
        Expr::Verdict { .. } => "immediate",
    };
    put_str(buf, NFTA_EXPR_NAME, name);
    let data = nest(buf, NFTA_EXPR_DATA);
    // Attribute order follows libnftnl's, so the bytes equal nft's.
    match e {
        Expr::Meta { key, dreg } => {
            put_u32(buf, NFTA_META_KEY, *key);
            put_u32(buf, NFTA_META_DREG, *dreg);
        }
        Expr::Cmp { sreg, op, data } => {
            put_u32(buf, NFTA_CMP_SREG, *sreg);
            put_u32(buf, NFTA_CMP_OP, *op);
            put_data_value(buf, NFTA_CMP_DATA, data);
        }
        Expr::Payload {
            dreg,
            base,
            offset,
            len,
        } => {
            put_u32(buf, NFTA_PAYLOAD_DREG, *dreg);
            put_u32(buf, NFTA_PAYLOAD_BASE, *base);
            put_u32(buf, NFTA_PAYLOAD_OFFSET, *offset);
            put_u32(buf, NFTA_PAYLOAD_LEN, *len);
        }
        Expr::Lookup { sreg, set, set_id } => {
            put_u32(buf, NFTA_LOOKUP_SREG, *sreg);
            put_str(buf, NFTA_LOOKUP_SET, set);
            put_u32(buf, NFTA_LOOKUP_SET_ID, *set_id);
        }
        Expr::Ct { key, dreg } => {
            put_u32(buf, NFTA_CT_KEY, *key);
            put_u32(buf, NFTA_CT_DREG, *dreg);
        }
        Expr::Bitwise {
            sreg,
            dreg,
            op,
            len,
            mask,
            xor,
        } => {
            put_u32(buf, NFTA_BITWISE_SREG, *sreg);
            put_u32(buf, NFTA_BITWISE_DREG, *dreg);
            if let Some(op) = op {
                put_u32(buf, NFTA_BITWISE_OP, *op);
            }
            put_u32(buf, NFTA_BITWISE_LEN, *len);
            put_data_value(buf, NFTA_BITWISE_MASK, mask);
            put_data_value(buf, NFTA_BITWISE_XOR, xor);
        }
        Expr::Verdict { code } => {
            put_u32(buf, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
            let d = nest(buf, NFTA_IMMEDIATE_DATA);
            let v = nest(buf, NFTA_DATA_VERDICT);
            put_u32(buf, NFTA_VERDICT_CODE, *code);
            nest_end(buf, v);
            nest_end(buf, d);
        }
    }
    nest_end(buf, data);
    nest_end(buf, elem);
}

// ---- attribute primitives --------------------------------------------------------------

fn put(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    // Attribute payloads here are at most a few hundred bytes (element lists are split
    // well below u16::MAX), so the length fits.
    let len = (4 + data.len()) as u16;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(data);
    pad(buf);
}

fn pad(buf: &mut Vec<u8>) {
    while buf.len() & 3 != 0 {
        buf.push(0);
    }
}

/// nf_tables integers are big endian on the wire.
fn put_u32(buf: &mut Vec<u8>, ty: u16, v: u32) {
    put(buf, ty, &v.to_be_bytes());
}

fn put_str(buf: &mut Vec<u8>, ty: u16, s: &str) {
    let len = (4 + s.len() + 1) as u16;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
    pad(buf);
}

fn put_data_value(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    let n = nest(buf, ty);
    put(buf, NFTA_DATA_VALUE, data);
    nest_end(buf, n);
}

fn nest(buf: &mut Vec<u8>, ty: u16) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    start
}

fn nest_end(buf: &mut [u8], start: usize) {
    // A nest longer than u16::MAX would be malformed; element lists are capped far below.
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
}

// ---- Cordon's table ----------------------------------------------------------------------

/// nft's set user data, captured from nft 1.0.x: key byte order (0 for concatenations,
/// 2 = big endian for addresses) and, for concatenations and the ICMPv6 type set, the
/// `typeof` description nft uses to print the key.
const UDATA_CONCAT: &[u8] = &[
    0x00, 0x04, 0, 0, 0, 0, 0x03, 0x08, 0x00, 0x04, 0x0d, 0, 0, 0, 0x01, 0x00,
];
const UDATA_ADDR: &[u8] = &[0x00, 0x04, 0x02, 0, 0, 0];
const UDATA_ICMPV6_TYPE: &[u8] = &[
    0x00, 0x04, 0x02, 0, 0, 0, 0x03, 0x14, 0x00, 0x04, 0x07, 0, 0, 0, 0x01, 0x0c, 0x00, 0x04, 0x0e, 0, 0, 0, 0x01,
    0x04, 0x01, 0, 0, 0,
];

/// Concatenated data types: nft packs each component's type in 6 bits.
const KEY_IPV4_SERVICE: u32 = (TYPE_IPADDR << 6) | TYPE_INET_SERVICE;
const KEY_IPV6_SERVICE: u32 = (TYPE_IP6ADDR << 6) | TYPE_INET_SERVICE;

/// Direction of a peer rule: the input chain matches the peer as source, output as
/// destination.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    In,
    Out,
}

/// The batch that replaces our table with one enforcing `policy`: `add table; delete
/// table; table { … }`, exactly like `nft -f` of `render_apply`.
pub fn apply_batch(table: &TableName, policy: &Policy, seq: u32, ack: bool) -> EncodedBatch {
    apply_batch_then(table, policy, seq, ack, |_| {})
}

/// [`apply_batch`] with `extra` messages appended just before the commit; tests use it to
/// inject a failure at the very end of an otherwise valid transaction.
pub fn apply_batch_then(
    table: &TableName,
    policy: &Policy,
    seq: u32,
    ack: bool,
    extra: impl FnOnce(&mut Batch),
) -> EncodedBatch {
    build_batch(table, policy, seq, ack, false, extra)
}

/// The batch for a first apply (`create table; table { … }`, like
/// `cordon_policy::render::nft::render_create`): refused with EEXIST if our table exists.
pub fn create_batch(table: &TableName, policy: &Policy, seq: u32, ack: bool) -> EncodedBatch {
    build_batch(table, policy, seq, ack, true, |_| {})
}

fn build_batch(
    table: &TableName,
    policy: &Policy,
    seq: u32,
    ack: bool,
    create_only: bool,
    extra: impl FnOnce(&mut Batch),
) -> EncodedBatch {
    let t = table.as_str();
    let mut b = Batch::new(seq, ack);
    if create_only {
        b.create_table(t);
    } else {
        b.new_table(t);
        b.del_table(t);
        b.new_table(t);
    }
    b.new_base_chain(t, "input", NF_INET_LOCAL_IN, CHAIN_PRIORITY);
    b.new_base_chain(t, "output", NF_INET_LOCAL_OUT, CHAIN_PRIORITY);
    b.new_base_chain(t, "forward", NF_INET_FORWARD, CHAIN_PRIORITY);

    let pair = |name, key_type, key_len| SetSpec {
        name,
        flags: 0,
        key_type,
        key_len,
        size: None,
        userdata: UDATA_CONCAT,
    };
    let net = |name, key_type, key_len| SetSpec {
        name,
        flags: NFT_SET_INTERVAL,
        key_type,
        key_len,
        size: None,
        userdata: UDATA_ADDR,
    };
    let sets = [
        (
            pair(SET_TCP4, KEY_IPV4_SERVICE, 8),
            pair_elements(&policy.tcp_destinations(Family::V4)),
        ),
        (
            pair(SET_TCP6, KEY_IPV6_SERVICE, 20),
            pair_elements(&policy.tcp_destinations(Family::V6)),
        ),
        (
            pair(SET_UDP4, KEY_IPV4_SERVICE, 8),
            pair_elements(&policy.udp_destinations(Family::V4)),
        ),
        (
            pair(SET_UDP6, KEY_IPV6_SERVICE, 20),
            pair_elements(&policy.udp_destinations(Family::V6)),
        ),
        (
            net(SET_NET4, TYPE_IPADDR, 4),
            interval_elements(&policy.open_networks(Family::V4), 4),
        ),
        (
            net(SET_NET6, TYPE_IP6ADDR, 16),
            interval_elements(&policy.open_networks(Family::V6), 16),
        ),
    ];
    let mut ids = [0u32; 6];
    for (i, (spec, elems)) in sets.iter().enumerate() {
        ids[i] = b.new_set(t, spec);
        b.new_elements(t, spec.name, ids[i], elems);
    }
    let [tcp4, tcp6, udp4, udp6, net4, net6] = ids;

    for (chain, dir) in [("input", Dir::In), ("output", Dir::Out)] {
        let lo_key = if dir == Dir::In { NFT_META_IIF } else { NFT_META_OIF };
        // The loopback device is ifindex 1 in every network namespace; nft resolves
        // `iif "lo"` to that index too.
        b.new_rule(t, chain, &[meta(lo_key), cmp_eq(1u32.to_ne_bytes().to_vec()), accept()]);
        let peers = [
            (NFPROTO_IPV4, (SET_TCP4, tcp4), (SET_UDP4, udp4), (SET_NET4, net4)),
            (NFPROTO_IPV6, (SET_TCP6, tcp6), (SET_UDP6, udp6), (SET_NET6, net6)),
        ];
        for (nfproto, tcp, udp, net) in peers {
            for (l4, (set, id)) in [(IPPROTO_TCP, tcp), (IPPROTO_UDP, udp)] {
                let mut r = vec![
                    meta(NFT_META_NFPROTO),
                    cmp_eq(vec![nfproto]),
                    meta(NFT_META_L4PROTO),
                    cmp_eq(vec![l4]),
                ];
                r.push(addr_load(nfproto, dir));
                // Concatenation: the port goes into the 32-bit register right after the
                // address (reg 9 after a 4-byte address in reg 1, reg 2 after 16 bytes).
                let port_reg = if nfproto == NFPROTO_IPV4 {
                    NFT_REG32_01
                } else {
                    NFT_REG_2
                };
                let port_off = if dir == Dir::In { 0 } else { 2 };
                r.push(Expr::Payload {
                    dreg: port_reg,
                    base: NFT_PAYLOAD_TRANSPORT_HEADER,
                    offset: port_off,
                    len: 2,
                });
                r.push(Expr::Lookup {
                    sreg: NFT_REG_1,
                    set,
                    set_id: id,
                });
                if dir == Dir::In && l4 == IPPROTO_TCP {
                    // `tcp flags & (fin|syn|rst|ack) != syn`, not conntrack: see
                    // cordon_policy::render::nft::TCP_NOT_SYN.
                    r.extend(tcp_not_syn());
                    r.push(accept());
                } else {
                    finish_peer_rule(&mut r, dir);
                }
                b.new_rule(t, chain, &r);
            }
            let lookup_net = |r: &mut Vec<Expr<'_>>| {
                r.extend([meta(NFT_META_NFPROTO), cmp_eq(vec![nfproto]), addr_load(nfproto, dir)]);
                r.push(Expr::Lookup {
                    sreg: NFT_REG_1,
                    set: net.0,
                    set_id: net.1,
                });
            };
            let mut r = Vec::new();
            lookup_net(&mut r);
            finish_peer_rule(&mut r, dir);
            b.new_rule(t, chain, &r);
            if dir == Dir::In {
                let mut r = Vec::new();
                lookup_net(&mut r);
                r.extend([meta(NFT_META_L4PROTO), cmp_eq(vec![IPPROTO_TCP])]);
                r.extend(tcp_not_syn());
                r.push(accept());
                b.new_rule(t, chain, &r);
            }
        }
        if policy.dhcp {
            for (nfproto, (client, server)) in [(NFPROTO_IPV4, DHCP4_PORTS), (NFPROTO_IPV6, DHCP6_PORTS)] {
                let (sport, dport) = if dir == Dir::In {
                    (server, client)
                } else {
                    (client, server)
                };
                // nft merges `udp sport X udp dport Y` into one 4-byte load and compare.
                let mut ports = sport.to_be_bytes().to_vec();
                ports.extend_from_slice(&dport.to_be_bytes());
                b.new_rule(
                    t,
                    chain,
                    &[
                        meta(NFT_META_NFPROTO),
                        cmp_eq(vec![nfproto]),
                        meta(NFT_META_L4PROTO),
                        cmp_eq(vec![IPPROTO_UDP]),
                        Expr::Payload {
                            dreg: NFT_REG_1,
                            base: NFT_PAYLOAD_TRANSPORT_HEADER,
                            offset: 0,
                            len: 4,
                        },
                        cmp_eq(ports),
                        accept(),
                    ],
                );
            }
        }
        // `icmpv6 type { … }` is an anonymous constant set created right before its rule.
        let spec = SetSpec {
            name: ANON_SET_NAME,
            flags: NFT_SET_ANONYMOUS | NFT_SET_CONSTANT,
            key_type: TYPE_ICMP6_TYPE,
            key_len: 1,
            size: Some(ICMPV6_ND_TYPES.len() as u32),
            userdata: UDATA_ICMPV6_TYPE,
        };
        let id = b.new_set(t, &spec);
        let elems: Vec<Element> = ICMPV6_ND_TYPES.iter().map(|ty| Element::key(vec![*ty])).collect();
        b.new_elements(t, ANON_SET_NAME, id, &elems);
        b.new_rule(
            t,
            chain,
            &[
                meta(NFT_META_NFPROTO),
                cmp_eq(vec![NFPROTO_IPV6]),
                meta(NFT_META_L4PROTO),
                cmp_eq(vec![IPPROTO_ICMPV6]),
                Expr::Payload {
                    dreg: NFT_REG_1,
                    base: NFT_PAYLOAD_TRANSPORT_HEADER,
                    offset: 0,
                    len: 1,
                },
                Expr::Lookup {
                    sreg: NFT_REG_1,
                    set: ANON_SET_NAME,
                    set_id: id,
                },
                accept(),
            ],
        );
    }
    // The forward chain has no rules: its drop policy is the whole point.
    extra(&mut b);
    b.finish()
}

/// The batch that removes our table and nothing else; the `add` makes it succeed when the
/// table is absent.
pub fn remove_batch(table: &TableName, seq: u32, ack: bool) -> EncodedBatch {
    let mut b = Batch::new(seq, ack);
    b.new_table(table.as_str());
    b.del_table(table.as_str());
    b.finish()
}

fn meta(key: u32) -> Expr<'static> {
    Expr::Meta { key, dreg: NFT_REG_1 }
}

fn cmp_eq(data: Vec<u8>) -> Expr<'static> {
    Expr::Cmp {
        sreg: NFT_REG_1,
        op: NFT_CMP_EQ,
        data,
    }
}

fn accept() -> Expr<'static> {
    Expr::Verdict { code: NF_ACCEPT }
}

fn addr_load(nfproto: u8, dir: Dir) -> Expr<'static> {
    // IPv4 saddr/daddr at 12/16 (4 bytes), IPv6 at 8/24 (16 bytes).
    let (offset, len) = match (nfproto == NFPROTO_IPV4, dir) {
        (true, Dir::In) => (12, 4),
        (true, Dir::Out) => (16, 4),
        (false, Dir::In) => (8, 16),
        (false, Dir::Out) => (24, 16),
    };
    Expr::Payload {
        dreg: NFT_REG_1,
        base: NFT_PAYLOAD_NETWORK_HEADER,
        offset,
        len,
    }
}

/// Input rules only accept replies (`ct state established`), then every rule accepts.
/// TCP flags bits (RFC 9293): FIN, SYN, RST, ACK.
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// `tcp flags & (fin | syn | rst | ack) != syn`: the flags byte, masked, compared.
fn tcp_not_syn<'a>() -> [Expr<'a>; 3] {
    [
        Expr::Payload {
            dreg: NFT_REG_1,
            base: NFT_PAYLOAD_TRANSPORT_HEADER,
            offset: 13,
            len: 1,
        },
        Expr::Bitwise {
            sreg: NFT_REG_1,
            dreg: NFT_REG_1,
            op: Some(NFT_BITWISE_BOOL),
            len: 1,
            mask: vec![TCP_FIN | TCP_SYN | TCP_RST | TCP_ACK],
            xor: vec![0],
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: NFT_CMP_NEQ,
            data: vec![TCP_SYN],
        },
    ]
}

fn finish_peer_rule(r: &mut Vec<Expr<'_>>, dir: Dir) {
    if dir == Dir::In {
        r.push(Expr::Ct {
            key: NFT_CT_STATE,
            dreg: NFT_REG_1,
        });
        r.push(Expr::Bitwise {
            sreg: NFT_REG_1,
            dreg: NFT_REG_1,
            op: None,
            len: 4,
            mask: NF_CT_STATE_BIT_ESTABLISHED.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
        });
        r.push(Expr::Cmp {
            sreg: NFT_REG_1,
            op: NFT_CMP_NEQ,
            data: vec![0; 4],
        });
    }
    r.push(accept());
}

/// `addr . port` keys: the address, then the port in network order padded to the 4-byte
/// register width that concatenations use.
fn pair_elements(members: &[SocketAddr]) -> Vec<Element> {
    members
        .iter()
        .map(|m| {
            let mut key = ip_bytes(&m.ip());
            key.extend_from_slice(&m.port().to_be_bytes());
            key.extend_from_slice(&[0, 0]);
            Element::key(key)
        })
        .collect()
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Interval set elements the way nft emits them: sorted ranges, each a start element and
/// an end element holding the first address *after* the range (flagged INTERVAL_END); an
/// end element at 0 first when the first range does not start at 0; a range that runs to
/// the top of the address space has no end element and is marked "open" in user data.
pub fn interval_elements(nets: &[IpNet], width: usize) -> Vec<Element> {
    let mut ranges: Vec<(u128, u128)> = nets
        .iter()
        .filter(|n| ip_bytes(&n.addr()).len() == width)
        .map(|n| (ip_to_u128(&n.network()), ip_to_u128(&n.broadcast())))
        .collect();
    ranges.sort();
    let max: u128 = if width == 4 { u128::from(u32::MAX) } else { u128::MAX };
    let to_key = |v: u128| -> Vec<u8> {
        let b = v.to_be_bytes();
        b[16 - width..].to_vec()
    };
    let mut out = Vec::new();
    if let Some((first, _)) = ranges.first() {
        if *first != 0 {
            out.push(Element {
                key: to_key(0),
                interval_end: true,
                open_end: false,
            });
        }
    }
    for (start, end) in ranges {
        let open = end == max;
        out.push(Element {
            key: to_key(start),
            interval_end: false,
            open_end: open,
        });
        if !open {
            out.push(Element {
                key: to_key(end + 1),
                interval_end: true,
                open_end: false,
            });
        }
    }
    out
}

fn ip_to_u128(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(*a)),
        IpAddr::V6(a) => u128::from(*a),
    }
}

#[cfg(test)]
mod tests;
