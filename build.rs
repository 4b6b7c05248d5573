//! Gives the C shared library a versioned SONAME, so that programs record
//! the ABI they were linked against and an ABI-breaking release can be
//! installed beside the old one: `libnodestats.so.MAJOR`, or
//! `libnodestats.so.0.MINOR` while the major version is 0 (each 0.x minor
//! version may change struct layouts; see the README's C API conventions).
//! `scripts/install.sh` installs the file under that name with the
//! `libnodestats.so` link beside it.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Set only for the cdylib; ELF targets with GNU-style linkers.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_default();
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap_or_default();
    let abi = if major == "0" {
        format!("0.{minor}")
    } else {
        major
    };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnodestats.so.{abi}");
}
