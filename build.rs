//! Links the `mailfs` binary as a position-dependent executable (`-no-pie`).
//!
//! Why: `mailfs sendmail` runs once per message, so starting the binary is a large share of a
//! submission. As a PIE, the dynamic loader applies ~19,000 relative relocations at every
//! start and each page of relocated data is copied on write: ~90 more page faults and
//! 0.3-0.4 ms more CPU per process than the same code at a fixed address (`perf stat` of
//! `mailfs --version` and `mailfs sendmail`, BENCHMARKS.md). The crates stay compiled as
//! position-independent code, which links into a fixed-address executable as it is: only the
//! binary's final link changes, so nothing is rebuilt for it and the tests are untouched.
//!
//! The cost: the executable's own code and data sit at fixed addresses (shared libraries,
//! stack and heap are still randomised), a weaker exploit mitigation for the network-facing
//! listener. `MAILFS_PIE=1 cargo build --release` keeps a PIE for an installation that wants
//! that mitigation more than faster `sendmail` starts.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MAILFS_PIE");
    let target = std::env::var("TARGET").unwrap_or_default();
    let pie = std::env::var_os("MAILFS_PIE").is_some_and(|v| v == "1");
    if target.contains("-linux-gnu") && !pie {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
