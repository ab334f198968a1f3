//! Pools and slots (SPEC §14) as given/when/then rows: every way a runtime ends frees its slot
//! with no write of its own; a replacing dispatch passes its slot on; a full pool refuses with
//! the holders and appends nothing; the alert after 15 minutes full.

mod common;

use common::*;
use events::{ExitReason as X, HarvestOutcome as H, ReapCause};
use projections::{Command, Decision};

fn pool(name: &str, capacity: u32) -> Command {
    Command::ConfigurePool {
        name: name.to_owned(),
        capacity,
    }
}

fn dispatch_in(ticket: &str, key: &str, pool: &str, replace: bool) -> Command {
    let mut d = dispatch(ticket, key);
    if let Command::Dispatch {
        pool: p,
        replace: r,
        ..
    } = &mut d
    {
        *p = Some(pool.to_owned());
        *r = replace;
    }
    d
}

fn holders(w: &World, name: &str) -> Vec<String> {
    w.sim.ledger.pool_holders(name)
}

/// A pool "gpu" of `capacity` with MC-1's runtime in it (and MC-2 open too, if `and_mc_2`):
/// the runtime's id.
fn one_held(w: &mut World, capacity: u32, and_mc_2: bool) -> String {
    w.run(&orchestrator(), pool("gpu", capacity));
    w.run(&orchestrator(), open("MC-1", "one"));
    if and_mc_2 {
        w.run(&orchestrator(), open("MC-2", "two"));
    }
    w.run(&orchestrator(), dispatch_in("MC-1", "k1", "gpu", false));
    w.rt("MC-1")
}

/// Given a runtime holding a slot, when it ends this way, then its slot is free, with no event
/// beyond the ending itself.
#[test]
fn every_ending_frees_the_slot() {
    type End = fn(&str) -> Command;
    let endings: [(&str, End); 9] = [
        ("reap", |rt| reap(rt, ReapCause::TmuxMissing)),
        ("kill", kill),
        ("cancel", cancel),
        ("harvest", |rt| harvest(rt, H::Completed, X::Success)),
        ("controller completion", complete),
        ("session end", |rt| Command::EndSession {
            runtime_id: rt.to_owned(),
            reason: "other".into(),
        }),
        ("launch abort", |rt| abort_launch(rt, "smoke test failed")),
        ("failed harvest", |rt| harvest(rt, H::Failed, X::Error)),
        ("process reap", |rt| reap(rt, ReapCause::ProcessDead)),
    ];
    for (name, end) in endings {
        let mut w = World::new();
        let rt = one_held(&mut w, 2, true);
        assert_eq!(
            holders(&w, "gpu"),
            std::slice::from_ref(&rt),
            "{name}: given"
        );
        let before = w.sim.log.len();
        let Decision::Append(a) = w.run(&controller(), end(&rt)) else {
            panic!("{name}: appended")
        };
        assert!(
            a.also.is_empty(),
            "{name}: the pool's stream is not written"
        );
        assert_eq!(w.sim.log.len() - before, a.events.len(), "{name}");
        assert!(holders(&w, "gpu").is_empty(), "{name}: then free");
        let view = w.sim.ledger.pool("gpu").unwrap();
        assert_eq!((view.free, view.holders.len()), (2, 0), "{name}");
    }
}

#[test]
fn a_replacing_dispatch_passes_its_slot_on() {
    let mut w = World::new();
    let old = one_held(&mut w, 1, false);
    // The pool is full, but the replaced runtime's slot becomes the new one's.
    let Decision::Append(a) = w.run(&orchestrator(), dispatch_in("MC-1", "k2", "gpu", true)) else {
        panic!("appended")
    };
    let types: Vec<&str> = a.events.iter().map(|e| e.type_name()).collect();
    assert_eq!(
        types,
        ["runtime.killed", "runtime.dispatched", "runtime.pooled"]
    );
    assert_eq!(a.also.len(), 1);
    assert_eq!(a.also[0].events[0].type_name(), "pool.admitted");
    let new = w.rt("MC-1");
    assert_ne!(old, new);
    assert_eq!(holders(&w, "gpu"), [new]);
}

