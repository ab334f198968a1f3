//! The log against a `BTreeMap` model, across close and reopen, and under concurrent racing.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use events::*;
use proptest::prelude::*;
use store::*;
use store_sled::*;

#[derive(Debug, Clone)]
enum Op {
    /// Append `n` events to ticket `t`, with the right expected version, a wrong one, or none.
    Append {
        t: u8,
        n: u8,
        expect: Expect,
    },
    /// Re-send an earlier append (by index into what was accepted).
    Retry {
        pick: prop::sample::Index,
    },
    Reopen,
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    None,
    Right,
    Wrong,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..4, 1u8..4, prop_oneof![Just(Expect::None), Just(Expect::Right), Just(Expect::Wrong)])
            .prop_map(|(t, n, expect)| Op::Append { t, n, expect }),
        2 => any::<prop::sample::Index>().prop_map(|pick| Op::Retry { pick }),
        1 => Just(Op::Reopen),
    ]
}

/// The model: position -> (ticket, version, id), and the accepted appends for retries.
#[derive(Default)]
struct Model {
    log: BTreeMap<u64, (String, u64, String)>,
    versions: BTreeMap<String, u64>,
    accepted: Vec<(AppendRequest, Vec<u64>)>,
}

/// Checkpoints every few records, so that runs write several, reopen from them and rebuild a
/// tail after the last one.
fn small_checkpoints() -> LogConfig {
    LogConfig {
        checkpoint_events: 4,
        ..LogConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn log_behaves_like_a_btreemap(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), small_checkpoints()).unwrap();
        let mut model = Model::default();
        let mut next_id = 0u64;
        for op in ops {
            match op {
                Op::Append { t, n, expect } => {
                    let ticket = format!("MC-{t}");
                    let current = model.versions.get(&ticket).copied().unwrap_or(0);
                    let expected = match expect {
                        Expect::None => None,
                        Expect::Right => Some(current),
                        Expect::Wrong => Some(current + 1),
                    };
                    let events = (0..n).map(|_| { next_id += 1; comment(&format!("id{next_id}"), "body") }).collect();
                    let request = append(&ticket, expected, events);
                    let result = log.append_blocking(request.clone());
                    if matches!(expect, Expect::Wrong) {
                        prop_assert_eq!(result.map_err(|e| e.code()).err(), Some("version_conflict"));
                        continue;
                    }
                    let appended = result.unwrap();
                    prop_assert!(!appended.duplicate);
                    let mut positions = Vec::new();
                    for event in &appended.events {
                        let version = model.versions.entry(ticket.clone()).or_insert(0);
                        *version += 1;
                        let position = u64::try_from(model.log.len()).unwrap() + 1;
                        prop_assert_eq!((event.position, event.version), (position, *version));
                        model.log.insert(position, (ticket.clone(), *version, event.id.clone()));
                        positions.push(position);
                    }
                    model.accepted.push((request, positions));
                }
                Op::Retry { pick } => {
                    if model.accepted.is_empty() { continue; }
                    let (request, positions) = model.accepted[pick.index(model.accepted.len())].clone();
                    let again = log.append_blocking(request).unwrap();
                    prop_assert!(again.duplicate);
                    let got: Vec<u64> = again.events.iter().map(|e| e.position).collect();
                    prop_assert_eq!(got, positions);
                }
                Op::Reopen => {
                    drop(log);
                    log = Log::open(dir.path(), small_checkpoints()).unwrap();
                }
            }
            prop_assert_eq!(log.head(), u64::try_from(model.log.len()).unwrap());
        }
        // Everything reads back as the model says, by position and by stream.
        let all = log.read_after(0, usize::MAX).unwrap();
        let got: BTreeMap<u64, (String, u64, String)> = all.iter().map(|e| (e.position, (e.ticket.to_string(), e.version, e.id.clone()))).collect();
        prop_assert_eq!(&got, &model.log);
        for (ticket, version) in &model.versions {
            let t = TicketId::parse(ticket).unwrap();
            prop_assert_eq!(log.stream_version(&t).unwrap(), *version);
            prop_assert_eq!(log.read_stream(&t, 1, u64::MAX, usize::MAX).unwrap().len(), usize::try_from(*version).unwrap());
        }
        let report = log.verify().unwrap();
        prop_assert_eq!(report.events, u64::try_from(model.log.len()).unwrap());
    }
}

/// Many appenders race one expected version per round: exactly one wins each version, and
/// positions stay gapless.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_appenders_one_winner_per_version() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), LogConfig::default()).unwrap());
    const RACERS: u64 = 16;
    const ROUNDS: u64 = 20;
    for round in 0..ROUNDS {
        let mut tasks = Vec::new();
        for racer in 0..RACERS {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let event = comment(&format!("r{round}-{racer}"), "race");
                // Noise on another stream in the same commit batches.
                let _ = log
                    .append_async(append(
                        "MC-999",
                        None,
                        vec![comment(&format!("n{round}-{racer}"), "noise")],
                    ))
                    .await;
                log.append_async(append("MC-1", Some(round), vec![event]))
                    .await
            }));
        }
        let mut wins = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(a) => {
                    assert_eq!(a.last_version(), round + 1);
                    wins += 1;
                }
                Err(e) => assert_eq!(e.code(), "version_conflict"),
            }
        }
        assert_eq!(wins, 1, "round {round}");
    }
    let all = log.read_after(0, usize::MAX).unwrap();
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, u64::try_from(i).unwrap() + 1, "gapless");
    }
    assert_eq!(
        all.len(),
        usize::try_from(ROUNDS * RACERS + ROUNDS).unwrap()
    );
    log.verify().unwrap();
}
