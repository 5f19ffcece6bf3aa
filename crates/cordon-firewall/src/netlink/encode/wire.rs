//! Wire framing: one nfnetlink batch (`NFNL_MSG_BATCH_BEGIN` … `NFNL_MSG_BATCH_END`), the
//! `nlmsghdr` + `nfgenmsg` header of each message in it, and the netlink attribute TLVs
//! (4-byte aligned; nested attributes flagged `NLA_F_NESTED`). Nothing here knows what an
//! nf_tables object is; [`super::objects`] builds those on top.

use super::super::consts::*;

/// One encoded batch and what its replies will look like.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    /// The whole batch, BEGIN to END, ready for one `sendmsg`; host byte order in the
    /// netlink headers and TLV headers, network byte order in addresses and ports.
    pub bytes: Vec<u8>,
    /// Sequence number of the first message inside BEGIN … END.
    pub first_seq: u32,
    /// Number of messages inside BEGIN … END.
    pub messages: u32,
    /// Sequence number of the one message that asks for an acknowledgement (the last one
    /// inside BEGIN … END), when the batch was built with `ack`; `None` otherwise or for
    /// an empty batch.
    pub ack_seq: Option<u32>,
}

/// Builds one `NFNL_MSG_BATCH_BEGIN` … `NFNL_MSG_BATCH_END` batch.
///
/// Messages address tables of one nf_tables family at a time: `NFPROTO_INET` from the
/// start, changed with [`Batch::family`] (the device-layer tables are `NFPROTO_NETDEV`).
pub struct Batch {
    pub(super) buf: Vec<u8>,
    seq: u32,
    first_seq: u32,
    ack: bool,
    messages: u32,
    /// Where the last message inside BEGIN … END starts (its flags are patched by
    /// [`Batch::finish`]).
    last: Option<usize>,
    family: u8,
    /// Set ids are batch-local handles that let later messages (elements, lookups) refer
    /// to a set created in the same, not yet committed, transaction.
    pub(super) next_set_id: u32,
}

impl Batch {
    /// `seq` numbers the BEGIN message; `ack` asks the kernel to acknowledge the last
    /// message inside BEGIN … END (goldens are captured with `ack = false`, as nft sends
    /// them).
    ///
    /// One acknowledgement is enough (issue #18: one per message cost the kernel ≈ 170
    /// replies and `cordon isolate` as many `recv` calls): the kernel handles a batch
    /// synchronously inside `sendmsg`, reports every message it refuses with that
    /// message's sequence number whether or not an ACK was asked for, and queues its
    /// replies in message order after the commit (a commit failure first), so once the
    /// last message's ACK is read every error of the batch has been read before it. nft
    /// asks for none and reads whatever is queued after `sendmsg`; the ACK here is a
    /// positive end marker on top of that.
    pub fn new(seq: u32, ack: bool) -> Batch {
        let mut b = Batch {
            buf: Vec::with_capacity(8192),
            seq,
            first_seq: seq.wrapping_add(1),
            ack,
            messages: 0,
            last: None,
            family: NFPROTO_INET,
            next_set_id: 1,
        };
        b.batch_marker(NFNL_MSG_BATCH_BEGIN);
        b
    }

    /// Closes the batch with `NFNL_MSG_BATCH_END`.
    pub fn finish(mut self) -> EncodedBatch {
        let ack_seq = match (self.ack, self.last) {
            (true, Some(start)) => {
                // nlmsghdr: length (4 bytes), type (2), flags (2) …
                let at = start + 6;
                let flags = u16::from_ne_bytes([self.buf[at], self.buf[at + 1]]) | NLM_F_ACK;
                self.buf[at..at + 2].copy_from_slice(&flags.to_ne_bytes());
                Some(self.first_seq.wrapping_add(self.messages.saturating_sub(1)))
            }
            _ => None,
        };
        self.batch_marker(NFNL_MSG_BATCH_END);
        EncodedBatch {
            bytes: self.buf,
            first_seq: self.first_seq,
            messages: self.messages,
            ack_seq,
        }
    }

    /// The nf_tables family (`NFPROTO_*`) of the tables the following messages address.
    pub fn family(&mut self, family: u8) {
        self.family = family;
    }

