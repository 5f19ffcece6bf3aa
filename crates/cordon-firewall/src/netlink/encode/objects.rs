//! nf_tables object messages: NEWTABLE/DELTABLE, NEWCHAIN, NEWSET, NEWSETELEM, NEWRULE.
//! Attribute order follows libnftnl's, so the bytes equal nft's.

use super::super::consts::*;
use super::expr::{encode_expr, Expr};
use super::wire::{nest, nest_end, put, put_str, put_u32, Batch};

/// Elements per NEWSETELEM message are capped so the nested element list stays well below
/// the 64 KiB limit of a netlink attribute length (u16).
const MAX_ELEMENTS_BYTES: usize = 32 * 1024;

/// Describes one NEWSET.
pub struct SetSpec<'a> {
    /// `NFTA_SET_NAME`; `__set%d` for an anonymous set, numbered by the kernel.
    pub name: &'a str,
    /// `NFTA_SET_FLAGS`: `NFT_SET_*` bits (`ANONYMOUS`, `CONSTANT`, `INTERVAL`, ...).
    pub flags: u32,
    /// `NFTA_SET_KEY_TYPE`: nft's data type id (`TYPE_*` in `consts`); for a
    /// concatenation, the ids packed 6 bits each as nft does.
    pub key_type: u32,
    /// `NFTA_SET_KEY_LEN` in bytes (a concatenation pads each part to 4 bytes).
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
    /// `NFTA_SET_ELEM_KEY` data, network byte order (addresses, ports) as the packet
    /// carries them.
    pub key: Vec<u8>,
    /// Flag `NFT_SET_ELEM_INTERVAL_END`: this element closes an interval (its key is the
    /// first value after the interval).
    pub interval_end: bool,
    /// The interval runs to the top of the key space and has no end element; nft's
    /// element user data `NFTNL_SET_ELEM_F_INTERVAL_OPEN` records it for `nft list`.
    pub open_end: bool,
}

impl Element {
    /// A plain (non-interval) element with key bytes `key`.
    pub fn key(key: Vec<u8>) -> Element {
        Element {
            key,
            interval_end: false,
            open_end: false,
        }
    }
}

/// libnftnl's table user data type for the comment (`NFTNL_UDATA_TABLE_COMMENT`).
pub const UDATA_TABLE_COMMENT: u8 = 0;

/// The table user data `nft` writes for `comment "TEXT"`: one TLV, type
/// [`UDATA_TABLE_COMMENT`], one length byte, the text with its NUL. `comment` is
/// [`cordon_policy::render::table_comment`]'s (at most 253 bytes; longer text is cut).
pub fn table_comment_udata(comment: &str) -> Vec<u8> {
    let text = &comment.as_bytes()[..comment.len().min(253)];
    let mut v = vec![UDATA_TABLE_COMMENT, (text.len() + 1) as u8];
    v.extend_from_slice(text);
    v.push(0);
    v
}

impl Batch {
    /// NFT_MSG_NEWTABLE without NLM_F_EXCL: succeeds whether or not the table exists.
    pub fn new_table(&mut self, table: &str) {
        self.new_table_flags(table, 0);
    }

    /// [`Batch::new_table`] with `NFTA_TABLE_FLAGS` `flags` (`NFT_TABLE_F_*`).
    pub fn new_table_flags(&mut self, table: &str, flags: u32) {
        let m = self.begin(NFT_MSG_NEWTABLE, 0);
        put_str(&mut self.buf, NFTA_TABLE_NAME, table);
        put_u32(&mut self.buf, NFTA_TABLE_FLAGS, flags);
        self.end_msg(m);
    }

    /// NFT_MSG_NEWTABLE with NLM_F_EXCL: fails with EEXIST when the table exists, so a
    /// first apply needs no delete (a delete costs an RCU grace period on socket close).
    pub fn create_table(&mut self, table: &str) {
        self.create_table_flags(table, 0);
    }

    /// [`Batch::create_table`] with `NFTA_TABLE_FLAGS` `flags` (`NFT_TABLE_F_*`).
    pub fn create_table_flags(&mut self, table: &str, flags: u32) {
        let m = self.begin(NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL);
        put_str(&mut self.buf, NFTA_TABLE_NAME, table);
        put_u32(&mut self.buf, NFTA_TABLE_FLAGS, flags);
        self.end_msg(m);
    }

