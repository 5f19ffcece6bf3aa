//! Numbers from the kernel's uapi headers (`linux/netlink.h`, `linux/netfilter.h`,
//! `linux/netfilter/nfnetlink.h`, `linux/netfilter/nf_tables.h`) and nft's data type ids.
//!
//! Those the `libc` crate carries come from it, re-typed to the width they have on the wire
//! (`libc` declares most as `c_int`). The nf_tables attribute numbers (`NFTA_*`), a few
//! netlink values and nft's data type ids are not in `libc` and no permissively licensed
//! crate carries them, so they are written out here with the header they come from.
//!
//! Every constant keeps the name it has in that header (the section comments name the
//! header, the `enum` for values that have one); the header is its documentation, so
//! the constants carry no doc comment of their own unless Cordon adds a fact (a derived
//! value, a kernel version). Public because the lab benchmarks and the netlink
//! integration tests build raw batches with them.

#![allow(dead_code)]
// The header mirror: see above for where each name is documented.
#![allow(missing_docs)]

// ---- netlink (linux/netlink.h), from libc ----------------------------------------------
pub const NETLINK_NETFILTER: i32 = libc::NETLINK_NETFILTER;
pub const NLM_F_REQUEST: u16 = libc::NLM_F_REQUEST as u16;
pub const NLM_F_MULTI: u16 = libc::NLM_F_MULTI as u16;
pub const NLM_F_ACK: u16 = libc::NLM_F_ACK as u16;
pub const NLM_F_DUMP: u16 = libc::NLM_F_DUMP as u16;
pub const NLM_F_CREATE: u16 = libc::NLM_F_CREATE as u16;
pub const NLM_F_EXCL: u16 = libc::NLM_F_EXCL as u16;
pub const NLM_F_APPEND: u16 = libc::NLM_F_APPEND as u16;
pub const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;
pub const NLMSG_DONE: u16 = libc::NLMSG_DONE as u16;
pub const NLA_F_NESTED: u16 = libc::NLA_F_NESTED as u16;
pub const NLA_TYPE_MASK: u16 = libc::NLA_TYPE_MASK as u16;
pub const SOL_NETLINK: i32 = libc::SOL_NETLINK;
pub const NETLINK_CAP_ACK: i32 = libc::NETLINK_CAP_ACK;
pub const NETLINK_EXT_ACK: i32 = libc::NETLINK_EXT_ACK;
pub const NLM_F_CAPPED: u16 = libc::NLM_F_CAPPED as u16;
pub const NLM_F_ACK_TLVS: u16 = libc::NLM_F_ACK_TLVS as u16;
/// `enum nlmsgerr_attrs` (linux/netlink.h): the extended ACK's text message.
pub const NLMSGERR_ATTR_MSG: u16 = 1;

// ---- nfnetlink (linux/netfilter/nfnetlink.h), from libc ---------------------------------
pub const NFNETLINK_V0: u8 = libc::NFNETLINK_V0 as u8;
pub const NFNL_MSG_BATCH_BEGIN: u16 = libc::NFNL_MSG_BATCH_BEGIN as u16;
pub const NFNL_MSG_BATCH_END: u16 = libc::NFNL_MSG_BATCH_END as u16;
/// res_id of the batch markers: which subsystem the batch is for.
pub const NFNL_SUBSYS_NFTABLES: u16 = libc::NFNL_SUBSYS_NFTABLES as u16;
/// The same subsystem id as the high byte of a message type.
pub const NFNL_SUBSYS_NFTABLES_ID: u8 = libc::NFNL_SUBSYS_NFTABLES as u8;

// ---- address families and protocols (linux/netfilter.h, netinet/in.h), from libc --------
pub const NFPROTO_INET: u8 = libc::NFPROTO_INET as u8;
pub const NFPROTO_IPV4: u8 = libc::NFPROTO_IPV4 as u8;
pub const NFPROTO_NETDEV: u8 = libc::NFPROTO_NETDEV as u8;
pub const NFPROTO_BRIDGE: u8 = libc::NFPROTO_BRIDGE as u8;
pub const NFPROTO_IPV6: u8 = libc::NFPROTO_IPV6 as u8;
pub const IPPROTO_TCP: u8 = libc::IPPROTO_TCP as u8;
pub const IPPROTO_UDP: u8 = libc::IPPROTO_UDP as u8;
pub const IPPROTO_ICMP: u8 = libc::IPPROTO_ICMP as u8;
pub const IPPROTO_ICMPV6: u8 = libc::IPPROTO_ICMPV6 as u8;

