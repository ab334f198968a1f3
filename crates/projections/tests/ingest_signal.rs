//! The pane-text signal parser (`projections::ingest::signal`): tables from the real seed panes and
//! hand-made ones (decorations, echoes, several signals, terminal noise), then properties:
//! never a panic, never a signal in text without one, a wrapped object read back at every
//! width, and a bounded fuzz run with its regressions kept.

use events::Verdict;
use projections::ingest::signal::{
    is_turn_nonce, parse, parse_bytes, ParsedSignal, Source, CANDIDATES_MAX, EXCERPT_BYTES_MAX,
    PAYLOAD_BYTES_MAX, SCAN_BYTES_MAX,
};
use proptest::prelude::*;

const SEED_000: &str = include_str!("fixtures/seeds/000_b11bb0a0c8a99654.txt");
const SEED_001: &str = include_str!("fixtures/seeds/001_204ba6293bc1397e.txt");
const SEED_NONCE: &str = "MC_TICKET_TURN:4030:1779519668441:c133f12c";
const OTHER_NONCE: &str = "MC_TICKET_TURN:4030:1779519999999:0badc0de";
const ECHO: &str = "Work this ticket in the live tmux runtime. Use DONE:, REVIEW:, or QUESTION: when you need MC to reflect the next state.";

fn verdict_and_nonce(s: &Option<ParsedSignal>) -> Option<(Verdict, Option<&str>)> {
    s.as_ref().map(|s| (s.verdict, s.nonce.as_deref()))
}

fn mc_signal(verdict: &str, nonce: &str, payload: &str) -> String {
    serde_json::json!({"mc_signal": verdict, "ticket": "MC-4030", "nonce": nonce, "payload": payload})
        .to_string()
}

// ---- the real panes ----

#[test]
fn seed_000_is_the_review_signal_of_its_turn() {
    // Given the runtime's current nonce, the wrapped mc_signal object is read, nonce intact.
    let s = parse(SEED_000, Some(SEED_NONCE)).expect("a signal");
    assert_eq!(s.verdict, Verdict::Review);
    assert_eq!(s.nonce.as_deref(), Some(SEED_NONCE));
    assert_eq!(s.source, Source::McSignal);
    assert!(
        s.payload
            .starts_with("Workbench audit complete; 14 findings"),
        "{}",
        s.payload
    );
    assert!(s.payload.ends_with("spawn worker"), "{}", s.payload);
    assert!(s.excerpt.starts_with("{\"mc_signal\":\"REVIEW\""));
}

#[test]
fn seed_000_without_its_nonce_is_the_wrapped_review_line() {
    // Another current nonce (or none): the bare REVIEW line after the last echoed instruction
    // wins over an mc_signal of another turn; its wrapped lines are its payload.
    for current in [None, Some(OTHER_NONCE)] {
        let s = parse(SEED_000, current).expect("a signal");
        assert_eq!((s.verdict, s.nonce.as_deref()), (Verdict::Review, None));
        assert_eq!(s.source, Source::VerdictLine);
        assert!(s.payload.starts_with("MC-4030 Workbench/Console audit"));
        assert!(s.payload.contains("SOURCE-OF-TRUTH, 4 UX-MISROUTE"));
        assert!(s.payload.ends_with("+ Tesa QA + ship."), "{}", s.payload);
    }
}

#[test]
fn seed_000_without_its_review_line_falls_back_to_the_other_turns_mc_signal() {
    let start = SEED_000.find("REVIEW: MC-4030").expect("review line");
    let end = SEED_000.find("+ Tesa QA + ship.\n").expect("its end") + "+ Tesa QA + ship.\n".len();
    let pane = format!("{}{}", &SEED_000[..start], &SEED_000[end..]);
    let s = parse(&pane, Some(OTHER_NONCE));
    assert_eq!(
        verdict_and_nonce(&s),
        Some((Verdict::Review, Some(SEED_NONCE)))
    );
}

#[test]
fn seed_001_has_no_signal() {
    // "DONE/REVIEW/QUESTION verdicts mentioning max_turns…" names verdicts, signals none.
    assert_eq!(parse(SEED_001, Some(OTHER_NONCE)), None);
    assert_eq!(parse(SEED_001, None), None);
}

// ---- tables ----

