//! Finds a worker's signal in raw terminal pane text (SPEC §6, `{raw}` signals).
//!
//! A pane is what `tmux capture-pane` (or a console log) saw: ANSI escapes, box-drawing
//! borders, status lines, the dispatcher's echoed instruction, and the worker's output, where
//! a long `{"mc_signal": …}` object is wrapped by the terminal at any column — mid-key and
//! mid-nonce included. [`parse`] strips the terminal noise, joins wrapped lines back together
//! to read the JSON, reads `DONE:` / `REVIEW:` / `QUESTION:` verdict lines, and picks the
//! signal of the runtime's current turn:
//!
//! 1. the last `mc_signal` whose nonce is the current one;
//! 2. else the last verdict line after the last echoed instruction (a bare verdict line is
//!    signed by the current turn: the pane belongs to that runtime);
//! 3. else the last `mc_signal` with another well-formed nonce (the server then refuses it as
//!    stale or unknown, and records the refusal).
//!
//! It is pure, total and linear in its input: it reads at most the last [`SCAN_BYTES_MAX`]
//! bytes, tries at most [`CANDIDATES_MAX`] `mc_signal` keys, and parses each candidate object
//! from a window of at most `OBJECT_BYTES_MAX` bytes. See `docs/ingest.md`.

use events::Verdict;
use serde_json::{Map, Value};

use super::{bounded, floor_boundary};

/// Only the end of a pane is read: the current turn is at the bottom.
pub const SCAN_BYTES_MAX: usize = 256 * 1024;
/// A payload longer than this is cut (on a char boundary).
pub const PAYLOAD_BYTES_MAX: usize = 4 * 1024;
/// The excerpt of pane text a signal was read from.
pub const EXCERPT_BYTES_MAX: usize = 256;
/// `"mc_signal"` keys tried, from the bottom of the pane up.
pub const CANDIDATES_MAX: usize = 64;
/// An `mc_signal` object longer than this (after unwrapping) is not read.
const OBJECT_BYTES_MAX: usize = 16 * 1024;
/// How far before an `"mc_signal"` key its object's `{` may be.
const OBJECT_LOOKBACK_BYTES: usize = 2 * 1024;
/// `{` positions tried before one `"mc_signal"` key (an earlier field may hold an object).
const OBJECT_STARTS_TRIED: usize = 4;
/// Wrapped continuation lines of a verdict line kept in its payload.
const CONTINUATION_LINES_MAX: usize = 16;
/// Bullets, emphasis and glyphs allowed before a verdict keyword (`**`, `✔ `, `⏺ `, `- `).
const DECORATION_CHARS_MAX: usize = 12;

const VERDICTS: [(&str, Verdict); 3] = [
    ("DONE", Verdict::Done),
    ("REVIEW", Verdict::Review),
    ("QUESTION", Verdict::Question),
];

/// Where in the pane a signal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A `{"mc_signal": …}` JSON object.
    McSignal,
    /// A `DONE:` / `REVIEW:` / `QUESTION:` line.
    VerdictLine,
}

/// A signal read from pane text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSignal {
    pub verdict: Verdict,
    /// The `mc_signal`'s nonce (whitespace removed); `None` for a bare verdict line, which the
    /// caller signs with the runtime's current nonce.
    pub nonce: Option<String>,
    /// The `mc_signal`'s `payload`, or the rest of the verdict line with its wrapped
    /// continuation; at most [`PAYLOAD_BYTES_MAX`] bytes.
    pub payload: String,
    /// The cleaned pane text the signal was read from; at most [`EXCERPT_BYTES_MAX`] bytes.
    pub excerpt: String,
    pub source: Source,
}

/// [`parse`] for raw bytes (invalid UTF-8 becomes U+FFFD).
pub fn parse_bytes(pane: &[u8], current_nonce: Option<&str>) -> Option<ParsedSignal> {
    let tail = &pane[pane.len().saturating_sub(SCAN_BYTES_MAX)..];
    parse(&String::from_utf8_lossy(tail), current_nonce)
}

/// The signal of the runtime's current turn in `pane`, if there is one (see the module docs
/// for the order of preference). `current_nonce` is the runtime's current turn nonce.
pub fn parse(pane: &str, current_nonce: Option<&str>) -> Option<ParsedSignal> {
    let start = pane.len().saturating_sub(SCAN_BYTES_MAX);
    let mut start_boundary = start;
    while !pane.is_char_boundary(start_boundary) {
        start_boundary += 1;
    }
    let screen = Screen::new(&pane[start_boundary..]);
    let objects = screen.mc_signal_objects();
    let signals = || objects.iter().filter_map(|o| o.signal.as_ref());
    if let Some(current) = current_nonce {
        if let Some(s) = signals().find(|s| s.nonce.as_deref() == Some(current)) {
            return Some(s.clone());
        }
    }
    if let Some(s) = screen.last_verdict_line(&objects) {
        return Some(s);
    }
    signals().next().cloned()
}