// ---- nf_tables message types (enum nf_tables_msg_types), from libc ----------------------
pub const NFT_MSG_NEWTABLE: u16 = libc::NFT_MSG_NEWTABLE as u16;
pub const NFT_MSG_GETTABLE: u16 = libc::NFT_MSG_GETTABLE as u16;
pub const NFT_MSG_DELTABLE: u16 = libc::NFT_MSG_DELTABLE as u16;
pub const NFT_MSG_NEWCHAIN: u16 = libc::NFT_MSG_NEWCHAIN as u16;
pub const NFT_MSG_GETCHAIN: u16 = libc::NFT_MSG_GETCHAIN as u16;
pub const NFT_MSG_DELCHAIN: u16 = libc::NFT_MSG_DELCHAIN as u16;
pub const NFT_MSG_NEWRULE: u16 = libc::NFT_MSG_NEWRULE as u16;
pub const NFT_MSG_GETRULE: u16 = libc::NFT_MSG_GETRULE as u16;
pub const NFT_MSG_DELRULE: u16 = libc::NFT_MSG_DELRULE as u16;
pub const NFT_MSG_NEWSET: u16 = libc::NFT_MSG_NEWSET as u16;
pub const NFT_MSG_GETSET: u16 = libc::NFT_MSG_GETSET as u16;
pub const NFT_MSG_DELSET: u16 = libc::NFT_MSG_DELSET as u16;
pub const NFT_MSG_NEWSETELEM: u16 = libc::NFT_MSG_NEWSETELEM as u16;
pub const NFT_MSG_GETSETELEM: u16 = libc::NFT_MSG_GETSETELEM as u16;
pub const NFT_MSG_DELSETELEM: u16 = libc::NFT_MSG_DELSETELEM as u16;
pub const NFT_MSG_NEWGEN: u16 = libc::NFT_MSG_NEWGEN as u16;
pub const NFT_MSG_GETGEN: u16 = libc::NFT_MSG_GETGEN as u16;

// ---- nf_tables attributes (linux/netfilter/nf_tables.h; not in libc) --------------------
pub const NFTA_TABLE_NAME: u16 = 1;
pub const NFTA_TABLE_FLAGS: u16 = 2;
pub const NFTA_TABLE_USE: u16 = 3;
pub const NFTA_TABLE_HANDLE: u16 = 4;
pub const NFTA_TABLE_USERDATA: u16 = 6;
pub const NFTA_TABLE_OWNER: u16 = 7;

pub const NFTA_CHAIN_TABLE: u16 = 1;
pub const NFTA_CHAIN_HANDLE: u16 = 2;
pub const NFTA_CHAIN_NAME: u16 = 3;
pub const NFTA_CHAIN_HOOK: u16 = 4;
pub const NFTA_CHAIN_POLICY: u16 = 5;
pub const NFTA_CHAIN_USE: u16 = 6;
pub const NFTA_CHAIN_TYPE: u16 = 7;
pub const NFTA_CHAIN_FLAGS: u16 = 10;
pub const NFTA_HOOK_HOOKNUM: u16 = 1;
pub const NFTA_HOOK_PRIORITY: u16 = 2;
pub const NFTA_HOOK_DEV: u16 = 3;
pub const NFTA_HOOK_DEVS: u16 = 4;
pub const NFTA_DEVICE_NAME: u16 = 1;
/// `NFTA_DEVICE_PREFIX` (Linux ≥ 6.16): a hook on every device whose name starts with it.
pub const NFTA_DEVICE_PREFIX: u16 = 2;

pub const NFTA_RULE_TABLE: u16 = 1;
pub const NFTA_RULE_CHAIN: u16 = 2;
pub const NFTA_RULE_HANDLE: u16 = 3;
pub const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub const NFTA_RULE_USERDATA: u16 = 7;
pub const NFTA_LIST_ELEM: u16 = 1;
pub const NFTA_EXPR_NAME: u16 = 1;
pub const NFTA_EXPR_DATA: u16 = 2;

pub const NFTA_SET_TABLE: u16 = 1;
pub const NFTA_SET_NAME: u16 = 2;
pub const NFTA_SET_FLAGS: u16 = 3;
pub const NFTA_SET_KEY_TYPE: u16 = 4;
pub const NFTA_SET_KEY_LEN: u16 = 5;
pub const NFTA_SET_DATA_TYPE: u16 = 6;
pub const NFTA_SET_DATA_LEN: u16 = 7;
pub const NFTA_SET_POLICY: u16 = 8;
pub const NFTA_SET_DESC: u16 = 9;
pub const NFTA_SET_ID: u16 = 10;
pub const NFTA_SET_USERDATA: u16 = 13;
pub const NFTA_SET_DESC_SIZE: u16 = 1;

