//! The architecture invariants of `docs/ARCHITECTURE.md`, checked on the real dependency graph
//! (`cargo metadata`): the pure crates reach no IO crate, only store crates reach a storage
//! engine, and only the benchmark harness reaches SQLite and the naive PostgreSQL peer.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Crate names → the names of their normal (non-dev, non-build) dependencies, for every package
/// in the resolved graph.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
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
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
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
    for krate in ["api", "store", "store-sled"] {
        let reached = reach(&graph, krate);
        for banned in ["rusqlite", "libsqlite3-sys", "bench", "cli"] {
            assert!(!reached.contains(banned), "{krate} links {banned}");
        }
    }
}

fn workspace(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let members = [
        "events",
        "projections",
        "store",
        "store-sled",
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
