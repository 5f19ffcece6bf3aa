//! The thin Windows-only layer: turns `FilterSpec`s into `FwpmFilterAdd0` calls. It makes
//! no decisions of its own (those are in `cordon_policy::render::wfp`, tested on every
//! OS); it cannot be tested on Linux, so it is kept as small and linear as possible.
//!
//! Every change is one transaction on a non-dynamic session, so our objects persist
//! after the process exits, and either all of a change happens or none of it.

use std::ffi::c_void;
use std::net::IpAddr;
use std::ptr::{null, null_mut};

use cordon_policy::model::Family;
use cordon_policy::render::wfp::{Action, Condition, FilterSpec, Layer};
use ipnet::IpNet;
use windows_sys::core::{GUID, PWSTR};
use windows_sys::Win32::Foundation::{
    FWP_E_ALREADY_EXISTS, FWP_E_FILTER_NOT_FOUND, FWP_E_PROVIDER_NOT_FOUND, FWP_E_SUBLAYER_NOT_FOUND, HANDLE,
};
use windows_sys::Win32::NetworkManagement::WindowsFilteringPlatform::*;
use windows_sys::Win32::System::Rpc::RPC_C_AUTHN_DEFAULT;

use super::wfp::{ListedFilter, ACCESS_DENIED, PROVIDER_KEY, SUBLAYER_KEY, SUBLAYER_WEIGHT};
use crate::{Cause, FirewallError, Refusal};

const PROVIDER: GUID = GUID::from_u128(PROVIDER_KEY);
const SUBLAYER: GUID = GUID::from_u128(SUBLAYER_KEY);

fn layer_key(layer: Layer) -> GUID {
    match layer {
        Layer::AleAuthConnect(Family::V4) => FWPM_LAYER_ALE_AUTH_CONNECT_V4,
        Layer::AleAuthConnect(Family::V6) => FWPM_LAYER_ALE_AUTH_CONNECT_V6,
        Layer::AleAuthRecvAccept(Family::V4) => FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4,
        Layer::AleAuthRecvAccept(Family::V6) => FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V6,
        Layer::IpForward(Family::V4) => FWPM_LAYER_IPFORWARD_V4,
        Layer::IpForward(Family::V6) => FWPM_LAYER_IPFORWARD_V6,
        Layer::InboundIcmpError(Family::V4) => FWPM_LAYER_INBOUND_ICMP_ERROR_V4,
        Layer::InboundIcmpError(Family::V6) => FWPM_LAYER_INBOUND_ICMP_ERROR_V6,
    }
}