pub const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
pub const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
pub const NFTA_SET_ELEM_KEY: u16 = 1;
pub const NFTA_SET_ELEM_DATA: u16 = 2;
pub const NFTA_SET_ELEM_FLAGS: u16 = 3;
pub const NFTA_SET_ELEM_USERDATA: u16 = 6;
pub const NFTA_SET_ELEM_KEY_END: u16 = 10;

pub const NFTA_DATA_VALUE: u16 = 1;
pub const NFTA_DATA_VERDICT: u16 = 2;
pub const NFTA_VERDICT_CODE: u16 = 1;
pub const NFTA_VERDICT_CHAIN: u16 = 2;

pub const NFTA_META_DREG: u16 = 1;
pub const NFTA_META_KEY: u16 = 2;
pub const NFTA_META_SREG: u16 = 3;
pub const NFTA_CMP_SREG: u16 = 1;
pub const NFTA_CMP_OP: u16 = 2;
pub const NFTA_CMP_DATA: u16 = 3;
pub const NFTA_PAYLOAD_DREG: u16 = 1;
pub const NFTA_PAYLOAD_BASE: u16 = 2;
pub const NFTA_PAYLOAD_OFFSET: u16 = 3;
pub const NFTA_PAYLOAD_LEN: u16 = 4;
pub const NFTA_LOOKUP_SET: u16 = 1;
pub const NFTA_LOOKUP_SREG: u16 = 2;
pub const NFTA_LOOKUP_DREG: u16 = 3;
pub const NFTA_LOOKUP_SET_ID: u16 = 4;
pub const NFTA_LOOKUP_FLAGS: u16 = 5;
pub const NFTA_CT_DREG: u16 = 1;
pub const NFTA_CT_KEY: u16 = 2;
pub const NFTA_CT_DIRECTION: u16 = 3;
// limit expression (linux/netfilter/nf_tables.h `enum nft_limit_attributes`).
pub const NFTA_LIMIT_RATE: u16 = 1;
pub const NFTA_LIMIT_UNIT: u16 = 2;
pub const NFTA_LIMIT_BURST: u16 = 3;
pub const NFTA_LIMIT_TYPE: u16 = 4;
pub const NFTA_LIMIT_FLAGS: u16 = 5;
/// `NFT_LIMIT_PKTS`: the limit counts packets.
pub const NFT_LIMIT_PKTS: u32 = 0;
pub const NFTA_BITWISE_SREG: u16 = 1;
pub const NFTA_BITWISE_DREG: u16 = 2;
pub const NFTA_BITWISE_LEN: u16 = 3;
pub const NFTA_BITWISE_MASK: u16 = 4;
pub const NFTA_BITWISE_XOR: u16 = 5;
pub const NFTA_BITWISE_OP: u16 = 6;
/// NFTA_BITWISE_OP value for mask-and-xor (`enum nft_bitwise_ops`).
pub const NFT_BITWISE_BOOL: u32 = 0;
pub const NFTA_IMMEDIATE_DREG: u16 = 1;
pub const NFTA_IMMEDIATE_DATA: u16 = 2;

pub const NFTA_GEN_ID: u16 = 1;