/// `MC_TICKET_TURN:<digits>:<digits>:<8 hex>`, the server's turn nonce (SPEC §6). Anything
/// else in an `mc_signal` — `<nonce>`, `MC_TICKET_TURN:…` — is a template, not a signal.
pub fn is_turn_nonce(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("MC_TICKET_TURN:") else {
        return false;
    };
    let mut parts = rest.split(':');
    let digits = |p: Option<&str>| {
        p.is_some_and(|p| (1..=20).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    };
    digits(parts.next())
        && digits(parts.next())
        && parts
            .next()
            .is_some_and(|p| p.len() == 8 && p.bytes().all(|b| b.is_ascii_hexdigit()))
        && parts.next().is_none()
}

/// The pane with terminal noise removed, as lines and as one unwrapped string.
struct Screen {
    /// Each line without escapes, controls, surrounding whitespace and box-drawing borders.
    lines: Vec<String>,
    /// The lines concatenated with nothing between them: a terminal wrap inserts a line
    /// break (and padding, and borders) where the text had none, so this is the text before
    /// wrapping wherever it was wrapped. Only JSON is read from it: whitespace between JSON
    /// tokens is optional, and a JSON string cannot hold a raw line break.
    joined: String,
    /// `starts[i]` is where line `i` begins in `joined`.
    starts: Vec<usize>,
}

/// An object with a top-level `mc_signal` key, at `start..end` of [`Screen::joined`].
struct Found {
    start: usize,
    end: usize,
    /// `None` for a template or example (no verdict, or a nonce not of the server's form).
    signal: Option<ParsedSignal>,
}

impl Screen {
    fn new(pane: &str) -> Screen {
        let clean = strip_terminal(pane);
        let lines: Vec<String> = clean
            .split('\n')
            .map(|l| strip_frame(l).to_owned())
            .collect();
        let mut joined = String::with_capacity(clean.len());
        let mut starts = Vec::with_capacity(lines.len());
        for line in &lines {
            starts.push(joined.len());
            joined.push_str(line);
        }
        Screen {
            lines,
            joined,
            starts,
        }
    }

    /// The line holding byte `at` of `joined`.
    fn line_of(&self, at: usize) -> usize {
        self.starts.partition_point(|&s| s <= at).saturating_sub(1)
    }

    /// `mc_signal` objects from the bottom of the pane up (the first is the last one).
    fn mc_signal_objects(&self) -> Vec<Found> {
        let text = self.joined.as_str();
        let mut found: Vec<Found> = Vec::new();
        for (key, _) in text.rmatch_indices("\"mc_signal\"").take(CANDIDATES_MAX) {
            if found.iter().any(|f| f.start <= key && key < f.end) {
                continue; // a key inside an object already read (a nested or quoted one)
            }
            let lo = floor_boundary(text, key.saturating_sub(OBJECT_LOOKBACK_BYTES));
            let mut before = key;
            for _ in 0..OBJECT_STARTS_TRIED {
                let Some(rel) = text[lo..before].rfind('{') else {
                    break;
                };
                let start = lo + rel;
                if let Some((len, map)) = read_object(&text[start..]) {
                    if start + len > key && map.contains_key("mc_signal") {
                        let source = &text[start..start + len];
                        found.push(Found {
                            start,
                            end: start + len,
                            signal: interpret(&map, source),
                        });
                        break;
                    }
                }
                before = start;
            }
        }
        found
    }

    /// The last verdict line after the last echoed instruction, outside `mc_signal` objects.
    fn last_verdict_line(&self, objects: &[Found]) -> Option<ParsedSignal> {
        let mut covered = vec![false; self.lines.len()];
        for o in objects {
            let (first, last) = (self.line_of(o.start), self.line_of(o.end.saturating_sub(1)));
            for c in covered.iter_mut().take(last + 1).skip(first) {
                *c = true;
            }
        }
        let mut last_echo = None;
        let mut last_verdict = None;
        let mut prev = Tokens::default();
        for (i, line) in self.lines.iter().enumerate() {
            if covered[i] {
                prev = Tokens::default();
                continue;
            }
            let tokens = verdict_tokens(line);
            let wrapped_echo = prev.inline
                && ends_with_connector(&self.lines[i - 1])
                && tokens.kinds != 0
                && (tokens.kinds | prev.kinds).count_ones() >= 2;
            if tokens.kinds.count_ones() >= 2 || wrapped_echo {
                last_echo = Some(i);
            } else if let Some((verdict, rest)) = verdict_line(line) {
                last_verdict = Some((i, verdict, rest));
            }
            prev = tokens;
        }
        let (i, verdict, rest) = last_verdict.filter(|(i, ..)| last_echo.is_none_or(|e| *i > e))?;
        let mut payload = rest.to_owned();
        let mut tail = self.lines[i].as_str();
        for (j, next) in self
            .lines
            .iter()
            .enumerate()
            .skip(i + 1)
            .take(CONTINUATION_LINES_MAX)
        {
            if ends_sentence(tail)
                || covered[j]
                || !starts_prose(next)
                || verdict_tokens(next).kinds != 0
                || payload.len() + 1 + next.len() > PAYLOAD_BYTES_MAX
            {
                break;
            }
            payload.push(' ');
            payload.push_str(next);
            tail = next;
        }
        Some(ParsedSignal {
            verdict,
            nonce: None,
            payload: bounded(&payload, PAYLOAD_BYTES_MAX).to_owned(),
            excerpt: bounded(&self.lines[i], EXCERPT_BYTES_MAX).to_owned(),
            source: Source::VerdictLine,
        })
    }
}

/// One JSON object at the start of `text` (read from a bounded window), and its length.
fn read_object(text: &str) -> Option<(usize, Map<String, Value>)> {
    let window = &text[..floor_boundary(text, OBJECT_BYTES_MAX)];
    let mut stream = serde_json::Deserializer::from_str(window).into_iter::<Value>();
    match stream.next() {
        Some(Ok(Value::Object(map))) => Some((stream.byte_offset(), map)),
        _ => None,
    }
}

/// The signal an `mc_signal` object carries: `{"mc_signal": "REVIEW", "nonce": …, "payload":
/// …}` (seed 000's form) or `{"mc_signal": {"verdict": …, "nonce": …, "payload": …}}`.
fn interpret(map: &Map<String, Value>, source: &str) -> Option<ParsedSignal> {
    let (verdict, inner) = match map.get("mc_signal")? {
        Value::String(v) => (v.as_str(), None),
        Value::Object(inner) => (
            inner
                .get("verdict")
                .or_else(|| inner.get("signal"))?
                .as_str()?,
            Some(inner),
        ),
        _ => return None,
    };
    let field = |name: &str| inner.and_then(|i| i.get(name)).or_else(|| map.get(name));
    let verdict = VERDICTS
        .iter()
        .find(|(kw, _)| verdict.trim().eq_ignore_ascii_case(kw))
        .map(|(_, v)| *v)?;
    let nonce: String = field("nonce")?
        .as_str()?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if !is_turn_nonce(&nonce) {
        return None;
    }
    let payload = match field("payload") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => bounded(s, PAYLOAD_BYTES_MAX).to_owned(),
        Some(other) => bounded(&other.to_string(), PAYLOAD_BYTES_MAX).to_owned(),
    };
    Some(ParsedSignal {
        verdict,
        nonce: Some(nonce),
        payload,
        excerpt: bounded(source, EXCERPT_BYTES_MAX).to_owned(),
        source: Source::McSignal,
    })
}

