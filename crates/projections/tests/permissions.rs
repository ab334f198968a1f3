//! The permission table of SPEC §12 as given/when/then rows: given an actor kind, when it
//! takes each action, then it is allowed exactly where the SPEC's table says. The expected
//! rows are written out here from the SPEC, independently of `permissions::TABLE`.

use events::ActorKind;
use projections::{permitted, Action};

/// SPEC §12, row by row: the actions each kind may take.
fn spec_row(kind: ActorKind) -> &'static [&'static str] {
    match kind {
        ActorKind::Agent => &["signal", "activity", "input", "comment"],
        // SPEC §12 amended (issue 26): an agent's session ending or asking for input pauses
        // or ends a runtime; watchers and controllers (and above) may report it, a plain agent
        // token may not (a runtime token may, on its own runtime: `authorize`'s confinement).
        ActorKind::System => &[
            "reap",
            "activity",
            "harvest",
            "request_input",
            "end_session",
        ],
        ActorKind::Controller => &[
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
            "comment",
            "task",
            "request_input",
            "end_session",
        ],
        ActorKind::Orchestrator => &[
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
            "comment",
            "task",
            "open",
            "edit",
            "link",
            "unlink",
            "park",
            "gate",
            "close",
            "reopen",
            // SPEC §14: `POST /v1/pools` (orchestrator or human).
            "pool",
            "request_input",
            "end_session",
        ],
        ActorKind::Validator => &["gate", "close", "reopen", "comment"],
        ActorKind::Human => &[
            "open",
            "edit",
            "comment",
            "link",
            "unlink",
            "park",
            "gate",
            "close",
            "reopen",
            "task",
            "dispatch",
            "signal",
            "activity",
            "harvest",
            "reap",
            "kill",
            "cancel",
            "switch",
            "retry",
            "complete",
            "input",
            "abort",
            "pool",
            "request_input",
            "end_session",
        ],
    }
}

const KINDS: [ActorKind; 6] = [
    ActorKind::Agent,
    ActorKind::System,
    ActorKind::Controller,
    ActorKind::Orchestrator,
    ActorKind::Validator,
    ActorKind::Human,
];

#[test]
fn every_kind_times_every_action() {
    let mut checked = 0;
    for kind in KINDS {
        for action in Action::ALL {
            let allowed = spec_row(kind).contains(&action.as_str());
            let decided = permitted(kind, action);
            assert_eq!(
                decided.is_ok(),
                allowed,
                "given a {kind:?}, when it takes {}, then allowed = {allowed}",
                action.as_str()
            );
            if let Err(refusal) = decided {
                assert_eq!(refusal.kind, kind);
                assert!(!refusal.rule.is_empty(), "a refusal names its rule");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 6 * 25);
}

#[test]
fn no_worker_kind_can_approve_its_own_work() {
    for kind in [ActorKind::Agent, ActorKind::System] {
        for action in [
            Action::Gate,
            Action::Close,
            Action::Reopen,
            Action::Dispatch,
        ] {
            assert!(permitted(kind, action).is_err(), "{kind:?} {action:?}");
        }
    }
}