fn check(what: &str, rc: u32) -> Result<(), FirewallError> {
    match rc {
        0 => Ok(()),
        ACCESS_DENIED => Err(FirewallError::NotPermitted(Refusal::caused_by(
            format!("{what}: access denied (run as administrator)"),
            Cause::Win32(rc),
        ))),
        other => Err(FirewallError::Rejected(Refusal::caused_by(
            format!("{what} failed"),
            Cause::Win32(other),
        ))),
    }
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// An open engine handle; closed on drop. A transaction still open then is aborted by
/// the engine when the handle closes.
struct Engine(HANDLE);

impl Engine {
    fn open() -> Result<Self, FirewallError> {
        let mut handle: HANDLE = null_mut();
        // SAFETY: all pointers are null (defaults) or point to our local handle.
        let rc = unsafe { FwpmEngineOpen0(null(), RPC_C_AUTHN_DEFAULT as u32, null(), null(), &mut handle) };
        if rc != 0 {
            return Err(super::wfp::engine_open_error(rc));
        }
        Ok(Engine(handle))
    }

    /// Runs `body` inside one transaction: commit on success, abort on error.
    fn transaction(&self, body: impl FnOnce(&Engine) -> Result<(), FirewallError>) -> Result<(), FirewallError> {
        // SAFETY: the handle is open for the lifetime of self.
        check("FwpmTransactionBegin0", unsafe { FwpmTransactionBegin0(self.0, 0) })?;
        match body(self) {
            // SAFETY: as above; a transaction is open.
            Ok(()) => check("FwpmTransactionCommit0", unsafe { FwpmTransactionCommit0(self.0) }),
            Err(e) => {
                // SAFETY: as above.
                unsafe { FwpmTransactionAbort0(self.0) };
                Err(e)
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: the handle came from FwpmEngineOpen0 and is closed once.
        unsafe { FwpmEngineClose0(self.0) };
    }
}

/// Replaces all of our filters by `filters`, in one transaction.
pub fn replace_all(filters: &[FilterSpec]) -> Result<(), FirewallError> {
    let engine = Engine::open()?;
    engine.transaction(|e| {
        delete_our_filters(e)?;
        add_provider_and_sublayer(e)?;
        for f in filters {
            add_filter(e, f)?;
        }
        Ok(())
    })
}

/// Deletes our filters, sublayer and provider, in one transaction.
pub fn remove_all() -> Result<(), FirewallError> {
    let engine = Engine::open()?;
    engine.transaction(|e| {
        delete_our_filters(e)?;
        // SAFETY: handle open, keys are valid GUIDs on our stack.
        let rc = unsafe { FwpmSubLayerDeleteByKey0(e.0, &SUBLAYER) };
        if rc != FWP_E_SUBLAYER_NOT_FOUND as u32 {
            check("FwpmSubLayerDeleteByKey0", rc)?;
        }
        // SAFETY: as above.
        let rc = unsafe { FwpmProviderDeleteByKey0(e.0, &PROVIDER) };
        if rc != FWP_E_PROVIDER_NOT_FOUND as u32 {
            check("FwpmProviderDeleteByKey0", rc)?;
        }
        Ok(())
    })
}

/// Our filters as they are in the engine now.
pub fn list() -> Result<Vec<ListedFilter>, FirewallError> {
    let engine = Engine::open()?;
    let mut out = Vec::new();
    for layer in Layer::ALL {
        for (_, f) in enum_ours(&engine, layer)? {
            out.push(f);
        }
    }
    Ok(out)
}

fn delete_our_filters(e: &Engine) -> Result<(), FirewallError> {
    for layer in Layer::ALL {
        for (id, _) in enum_ours(e, layer)? {
            // SAFETY: handle open; id came from the engine.
            let rc = unsafe { FwpmFilterDeleteById0(e.0, id) };
            if rc != FWP_E_FILTER_NOT_FOUND as u32 {
                check("FwpmFilterDeleteById0", rc)?;
            }
        }
    }
    Ok(())
}

/// (filter id, description) of every filter of our provider at `layer`.
fn enum_ours(e: &Engine, layer: Layer) -> Result<Vec<(u64, ListedFilter)>, FirewallError> {
    let mut provider = PROVIDER;
    // SAFETY: an all-zero template is valid (no conditions, null pointers).
    let mut template: FWPM_FILTER_ENUM_TEMPLATE0 = unsafe { std::mem::zeroed() };
    template.providerKey = &mut provider;
    template.layerKey = layer_key(layer);
    template.enumType = FWP_FILTER_ENUM_OVERLAPPING;
    template.actionMask = 0xffff_ffff;
    let mut enum_handle: HANDLE = null_mut();
    // SAFETY: template and provider live until the call returns.
    check("FwpmFilterCreateEnumHandle0", unsafe {
        FwpmFilterCreateEnumHandle0(e.0, &template, &mut enum_handle)
    })?;
    let mut out = Vec::new();
    let result = loop {
        let mut entries: *mut *mut FWPM_FILTER0 = null_mut();
        let mut count: u32 = 0;
        // SAFETY: the engine allocates `entries`; we free it below.
        let rc = unsafe { FwpmFilterEnum0(e.0, enum_handle, 256, &mut entries, &mut count) };
        if rc != 0 {
            break check("FwpmFilterEnum0", rc);
        }
        for i in 0..count as usize {
            // SAFETY: the engine returned `count` valid filter pointers.
            let f = unsafe { &**entries.add(i) };
            // The provider filter in the template is advisory on some versions; check.
            // SAFETY: providerKey is null or points into the engine's allocation.
            let ours = !f.providerKey.is_null() && same_guid(unsafe { &*f.providerKey }, &PROVIDER);
            if ours {
                out.push((f.filterId, describe(layer, f)));
            }
        }
        // SAFETY: frees the array the engine allocated (null is allowed).
        unsafe { FwpmFreeMemory0(&mut entries as *mut _ as *mut *mut c_void) };
        if count < 256 {
            break Ok(());
        }
    };
    // SAFETY: the enum handle came from FwpmFilterCreateEnumHandle0.
    unsafe { FwpmFilterDestroyEnumHandle0(e.0, enum_handle) };
    result.map(|_| out)
}

/// windows-sys GUIDs have no `PartialEq`.
fn same_guid(a: &GUID, b: &GUID) -> bool {
    (a.data1, a.data2, a.data3, a.data4) == (b.data1, b.data2, b.data3, b.data4)
}

fn describe(layer: Layer, f: &FWPM_FILTER0) -> ListedFilter {
    let name = if f.displayData.name.is_null() {
        String::new()
    } else {
        // SAFETY: a non-null display name is a NUL-terminated UTF-16 string.
        unsafe {
            let mut len = 0;
            while *f.displayData.name.add(len) != 0 {
                len += 1;
            }
            String::from_utf16_lossy(std::slice::from_raw_parts(f.displayData.name, len))
        }
    };
    let weight = if f.weight.r#type == FWP_UINT8 {
        // SAFETY: the type tag says the union holds a u8.
        unsafe { f.weight.Anonymous.uint8 }
    } else {
        u8::MAX
    };
    ListedFilter {
        layer: layer.name().to_string(),
        permit: f.action.r#type == FWP_ACTION_PERMIT,
        weight,
        name,
    }
}

fn add_provider_and_sublayer(e: &Engine) -> Result<(), FirewallError> {
    let mut name = wide("Cordon");
    let mut desc = wide("Cordon network quarantine");
    // SAFETY: all-zero is a valid FWPM_PROVIDER0 / FWPM_SUBLAYER0 (null pointers, no data).
    let mut provider: FWPM_PROVIDER0 = unsafe { std::mem::zeroed() };
    provider.providerKey = PROVIDER;
    provider.displayData.name = name.as_mut_ptr();
    provider.displayData.description = desc.as_mut_ptr();
    provider.flags = FWPM_PROVIDER_FLAG_PERSISTENT;
    // SAFETY: the strings live until the call returns.
    let rc = unsafe { FwpmProviderAdd0(e.0, &provider, null_mut()) };
    if rc != FWP_E_ALREADY_EXISTS as u32 {
        check("FwpmProviderAdd0", rc)?;
    }
    let mut provider_key = PROVIDER;
    let mut sub_name = wide("Cordon quarantine");
    // SAFETY: see above.
    let mut sublayer: FWPM_SUBLAYER0 = unsafe { std::mem::zeroed() };
    sublayer.subLayerKey = SUBLAYER;
    sublayer.displayData.name = sub_name.as_mut_ptr();
    sublayer.displayData.description = desc.as_mut_ptr();
    sublayer.flags = FWPM_SUBLAYER_FLAG_PERSISTENT;
    sublayer.providerKey = &mut provider_key;
    sublayer.weight = SUBLAYER_WEIGHT;
    // SAFETY: all pointers live until the call returns.
    let rc = unsafe { FwpmSubLayerAdd0(e.0, &sublayer, null_mut()) };
    if rc != FWP_E_ALREADY_EXISTS as u32 {
        check("FwpmSubLayerAdd0", rc)?;
    }
    Ok(())
}

/// Values that condition structs point to; must outlive `FwpmFilterAdd0`. Boxed so
/// their addresses stay put when the vectors grow (conditions hold raw pointers).
#[allow(clippy::vec_box)]
#[derive(Default)]
struct Storage {
    v4: Vec<Box<FWP_V4_ADDR_AND_MASK>>,
    v6: Vec<Box<FWP_V6_ADDR_AND_MASK>>,
}

fn condition(c: &Condition, store: &mut Storage) -> FWPM_FILTER_CONDITION0 {
    // SAFETY: all-zero is a valid condition (FWP_EMPTY value); every field is set below.
    let mut out: FWPM_FILTER_CONDITION0 = unsafe { std::mem::zeroed() };
    out.matchType = FWP_MATCH_EQUAL;
    let v = &mut out.conditionValue;
    match *c {
        Condition::RemoteAddr(net) | Condition::EmbeddedRemoteAddr(net) => {
            out.fieldKey = if matches!(c, Condition::RemoteAddr(_)) {
                FWPM_CONDITION_IP_REMOTE_ADDRESS
            } else {
                FWPM_CONDITION_EMBEDDED_REMOTE_ADDRESS
            };
            match (net, net.addr()) {
                (IpNet::V4(n), IpAddr::V4(a)) => {
                    // WFP takes IPv4 addresses and masks in host byte order.
                    let mut b = Box::new(FWP_V4_ADDR_AND_MASK {
                        addr: u32::from(a),
                        mask: u32::from(n.netmask()),
                    });
                    v.r#type = FWP_V4_ADDR_MASK;
                    v.Anonymous.v4AddrMask = &mut *b;
                    store.v4.push(b);
                }
                (_, a) => {
                    let octets = match a {
                        IpAddr::V6(a6) => a6.octets(),
                        IpAddr::V4(a4) => a4.to_ipv6_mapped().octets(),
                    };
                    let mut b = Box::new(FWP_V6_ADDR_AND_MASK {
                        addr: octets,
                        prefixLength: net.prefix_len(),
                    });
                    v.r#type = FWP_V6_ADDR_MASK;
                    v.Anonymous.v6AddrMask = &mut *b;
                    store.v6.push(b);
                }
            }
        }
        Condition::RemotePort(p) => {
            out.fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
            v.r#type = FWP_UINT16;
            v.Anonymous.uint16 = p;
        }
        Condition::EmbeddedRemotePort(p) => {
            out.fieldKey = FWPM_CONDITION_EMBEDDED_REMOTE_PORT;
            v.r#type = FWP_UINT16;
            v.Anonymous.uint16 = p;
        }
        Condition::EmbeddedProtocol(p) => {
            out.fieldKey = FWPM_CONDITION_EMBEDDED_PROTOCOL;
            v.r#type = FWP_UINT8;
            v.Anonymous.uint8 = p;
        }
        Condition::LocalPort(p) => {
            out.fieldKey = FWPM_CONDITION_IP_LOCAL_PORT;
            v.r#type = FWP_UINT16;
            v.Anonymous.uint16 = p;
        }
        // FWPM_CONDITION_ICMP_TYPE is a C alias of the local port field.
        Condition::IcmpType(t) => {
            out.fieldKey = FWPM_CONDITION_IP_LOCAL_PORT;
            v.r#type = FWP_UINT16;
            v.Anonymous.uint16 = u16::from(t);
        }
        Condition::Protocol(p) => {
            out.fieldKey = FWPM_CONDITION_IP_PROTOCOL;
            v.r#type = FWP_UINT8;
            v.Anonymous.uint8 = p;
        }
        Condition::Loopback => {
            out.fieldKey = FWPM_CONDITION_FLAGS;
            out.matchType = FWP_MATCH_FLAGS_ALL_SET;
            v.r#type = FWP_UINT32;
            v.Anonymous.uint32 = FWP_CONDITION_FLAG_IS_LOOPBACK;
        }
    }
    out
}

fn add_filter(e: &Engine, spec: &FilterSpec) -> Result<(), FirewallError> {
    let mut store = Storage::default();
    let mut conditions: Vec<FWPM_FILTER_CONDITION0> =
        spec.conditions.iter().map(|c| condition(c, &mut store)).collect();
    let mut name: Vec<u16> = wide(&spec.name);
    let mut provider_key = PROVIDER;
    // SAFETY: all-zero is a valid FWPM_FILTER0 (no conditions, null pointers).
    let mut f: FWPM_FILTER0 = unsafe { std::mem::zeroed() };
    f.displayData.name = name.as_mut_ptr() as PWSTR;
    f.flags = FWPM_FILTER_FLAG_PERSISTENT;
    if spec.flags.clear_action_right {
        // A hard block: no lower-priority sublayer's permit (hard or soft) can undo it.
        f.flags |= FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT;
    }
    f.providerKey = &mut provider_key;
    f.layerKey = layer_key(spec.layer);
    f.subLayerKey = SUBLAYER;
    f.weight.r#type = FWP_UINT8;
    f.weight.Anonymous.uint8 = spec.weight;
    f.numFilterConditions = conditions.len() as u32;
    f.filterCondition = if conditions.is_empty() {
        null_mut()
    } else {
        conditions.as_mut_ptr()
    };
    f.action.r#type = match spec.action {
        Action::Permit => FWP_ACTION_PERMIT,
        Action::Block => FWP_ACTION_BLOCK,
    };
    let mut id = 0u64;
    // SAFETY: every pointer in `f` refers to locals (name, provider_key, conditions,
    // store) that live until the call returns.
    let rc = unsafe { FwpmFilterAdd0(e.0, &f, null_mut(), &mut id) };
    drop(store);
    check(&format!("FwpmFilterAdd0 ({})", spec.name), rc)
}