/// The verdict keywords named with a colon on one line.
#[derive(Debug, Default, Clone, Copy)]
struct Tokens {
    /// One bit per verdict (DONE, REVIEW, QUESTION).
    kinds: u8,
    /// A token follows other words (`Use DONE:, …`), so the line is prose about verdicts.
    inline: bool,
}

/// Every `DONE:` / `REVIEW:` / `QUESTION:` (also `**DONE:**`, `DONE**:`) on the line.
fn verdict_tokens(line: &str) -> Tokens {
    let mut tokens = Tokens::default();
    for (bit, (kw, _)) in VERDICTS.iter().enumerate() {
        for (at, _) in line.match_indices(kw) {
            let word_start = line[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric() && c != '_');
            if word_start && colon_after(&line[at + kw.len()..]).is_some() {
                tokens.kinds |= 1 << bit;
                tokens.inline |= line[..at].chars().any(char::is_alphanumeric);
            }
        }
    }
    tokens
}

/// After a keyword: optional emphasis, then `:`; returns what follows the colon.
fn colon_after(s: &str) -> Option<&str> {
    let s = s.trim_start_matches(['*', '_', '`']);
    s.strip_prefix(':')
}

/// `(verdict, rest)` when the line is a verdict line: decoration, a keyword, a colon.
fn verdict_line(line: &str) -> Option<(Verdict, &str)> {
    let mut rest = line;
    let mut skipped = 0;
    loop {
        let c = rest.chars().next()?;
        if c.is_alphanumeric() {
            break;
        }
        skipped += 1;
        if skipped > DECORATION_CHARS_MAX {
            return None;
        }
        rest = &rest[c.len_utf8()..];
    }
    let (kw, verdict) = VERDICTS.iter().find(|(kw, _)| rest.starts_with(kw))?;
    let after = colon_after(&rest[kw.len()..])?;
    Some((*verdict, after.trim_start_matches(['*', '_', '`']).trim()))
}

