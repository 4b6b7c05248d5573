//! The layering of `src/` (the layers of `LAYERS` below, lowest first),
//! checked from the code's own
//! imports: every `crate::<module>` path (and `super::` from a top-level
//! file) outside comments and test modules must point to the same layer or
//! a lower one; `write` and `read` never name each other; sibling files of
//! one folder form no import cycle. Fails with the offending file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first. A module may import its own
/// layer's modules only where `SAME_LAYER` allows it.
const LAYERS: &[&[&str]] = &[
    &["error", "sync", "gofloat"],
    &["schema"],
    &["cpu", "rseq", "sys"],
    &["segment"],
    &["write", "read"],
    &["prom"],
    &["cluster"],
    &["ffi"],
];

/// Same-layer imports that are part of the design.
const SAME_LAYER: &[(&str, &str)] = &[("cpu", "rseq")];

/// Files that may name any module: the crate root (it declares them all)
/// and the test door.
const EXEMPT: &[&str] = &["lib.rs", "__testing.rs"];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().unwrap() != "bin" {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The lines of `src` that are code: comments dropped, and nothing from
/// the first test-only item on (unit tests and loom models sit at the end
/// of a file and may use anything).
fn code_lines(src: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in src.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") || t.starts_with("#[cfg(all(test") {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        let code = match line.find("//") {
            Some(k) => &line[..k],
            None => line,
        };
        out.push((i + 1, code.to_string()));
    }
    out
}

/// Every identifier that follows `prefix` in `line`.
fn names_after<'a>(line: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(k) = rest.find(prefix) {
        let before = rest[..k].chars().last();
        rest = &rest[k + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 {
            out.push(&rest[..end]);
        }
    }
    out
}

struct File {
    /// Path relative to `src/`.
    rel: PathBuf,
    top: String,
    lines: Vec<(usize, String)>,
}

fn load() -> Vec<File> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&src).unwrap().to_path_buf();
            let first = rel.components().next().unwrap().as_os_str();
            let top = Path::new(first)
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            File {
                lines: code_lines(&fs::read_to_string(&p).unwrap()),
                rel,
                top,
            }
        })
        .collect()
}

/// Every (file, line, imported top-level module) that breaks the layering.
fn violations(files: &[File]) -> Vec<String> {
    let mut bad = Vec::new();
    for f in files {
        if EXEMPT.contains(&f.rel.to_str().unwrap()) {
            continue;
        }
        let Some(own) = layer(&f.top) else {
            bad.push(format!(
                "{}: module {} has no layer",
                f.rel.display(),
                f.top
            ));
            continue;
        };
        let top_level_file = f.rel.components().count() == 1;
        for (n, line) in &f.lines {
            let mut targets = names_after(line, "crate::");
            if top_level_file {
                targets.extend(names_after(line, "super::"));
            }
            for t in targets {
                if t == f.top {
                    continue;
                }
                let Some(l) = layer(t) else {
                    // Items re-exported at the root (`crate::Stats`) are
                    // checked where they are defined; a lowercase name that
                    // is no module is a function or macro of the root.
                    continue;
                };
                let allowed = l < own && !(f.top == "write" && t == "read")
                    || SAME_LAYER.contains(&(f.top.as_str(), t));
                if !allowed {
                    bad.push(format!(
                        "{}:{n}: {} (layer {own}) imports {t} (layer {l}): {}",
                        f.rel.display(),
                        f.top,
                        line.trim()
                    ));
                }
            }
        }
    }
    bad
}

/// Cycles among sibling files of one folder (`super::x` and
/// `crate::<folder>::x` edges; `mod.rs` declares its children and is left
/// out).
fn sibling_cycles(files: &[File]) -> Vec<String> {
    let mut graph: BTreeMap<(PathBuf, String), BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let Some(dir) = f.rel.parent().filter(|d| !d.as_os_str().is_empty()) else {
            continue;
        };
        let stem = f.rel.file_stem().unwrap().to_string_lossy().into_owned();
        if stem == "mod" {
            continue;
        }
        let folder_path = format!("crate::{}::", dir.to_string_lossy().replace('/', "::"));
        let siblings: BTreeSet<String> = files
            .iter()
            .filter(|g| g.rel.parent() == Some(dir))
            .map(|g| g.rel.file_stem().unwrap().to_string_lossy().into_owned())
            .filter(|s| s != "mod" && *s != stem)
            .collect();
        let edges = graph.entry((dir.to_path_buf(), stem)).or_default();
        for (_, line) in &f.lines {
            let mut names = names_after(line, "super::");
            names.extend(names_after(line, &folder_path));
            for n in names {
                if siblings.contains(n) {
                    edges.insert(n.to_string());
                }
            }
        }
    }
    let mut cycles = Vec::new();
    for ((dir, start), _) in graph.iter() {
        // Depth-first search for a path back to `start`.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            let Some(next) = graph.get(&(dir.clone(), node.clone())) else {
                continue;
            };
            for n in next {
                if n == start {
                    cycles.push(format!("{}: {} -> {n}", dir.display(), path.join(" -> ")));
                } else if seen.insert(n.clone()) {
                    let mut p = path.clone();
                    p.push(n.clone());
                    stack.push((n.clone(), p));
                }
            }
        }
    }
    cycles
}

#[test]
fn no_module_imports_a_layer_above_it() {
    let files = load();
    assert!(
        files.len() > 20,
        "found only {} files under src/",
        files.len()
    );
    let bad = violations(&files);
    assert!(bad.is_empty(), "layering broken:\n{}", bad.join("\n"));
}

#[test]
fn sibling_files_have_no_import_cycle() {
    let cycles = sibling_cycles(&load());
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_sees_an_upward_import() {
    // A storage file that reaches up into the exporter, and a writer that
    // names the read side: both must be reported.
    let files = vec![
        File {
            rel: "segment/header.rs".into(),
            top: "segment".into(),
            lines: code_lines("use crate::prom::families::LIVEKIT_FAMILIES;\n// crate::ffi in a comment\n#[cfg(test)]\nuse crate::ffi;"),
        },
        File {
            rel: "write/stats.rs".into(),
            top: "write".into(),
            lines: code_lines("use crate::read::{Collector, CollectorConfig};\nuse crate::segment::Segment;"),
        },
    ];
    let bad = violations(&files);
    assert_eq!(bad.len(), 2, "{bad:#?}");
    assert!(bad[0].contains("segment/header.rs:1") && bad[0].contains("imports prom"));
    assert!(bad[1].contains("write/stats.rs:1") && bad[1].contains("imports read"));
}

#[test]
fn the_checker_sees_a_sibling_cycle() {
    let f = |rel: &str, src: &str| File {
        rel: rel.into(),
        top: "read".into(),
        lines: code_lines(src),
    };
    let files = vec![
        f("read/a.rs", "use super::b::X;"),
        f("read/b.rs", "use crate::read::a::Y;"),
        f("read/c.rs", "use super::a::Z;"),
    ];
    let cycles = sibling_cycles(&files);
    assert!(
        !cycles.is_empty() && cycles[0].contains("a -> b"),
        "{cycles:?}"
    );
}
