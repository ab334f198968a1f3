//! The architecture invariants of `docs/ARCHITECTURE.md`, checked on the real dependency graph
//! (`cargo metadata`): the pure crates reach no IO crate, only store crates reach a storage
//! engine, and only the benchmark harness reaches SQLite and the naive PostgreSQL peer.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Crate names → the names of their normal (non-dev, non-build) dependencies, for every package
/// in the resolved graph. `cargo metadata` is run without `--features`/`--all-features`, so the
/// graph is the one of the default features: an optional dependency shows only when a default
/// feature turns it on.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    graph_of(&metadata())
}

/// `cargo metadata` of the workspace, default features, this machine's platform only.
fn metadata() -> Value {
    // The graph of this machine's platform only, so no package of another one is fetched.
    let platform = format!(
        "{}-unknown-{}-gnu",
        std::env::consts::ARCH,
        std::env::consts::OS
    );
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            &platform,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("metadata is JSON")
}

fn graph_of(meta: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("id"),
                p["name"].as_str().expect("name"),
            )
        })
        .collect();
    let mut graph = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve") {
        let name = names[node["id"].as_str().expect("id")].to_owned();
        let deps: BTreeSet<String> = node["deps"]
            .as_array()
            .expect("deps")
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()))
            })
            .map(|d| names[d["pkg"].as_str().expect("pkg")].to_owned())
            .collect();
        graph.entry(name).or_insert_with(BTreeSet::new).extend(deps);
    }
    graph
}

/// Everything `name` links, directly or not.
fn reach(graph: &BTreeMap<String, BTreeSet<String>>, name: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![name.to_owned()];
    while let Some(n) = todo.pop() {
        for d in graph.get(&n).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

fn who_depends_on(graph: &BTreeMap<String, BTreeSet<String>>, dep: &str) -> BTreeSet<String> {
    graph
        .iter()
        .filter(|(_, deps)| deps.contains(dep))
        .map(|(name, _)| name.clone())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// IO: a runtime, a storage engine, a database driver, an HTTP stack, a workspace crate that
/// does IO.
const IO_CRATES: &[&str] = &[
    "tokio",
    "mio",
    "sled",
    "rusqlite",
    "libsqlite3-sys",
    "tokio-postgres",
    "postgres",
    "hyper",
    "axum",
    "ureq",
    "store",
    "store-sled",
    "api",
    "cli",
    "bench",
    "client",
];

#[test]
fn the_pure_crates_reach_no_io_crate() {
    let graph = graph();
    for pure in ["events", "projections"] {
        let reached = reach(&graph, pure);
        let io: Vec<&&str> = IO_CRATES.iter().filter(|c| reached.contains(**c)).collect();
        assert!(io.is_empty(), "{pure} links {io:?}");
    }
    assert_eq!(
        graph["projections"]
            .iter()
            .filter(|d| graph.contains_key(*d) && ["events", "store", "api"].contains(&d.as_str()))
            .collect::<Vec<_>>(),
        vec!["events"],
        "projections builds on the vocabulary only"
    );
}

#[test]
fn only_store_crates_touch_a_storage_engine() {
    let graph = graph();
    assert_eq!(who_depends_on(&graph, "sled"), set(&["store-sled"]));
    let store = reach(&graph, "store");
    assert!(!store.contains("sled"), "the traits crate links no engine");
    for (engine, allowed) in [
        ("tokio-postgres", set(&["bench"])),
        ("rusqlite", set(&["bench"])),
    ] {
        let ours: BTreeSet<String> = who_depends_on(&graph, engine)
            .intersection(&workspace(&graph))
            .cloned()
            .collect();
        assert!(ours.is_subset(&allowed), "{engine} is linked by {ours:?}");
    }
}

#[test]
fn the_server_and_the_stores_link_neither_sqlite_nor_the_harness() {
    let graph = graph();
    for krate in ["api", "service", "store", "store-sled"] {
        let reached = reach(&graph, krate);
        for banned in ["rusqlite", "libsqlite3-sys", "bench", "cli"] {
            assert!(!reached.contains(banned), "{krate} links {banned}");
        }
    }
}

/// The shipped binary, `mc-ledger serve` included, is the default build: the harness and its
/// bundled SQLite come only with the `bench` feature (`cli/bench`, forwarded by the root
/// package), which must stay off by default.
#[test]
fn the_default_binary_links_neither_sqlite_nor_the_harness() {
    let meta = metadata();
    let graph = graph_of(&meta);
    for krate in ["mc-ledger", "cli"] {
        let reached = reach(&graph, krate);
        for banned in ["rusqlite", "libsqlite3-sys", "bench"] {
            assert!(
                !reached.contains(banned),
                "the default build of {krate} links {banned}: is the `bench` feature on by default?"
            );
        }
    }
    // Not vacuous: the harness is still there, behind the feature.
    let package = |name: &str| {
        meta["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("package {name}"))
            .clone()
    };
    let cli = package("cli");
    assert!(
        cli["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .any(|d| d["name"] == "bench" && d["optional"] == true),
        "cli has the harness as an optional dependency"
    );
    assert_eq!(cli["features"]["bench"], serde_json::json!(["dep:bench"]));
    assert_eq!(
        package("mc-ledger")["features"]["bench"],
        serde_json::json!(["cli/bench"])
    );
    assert!(reach(&graph, "bench").contains("rusqlite"));
}

fn workspace(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let members = [
        "events",
        "projections",
        "store",
        "store-sled",
        "service",
        "api",
        "client",
        "bench",
        "cli",
        "mc-ledger",
    ];
    members
        .iter()
        .filter(|m| graph.contains_key(**m))
        .map(|m| (*m).to_owned())
        .collect()
}

/// The application layer speaks no HTTP: `service` links no HTTP stack, template engine or
/// router, and both the server and the CLI build on it (the CLI's demo and the MCP server
/// call it without HTTP).
#[test]
fn the_service_layer_speaks_no_http() {
    let graph = graph();
    let reached = reach(&graph, "service");
    for http in [
        "axum",
        "hyper",
        "tower",
        "ureq",
        "maud",
        "utoipa-axum",
        "api",
        "cli",
    ] {
        assert!(!reached.contains(http), "service links {http}");
    }
    for caller in ["api", "cli"] {
        assert!(
            graph[caller].contains("service"),
            "{caller} calls the service"
        );
    }
}

/// The modules of a crate's `src`: top-level module name → the crate modules it names
/// (`crate::x` in its files, `use` lines or paths), read from the text of the files.
fn module_graph(src: &std::path::Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    let mut todo = vec![src.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("src dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).expect("under src");
        let first = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or_default();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable");
        let names = graph.entry(module.clone()).or_default();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or_default();
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                let mut named = |n: &str| {
                    let n = n.trim();
                    if !n.is_empty() && n != module && n != "self" {
                        names.insert(n.to_owned());
                    }
                };
                if let Some(group) = rest.strip_prefix('{') {
                    // `use crate::{a, b::c}`
                    let inner = group.split('}').next().unwrap_or_default();
                    for part in inner.split(',') {
                        named(part.split("::").next().unwrap_or_default());
                    }
                } else {
                    let end = rest
                        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    named(&rest[..end]);
                }
            }
        }
    }
    // Only names that are modules of this crate.
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for names in graph.values_mut() {
        names.retain(|n| modules.contains(n));
    }
    graph
}

/// A cycle in a module graph, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(graph, next, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(found) = visit(graph, node, &mut Vec::new(), &mut done) {
            return Some(found);
        }
    }
    None
}

/// No module of a crate names another that names it back, directly or through others: a
/// crate's modules form layers (ARCHITECTURE.md), read from the code itself.
#[test]
fn no_module_circle_inside_a_crate() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("crates"))
        .expect("crates")
        .flatten()
    {
        let src = entry.path().join("src");
        if !src.is_dir() {
            continue;
        }
        let graph = module_graph(&src);
        if let Some(found) = cycle(&graph) {
            panic!(
                "{}: modules in a circle: {}",
                entry.file_name().to_string_lossy(),
                found.join(" → ")
            );
        }
        checked += 1;
    }
    assert!(checked >= 9, "{checked} crates read");
}