/// A line that ends a verdict's text: a sentence end (a wrapped line rarely ends with one).
fn ends_sentence(line: &str) -> bool {
    line.trim_end_matches(['*', '_', '`', ')', '"', '\''])
        .ends_with(['.', '!', '?'])
}

/// A line that may continue wrapped prose: it starts like text, not like a glyph-led status
/// line (`⏵⏵ bypass permissions`, `✻ Thinking…`), a prompt (`>`) or JSON.
fn starts_prose(line: &str) -> bool {
    line.chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || "([\"'`+-*/.#~".contains(c))
}

/// `Use DONE:, REVIEW:, or` — an enumeration the next line continues.
fn ends_with_connector(line: &str) -> bool {
    let t = line.trim_end_matches(['*', '_', '`', ' ']);
    t.ends_with([',', '/', '|', '&'])
        || t == "or"
        || t == "and"
        || t.ends_with(" or")
        || t.ends_with(" and")
}

/// Whitespace and box drawing (U+2500–U+257F) or block elements (U+2580–U+259F) around a line.
fn is_frame(c: char) -> bool {
    c.is_whitespace() || ('\u{2500}'..='\u{259f}').contains(&c)
}

fn strip_frame(line: &str) -> &str {
    line.trim_matches(is_frame)
}

/// Removes ANSI escape sequences (CSI incl. SGR, OSC, DCS/SOS/PM/APC strings, two- and
/// three-byte escapes, their 8-bit C1 forms) and control characters; `\r\n` and a lone `\r`
/// become `\n`, a tab a space. Zero-width characters go too: they could split a nonce.
fn strip_terminal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.peek().copied() {
                Some('[') => {
                    chars.next();
                    skip_csi(&mut chars);
                }
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    chars.next();
                    skip_string(&mut chars);
                }
                Some(i) if ('\u{20}'..='\u{2f}').contains(&i) => {
                    while chars
                        .next_if(|c| ('\u{20}'..='\u{2f}').contains(c))
                        .is_some()
                    {}
                    chars.next_if(|c| ('\u{30}'..='\u{7e}').contains(c));
                }
                Some(f) if ('\u{30}'..='\u{7e}').contains(&f) => {
                    chars.next();
                }
                _ => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\n' => out.push('\n'),
            '\t' => out.push(' '),
            '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Parameters and intermediates, then one final byte.
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars
        .next_if(|c| ('\u{20}'..='\u{3f}').contains(c))
        .is_some()
    {}
    chars.next_if(|c| ('\u{40}'..='\u{7e}').contains(c));
}

/// A string sequence up to BEL, ST (`ESC \` or U+009C); a line break ends a broken one.
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => return,
            '\u{7}' | '\u{9c}' => {
                chars.next();
                return;
            }
            '\u{1b}' => {
                chars.next();
                chars.next_if_eq(&'\\');
                return;
            }
            _ => {
                chars.next();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_form() {
        assert!(is_turn_nonce("MC_TICKET_TURN:4030:1779519668441:c133f12c"));
        for bad in [
            "MC_TICKET_TURN:<n>:<ms>:<hex>",
            "MC_TICKET_TURN:4030:1779519668441:c133f12",
            "MC_TICKET_TURN:4030:1779519668441:c133f12c:1",
            "MC_TICKET_TURN::1:c133f12c",
            "<nonce>",
            "",
        ] {
            assert!(!is_turn_nonce(bad), "{bad}");
        }
    }

    #[test]
    fn escapes_and_frames_are_stripped() {
        let s = strip_terminal(
            "\x1b[1;32mDO\x1b[0mNE\x1b]8;;http://x\x1b\\: ok\x1b]0;t\x07\r\n\u{9b}2Kx\ty",
        );
        assert_eq!(s, "DONE: ok\nx y");
        assert_eq!(strip_frame("│ ╭─ DONE: x ─╮ │"), "DONE: x");
    }

    #[test]
    fn verdict_lines_with_decorations() {
        for (line, v, rest) in [
            ("DONE: shipped", Verdict::Done, "shipped"),
            ("**DONE:** shipped", Verdict::Done, "shipped"),
            ("**DONE**: shipped", Verdict::Done, "shipped"),
            ("✔ DONE: shipped", Verdict::Done, "shipped"),
            ("⏺ REVIEW: look", Verdict::Review, "look"),
            ("- QUESTION: which?", Verdict::Question, "which?"),
            ("`QUESTION:` which?", Verdict::Question, "which?"),
        ] {
            assert_eq!(verdict_line(line), Some((v, rest)), "{line}");
        }
        for line in [
            "UNDONE: x",
            "Done: x",
            "DONE x",
            "1. DONE: x",
            "DONE/REVIEW: x",
        ] {
            assert_eq!(verdict_line(line), None, "{line}");
        }
    }
}
