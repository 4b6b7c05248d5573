//! The C ABI from C: builds the C11 and C++17 programs in `ffi-tests/`
//! against a static library of the current sources, and runs them
//! under ASan+UBSan and (when installed) valgrind. Also checks that the
//! committed header's version macros match Cargo.toml.
//!
//! Needs `make` and a C/C++ compiler (gcc or clang) with sanitizers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding a fresh `libnodestats.a`, built once per run.
///
/// `cargo test` builds the library for linking into Rust only, so a
/// `target/<profile>/libnodestats.a` may be missing or stale: build the
/// static library of the current sources into a target directory of our own
/// (`cargo build --lib`, debug, so the C tests also run Rust's debug
/// assertions and overflow checks).
fn lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ffi-lib");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--lib", "--no-default-features"])
            .arg("--target-dir")
            .arg(&target)
            .current_dir(manifest_dir())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --lib failed");
        let dir = target.join("debug");
        assert!(
            dir.join("libnodestats.a").is_file(),
            "no libnodestats.a in {dir:?}"
        );
        dir
    })
}

/// Runs `make -C ffi-tests <target>` with its own build directory.
fn make(target: &str) {
    let build = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("ffi-tests")
        .join(target);
    let out = Command::new("make")
        .arg("-C")
        .arg(manifest_dir().join("ffi-tests"))
        .arg(target)
        .arg(format!("LIBDIR={}", lib_dir().display()))
        .arg(format!("BUILDDIR={}", build.display()))
        // cargo points this at its own (possibly stale) libnodestats.so.
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("run make (is it installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(out.status.success(), "make {target} failed: {}", out.status);
    assert!(
        stdout.contains("passed, 0 failed"),
        "make {target} ran no C test"
    );
}

#[test]
fn c_and_cpp_tests_pass_under_asan_and_ubsan() {
    make("check");
}

/// The timing program of `make -C ffi-tests floor` (thread writer vs the
/// floor through a call) builds and counts exactly; its timing is for
/// benches, not for tests.
#[test]
fn thread_floor_program_counts_exactly() {
    make("floor-check");
}

#[test]
fn c_tests_are_valgrind_clean() {
    let installed = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        println!("note: valgrind is not installed; skipping the valgrind run");
        return;
    }
    make("valgrind");
}

#[test]
fn c_tests_pass_against_the_shared_library() {
    make("shared");
}

/// The value of `#define <name> <value>` in the committed header.
fn define<'a>(header: &'a str, name: &str) -> &'a str {
    header
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("#define ")?.strip_prefix(name)?;
            rest.starts_with(' ').then(|| rest.trim())
        })
        .unwrap_or_else(|| panic!("include/nodestats.h has no #define {name}"))
}

#[test]
fn header_version_macros_match_cargo_toml() {
    let header = std::fs::read_to_string(manifest_dir().join("include/nodestats.h"))
        .expect("read include/nodestats.h");
    let hint = "run scripts/gen-header.sh and commit include/nodestats.h";
    assert_eq!(
        define(&header, "NODESTATS_VERSION"),
        format!("\"{}\"", env!("CARGO_PKG_VERSION")),
        "{hint}"
    );
    for (name, want) in [
        ("NODESTATS_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("NODESTATS_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("NODESTATS_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        assert_eq!(define(&header, name), want, "{name}: {hint}");
    }
    assert!(header.contains("#ifndef NODESTATS_H"), "include guard");
    assert!(header.contains("do not edit"), "generated banner");
}

#[test]
fn library_version_matches_the_header() {
    // SAFETY: nodestats_version returns a static NUL-terminated string.
    let v = unsafe { std::ffi::CStr::from_ptr(nodestats::__testing::ffi::nodestats_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}
