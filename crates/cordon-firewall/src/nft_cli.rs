//! nftables through the `nft` command: the whole policy as one `nft -f -` batch, which
//! the kernel commits as a single transaction.

use cordon_policy::render::nft;
use cordon_policy::{Policy, TableName};

use crate::{cmd, digest, BackendKind, Cause, Firewall, FirewallError, Inspection, Refusal};

/// The `nft` command backend for one table name: `table inet NAME` (host IP stack only,
/// no device layer) loaded with `nft -f -` and read back with `nft list table inet NAME`.
pub struct NftCli {
    table: TableName,
}

impl NftCli {
    /// Succeeds when the `nft` binary is present.
    ///
    /// # Errors
    /// [`FirewallError::Unsupported`] when `nft` is not installed.
    pub fn probe(table: TableName) -> Result<Self, FirewallError> {
        if !cmd::exists("nft") {
            return Err(FirewallError::Unsupported(Refusal::new(
                "`nft` is not installed (apt-get install nftables)",
            )));
        }
        Ok(NftCli { table })
    }
}

impl Firewall for NftCli {
    fn kind(&self) -> BackendKind {
        BackendKind::Nftables
    }

    fn render(&self, policy: &Policy) -> Result<String, FirewallError> {
        Ok(nft::render_apply(&self.table, policy))
    }

    fn apply(&self, policy: &Policy) -> Result<(), FirewallError> {
        // Fast path for the usual first isolate; a table that exists already is replaced
        // atomically by the add/delete/define batch.
        match cmd::run("nft", &["-f", "-"], Some(&nft::render_create(&self.table, policy))) {
            Ok(_) => Ok(()),
            Err(FirewallError::Rejected(r)) if tool_said(&r, "File exists") => {
                cmd::run("nft", &["-f", "-"], Some(&nft::render_apply(&self.table, policy))).map(drop)
            }
            Err(e) => Err(e),
        }
    }

    fn remove(&self) -> Result<(), FirewallError> {
        // "add" first makes the delete succeed whether or not the table exists, in one batch.
        let batch = format!(
            "add table inet {t}\n{}",
            nft::render_remove(&self.table),
            t = self.table
        );
        cmd::run("nft", &["-f", "-"], Some(&batch)).map(drop)
    }

    fn inspect(&self) -> Result<Option<Inspection>, FirewallError> {
        match cmd::run("nft", &["list", "table", "inet", self.table.as_str()], None) {
            Ok(listing) => Ok(Some(digest::inspection(normalize(&listing)))),
            Err(FirewallError::Rejected(r)) if tool_said(&r, "No such file or directory") => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Whether `nft` printed `words` (its errno text: `nft` reports errors only as text).
fn tool_said(r: &Refusal, words: &str) -> bool {
    r.cause().and_then(Cause::output).is_some_and(|o| o.contains(words))
}

/// Trims trailing white space per line so cosmetic differences don't count as tampering.
pub fn normalize(listing: &str) -> String {
    let mut out: String = listing.lines().map(|l| format!("{}\n", l.trim_end())).collect();
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}
