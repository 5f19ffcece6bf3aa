//! Windows Filtering Platform backend (the default on Windows).
//!
//! What is filtered is decided by `cordon_policy::render::wfp::filters`, a pure function
//! tested on every OS; this module only hands that list to the Windows-only FFI layer,
//! which adds Cordon's provider, sublayer and persistent filters in one
//! `FwpmTransactionBegin0 .. FwpmTransactionCommit0` (replacing our previous filters in
//! the same transaction, so there is no gap), and removes them all in one transaction on
//! release. Persistent filters survive reboot without any help from the agent.

use cordon_policy::render::wfp;
use cordon_policy::{Policy, TableName};

use crate::{BackendKind, Cause, Firewall, FirewallError, Inspection, Refusal};

/// `ERROR_ACCESS_DENIED`, what `FwpmEngineOpen0` returns when not running as
/// administrator.
pub(crate) const ACCESS_DENIED: u32 = 5;

/// The error for `FwpmEngineOpen0` returning the Win32 error `rc` (not 0): not permitted
/// for [`ACCESS_DENIED`]; otherwise the platform is unavailable (the Base Filtering
/// Engine service not running, or Wine's stub). Never a rejected change — nothing was
/// asked of the engine yet, and `status` only reads (trial26 L2: a `status` under Wine
/// said "firewall rejected the change (nothing applied)", also once a second in the
/// agent's log).
#[cfg_attr(not(windows), allow(dead_code))] // called by the Windows-only FFI layer; tested everywhere
pub(crate) fn engine_open_error(rc: u32) -> FirewallError {
    if rc == ACCESS_DENIED {
        FirewallError::NotPermitted(Refusal::caused_by(
            "FwpmEngineOpen0: access denied (run as administrator)",
            Cause::Win32(rc),
        ))
    } else {
        FirewallError::Unsupported(Refusal::caused_by(
            "cannot open the Windows Filtering Platform (FwpmEngineOpen0 failed; is the Base Filtering Engine service, BFE, running?)",
            Cause::Win32(rc),
        ))
    }
}

/// Fixed identity of Cordon's WFP objects, so release finds exactly ours.
/// `FWPM_PROVIDER0.providerKey`, as the `u128` of a GUID (`GUID::from_u128`).
pub const PROVIDER_KEY: u128 = 0x6c0f_2a51_8d3e_4b7a_9f21_c0d0_a11e_5e01;
/// `FWPM_SUBLAYER0.subLayerKey` of Cordon's sublayer, as the `u128` of a GUID.
pub const SUBLAYER_KEY: u128 = 0x6c0f_2a51_8d3e_4b7a_9f21_c0d0_a11e_5e02;
/// Our sublayer is evaluated before the usual ones; a block from any sublayer wins anyway.
pub const SUBLAYER_WEIGHT: u16 = 0xffff;

/// The Windows Filtering Platform backend (see the module comment).
pub struct Wfp {
    /// WFP objects carry no table name; kept for messages and future per-table keys.
    table: TableName,
}

impl Wfp {
    /// Succeeds on Windows (the engine itself is opened per call); changes nothing.
    ///
    /// # Errors
    /// [`FirewallError::Unsupported`] on any other OS.
    pub fn probe(table: TableName) -> Result<Self, FirewallError> {
        if !cfg!(windows) {
            return Err(FirewallError::Unsupported(
                "the Windows Filtering Platform exists only on Windows".into(),
            ));
        }
        Ok(Wfp { table })
    }
}

impl Firewall for Wfp {
    fn kind(&self) -> BackendKind {
        BackendKind::Wfp
    }

    fn render(&self, policy: &Policy) -> Result<String, FirewallError> {
        Ok(format!(
            "# WFP provider {PROVIDER_KEY:032x}, sublayer {SUBLAYER_KEY:032x} (weight {SUBLAYER_WEIGHT:#x}), table {}\n{}",
            self.table,
            wfp::render_text(&wfp::filters(policy))
        ))
    }

