//! Link options of the endpoint build (issue #18: `cordon --version` within 0.5 ms of
//! `/bin/true`). Only for `--profile release-endpoint` on Linux, the binary installed on
//! every quarantined host: it is linked as a position-dependent executable (`-no-pie`).
//!
//! Why: as a PIE, the dynamic loader applies ~10,000 relative relocations at every start
//! (`LD_DEBUG=statistics`), writing to every page of `.data.rel.ro` (~160 KB): ~40 extra
//! copy-on-write page faults before `main`, which on this kind of virtual machine cost more
//! than the relocations themselves. Linked at a fixed address, the linker resolves them
//! once and the loader has nothing to do. The cost: the executable image itself is not
//! address-randomized (its libraries, stack and heap still are). Cargo profiles cannot
//! carry rustflags on stable Rust, so the profile is recognised by its output directory.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = std::env::var("OUT_DIR").unwrap_or_default();
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if linux && out_dir.contains("/release-endpoint/") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
