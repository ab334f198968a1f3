//! SPEC §12's table of what each actor kind may write, written out here from the SPEC's words,
//! independently of `projections::permissions::TABLE`, for the tests that check the table
//! (`crates/projections/tests/permissions.rs`) and the fuzz that models it
//! (`crates/api/tests/least_privilege.rs`, which includes this file).
#![allow(dead_code, unreachable_pub)]

use events::ActorKind;

/// The runtime commands (SPEC §12: "the runtime commands"), with what an agent's hooks report
/// about a runtime (issue 26: `end_session` and `request_input` pause or end it).
const RUNTIME: [&str; 13] = [
    "dispatch",
    "harvest",
    "reap",
    "kill",
    "cancel",
    "switch",
    "retry",
    "complete",
    "abort",
    "input",
    "activity",
    "request_input",
    "end_session",
];

/// The actions a kind may take, as the SPEC's table lists them.
pub fn spec_row(kind: ActorKind) -> Vec<&'static str> {
    let controller = || [&RUNTIME[..], &["comment", "task"]].concat();
    match kind {
        // SPEC §19: "an agent (and a runtime token) may add and update tasks on its own
        // ticket, its own work plan".
        ActorKind::Agent => vec!["signal", "activity", "input", "comment", "task"],
        // A watcher may report an agent's session ending or asking for input; a plain agent
        // token may not (a runtime token may, on its own runtime: `authorize`'s confinement).
        ActorKind::System => vec![
            "reap",
            "activity",
            "harvest",
            "request_input",
            "end_session",
        ],
        ActorKind::Controller => controller(),
        // "what a controller may, plus open, edit, link, unlink, park, gates, close, reopen";
        // SPEC §14: `POST /v1/pools` (orchestrator or human); SPEC §15: `POST
        // /v1/subscriptions` and what changes one (orchestrator, human or admin); SPEC §16:
        // `POST /v1/budgets` (orchestrator, human or admin).
        ActorKind::Orchestrator => [
            controller(),
            vec![
                "open",
                "edit",
                "link",
                "unlink",
                "park",
                "gate",
                "close",
                "reopen",
                "pool",
                "subscribe",
                "budget",
            ],
        ]
        .concat(),
        ActorKind::Validator => vec!["gate", "close", "reopen", "comment"],
        // "everything its scope allows": every action there is.
        ActorKind::Human => [
            controller(),
            spec_row(ActorKind::Orchestrator),
            vec!["signal"],
        ]
        .concat(),
    }
}

/// Whether a kind may take an action, by the SPEC's table.
pub fn spec_allows(kind: ActorKind, action: &str) -> bool {
    spec_row(kind).contains(&action)
}