    fn apply(&self, policy: &Policy) -> Result<(), FirewallError> {
        let filters = wfp::filters(policy);
        #[cfg(windows)]
        {
            super::wfp_ffi::replace_all(&filters)
        }
        #[cfg(not(windows))]
        {
            let _ = filters;
            Err(unsupported())
        }
    }

    fn remove(&self) -> Result<(), FirewallError> {
        #[cfg(windows)]
        {
            super::wfp_ffi::remove_all()
        }
        #[cfg(not(windows))]
        {
            Err(unsupported())
        }
    }

    fn inspect(&self) -> Result<Option<Inspection>, FirewallError> {
        #[cfg(windows)]
        {
            Ok(listing(super::wfp_ffi::list()?).map(crate::digest::inspection))
        }
        #[cfg(not(windows))]
        {
            Err(unsupported())
        }
    }
}

#[cfg(not(windows))]
fn unsupported() -> FirewallError {
    FirewallError::Unsupported("the Windows Filtering Platform exists only on Windows".into())
}

/// One of our filters as read back from the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFilter {
    /// The layer's `FWPM_LAYER_*` name without the prefix, as
    /// [`cordon_policy::render::wfp::Layer::name`] spells it.
    pub layer: String,
    /// `FWP_ACTION_PERMIT` (true) or `FWP_ACTION_BLOCK` (false).
    pub permit: bool,
    /// The filter's `FWP_UINT8` weight inside Cordon's sublayer.
    pub weight: u8,
    /// The display name the filter was added with.
    pub name: String,
}

/// The normalized listing of our filters (sorted, ids left out since they change on
/// every apply), or `None` when there are none.
pub fn listing(mut filters: Vec<ListedFilter>) -> Option<String> {
    if filters.is_empty() {
        return None;
    }
    filters.sort_by(|a, b| (&a.layer, b.weight, &a.name).cmp(&(&b.layer, a.weight, &b.name)));
    Some(
        filters
            .iter()
            .map(|f| {
                format!(
                    "{} {} w={} {}\n",
                    f.layer,
                    if f.permit { "permit" } else { "block" },
                    f.weight,
                    f.name
                )
            })
            .collect(),
    )
}

/// The listing we expect to read back after applying `filters`, so a digest taken at
/// apply time can be compared with one from [`listing`] later.
pub fn expected_listing(filters: &[wfp::FilterSpec]) -> Option<String> {
    listing(
        filters
            .iter()
            .map(|f| ListedFilter {
                layer: f.layer.name().to_string(),
                permit: f.action == wfp::Action::Permit,
                weight: f.weight,
                name: f.name.clone(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_is_order_independent() {
        let p = Policy::builder().server("192.0.2.1:8443".parse().unwrap()).build();
        let fs = wfp::filters(&p);
        let mut rev = fs.clone();
        rev.reverse();
        assert_eq!(expected_listing(&fs), expected_listing(&rev));
        assert!(expected_listing(&fs)
            .unwrap()
            .contains("ALE_AUTH_CONNECT_V4 permit w=10 Cordon: tcp to 192.0.2.1:8443"));
        assert_eq!(listing(Vec::new()), None);
    }

    /// trial26 L2: failing to open the engine is not a rejected change.
    #[test]
    fn an_engine_that_cannot_be_opened_is_unavailable_not_a_rejected_change() {
        let e = engine_open_error(0x6e4);
        assert!(matches!(e, FirewallError::Unsupported(_)), "{e:?}");
        let text = crate::chain(&e);
        assert!(text.starts_with("cannot open the Windows Filtering Platform"), "{text}");
        assert!(!text.contains("rejected") && !text.contains("change"), "{text}");
        assert!(matches!(
            engine_open_error(ACCESS_DENIED),
            FirewallError::NotPermitted(_)
        ));
    }

    #[cfg(not(windows))]
    #[test]
    fn not_available_off_windows() {
        assert!(matches!(
            Wfp::probe(TableName::default()),
            Err(FirewallError::Unsupported(_))
        ));
    }
}
