//! The operator console (SPEC §11) in real headless Chromium: Debian's `chromium`, driven by
//! npm's `playwright-core` (both made ready by `scripts/install-browser.sh`, which
//! `scripts/test.sh` runs), through `tests/console/console.mjs`. The real binary serves the
//! demo ledger without tokens, and a second ledger with a write and a read token. Covered: the
//! demo board; MC-4502 done without a banner and `as_of` its reap with one, stepping; a
//! banner appearing and disappearing live without a reload; hostile titles; 390 px; the
//! keyboard; a confirmed action; sign-in with tokens. Screenshots land in
//! `MC_LEDGER_CONSOLE_SHOTS` (default `target/console-shots`; `docs/console/` holds the ones
//! looked at for the docs).
//!
//! Also here: the console's routes fuzzed (any path and query: no 5xx, no panic, always the
//! security headers).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use proptest::prelude::*;
use serde_json::json;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_console_in_headless_chromium() {
    let playwright = std::env::var_os("PLAYWRIGHT_DIR").map_or_else(
        || repo().join("target/browser/node_modules/playwright-core"),
        PathBuf::from,
    );
    assert!(
        playwright.exists() && std::path::Path::new("/usr/bin/chromium").exists(),
        "chromium and playwright-core are missing: scripts/test.sh installs them (scripts/install-browser.sh)"
    );
    let open_dir = tempfile::tempdir().unwrap();
    let data = open_dir.path().display().to_string();
    mc_ledger_ok(&["demo", "--data-dir", &data]);
    let mut open = spawn_binary(open_dir.path());

    let token_dir = tempfile::tempdir().unwrap();
    let write = create_token(token_dir.path(), "orchestrator", "write", "luci");
    let read = create_token(token_dir.path(), "human", "read", "viewer");
    let mut guarded = spawn_binary(token_dir.path());
    let r = post_with_token(
        guarded.addr,
        "/v1/tickets",
        &json!({"id": "MC-1", "title": "Token ticket"}),
        &write,
    );
    assert_eq!(r.status, 201, "{}", r.body);

    let shots = std::env::var_os("MC_LEDGER_CONSOLE_SHOTS")
        .map_or_else(|| repo().join("target/console-shots"), PathBuf::from);
    let out = Command::new("node")
        .arg(repo().join("tests/console/console.mjs"))
        .arg(format!("http://{}", open.addr))
        .arg(format!("http://{}", guarded.addr))
        .arg(json!({"write": write, "read": read}).to_string())
        .arg(&shots)
        .env("PLAYWRIGHT_DIR", &playwright)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "console checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all console checks passed"), "{stdout}");
    for server in [&mut open, &mut guarded] {
        assert_eq!(sigterm(&mut server.child).code(), Some(0));
    }
}

fn path_part() -> impl Strategy<Value = String> {
    prop_oneof![
        7 => one_of(&[
            "",
            "tickets/MC-4502",
            "tickets/",
            "console/app.js",
            "runtimes",
            "alerts",
            "events",
        ]),
        // What a request line may carry (others are refused by the HTTP parser, before us);
        // percent-escapes of anything, `<` and quotes included.
        1 => "tickets/([A-Za-z0-9._~-]|%[0-9A-Fa-f]{2}|%[G-Zg-z]{2}){0,20}",
        1 => "[a-z/%.]{0,20}",
    ]
}

fn query_part() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => one_of(&["", "?as_of=20", "?as_of=999999999999999999999"]),
        1 => "\\?[a-z_]{0,8}=[0-9a-z%-]{0,12}(&[a-z_]{0,6}=[0-9]{0,4})?",
    ]
}

#[test]
fn console_routes_fuzzed_never_fail_or_drop_their_headers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    mc_ledger_ok(&["demo", "--data-dir", &data]);
    let server = start_in_process(dir.path());
    let seed = logged_seed("console fuzz");
    let config = ProptestConfig {
        cases: 300,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(
            &(path_part(), query_part(), any::<bool>()),
            |(path, query, fragment)| {
                let target = format!("/{path}{query}");
                let r = get_with_headers(
                    server.addr,
                    &target,
                    if fragment {
                        &[("X-Console-Fragment", "main")]
                    } else {
                        &[]
                    },
                );
                prop_assert!(r.status < 500, "{target}: {} {}", r.status, r.body);
                let nosniff = r.header("x-content-type-options");
                prop_assert_eq!(nosniff.as_deref(), Some("nosniff"), "{}", target);
                if r.header("content-type")
                    .is_some_and(|c| c.starts_with("text/html"))
                {
                    let csp = r.header("content-security-policy").unwrap_or_default();
                    prop_assert!(csp.contains("script-src 'self'"), "{target}: {csp}");
                    prop_assert!(!r.body.contains("<script>"), "{target}: inline script");
                }
                Ok(())
            },
        )
        .unwrap();
}
