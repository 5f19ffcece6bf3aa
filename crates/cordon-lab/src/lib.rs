//! The namespace lab of design §7 and the benchmarks, kept out of the shipped library
//! crates: `cordon lab` and `cordon bench …` (through the `lab` feature of the `cordon`
//! binary) and the integration tests in `crates/cordon/tests` use this crate. Everything
//! here needs Linux network namespaces; on other systems the crate is empty.

#[cfg(target_os = "linux")]
pub mod bench;
#[cfg(target_os = "linux")]
pub(crate) mod bench_apply;
#[cfg(target_os = "linux")]
pub(crate) mod bench_e2e;
#[cfg(all(target_os = "linux", feature = "server"))]
pub(crate) mod bench_server;
#[cfg(target_os = "linux")]
pub(crate) mod bench_startup;
#[cfg(target_os = "linux")]
pub(crate) mod bench_tamper;
#[cfg(target_os = "linux")]
pub mod lab;
#[cfg(target_os = "linux")]
pub(crate) mod rename_race;
#[cfg(target_os = "linux")]
pub mod server_lab;
#[cfg(target_os = "linux")]
pub mod webhook;