// ---- nf_tables values, from libc --------------------------------------------------------
pub const NF_DROP: u32 = libc::NF_DROP as u32;
pub const NF_ACCEPT: u32 = libc::NF_ACCEPT as u32;
pub const NF_INET_LOCAL_IN: u32 = libc::NF_INET_LOCAL_IN as u32;
pub const NF_INET_FORWARD: u32 = libc::NF_INET_FORWARD as u32;
pub const NF_INET_LOCAL_OUT: u32 = libc::NF_INET_LOCAL_OUT as u32;
pub const NF_NETDEV_INGRESS: u32 = libc::NF_NETDEV_INGRESS as u32;
pub const NF_NETDEV_EGRESS: u32 = libc::NF_NETDEV_EGRESS as u32;
pub const NFT_REG_VERDICT: u32 = libc::NFT_REG_VERDICT as u32;
pub const NFT_REG_1: u32 = libc::NFT_REG_1 as u32;
pub const NFT_REG_2: u32 = libc::NFT_REG_2 as u32;
pub const NFT_REG32_00: u32 = libc::NFT_REG32_00 as u32;
pub const NFT_REG32_01: u32 = libc::NFT_REG32_01 as u32;
pub const NFT_META_PROTOCOL: u32 = libc::NFT_META_PROTOCOL as u32;
pub const NFT_META_IIF: u32 = libc::NFT_META_IIF as u32;
pub const NFT_META_OIF: u32 = libc::NFT_META_OIF as u32;
pub const NFT_META_NFPROTO: u32 = libc::NFT_META_NFPROTO as u32;
pub const NFT_META_L4PROTO: u32 = libc::NFT_META_L4PROTO as u32;
pub const NFT_CMP_EQ: u32 = libc::NFT_CMP_EQ as u32;
pub const NFT_CMP_NEQ: u32 = libc::NFT_CMP_NEQ as u32;
pub const NFT_CMP_LTE: u32 = libc::NFT_CMP_LTE as u32;
/// `meta length`: the packet's length (`skb->len`), host byte order.
pub const NFT_META_LEN: u32 = libc::NFT_META_LEN as u32;
pub const NFT_BYTEORDER_HTON: u32 = libc::NFT_BYTEORDER_HTON as u32;
// enum nft_byteorder_attributes (linux/netfilter/nf_tables.h; not in `libc`).
pub const NFTA_BYTEORDER_SREG: u16 = 1;
pub const NFTA_BYTEORDER_DREG: u16 = 2;
pub const NFTA_BYTEORDER_OP: u16 = 3;
pub const NFTA_BYTEORDER_LEN: u16 = 4;
pub const NFTA_BYTEORDER_SIZE: u16 = 5;
pub const NFT_PAYLOAD_LL_HEADER: u32 = libc::NFT_PAYLOAD_LL_HEADER as u32;
pub const NFT_PAYLOAD_NETWORK_HEADER: u32 = libc::NFT_PAYLOAD_NETWORK_HEADER as u32;
pub const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = libc::NFT_PAYLOAD_TRANSPORT_HEADER as u32;
pub const NFT_CT_STATE: u32 = libc::NFT_CT_STATE as u32;
/// `ct state established` as a bit: NF_CT_STATE_BIT(IP_CT_ESTABLISHED) = 1 << (0 + 1)
/// (linux/netfilter/nf_conntrack_common.h).
pub const NF_CT_STATE_BIT_ESTABLISHED: u32 = 2;
/// `ct state related`: NF_CT_STATE_BIT(IP_CT_RELATED) = 1 << (1 + 1).
pub const NF_CT_STATE_BIT_RELATED: u32 = 4;
pub const NFT_CT_PROTOCOL: u32 = libc::NFT_CT_PROTOCOL as u32;
pub const NFT_CT_PROTO_DST: u32 = libc::NFT_CT_PROTO_DST as u32;
pub const NFT_CT_DST_IP: u32 = libc::NFT_CT_DST_IP as u32;
pub const NFT_CT_DST_IP6: u32 = libc::NFT_CT_DST_IP6 as u32;
/// `enum ip_conntrack_dir` (linux/netfilter/nf_conntrack_tuple_common.h): `ct original`.
pub const IP_CT_DIR_ORIGINAL: u8 = 0;
pub const NFT_SET_ANONYMOUS: u32 = libc::NFT_SET_ANONYMOUS as u32;
pub const NFT_SET_CONSTANT: u32 = libc::NFT_SET_CONSTANT as u32;
pub const NFT_SET_INTERVAL: u32 = libc::NFT_SET_INTERVAL as u32;
pub const NFT_SET_ELEM_INTERVAL_END: u32 = libc::NFT_SET_ELEM_INTERVAL_END as u32;
/// `enum nft_table_flags`: the table is owned by the netlink socket that created it
/// (kernel ≥ 5.12) and, with PERSIST, outlives that socket (kernel ≥ 6.9). Not in libc.
pub const NFT_TABLE_F_OWNER: u32 = 0x2;
pub const NFT_TABLE_F_PERSIST: u32 = 0x4;
/// The kernel replaces `%d` with a number, giving each anonymous set a unique name.
pub const ANON_SET_NAME: &str = "__set%d";

// ---- nft data type ids (nftables `enum datatypes`), used in NFTA_SET_KEY_TYPE ------------
pub const TYPE_IPADDR: u32 = 7;
pub const TYPE_IP6ADDR: u32 = 8;
pub const TYPE_INET_SERVICE: u32 = 13;
pub const TYPE_ICMP_TYPE: u32 = 14;
pub const TYPE_ICMP6_TYPE: u32 = 29;
