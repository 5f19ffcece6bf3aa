//! Enforcement of a [`cordon_policy::Policy`] on the local host.
//!
//! Each mechanism (nftables via `nft -f`, iptables-restore, later netlink, pf, WFP, netsh)
//! is one type implementing [`Firewall`]. A backend only ever touches its own table /
//! chains / anchor / policy, named from a [`TableName`]; everything else on the host is
//! left exactly as it was.
// Public items still to document (251 when [workspace.lints] turned missing_docs on);
// remove this allow once `cargo clippy -p cordon-firewall` shows none.
#![allow(missing_docs)]

mod cmd;
pub mod digest;
pub mod iptables;
#[cfg(target_os = "linux")]
pub mod netlink;
pub mod nft_cli;
pub mod pf;
pub mod windows;

use std::fmt;
use std::str::FromStr;

use cordon_policy::{Policy, TableName};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Which mechanism enforces the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// nftables through the `nft` command (`nft -f -`, one transaction).
    Nftables,
    /// `iptables-restore` / `ip6tables-restore` into our own chains.
    Iptables,
    /// nftables over a netlink socket, no `nft` binary needed.
    Netlink,
    /// macOS packet filter anchor.
    Pf,
    /// Windows Filtering Platform.
    Wfp,
    /// Windows static IPsec policy through `netsh ipsec static`.
    NetshIpsec,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Nftables => "nftables",
            BackendKind::Iptables => "iptables",
            BackendKind::Netlink => "netlink",
            BackendKind::Pf => "pf",
            BackendKind::Wfp => "wfp",
            BackendKind::NetshIpsec => "netsh-ipsec",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the user asked for with `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    Auto,
    Exactly(BackendKind),
}

impl FromStr for BackendChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" => BackendChoice::Auto,
            "nftables" | "nft" => BackendChoice::Exactly(BackendKind::Nftables),
            "iptables" => BackendChoice::Exactly(BackendKind::Iptables),
            "netlink" => BackendChoice::Exactly(BackendKind::Netlink),
            "pf" => BackendChoice::Exactly(BackendKind::Pf),
            "windows" | "wfp" => BackendChoice::Exactly(BackendKind::Wfp),
            "netsh-ipsec" => BackendChoice::Exactly(BackendKind::NetshIpsec),
            other => {
                return Err(format!(
                    "unknown backend {other:?} (expected auto, netlink, nftables, iptables, pf, windows, wfp or netsh-ipsec)"
                ))
            }
        })
    }
}

#[derive(Debug, Error)]
pub enum FirewallError {
    /// The backend cannot work on this host (missing binary, kernel support, OS).
    #[error("{0}")]
    Unsupported(String),
    /// The OS refused for lack of privilege.
    #[error("{0}")]
    NotPermitted(String),
    /// The OS rejected the change; nothing was applied (transactions are atomic).
    #[error("{0}")]
    Rejected(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// What [`Firewall::inspect`] found of our rules in the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inspection {
    /// SHA-256 (hex) of the normalized listing; equal digests mean equal rules.
    pub digest: String,
    /// The normalized listing itself, for humans and tamper reports.
    pub listing: String,
}

/// One enforcement mechanism. Implementations are cheap to construct; every method talks
/// to the OS afresh.
pub trait Firewall: Send + Sync {
    fn kind(&self) -> BackendKind;

    /// The exact ruleset or command list `apply` would load, for `--dry-run`.
    fn render(&self, policy: &Policy) -> Result<String, FirewallError>;

    /// Installs `policy` in one atomic change, replacing a previous version of ours.
    fn apply(&self, policy: &Policy) -> Result<(), FirewallError>;

    /// Removes everything of ours; succeeds when nothing of ours is present.
    fn remove(&self) -> Result<(), FirewallError>;

    /// Reads back our rules; `None` when nothing of ours is present.
    fn inspect(&self) -> Result<Option<Inspection>, FirewallError>;
}

/// Opens the backend `choice` for `table`, or the best available one for `Auto`
/// (netlink, then `nft`, then iptables). Fails with [`FirewallError::Unsupported`] naming
/// what to install when nothing fits.
pub fn open(choice: BackendChoice, table: &TableName) -> Result<Box<dyn Firewall>, FirewallError> {
    match choice {
        BackendChoice::Exactly(kind) => open_kind(kind, table),
        BackendChoice::Auto => {
            let mut reasons = Vec::new();
            for kind in platform_backends() {
                match open_kind(kind, table) {
                    Ok(fw) => return Ok(fw),
                    Err(e) => reasons.push(format!("{kind}: {e}")),
                }
            }
            Err(FirewallError::Unsupported(format!(
                "no usable firewall backend on this host ({}); install nftables (nft) or iptables",
                reasons.join("; ")
            )))
        }
    }
}

/// Every backend that can exist on this OS, in `auto` preference order.
pub fn platform_backends() -> Vec<BackendKind> {
    if cfg!(target_os = "linux") {
        vec![BackendKind::Netlink, BackendKind::Nftables, BackendKind::Iptables]
    } else if cfg!(target_os = "macos") {
        vec![BackendKind::Pf]
    } else if cfg!(windows) {
        vec![BackendKind::Wfp, BackendKind::NetshIpsec]
    } else {
        vec![]
    }
}

fn open_kind(kind: BackendKind, table: &TableName) -> Result<Box<dyn Firewall>, FirewallError> {
    match kind {
        BackendKind::Nftables => Ok(Box::new(nft_cli::NftCli::probe(table.clone())?)),
        BackendKind::Iptables => Ok(Box::new(iptables::Iptables::probe(table.clone())?)),
        #[cfg(target_os = "linux")]
        BackendKind::Netlink => Ok(Box::new(netlink::Netlink::probe(table.clone())?)),
        #[cfg(target_os = "macos")]
        BackendKind::Pf => Ok(Box::new(pf::Pf::probe(table.clone())?)),
        #[cfg(windows)]
        BackendKind::Wfp => Ok(Box::new(windows::wfp::Wfp::probe(table.clone())?)),
        #[cfg(windows)]
        BackendKind::NetshIpsec => Ok(Box::new(windows::netsh::NetshIpsec::probe(table.clone())?)),
        other => Err(FirewallError::Unsupported(format!(
            "the {other} backend is not available in this build for this OS"
        ))),
    }
}