#[test]
fn the_echoed_instruction_is_never_a_signal() {
    let five = format!("{ECHO}\n").repeat(5);
    let cases = [
        ECHO.to_owned(),
        five,
        // Wrapped by the terminal between the verdicts, in a prompt box, emphasised.
        "Work this ticket in the live tmux runtime. Use DONE:, REVIEW:, or\nQUESTION: when you need MC to reflect the next state.".to_owned(),
        "Use DONE:,\nREVIEW:, or QUESTION: when you need MC".to_owned(),
        "│ > Work this ticket. Use DONE:, REVIEW:, or                │\n│ QUESTION: when you need MC to reflect the next state.     │".to_owned(),
        "Use **DONE:**, **REVIEW:** or **QUESTION:** when you are done".to_owned(),
        "DONE: REVIEW: QUESTION:".to_owned(),
    ];
    for pane in cases {
        assert_eq!(parse(&pane, Some(OTHER_NONCE)), None, "{pane}");
    }
}

#[test]
fn decorated_verdict_lines() {
    let cases = [
        ("DONE: shipped", Verdict::Done, "shipped"),
        ("**DONE:** shipped", Verdict::Done, "shipped"),
        ("**DONE**: shipped", Verdict::Done, "shipped"),
        ("✔ DONE: shipped", Verdict::Done, "shipped"),
        ("✅ DONE: shipped", Verdict::Done, "shipped"),
        ("⏺ REVIEW: please look", Verdict::Review, "please look"),
        (
            "- QUESTION: which branch?",
            Verdict::Question,
            "which branch?",
        ),
        (
            "    QUESTION: which branch?",
            Verdict::Question,
            "which branch?",
        ),
        ("> **REVIEW:** ready", Verdict::Review, "ready"),
        ("│ ⏺ DONE: in a box │", Verdict::Done, "in a box"),
        (
            "\x1b[1m\x1b[32mDONE:\x1b[0m coloured",
            Verdict::Done,
            "coloured",
        ),
        ("DONE:", Verdict::Done, ""),
    ];
    for (pane, verdict, payload) in cases {
        let s = parse(pane, Some(OTHER_NONCE)).unwrap_or_else(|| panic!("{pane}"));
        assert_eq!(
            (s.verdict, s.nonce.as_deref(), s.payload.as_str()),
            (verdict, None, payload),
            "{pane}"
        );
    }
    for pane in [
        "Done: lowercase prose",
        "UNDONE: not a keyword",
        "DONE without a colon",
        "the work is DONE: later in the line",
        "Next: REVIEW signal for Elmar approval",
    ] {
        assert_eq!(parse(pane, None), None, "{pane}");
    }
}

#[test]
fn a_verdict_mentioning_max_turns_or_budget_is_still_a_verdict() {
    for pane in [
        "DONE: stopped near max_turns but the fix is in",
        "**DONE:** hit error_max_turns after shipping",
        "⏺ DONE: max_budget reached; everything is committed",
        "QUESTION: raise max_turns for the next run?",
    ] {
        let s = parse(pane, None).unwrap_or_else(|| panic!("{pane}"));
        assert!(s.payload.contains("max_"), "{pane}");
        assert_ne!(s.verdict, Verdict::Review, "{pane}");
    }
}

#[test]
fn several_signals_give_the_current_turns() {
    let old = mc_signal("DONE", OTHER_NONCE, "old turn");
    let current = mc_signal("REVIEW", SEED_NONCE, "this turn");
    let later_other = mc_signal("QUESTION", "MC_TICKET_TURN:4030:1:deadbeef", "another");
    // The current turn's mc_signal wins, wherever it is.
    let pane = format!("{old}\n{ECHO}\n{current}\nQUESTION: later line\n{later_other}\n");
    let s = parse(&pane, Some(SEED_NONCE));
    assert_eq!(
        verdict_and_nonce(&s),
        Some((Verdict::Review, Some(SEED_NONCE)))
    );
    assert_eq!(s.expect("signal").payload, "this turn");
    // Without it: the last verdict line after the last echo.
    let pane = format!(
        "DONE: before the echo\n{old}\n{ECHO}\nREVIEW: first\nworking…\nQUESTION: second?\n"
    );
    let s = parse(&pane, Some(SEED_NONCE));
    assert_eq!(verdict_and_nonce(&s), Some((Verdict::Question, None)));
    // A verdict line before the last echo belongs to an earlier turn: the last mc_signal
    // (another nonce) is what is left, and the server will refuse it as stale.
    let pane = format!("{old}\nREVIEW: before\n{ECHO}\nthinking…\n");
    let s = parse(&pane, Some(SEED_NONCE));
    assert_eq!(
        verdict_and_nonce(&s),
        Some((Verdict::Done, Some(OTHER_NONCE)))
    );
    // The last of several foreign mc_signals.
    let pane = format!("{old}\n{ECHO}\n{later_other}\n");
    let s = parse(&pane, Some(SEED_NONCE));
    assert_eq!(
        verdict_and_nonce(&s),
        Some((Verdict::Question, Some("MC_TICKET_TURN:4030:1:deadbeef")))
    );
}

