//! The C ABI from C: builds the C11 and C++17 programs in `ffi-tests/`
//! against a static library of the current sources, and runs them
//! under ASan+UBSan and (when installed) valgrind; installs the library
//! with `scripts/install.sh` and builds the README's C quick start against
//! it (shared and static, through pkg-config) and a plugin that links it.
//! Also checks that the committed header's version macros match Cargo.toml.
//!
//! Needs `make`, `pkg-config`, binutils and a C/C++ compiler (gcc or clang)
//! with sanitizers.

mod common;

use common::{ShmName, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
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

/// Runs `make -C ffi-tests <target>` with its own build directory: the
/// target's C test programs must run and report no failure.
fn make(target: &str) {
    let stdout = make_build(target);
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

/// `ffi-tests/lifecycle.c`: a C writer recording on two threads while
/// other processes truncate its segment and replace it at the name, three
/// times each, calling `nodestats_maintain` every 100 ms. It must never die
/// (a truncate used to kill it with SIGBUS), see every act in
/// `nodestats_segment_status`, and a collector opened at the name at the
/// end must see at least 70 % of everything it recorded in the run.
#[test]
fn a_c_writer_survives_truncates_and_follows_its_name() {
    let name = format!("/nodestats-ffi-lifecycle-{}", std::process::id());
    struct Unlink<'a>(&'a str);
    impl Drop for Unlink<'_> {
        fn drop(&mut self) {
            let _ = nodestats::Segment::unlink(self.0);
        }
    }
    let _cleanup = Unlink(&name);
    let out = make_build_with("lifecycle", &[format!("NAME={name}"), "SECONDS=4".into()]);
    assert!(out.contains("lifecycle: recorded"), "{out}");
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

/// The directory `make -C ffi-tests <target>` builds into.
fn build_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("ffi-tests")
        .join(target)
}

/// Runs `make -C ffi-tests <target>` with its own build directory against
/// the fresh library; fails unless make succeeds; make's output.
fn make_build(target: &str) -> String {
    make_build_with(target, &[])
}

