//! nf_tables expressions: the register machine a rule is made of (`meta`, `cmp`,
//! `payload`, `lookup`, `ct`, `bitwise`, `immediate`), one variant each, encoded as
//! libnftnl does, plus one-line constructors for the register-1 forms every rule uses.

use super::super::consts::*;
use super::wire::{nest, nest_end, put, put_data_value, put_str, put_u32, put_u8};

/// The expressions Cordon's rules use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr<'a> {
    /// `meta load KEY => reg DREG` (`NFTA_META_*`).
    Meta {
        /// `NFT_META_*` key, e.g. `NFT_META_L4PROTO`, `NFT_META_IIF`.
        key: u32,
        /// Destination register (`NFT_REG_*`).
        dreg: u32,
    },
    /// `cmp OP reg SREG DATA` (`NFTA_CMP_*`): ends the rule unless the comparison holds.
    Cmp {
        /// Source register.
        sreg: u32,
        /// `NFT_CMP_EQ` or `NFT_CMP_NEQ`.
        op: u32,
        /// Compared byte for byte with the register: network byte order for packet
        /// fields, host order for meta values such as interface indexes.
        data: Vec<u8>,
    },
    /// `payload load LEN b @ BASE header + OFFSET => reg DREG` (`NFTA_PAYLOAD_*`).
    Payload {
        /// Destination register.
        dreg: u32,
        /// `NFT_PAYLOAD_LL_HEADER`, `_NETWORK_HEADER` or `_TRANSPORT_HEADER`.
        base: u32,
        /// Offset from the start of that header, in bytes.
        offset: u32,
        /// Bytes to load.
        len: u32,
    },
    /// `lookup reg SREG set SET` (`NFTA_LOOKUP_*`): ends the rule unless the register's
    /// value is an element of the set.
    Lookup {
        /// Source register (the key; a concatenation spans consecutive registers).
        sreg: u32,
        /// The set's name.
        set: &'a str,
        /// The batch-local id of a set created in the same batch (`NFTA_LOOKUP_SET_ID`).
        set_id: u32,
    },
    /// `ct load KEY => reg DREG` (`NFTA_CT_*`).
    Ct {
        /// `NFT_CT_*` key (`STATE`, `PROTOCOL`, `DST_IP`, ...).
        key: u32,
        /// Destination register.
        dreg: u32,
        /// NFTA_CT_DIRECTION (`ct original …`), left out for direction-less keys.
        dir: Option<u8>,
    },
    /// `bitwise reg DREG = (reg SREG & MASK) ^ XOR` (`NFTA_BITWISE_*`). `op` is
    /// NFTA_BITWISE_OP, which nft sends for some bitwise expressions (tcp flags)
    /// and not others (ct state); `None` leaves it out, as nft does there.
    Bitwise {
        /// Source register.
        sreg: u32,
        /// Destination register.
        dreg: u32,
        /// `NFTA_BITWISE_OP` (`NFT_BITWISE_BOOL`), or `None` to leave it out.
        op: Option<u32>,
        /// Bytes operated on; `mask` and `xor` are this long.
        len: u32,
        /// `reg = (reg & mask) ^ xor`: the mask.
        mask: Vec<u8>,
        /// The xor operand (all zero for a plain mask).
        xor: Vec<u8>,
    },
    /// `byteorder reg DREG = hton(reg SREG, SIZE, LEN)` (`NFTA_BYTEORDER_*`): what nft puts
    /// between a host-order value (`meta length`) and an ordering comparison (`<=`).
    Byteorder {
        /// Source register.
        sreg: u32,
        /// Destination register.
        dreg: u32,
        /// `NFT_BYTEORDER_HTON` or `NFT_BYTEORDER_NTOH`.
        op: u32,
        /// Bytes converted.
        len: u32,
        /// Bytes per converted word.
        size: u32,
    },
    /// `limit rate RATE/UNIT burst BURST packets` (`NFTA_LIMIT_*`): ends the rule once
    /// the rate is used up.
    Limit {
        /// Packets per `unit`.
        rate: u64,
        /// The period in seconds (1: per second).
        unit: u64,
        /// Packets allowed above the rate at once.
        burst: u32,
    },
    /// `immediate reg 0 VERDICT`: sets the verdict register.
    Verdict {
        /// `NF_ACCEPT`, `NF_DROP`, ...
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
        Expr::Byteorder { .. } => "byteorder",
        Expr::Limit { .. } => "limit",
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
        Expr::Ct { key, dreg, dir } => {
            put_u32(buf, NFTA_CT_KEY, *key);
            put_u32(buf, NFTA_CT_DREG, *dreg);
            if let Some(d) = dir {
                put_u8(buf, NFTA_CT_DIRECTION, *d);
            }
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
        Expr::Byteorder {
            sreg,
            dreg,
            op,
            len,
            size,
        } => {
            put_u32(buf, NFTA_BYTEORDER_SREG, *sreg);
            put_u32(buf, NFTA_BYTEORDER_DREG, *dreg);
            put_u32(buf, NFTA_BYTEORDER_OP, *op);
            put_u32(buf, NFTA_BYTEORDER_LEN, *len);
            put_u32(buf, NFTA_BYTEORDER_SIZE, *size);
        }
        Expr::Limit { rate, unit, burst } => {
            put(buf, NFTA_LIMIT_RATE, &rate.to_be_bytes());
            put(buf, NFTA_LIMIT_UNIT, &unit.to_be_bytes());
            put_u32(buf, NFTA_LIMIT_BURST, *burst);
            put_u32(buf, NFTA_LIMIT_TYPE, NFT_LIMIT_PKTS);
            put_u32(buf, NFTA_LIMIT_FLAGS, 0);
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

/// `meta load KEY => reg 1`.
pub fn meta(key: u32) -> Expr<'static> {
    Expr::Meta { key, dreg: NFT_REG_1 }
}

/// `cmp eq reg 1 DATA`.
pub fn cmp_eq(data: Vec<u8>) -> Expr<'static> {
    Expr::Cmp {
        sreg: NFT_REG_1,
        op: NFT_CMP_EQ,
        data,
    }
}

/// `cmp neq reg 1 DATA`.
pub fn cmp_neq(data: Vec<u8>) -> Expr<'static> {
    Expr::Cmp {
        sreg: NFT_REG_1,
        op: NFT_CMP_NEQ,
        data,
    }
}

