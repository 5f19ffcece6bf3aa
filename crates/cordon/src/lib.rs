//! Library side of the `cordon` binary: the namespace test lab (also used by the
//! integration tests) and the benchmarks.

pub mod bench;
pub mod bench_apply;
pub mod lab;
