//! The nf_tables message encoder: the only place that knows how Cordon's table is spelled
//! in netlink bytes. Hand-written because the permissively licensed nftables crates lack
//! `ct` and set support and the others are GPL.
//!
//! The output mirrors what `nft -f` (nftables 1.0.x) sends for the text of
//! [`cordon_policy::render::nft::render_apply`], message for message and attribute for
//! attribute, so that `nft list table` shows a netlink-built table exactly like an
//! `nft`-built one (same expressions, same set user data). The golden tests (`tests.rs`)
//! compare whole batches byte for byte against captures of `nft` itself (see
//! `golden/capture.sh`).
//!
//! By layer, bottom up:
//! * [`wire`]: the nfnetlink batch, message headers, attribute TLVs;
//! * [`objects`]: table, chain, set, element and rule messages;
//! * [`expr`]: the expressions rules are made of;
//! * [`matches`]: the phrases of the nft text (`ip saddr`, `ct state established`, …) as
//!   expressions;
//! * [`sets`]: Cordon's named sets and their elements;
//! * [`table`]: Cordon's table, clause by clause, named like the renderer and README.

mod expr;
mod matches;
mod objects;
mod sets;
mod table;
mod wire;

use cordon_policy::{Policy, TableName};

pub use expr::{encode_expr, Expr};
pub use objects::{Element, SetSpec};
pub use sets::interval_elements;
pub use wire::{Batch, EncodedBatch};

use table::TableMode;

// The golden tests reach the constants and `IpNet` through `use super::*`.
#[cfg(test)]
use super::consts::*;
#[cfg(test)]
use ipnet::IpNet;

/// The batch that replaces our table with one enforcing `policy`: `add table; delete
/// table; table { … }`, exactly like `nft -f` of `render_apply`. `seq` numbers the BEGIN
/// marker; `ack` requests an ACK per message.
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
    table::build_batch(table, policy, seq, ack, TableMode::Replace, extra)
}

/// The batch for a first apply (`create table; table { … }`, like
/// `cordon_policy::render::nft::render_create`): refused with EEXIST if our table exists.
pub fn create_batch(table: &TableName, policy: &Policy, seq: u32, ack: bool) -> EncodedBatch {
    table::build_batch(table, policy, seq, ack, TableMode::CreateOnly, |_| {})
}

/// The batch that removes our table and nothing else; the `add` makes it succeed when the
/// table is absent.
pub fn remove_batch(table: &TableName, seq: u32, ack: bool) -> EncodedBatch {
    table::remove_batch(table, seq, ack)
}

#[cfg(test)]
mod tests;