/// `payload load LEN b @ BASE header + OFFSET => reg 1` (`base` is an `NFT_PAYLOAD_*`;
/// offset and length in bytes).
pub fn payload(base: u32, offset: u32, len: u32) -> Expr<'static> {
    Expr::Payload {
        dreg: NFT_REG_1,
        base,
        offset,
        len,
    }
}

/// `lookup reg 1 set SET` (by name, and by batch-local id for a set made in this batch).
pub fn lookup(set: &str, set_id: u32) -> Expr<'_> {
    Expr::Lookup {
        sreg: NFT_REG_1,
        set,
        set_id,
    }
}

/// `immediate reg 0 accept`.
pub fn accept() -> Expr<'static> {
    Expr::Verdict { code: NF_ACCEPT }
}

/// `immediate reg 0 drop`.
pub fn drop_verdict() -> Expr<'static> {
    Expr::Verdict { code: NF_DROP }
}

/// `meta length <= MAX`, as nft spells it: the length (host order) turned to network
/// order, then compared: `[ meta load len => reg 1 ] [ byteorder reg 1 = hton(reg 1, 4,
/// 4) ] [ cmp lte reg 1 MAX ]`.
pub fn length_at_most(max: u32) -> [Expr<'static>; 3] {
    [
        meta(NFT_META_LEN),
        Expr::Byteorder {
            sreg: NFT_REG_1,
            dreg: NFT_REG_1,
            op: NFT_BYTEORDER_HTON,
            len: 4,
            size: 4,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: NFT_CMP_LTE,
            data: max.to_be_bytes().to_vec(),
        },
    ]
}
