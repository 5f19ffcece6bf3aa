//! Golden files for the Windows (WFP filter list, netsh command list) and macOS (pf
//! anchor) renderings, over the same sample policies as the Linux golden tests. Set
//! `UPDATE_GOLDEN=1` to rewrite them after an intended change, then review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{check_golden as check, sample_policies};
use cordon_policy::render::{netsh, pf, wfp};
use cordon_policy::TableName;

#[test]
fn pf_golden() {
    let table = TableName::default();
    for (name, policy) in sample_policies() {
        check(&format!("pf/{name}.conf"), &pf::render_anchor(&table, &policy));
    }
}

#[test]
fn netsh_golden() {
    let table = TableName::default();
    for (name, policy) in sample_policies() {
        check(
            &format!("netsh/{name}.txt"),
            &netsh::render_text(&netsh::render_apply(&table, &policy)),
        );
    }
    check("netsh/remove.txt", &netsh::render_text(&netsh::render_remove(&table)));
    // Re-apply while the primary (then the alternate) policy is assigned: build under the
    // other name, assign it, then delete the old one.
    let (_, policy) = &sample_policies()[0];
    for (assigned, file) in [
        (netsh::Slot::Primary, "netsh/reapply-from-primary.txt"),
        (netsh::Slot::Alternate, "netsh/reapply-from-alternate.txt"),
    ] {
        let plan = netsh::render_reapply(&table, policy, assigned);
        check(file, &netsh::render_text(&plan.commands()));
    }
}

#[test]
fn wfp_golden() {
    for (name, policy) in sample_policies() {
        check(&format!("wfp/{name}.txt"), &wfp::render_text(&wfp::filters(&policy)));
    }
}
