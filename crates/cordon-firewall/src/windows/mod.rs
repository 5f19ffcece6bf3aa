//! Windows backends: WFP (the default) and the static IPsec policy through `netsh`.
//!
//! Both compile on every OS so their pure parts are tested everywhere; only the WFP
//! FFI layer is Windows-only, and `open_kind` selects them on Windows alone.

#[cfg(windows)]
pub mod dns;
pub mod netsh;
pub mod wfp;

#[cfg(windows)]
mod wfp_ffi;
