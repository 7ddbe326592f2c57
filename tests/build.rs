//! Turns `KAFDO_E2E=1` into `cfg(kafdo_e2e)`, so an end-to-end test that cannot run is reported
//! as ignored (with the reason) instead of passing: each carries
//! `#[cfg_attr(not(kafdo_e2e), ignore = "...")]`. The variable is read when the crate is built,
//! and changing it rebuilds the crate.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=KAFDO_E2E");
    println!("cargo::rustc-check-cfg=cfg(kafdo_e2e)");
    if std::env::var("KAFDO_E2E").is_ok_and(|v| v == "1") {
        println!("cargo::rustc-cfg=kafdo_e2e");
    }
}
