//! The prost types of the Prometheus protobuf exposition
//! (`src/prom/protobuf/*.rs`) are generated from `proto/` (the upstream
//! `io/prometheus/client/metrics.proto`) and checked in, so that the
//! library builds with no build script, protoc or code generator. This
//! test generates them afresh (protox, prost-build: pure Rust) and fails
//! if the checked-in files differ; `scripts/gen-proto.sh` (this test with
//! `NODESTATS_GEN_PROTO=write`) rewrites them.

use std::path::Path;

/// The generated files, by prost-build's name for them.
const FILES: [&str; 2] = ["io.prometheus.client.rs", "google.protobuf.rs"];

#[test]
fn generated_types_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fds = protox::compile(["io/prometheus/client/metrics.proto"], [root.join("proto")])
        .expect("proto/ compiles");
    let out = std::env::temp_dir().join(format!("nodestats-proto-gen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let generated = prost_build::Config::new()
        .out_dir(&out)
        // Timestamp (created_timestamp, exemplars) is generated too, so
        // the library needs no prost-types.
        .compile_well_known_types()
        .compile_fds(fds);
    let read = |f: &str| std::fs::read_to_string(out.join(f));
    let files: Vec<(&str, std::io::Result<String>)> = FILES.iter().map(|f| (*f, read(f))).collect();
    let _ = std::fs::remove_dir_all(&out);
    generated.expect("prost-build generates");
    let write = std::env::var("NODESTATS_GEN_PROTO").as_deref() == Ok("write");
    for (name, fresh) in files {
        let fresh = fresh.unwrap_or_else(|e| panic!("prost-build wrote no {name}: {e}"));
        let path = root.join("src/prom/protobuf").join(name);
        if write {
            std::fs::write(&path, &fresh).unwrap();
            continue;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == fresh,
            "{} is not what proto/ generates: run scripts/gen-proto.sh",
            path.display()
        );
    }
}
