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
//! * `wire`: the nfnetlink batch, message headers, attribute TLVs;
//! * `objects`: table, chain, set, element and rule messages;
//! * `expr`: the expressions rules are made of;
//! * [`matches`]: the phrases of the nft text (`ip saddr`, `ct state established`, …) as
//!   expressions;
//! * `sets`: Cordon's named sets and their elements;
//! * `clauses`: the clauses both tables carry (peer sets and rules, DHCP), once for
//!   both layers;
//! * `table`: Cordon's inet table, clause by clause, named like the renderer and README;
//! * `netdev`: the device-layer table (netdev family, ingress/egress hooks).

mod clauses;
mod expr;
mod matches;
mod netdev;
mod objects;
mod sets;
mod table;
mod wire;

use cordon_policy::{Policy, TableName};

pub use expr::{encode_expr, Expr};
pub use netdev::DeviceLayer;
pub use objects::{Element, SetSpec};
pub use sets::interval_elements;
pub use table::TableMode;
pub use wire::{Batch, EncodedBatch};

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

/// What an enforcement batch does with one of our tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableAction {
    /// Leave it as it is (a repair that found only the other table changed).
    Keep,
    /// `create table …` and its contents: refused with EEXIST if it exists. No deletion,
    /// so nothing for the kernel to release afterwards.
    Create,
    /// `add table (existing flags); delete table; add table …`: replaces it atomically.
    /// `existing` are its flags now: the first `add` must repeat them, because the kernel
    /// refuses to change the owner or persist flag of an existing table (EOPNOTSUPP).
    Replace {
        /// The table's `NFTA_TABLE_FLAGS` now (`NFT_TABLE_F_*` bits).
        existing: u32,
    },
}

impl TableAction {
    /// Create when absent (`None`), replace when present with these flags.
    pub fn for_existing(flags: Option<u32>) -> TableAction {
        match flags {
            None => TableAction::Create,
            Some(existing) => TableAction::Replace { existing },
        }
    }
}

/// The whole enforcement as one transaction: the inet table, then the device-layer table
/// on `layer.devices`, each as `actions` says (inet, netdev). A device-layer table being
/// replaced is removed even when `layer.devices` is empty. `table_flags`
/// (`NFT_TABLE_F_*`) go on every table built.
pub fn enforce_batch(
    table: &TableName,
    policy: &Policy,
    layer: &DeviceLayer,
    table_flags: u32,
    actions: [TableAction; 2],
    seq: u32,
    ack: bool,
) -> EncodedBatch {
    let mut batch = Batch::new(seq, ack);
    let mode = |a: TableAction| match a {
        TableAction::Keep => None,
        TableAction::Create => Some((TableMode::CreateOnly, 0)),
        TableAction::Replace { existing } => Some((TableMode::Replace, existing)),
    };
    if let Some((m, existing)) = mode(actions[0]) {
        table::add_inet_table(&mut batch, table, policy, m, existing, table_flags);
    }
    if let Some((m, existing)) = mode(actions[1]) {
        netdev::add_device_table(&mut batch, table, policy, layer, m, existing, table_flags);
    }
    batch.finish()
}

/// Removes our inet table and, with `device_layer`, our netdev table, each only if present
/// (`existing`: their current flags, repeated by the `add` that makes the delete valid).
pub fn remove_all_batch(
    table: &TableName,
    device_layer: bool,
    existing: [u32; 2],
    seq: u32,
    ack: bool,
) -> EncodedBatch {
    let mut b = Batch::new(seq, ack);
    b.new_table_flags(table.as_str(), existing[0]);
    b.del_table(table.as_str());
    if device_layer {
        b.family(NFPROTO_NETDEV_FAMILY);
        b.new_table_flags(table.as_str(), existing[1]);
        b.del_table(table.as_str());
    }
    b.finish()
}

/// Adds `devices` to the hooks of our existing device-layer base chain on `hook`
/// (`NF_NETDEV_INGRESS`: chain `ingress`, `NF_NETDEV_EGRESS`: `egress`): one
/// `NFT_MSG_NEWCHAIN` naming only the new devices, which the kernel takes as an update
/// (`nf_tables_updchain` hooks the new names and leaves the chain's rules and other hooks
/// as they are). No table is rebuilt, so it is one small transaction (trial31 HIGH-F: a
/// covered interface renamed away from its hooks is hooked under its new name at once).
/// One hook per transaction: the kernel refuses (EEXIST) a transaction that adds the
/// same device name to two chains of a table. Fails (ENOENT) without our table.
pub fn hook_devices_batch(table: &TableName, devices: &[String], hook: u32, seq: u32, ack: bool) -> EncodedBatch {
    use cordon_policy::render::netdev::{CHAIN_EGRESS, CHAIN_INGRESS, DEVICE_PRIORITY};
    let chain = if hook == super::consts::NF_NETDEV_EGRESS {
        CHAIN_EGRESS
    } else {
        CHAIN_INGRESS
    };
    let mut b = Batch::new(seq, ack);
    b.family(NFPROTO_NETDEV_FAMILY);
    b.add_chain_devices(table.as_str(), chain, hook, DEVICE_PRIORITY, devices);
    b.finish()
}

const NFPROTO_NETDEV_FAMILY: u8 = super::consts::NFPROTO_NETDEV;

#[cfg(test)]
mod tests;
