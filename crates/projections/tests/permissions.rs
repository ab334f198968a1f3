//! The permission table of SPEC §12 as given/when/then rows: given an actor kind, when it
//! takes each action, then it is allowed exactly where the SPEC's table says. The expected
//! rows are written out here from the SPEC, independently of `permissions::TABLE`.

use events::ActorKind;
use projections::{permitted, Action};

mod spec12;

use spec12::spec_row;

const KINDS: [ActorKind; 6] = ActorKind::SPEC_ORDER;

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
    assert_eq!(checked, 6 * Action::ALL.len());
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