    fn batch_marker(&mut self, ty: u16) {
        let start = self.header(ty, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        self.end_msg(start);
    }

    /// Writes nlmsghdr + nfgenmsg; returns the message start for [`Batch::end_msg`].
    fn header(&mut self, ty: u16, flags: u16, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        let mut h = [0u8; 20];
        // length (patched in end_msg), type, flags, sequence, port id (0: the kernel)
        h[4..6].copy_from_slice(&ty.to_ne_bytes());
        h[6..8].copy_from_slice(&flags.to_ne_bytes());
        h[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        h[16] = family;
        h[17] = NFNETLINK_V0;
        h[18..20].copy_from_slice(&res_id.to_be_bytes());
        push_small(&mut self.buf, &h);
        self.seq = self.seq.wrapping_add(1);
        start
    }

    /// Starts nf_tables message `msg` (an `NFT_MSG_*`) inside the batch; attributes follow
    /// in `self.buf`, then [`Batch::end_msg`] with the returned start.
    pub(super) fn begin(&mut self, msg: u16, flags: u16) -> usize {
        self.messages += 1;
        self.last = Some(self.buf.len());
        self.header(
            (u16::from(NFNL_SUBSYS_NFTABLES_ID) << 8) | msg,
            NLM_F_REQUEST | flags,
            self.family,
            0,
        )
    }

    /// Patches the length of the message that starts at `start`.
    pub(super) fn end_msg(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }
}

// ---- attribute TLVs ----------------------------------------------------------------------

/// Appends `bytes` byte by byte: no call to `memcpy` for the few bytes of a header or an
/// integer (issue #18: at `opt-level = "s"` every small `extend_from_slice` stayed a call,
/// and musl's `memcpy` copies short runs byte-wise — ≈ 13,000 such calls encoding the
/// batch of one `cordon isolate`). Longer data goes through `extend_from_slice`.
#[inline(always)]
fn push_small(buf: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() > 24 {
        buf.extend_from_slice(bytes);
        return;
    }
    buf.reserve(bytes.len());
    for &b in bytes {
        buf.push(b);
    }
}

/// An attribute header (`nlattr`): length and type, host byte order.
#[inline(always)]
fn attr_header(buf: &mut Vec<u8>, len: u16, ty: u16) {
    let mut h = [0u8; 4];
    h[..2].copy_from_slice(&len.to_ne_bytes());
    h[2..].copy_from_slice(&ty.to_ne_bytes());
    push_small(buf, &h);
}

/// One attribute with raw `data`, padded to 4 bytes.
pub(super) fn put(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    // Attribute payloads here are at most a few hundred bytes (element lists are split
    // well below u16::MAX), so the length fits.
    let len = (4 + data.len()) as u16;
    attr_header(buf, len, ty);
    push_small(buf, data);
    pad(buf);
}

fn pad(buf: &mut Vec<u8>) {
    while buf.len() & 3 != 0 {
        buf.push(0);
    }
}

/// A u32 attribute: nf_tables integers are big endian on the wire.
pub(super) fn put_u32(buf: &mut Vec<u8>, ty: u16, v: u32) {
    put(buf, ty, &v.to_be_bytes());
}

/// A u8 attribute (e.g. NFTA_CT_DIRECTION), padded to 4 bytes.
pub(super) fn put_u8(buf: &mut Vec<u8>, ty: u16, v: u8) {
    put(buf, ty, &[v]);
}

/// A NUL-terminated string attribute.
pub(super) fn put_str(buf: &mut Vec<u8>, ty: u16, s: &str) {
    let len = (4 + s.len() + 1) as u16;
    attr_header(buf, len, ty);
    push_small(buf, s.as_bytes());
    buf.push(0);
    pad(buf);
}

/// `ty { NFTA_DATA_VALUE data }`: how nf_tables carries constants (cmp data, masks, keys).
pub(super) fn put_data_value(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    let n = nest(buf, ty);
    put(buf, NFTA_DATA_VALUE, data);
    nest_end(buf, n);
}

/// Opens a nested attribute; returns its start for [`nest_end`].
pub(super) fn nest(buf: &mut Vec<u8>, ty: u16) -> usize {
    let start = buf.len();
    attr_header(buf, 0, ty | NLA_F_NESTED);
    start
}

/// Patches the length of the nested attribute opened at `start`.
pub(super) fn nest_end(buf: &mut [u8], start: usize) {
    // A nest longer than u16::MAX would be malformed; element lists are capped far below.
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
}