/// The checker finds a circle when there is one.
#[test]
fn the_circle_check_finds_circles() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let mut acyclic = graph.clone();
    acyclic.get_mut("c").unwrap().clear();
    assert_eq!(cycle(&acyclic), None);
}

/// Every Rust file the project writes (crates' sources and tests, `tests/`), with its lines.
fn rust_files(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, usize)>) {
    for entry in std::fs::read_dir(dir).expect("readable").flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target"
                && name != "node_modules"
                && !name.to_string_lossy().starts_with('.')
            {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let lines = std::fs::read_to_string(&path)
                .expect("utf-8")
                .lines()
                .count();
            out.push((path, lines));
        }
    }
}

/// No file is over 1,000 lines unless ARCHITECTURE.md names it and says why: a file that long
/// mixes concerns (issue 24).
#[test]
fn no_file_over_a_thousand_lines_unless_the_architecture_says_why() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    rust_files(&root.join("tests"), &mut files);
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 100, "{} files read", files.len());
    let long: Vec<String> = files
        .iter()
        .filter(|(_, lines)| *lines > 1000)
        .map(|(p, lines)| {
            let rel = p
                .strip_prefix(root)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned();
            format!("{rel} ({lines} lines)")
        })
        .filter(|f| !doc.contains(f.split(' ').next().unwrap_or_default()))
        .collect();
    assert!(
        long.is_empty(),
        "over 1,000 lines, not in ARCHITECTURE.md: {long:?}"
    );
}