#[test]
fn a_full_pool_refuses_with_its_holders_and_appends_nothing() {
    let mut w = World::new();
    let rt = one_held(&mut w, 2, true);
    w.run(&orchestrator(), open("MC-3", "three"));
    w.run(&orchestrator(), dispatch_in("MC-2", "k1", "gpu", false));
    let second = w.rt("MC-2");
    let before = w.sim.log.len();
    let refused = w
        .try_run(&orchestrator(), dispatch_in("MC-3", "k1", "gpu", false))
        .unwrap_err();
    assert_eq!(refused.code(), "pool_full");
    let projections::Rejection::PoolFull {
        holders: h,
        capacity,
        ..
    } = &refused
    else {
        panic!("{refused:?}")
    };
    let mut expected = vec![rt.clone(), second];
    expected.sort();
    assert_eq!((h.clone(), *capacity), (expected, 2));
    assert_eq!(w.sim.log.len(), before, "nothing appended");
    // One ends: the third gets its slot.
    w.run(&controller(), kill(&rt));
    w.run(&orchestrator(), dispatch_in("MC-3", "k1", "gpu", false));
    assert_eq!(holders(&w, "gpu").len(), 2);
    // Unknown pool: 404.
    let unknown = w
        .try_run(&orchestrator(), dispatch_in("MC-1", "k9", "nope", true))
        .unwrap_err();
    assert_eq!(unknown.code(), "pool_not_found");
}

#[test]
fn a_retry_stays_in_its_pool_and_needs_a_slot() {
    let mut w = World::new();
    let first = one_held(&mut w, 1, true);
    w.run(&controller(), harvest(&first, H::Failed, X::Error));
    // The slot went with the harvest; someone else takes it.
    w.run(&orchestrator(), dispatch_in("MC-2", "k1", "gpu", false));
    let refused = w.try_run(&controller(), retry(&first, false)).unwrap_err();
    assert_eq!(refused.code(), "pool_full", "the retry inherits the pool");
    w.run(&controller(), kill(&w.rt("MC-2")));
    w.run(&controller(), retry(&first, false));
    let again = w.rt("MC-1");
    assert_eq!(holders(&w, "gpu"), std::slice::from_ref(&again));
    let view = w
        .sim
        .ledger
        .runtime_view(&again, w.sim.now, &w.sim.config)
        .unwrap();
    assert_eq!(view.pool.as_deref(), Some("gpu"));
}

#[test]
fn configuring_pools() {
    let mut w = World::new();
    // A new pool, the same again (200), a bigger one.
    assert!(matches!(
        w.run(&orchestrator(), pool("gpu", 1)),
        Decision::Append(_)
    ));
    assert!(matches!(
        w.run(&orchestrator(), pool("gpu", 1)),
        Decision::Duplicate(_)
    ));
    w.run(&human(), pool("gpu", 3));
    assert_eq!(w.sim.ledger.pool("gpu").unwrap().capacity, 3);
    // Not below its live holders.
    w.run(&orchestrator(), open("MC-1", "one"));
    w.run(&orchestrator(), open("MC-2", "two"));
    w.run(&orchestrator(), dispatch_in("MC-1", "k1", "gpu", false));
    w.run(&orchestrator(), dispatch_in("MC-2", "k1", "gpu", false));
    let shrink = w.try_run(&orchestrator(), pool("gpu", 1)).unwrap_err();
    assert_eq!(shrink.code(), "pool_in_use");
    w.run(&orchestrator(), pool("gpu", 2));
    for (name, capacity, code) in [
        ("", 1, "invalid"),
        ("has space", 1, "invalid"),
        (&"p".repeat(65) as &str, 1, "invalid"),
        ("big", 10_001, "invalid"),
    ] {
        let got = w
            .try_run(&orchestrator(), pool(name, capacity))
            .unwrap_err();
        assert_eq!(got.code(), code, "{name:?} {capacity}");
    }
    // Pool streams are not tickets.
    let reserved = w.try_run(&orchestrator(), open("POOL-1", "x")).unwrap_err();
    assert_eq!(reserved.code(), "invalid");
    let names: Vec<String> = w
        .sim
        .ledger
        .pools()
        .pools
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["gpu"]);
}

#[test]
fn a_pool_full_for_fifteen_minutes_raises_pool_saturated() {
    let mut w = World::new();
    let rt = one_held(&mut w, 1, false);
    // Heard from, so no stale_worker alert muddies the list.
    w.wait_min(14);
    w.run(&agent(), activity(&rt));
    assert!(!w
        .alert_kinds()
        .iter()
        .any(|a| a.starts_with("pool_saturated")));
    w.wait_min(1);
    assert!(
        w.alert_kinds()
            .contains(&"pool_saturated:pool gpu".to_owned()),
        "{:?}",
        w.alert_kinds()
    );
    w.run(&controller(), kill(&rt));
    assert!(!w
        .alert_kinds()
        .iter()
        .any(|a| a.starts_with("pool_saturated")));
}
