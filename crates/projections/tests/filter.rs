//! SPEC §15's event filter as given/when/then rows: given a small ledger (an umbrella MC-1,
//! its child MC-2, a grandchild MC-3, an unrelated MC-4, a claude runtime on MC-3 and a codex
//! runtime on MC-4), when a filter is applied to every event of the log, then exactly the
//! events the row names match.

mod common;

use common::*;
use events::{RecordedEvent, Relation};
use projections::{EventFilter, FilterError};

fn world() -> World {
    let mut w = World::new();
    w.run(&human(), open_umbrella("MC-1", "umbrella"));
    for t in ["MC-2", "MC-3", "MC-4"] {
        w.run(&human(), open(t, "t"));
    }
    w.run(&orchestrator(), link("MC-2", Relation::ChildOf, "MC-1"));
    w.run(&orchestrator(), link("MC-3", Relation::ChildOf, "MC-2"));
    w.run(&controller(), dispatch("MC-3", "k3"));
    let mut codex = dispatch("MC-4", "k4");
    if let projections::Command::Dispatch { agent, .. } = &mut codex {
        *agent = "codex".to_owned();
    }
    w.run(&controller(), codex);
    let (rt3, rt4) = (w.rt("MC-3"), w.rt("MC-4"));
    w.run(&watcher(), activity(&rt3));
    w.run(&watcher(), activity(&rt4));
    w.run(&human(), comment("MC-4", "unrelated"));
    w
}

/// `type@ticket` of each matching event, in log order.
fn matching(w: &World, filter: &EventFilter) -> Vec<String> {
    w.sim
        .log
        .iter()
        .filter(|e: &&RecordedEvent| filter.matches(&w.sim.ledger, e))
        .map(|e| format!("{}@{}", e.type_name(), e.ticket))
        .collect()
}

fn filter(types: &str, tickets: &str, umbrella: &str, agents: &str) -> EventFilter {
    EventFilter {
        types: if types.is_empty() {
            Default::default()
        } else {
            EventFilter::parse_types(types).unwrap()
        },
        tickets: if tickets.is_empty() {
            Default::default()
        } else {
            EventFilter::parse_tickets("ticket", tickets).unwrap()
        },
        umbrella: (!umbrella.is_empty()).then(|| id(umbrella)),
        agents: if agents.is_empty() {
            Default::default()
        } else {
            EventFilter::parse_agents(agents).unwrap()
        },
    }
}

/// (what, types, tickets, umbrella, agents, expected `type@ticket`s)
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

#[test]
fn filters_match_exactly_what_they_name() {
    let w = world();
    let rows: &[Row] = &[
        (
            "no filter: everything",
            "",
            "",
            "",
            "",
            &[
                "ticket.opened@MC-1",
                "ticket.opened@MC-2",
                "ticket.opened@MC-3",
                "ticket.opened@MC-4",
                "ticket.linked@MC-2",
                "ticket.linked@MC-3",
                "runtime.dispatched@MC-3",
                "runtime.dispatched@MC-4",
                "runtime.activity@MC-3",
                "runtime.activity@MC-4",
                "ticket.commented@MC-4",
            ],
        ),
        (
            "an umbrella: itself, its child and its grandchild",
            "",
            "",
            "MC-1",
            "",
            &[
                "ticket.opened@MC-1",
                "ticket.opened@MC-2",
                "ticket.opened@MC-3",
                "ticket.linked@MC-2",
                "ticket.linked@MC-3",
                "runtime.dispatched@MC-3",
                "runtime.activity@MC-3",
            ],
        ),
        (
            "a middle ticket as umbrella: itself and below",
            "",
            "",
            "MC-2",
            "",
            &[
                "ticket.opened@MC-2",
                "ticket.opened@MC-3",
                "ticket.linked@MC-2",
                "ticket.linked@MC-3",
                "runtime.dispatched@MC-3",
                "runtime.activity@MC-3",
            ],
        ),
        (
            "types",
            "runtime.dispatched,ticket.commented",
            "",
            "",
            "",
            &[
                "runtime.dispatched@MC-3",
                "runtime.dispatched@MC-4",
                "ticket.commented@MC-4",
            ],
        ),
        (
            "tickets",
            "",
            "MC-4,MC-1",
            "",
            "",
            &[
                "ticket.opened@MC-1",
                "ticket.opened@MC-4",
                "runtime.dispatched@MC-4",
                "runtime.activity@MC-4",
                "ticket.commented@MC-4",
            ],
        ),
        (
            "agents: runtime events of codex only",
            "",
            "",
            "",
            "codex",
            &["runtime.dispatched@MC-4", "runtime.activity@MC-4"],
        ),
        (
            "every part must match",
            "runtime.activity",
            "",
            "MC-1",
            "claude",
            &["runtime.activity@MC-3"],
        ),
        (
            "parts that exclude each other: nothing",
            "",
            "MC-4",
            "MC-1",
            "",
            &[],
        ),
    ];
    for (what, types, tickets, umbrella, agents, expected) in rows {
        let f = filter(types, tickets, umbrella, agents);
        assert_eq!(
            matching(&w, &f),
            expected.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "given the ledger, when filtering by {what}"
        );
    }
}

#[test]
fn an_unlinked_child_leaves_the_umbrella() {
    let mut w = world();
    w.run(&orchestrator(), unlink("MC-2", Relation::ChildOf, "MC-1"));
    let f = filter("ticket.opened", "", "MC-1", "");
    assert_eq!(matching(&w, &f), vec!["ticket.opened@MC-1"]);
}

#[test]
fn bad_lists_are_named() {
    let rows: &[(&str, Result<(), FilterError>)] = &[
        ("runtime.signaled", Ok(())),
        (
            "runtime.signaled,nope",
            Err(FilterError::UnknownType("nope".into())),
        ),
        ("runtime.signaled,", Err(FilterError::Empty("types"))),
    ];
    for (list, expected) in rows {
        assert_eq!(
            EventFilter::parse_types(list).map(|_| ()),
            *expected,
            "types={list}"
        );
    }
    assert_eq!(
        EventFilter::parse_tickets("ticket", "MC-1,mc-2")
            .unwrap_err()
            .field(),
        "ticket"
    );
    assert!(EventFilter::parse_agents(" claude , codex ")
        .unwrap()
        .contains("codex"));
}
