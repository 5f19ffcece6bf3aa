//! Library side of the `cordon` binary: the namespace test lab (also used by the
//! integration tests) and the benchmarks. Both need Linux network namespaces.

#[cfg(target_os = "linux")]
pub mod bench;
#[cfg(target_os = "linux")]
pub mod bench_apply;
#[cfg(target_os = "linux")]
pub mod bench_e2e;
#[cfg(all(target_os = "linux", feature = "server"))]
pub mod bench_server;
#[cfg(target_os = "linux")]
pub mod lab;
#[cfg(target_os = "linux")]
pub mod server_lab;