#[test]
fn templates_and_examples_are_not_signals() {
    for object in [
        r#"{"mc_signal":"DONE","nonce":"<nonce>","payload":"summary"}"#,
        r#"{"mc_signal":"DONE|REVIEW|QUESTION","nonce":"MC_TICKET_TURN:4030:1779519668441:c133f12c"}"#,
        r#"{"mc_signal":"DONE","nonce":"MC_TICKET_TURN:<ticket>:<ms>:<hex>"}"#,
        r#"{"mc_signal":"DONE","nonce":"MC_TICKET_TURN:4030:1779519668441:c133f12"}"#,
        r#"{"mc_signal":"DONE"}"#,
        r#"{"mc_signal":7,"nonce":"MC_TICKET_TURN:4030:1779519668441:c133f12c"}"#,
        r#"{"mc_signal":"FINISHED","nonce":"MC_TICKET_TURN:4030:1779519668441:c133f12c"}"#,
        r#"{"mc_signal":"DONE","nonce":"MC_TICKET_TURN:4030:1779519668441:c133f12c""#,
    ] {
        let pane = format!("Reply with {object} when finished.\n{ECHO}\n");
        assert_eq!(parse(&pane, Some(SEED_NONCE)), None, "{object}");
    }
}

#[test]
fn object_forms_and_field_orders() {
    for object in [
        format!(r#"{{"mc_signal":{{"verdict":"DONE","nonce":"{SEED_NONCE}","payload":"nested"}}}}"#),
        format!(r#"{{"ticket":"MC-4030","meta":{{"a":1}},"nonce":"{SEED_NONCE}","mc_signal":"DONE","payload":"nested"}}"#),
        format!(r#"{{ "mc_signal" : "done" , "nonce" : "{SEED_NONCE}" , "payload" : "nested" }}"#),
        format!("{{\n  \"mc_signal\": \"DONE\",\n  \"nonce\": \"{SEED_NONCE}\",\n  \"payload\": \"nested\"\n}}"),
    ] {
        let s = parse(&format!("⏺ {object}\n"), Some(SEED_NONCE));
        assert_eq!(
            s.map(|s| (s.verdict, s.nonce, s.payload)),
            Some((Verdict::Done, Some(SEED_NONCE.to_owned()), "nested".to_owned())),
            "{object}"
        );
    }
}

#[test]
fn terminal_noise_around_and_inside_the_object() {
    // A Claude Code pane: SGR colours, an OSC title and hyperlink, a box around the answer,
    // the object wrapped inside the box mid-key and mid-nonce, status lines below.
    let pane = concat!(
        "\x1b]0;✳ MC-4030\x07\x1b[?25l",
        "╭──────────────────────────────────────────────╮\n",
        "│ \x1b[2m> Work this ticket. Use DONE:, REVIEW:, or QUESTION: when you need MC\x1b[0m │\n",
        "╰──────────────────────────────────────────────╯\n",
        "\x1b[38;5;174m⏺\x1b[39m Audit complete, see \x1b]8;;file:///x\x1b\\docs/x.md\x1b]8;;\x1b\\\n",
        "╭──────────────────────────────────────────────╮\n",
        "│ {\"mc_sig                                      │\n",
        "│ nal\":\"REVIEW\",\"nonce\":\"MC_TICKET_TURN:4030:17 │\n",
        "│ 79519\x1b[1m668441:c13\x1b[22m3f12c\",\"payload\":\"ready f │\n",
        "│ or review\"}                                   │\n",
        "╰──────────────────────────────────────────────╯\n",
        "\x1b[2m  ⏵⏵ bypass permissions on (shift+tab to cycle)\x1b[0m\r\n",
        "  ✻ Thinking… (esc to interrupt)\r\n",
    );
    let s = parse(pane, Some(SEED_NONCE)).expect("signal");
    assert_eq!(
        (s.verdict, s.nonce.as_deref(), s.payload.as_str()),
        (Verdict::Review, Some(SEED_NONCE), "ready for review")
    );
    // The same pane as bytes, with a stray invalid byte.
    let mut bytes = pane.as_bytes().to_vec();
    bytes.insert(3, 0xff);
    assert_eq!(parse_bytes(&bytes, Some(SEED_NONCE)), Some(s));
}

#[test]
fn only_the_last_256_kib_are_read_and_candidates_are_bounded() {
    let old = mc_signal("DONE", SEED_NONCE, "far above");
    let filler = "x".repeat(SCAN_BYTES_MAX);
    assert_eq!(parse(&format!("{old}\n{filler}"), Some(SEED_NONCE)), None);
    // A pane full of templates under the real signal: the real one is above the bound.
    let template = r#"{"mc_signal":"DONE","nonce":"<nonce>"}"#;
    let many = format!("{template}\n").repeat(CANDIDATES_MAX);
    assert_eq!(parse(&format!("{old}\n{many}"), Some(SEED_NONCE)), None);
    let fewer = format!("{template}\n").repeat(CANDIDATES_MAX - 1);
    assert!(parse(&format!("{old}\n{fewer}"), Some(SEED_NONCE)).is_some());
}

/// Adversarial panes parse to nothing and never panic. How long they take is a benchmark's
/// business, not a test's (the parser reads each candidate from a bounded window, so it is
/// linear in the scanned bytes).
#[test]
fn adversarial_panes_find_nothing() {
    // Unterminated objects, one after another, fill the scanned window.
    let unterminated = r#"{"mc_signal":"DONE","payload":""#;
    let pane = unterminated.repeat(SCAN_BYTES_MAX / unterminated.len() + 1);
    let deep = format!("{}{}", "{\"mc_signal\":[".repeat(20_000), "\n");
    let verdicts = "DONE: REVIEW: x\n".repeat(SCAN_BYTES_MAX / 16);
    let escapes = "\x1b]".repeat(SCAN_BYTES_MAX / 2);
    for (name, pane) in [("unterminated", pane), ("deep", deep), ("escapes", escapes)] {
        assert_eq!(parse(&pane, Some(SEED_NONCE)), None, "{name}");
    }
    // Lines naming two verdicts are echoes of the instruction, never a signal.
    assert_eq!(parse(&verdicts, Some(SEED_NONCE)), None, "verdicts");
}

// ---- properties ----

/// Wraps `text` at `width` columns, as a terminal would; optionally inside a box and with
/// SGR codes at the start and in the middle of every line.
fn wrap(text: &str, width: usize, boxed: bool, ansi: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    for chunk in chars.chunks(width) {
        let mut line = String::new();
        for (i, c) in chunk.iter().enumerate() {
            if ansi && i == chunk.len() / 2 {
                line.push_str("\x1b[38;5;244m");
            }
            line.push(*c);
        }
        if ansi {
            line = format!("\x1b[2m{line}\x1b[0m");
        }
        if boxed {
            let pad = " ".repeat(width - chunk.len());
            line = format!("│ {line}{pad} │");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn no_space(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn check_wrapped(nonce: &str, payload: &str) {
    let object = mc_signal("REVIEW", nonce, payload);
    for width in 20..=200 {
        for (boxed, ansi) in [(false, false), (true, false), (false, true), (true, true)] {
            let pane = format!(
                "⏺ Finished.\n{}\x1b[2m⏵⏵ bypass permissions on (shift+tab to cycle)\x1b[0m\n> \n",
                wrap(&object, width, boxed, ansi)
            );
            for current in [Some(nonce), None] {
                let s = parse(&pane, current)
                    .unwrap_or_else(|| panic!("width {width} boxed {boxed} ansi {ansi}:\n{pane}"));
                assert_eq!(
                    (s.verdict, s.nonce.as_deref(), s.source),
                    (Verdict::Review, Some(nonce), Source::McSignal),
                    "width {width} boxed {boxed} ansi {ansi}"
                );
                // A wrap may drop a space at the break (tmux trims trailing blanks).
                assert_eq!(no_space(&s.payload), no_space(payload), "width {width}");
            }
        }
    }
}

#[test]
fn the_seed_signal_survives_every_wrap_width() {
    check_wrapped(
        SEED_NONCE,
        "Workbench audit complete; 14 findings, 10-fix Lane A shortlist in docs/mc-4030-workbench-audit.md; awaiting Elmar approval to spawn worker",
    );
}

fn nonce_strategy() -> impl Strategy<Value = String> {
    (1u32..1_000_000_000, 0u64..=u64::MAX, any::<u32>())
        .prop_map(|(t, ms, r)| format!("MC_TICKET_TURN:{t}:{ms}:{r:08x}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn any_signal_survives_every_wrap_width(
        nonce in nonce_strategy(),
        payload in "[a-zA-Z0-9 ,.;:/()\\-]{0,120}",
    ) {
        prop_assert!(is_turn_nonce(&nonce));
        check_wrapped(&nonce, &payload);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse_bytes(&bytes, None);
        let _ = parse_bytes(&bytes, Some(SEED_NONCE));
    }

    #[test]
    fn never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = parse(&text, None);
        let _ = parse(&text, Some(&text));
    }

    /// Without an upper-case letter there is no verdict keyword, and without `_` no
    /// `mc_signal` key: such text holds no signal, whatever its noise.
    #[test]
    fn never_finds_a_signal_in_text_without_one(
        text in "[a-z0-9 {}\\[\\]\":,.;*!?>#`'\\-\\n\\r\\t\u{1b}│╭╮╰╯─⏺✔⏵]{0,2000}",
    ) {
        prop_assert_eq!(parse(&text, Some(SEED_NONCE)), None);
        prop_assert_eq!(parse(&text, None), None);
    }
}

/// Pieces a pane is made of, real and broken, for the fuzz run.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        23 => proptest::sample::select(&[
            "DONE:",
            "**REVIEW:**",
            "⏺ QUESTION: ",
            "Use DONE:, REVIEW:, or QUESTION: when",
            "\"mc_signal\"",
            "{\"mc_signal\":\"DONE\",\"nonce\":\"",
            SEED_NONCE,
            "MC_TICKET_TURN:",
            "\",\"payload\":\"",
            "\"}",
            "{",
            "}",
            "[",
            "\\",
            "\n",
            "\r",
            "\x1b[",
            "\x1b]8;;",
            "\x1b\\",
            "\u{9b}",
            "│ ",
            "╭─╮",
            "\u{200b}",
        ])
        .prop_map(str::to_owned),
        1 => "[ -~]{0,12}",
        1 => any::<char>().prop_map(String::from),
    ]
}

proptest! {
    // A bounded fuzz run in the normal test pass (cargo-fuzz needs nightly; see docs/ingest.md).
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn fuzz_parser_invariants(pieces in proptest::collection::vec(fragment(), 0..80)) {
        let pane: String = pieces.concat();
        for current in [None, Some(SEED_NONCE)] {
            let found = parse(&pane, current);
            prop_assert_eq!(&found, &parse(&pane, current), "deterministic");
            if let Some(s) = found {
                prop_assert!(s.payload.len() <= PAYLOAD_BYTES_MAX);
                prop_assert!(s.excerpt.len() <= EXCERPT_BYTES_MAX);
                match (&s.nonce, s.source) {
                    (Some(n), Source::McSignal) => prop_assert!(is_turn_nonce(n)),
                    (None, Source::VerdictLine) => {}
                    other => prop_assert!(false, "{:?}", other),
                }
            }
        }
    }
}

/// Inputs a fuzz run once found interesting, kept as regressions.
#[test]
fn fuzz_regressions() {
    let cases: &[(&str, Option<Verdict>)] = &[
        ("", None),
        ("\x1b", None),
        ("\x1b[", None),
        ("\x1b]", None),
        ("{\"mc_signal\"", None),
        (
            "{\"mc_signal\":\"DONE\",\"nonce\":\"MC_TICKET_TURN:1:2:0000000a\"}",
            Some(Verdict::Done),
        ),
        ("│", None),
        ("\r\r\n", None),
        ("DONE:\u{9b}", Some(Verdict::Done)),
        ("é{\"mc_signal\"", None),
    ];
    for (pane, verdict) in cases {
        assert_eq!(parse(pane, None).map(|s| s.verdict), *verdict, "{pane:?}");
    }
}