/// [`make_build`] with more `VAR=value` arguments.
fn make_build_with(target: &str, vars: &[String]) -> String {
    let out = Command::new("make")
        .arg("-C")
        .arg(manifest_dir().join("ffi-tests"))
        .arg(target)
        .args(vars)
        .arg(format!("LIBDIR={}", lib_dir().display()))
        .arg(format!("BUILDDIR={}", build_dir(target).display()))
        // cargo points this at its own (possibly stale) libnodestats.so.
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("run make (is it installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "make {target} failed: {}", out.status);
    stdout
}

/// The value of the sample `line_start` (its name and labels) in `text`.
fn sample(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {line_start} in:\n{text}"))
        .parse()
        .unwrap()
}

/// examples/sfu_families.c and its C++ twin: families declared by four
/// worker processes each, exported exactly by a `nodestats serve` that was
/// never told about them; the dead workers' gauge parts are gone, the
/// parent's stays; the program removes its segment when stdin closes.
#[test]
fn the_sfu_example_and_its_cpp_twin_export_through_serve() {
    use std::io::{BufRead, BufReader};
    make_build("sfu");
    let dir = build_dir("sfu");
    for program in ["sfu_families_c", "sfu_families_cpp"] {
        let name = format!("/nodestats-sfu-{}-{program}", std::process::id());
        let mut child = Command::new(dir.join(program))
            .args([&name, "4"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the example");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready 4 workers", "{program}");
        let (mut serve, addr) = common::serve(&name, &["--node-id", "n1"]);
        let text = common::http_body(&addr, "/metrics");
        let _ = serve.kill();
        let _ = serve.wait();
        let c = r#"node_id="n1",node_type="SERVER""#;
        let s = |l: &str| sample(&text, l);
        assert!(text.contains(
            "# HELP sfu_forward_delay_seconds Time from receiving a packet to forwarding it.\n# TYPE sfu_forward_delay_seconds histogram\n"
        ));
        assert_eq!(
            s(&format!(
                r#"sfu_rtp_packets_total{{direction="incoming",media="video",{c}}}"#
            )),
            4000.0
        );
        assert_eq!(
            s(&format!(
                r#"sfu_rtp_packets_total{{direction="outgoing",media="audio",{c}}}"#
            )),
            8000.0
        );
        assert_eq!(
            s(&format!(r#"sfu_rtcp_feedback_total{{{c},type="nack"}}"#)),
            120.0
        );
        assert_eq!(
            s(&format!(r#"sfu_rtcp_feedback_total{{{c},type="pli"}}"#)),
            12.0
        );
        assert_eq!(s(&format!("sfu_keyframe_requests_total{{{c}}}")), 12.0);
        assert_eq!(s(&format!(r#"sfu_transports{{{c},protocol="tcp"}}"#)), 2.0);
        assert_eq!(s(&format!(r#"sfu_transports{{{c},protocol="udp"}}"#)), 0.0);
        // The native histogram in text: its count and sum (the native
        // buckets go out in the protobuf exposition).
        assert!(text.contains("# TYPE sfu_rtt_ms histogram\n"), "{program}");
        assert_eq!(s(&format!("sfu_rtt_ms_count{{{c}}}")), 4000.0, "{program}");
        assert_eq!(s(&format!("sfu_rtt_ms_sum{{{c}}}")), 238_000.0, "{program}");
        assert_eq!(
            s(&format!(
                r#"nodestats_native_clamped_total{{family="sfu_rtt_ms",{c}}}"#
            )),
            0.0,
            "{program}"
        );
        for (le, v) in [
            ("0.0005", 2000.0),
            ("0.001", 2000.0),
            ("0.0025", 4000.0),
            ("+Inf", 4000.0),
        ] {
            assert_eq!(
                s(&format!(
                    r#"sfu_forward_delay_seconds_bucket{{{c},le="{le}"}}"#
                )),
                v,
                "{program} le {le}"
            );
        }
        let rooms: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("sfu_room_bytes_total{"))
            .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
            .collect();
        assert_eq!(rooms.len(), 5, "4 rooms and the overflow series: {text}");
        assert_eq!(
            rooms.iter().sum::<f64>(),
            4.0 * 6.0 * 1200.0,
            "nothing lost"
        );
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success(), "{program} failed");
        let shm = format!("/dev/shm{name}");
        assert!(!Path::new(&shm).exists(), "{program} left {shm}");
    }
}

/// Runs `cmd`, panics with its output unless it succeeds, returns stdout.
fn run(cmd: &mut Command) -> String {
    let out: Output = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?} (is it installed?): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The README's C quick start program.
fn readme_c_quick_start() -> String {
    let readme = std::fs::read_to_string(manifest_dir().join("README.md")).unwrap();
    let section = readme
        .split("## C quick start")
        .nth(1)
        .expect("README has a C quick start");
    let code = section
        .split("```c\n")
        .nth(1)
        .and_then(|c| c.split("```").next())
        .expect("a ```c block in the C quick start");
    code.to_string()
}

/// The libraries a linked file asks the loader for (`DT_NEEDED`).
fn needed(file: &Path) -> Vec<String> {
    run(Command::new("objdump").arg("-p").arg(file))
        .lines()
        .filter_map(|l| l.trim().strip_prefix("NEEDED"))
        .map(|n| n.trim().to_string())
        .collect()
}

/// `scripts/install.sh` into a prefix of this test's own (removed at the
/// end); then, through the pkg-config files it installs: the README's C
/// quick start linked to the shared library (found through an rpath to the
/// prefix, as the README says) and to the static one, each run; and a
/// plugin linked to the static library, which must export only its own
/// symbols and the C API's.
#[test]
fn installed_library_links_shared_static_and_into_a_plugin() {
    let prefix = TempDir::new("ffi-install");
    run(Command::new("bash")
        .arg(manifest_dir().join("scripts/install.sh"))
        .arg("--from")
        .arg(lib_dir())
        .arg(prefix.join("usr")));
    let pkg_config = |args: &[&str]| -> Vec<String> {
        run(Command::new("pkg-config")
            .args(args)
            .env("PKG_CONFIG_PATH", prefix.join("usr/lib/pkgconfig")))
        .split_whitespace()
        .map(str::to_string)
        .collect()
    };
    let libdir = pkg_config(&["--variable=libdir", "nodestats"]).join(" ");

    // The quick start on a segment name of this test's own; it removes
    // the segment itself before it returns.
    let shm = ShmName::new("ffi-install");
    let source = readme_c_quick_start();
    assert!(source.contains("\"/sfu-stats\""), "{source}");
    let app = prefix.join("app.c");
    std::fs::write(
        &app,
        source.replace("\"/sfu-stats\"", &format!("\"{}\"", &*shm)),
    )
    .unwrap();
    let shm_file = Path::new("/dev/shm").join(&shm[1..]);
    let soname = format!(
        "libnodestats.so.{}",
        match env!("CARGO_PKG_VERSION_MAJOR") {
            "0" => concat!("0.", env!("CARGO_PKG_VERSION_MINOR")),
            major => major,
        }
    );
    for (package, extra) in [
        ("nodestats", vec![format!("-Wl,-rpath,{libdir}")]),
        ("nodestats-static", vec![]),
    ] {
        let exe = prefix.join(package);
        run(Command::new("cc")
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&exe)
            .arg(&app)
            .args(pkg_config(&["--cflags", "--libs", package]))
            .args(&extra));
        let linked_to_so = needed(&exe).contains(&soname);
        assert_eq!(
            linked_to_so,
            package == "nodestats",
            "{package}: needs {:?}",
            needed(&exe)
        );
        let out = run(Command::new(&exe).env_remove("LD_LIBRARY_PATH"));
        assert!(out.contains("packets_in=32 rooms=1"), "{package}: {out}");
        assert!(
            !shm_file.exists(),
            "{package}: the quick start left {shm_file:?}"
        );
    }

    let plugin = prefix.join("plugin.so");
    run(Command::new("cc")
        .args([
            "-std=c11", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-o",
        ])
        .arg(&plugin)
        .arg(manifest_dir().join("ffi-tests/plugin.c"))
        .args(pkg_config(&["--cflags", "--libs", "nodestats-static"])));
    let exported: Vec<String> = run(Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&plugin))
    .lines()
    .filter_map(|l| l.split_whitespace().last().map(str::to_string))
    .collect();
    let foreign: Vec<&String> = exported
        .iter()
        .filter(|s| !s.starts_with("plugin_") && !s.starts_with("nodestats_"))
        .collect();
    println!(
        "plugin exports {} symbols: {} of its own and the C API's, {} others",
        exported.len(),
        exported.len() - foreign.len(),
        foreign.len()
    );
    assert!(
        foreign.is_empty(),
        "the plugin exports symbols of the library's internals: {:?}",
        &foreign[..foreign.len().min(20)]
    );
    for s in ["plugin_init", "nodestats_open", "nodestats_record_packets"] {
        assert!(exported.iter().any(|e| e == s), "{s} is not exported");
    }
}
