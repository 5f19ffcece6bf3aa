//! Golden files for every renderer. Set `UPDATE_GOLDEN=1` to rewrite them after an
//! intended change, then review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{check_golden as check, sample_policies};
use cordon_policy::model::Family;
use cordon_policy::render::{iptables, nft};
use cordon_policy::TableName;

#[test]
fn nft_golden() {
    let table = TableName::default();
    for (name, policy) in sample_policies() {
        check(&format!("nft/{name}.nft"), &nft::render_apply(&table, &policy));
    }
    check("nft/remove.nft", &nft::render_remove(&table));
}

#[test]
fn iptables_golden() {
    let table = TableName::default();
    let fresh = iptables::Present::default();
    let again = iptables::Present {
        jumps: [1, 1, 2],
        marked_jumps: [
            vec!["cordon quarantine; recorded in /var/lib/cordon".into()],
            vec![],
            vec![],
        ],
        chains: [true; 3],
        created_table: false,
    };
    for (name, policy) in sample_policies() {
        check(
            &format!("iptables/{name}.v4.rules"),
            &iptables::render_apply(&table, &policy, Family::V4, &fresh),
        );
        check(
            &format!("iptables/{name}.v6.rules"),
            &iptables::render_apply(&table, &policy, Family::V6, &fresh),
        );
    }
    let (_, p) = &sample_policies()[0];
    check(
        "iptables/reapply.v4.rules",
        &iptables::render_apply(&table, p, Family::V4, &again),
    );
    check("iptables/remove.rules", &iptables::render_remove(&table, &again));
    // iptables-nft made the filter table for us: the input chain carries the marker rule.
    let created = iptables::Present {
        created_table: true,
        ..fresh.clone()
    };
    check(
        "iptables/created-table.v4.rules",
        &iptables::render_apply(&table, p, Family::V4, &created),
    );
}