    /// [`Batch::new_table_flags`] for the table Cordon installs: with the ownership marker
    /// `comment` ([`cordon_policy::render::table_comment`]: the marker and the state
    /// directory that records the quarantine) as its comment (`NFTA_TABLE_USERDATA`),
    /// exactly as `nft` sends `comment "…"`.
    pub fn new_marked_table(&mut self, table: &str, flags: u32, comment: &str) {
        let m = self.begin(NFT_MSG_NEWTABLE, 0);
        put_str(&mut self.buf, NFTA_TABLE_NAME, table);
        put_u32(&mut self.buf, NFTA_TABLE_FLAGS, flags);
        put(&mut self.buf, NFTA_TABLE_USERDATA, &table_comment_udata(comment));
        self.end_msg(m);
    }

    /// [`Batch::create_table_flags`] with the ownership marker of [`Batch::new_marked_table`].
    pub fn create_marked_table(&mut self, table: &str, flags: u32, comment: &str) {
        let m = self.begin(NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL);
        put_str(&mut self.buf, NFTA_TABLE_NAME, table);
        put_u32(&mut self.buf, NFTA_TABLE_FLAGS, flags);
        put(&mut self.buf, NFTA_TABLE_USERDATA, &table_comment_udata(comment));
        self.end_msg(m);
    }

    /// NFT_MSG_DELTABLE: fails with ENOENT when the table is absent (hence `add; delete`).
    pub fn del_table(&mut self, table: &str) {
        let m = self.begin(NFT_MSG_DELTABLE, 0);
        put_str(&mut self.buf, NFTA_TABLE_NAME, table);
        self.end_msg(m);
    }

    /// NFT_MSG_DELTABLE without a name in family `NFPROTO_UNSPEC`: deletes every table of
    /// every family, which is what `nft flush ruleset` sends. Only tests and `cordon bench
    /// tamper` use it, inside lab namespaces.
    pub fn flush_ruleset(&mut self) {
        self.family(0);
        let m = self.begin(NFT_MSG_DELTABLE, 0);
        self.end_msg(m);
    }

    /// NFT_MSG_NEWCHAIN on an existing base chain changing only its policy (`NF_ACCEPT`,
    /// `NF_DROP`): `chain T C { policy accept; }`. For tamper tests.
    pub fn set_chain_policy(&mut self, table: &str, chain: &str, policy: u32) {
        let m = self.begin(NFT_MSG_NEWCHAIN, 0);
        put_str(&mut self.buf, NFTA_CHAIN_TABLE, table);
        put_str(&mut self.buf, NFTA_CHAIN_NAME, chain);
        put_u32(&mut self.buf, NFTA_CHAIN_POLICY, policy);
        self.end_msg(m);
    }

    /// A filter base chain with policy drop on `hook` (an `NF_INET_*` hook number) at
    /// `priority`.
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

    /// A netdev-family filter base chain with policy drop on `hook` (`NF_NETDEV_INGRESS` or
    /// `NF_NETDEV_EGRESS`) of every device in `devices` (`NFTA_HOOK_DEVS`, kernel ≥ 5.5).
    pub fn new_device_chain(&mut self, table: &str, chain: &str, hook: u32, priority: i32, devices: &[String]) {
        self.device_chain_msg(table, chain, hook, priority, devices, NLM_F_CREATE);
    }

    /// Adds `devices` to the hooks of the existing netdev base chain `chain` (an update:
    /// `NFT_MSG_NEWCHAIN` without `NLM_F_CREATE`, as `nft add chain` sends it for a chain
    /// that exists; the kernel hooks the names not hooked yet).
    pub fn add_chain_devices(&mut self, table: &str, chain: &str, hook: u32, priority: i32, devices: &[String]) {
        self.device_chain_msg(table, chain, hook, priority, devices, 0);
    }

    fn device_chain_msg(&mut self, table: &str, chain: &str, hook: u32, priority: i32, devices: &[String], flags: u16) {
        let m = self.begin(NFT_MSG_NEWCHAIN, flags);
        put_str(&mut self.buf, NFTA_CHAIN_TABLE, table);
        put_str(&mut self.buf, NFTA_CHAIN_NAME, chain);
        put_str(&mut self.buf, NFTA_CHAIN_TYPE, "filter");
        put_u32(&mut self.buf, NFTA_CHAIN_POLICY, NF_DROP);
        let n = nest(&mut self.buf, NFTA_CHAIN_HOOK);
        put_u32(&mut self.buf, NFTA_HOOK_HOOKNUM, hook);
        put_u32(&mut self.buf, NFTA_HOOK_PRIORITY, priority as u32);
        let d = nest(&mut self.buf, NFTA_HOOK_DEVS);
        for dev in devices {
            put_str(&mut self.buf, NFTA_DEVICE_NAME, dev);
        }
        nest_end(&mut self.buf, d);
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

    /// NFT_MSG_NEWSETELEM messages for `elems` (none when empty, as nft does), split so
    /// no element list nears the u16 attribute length limit.
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
