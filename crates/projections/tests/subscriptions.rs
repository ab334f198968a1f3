//! Subscriptions (SPEC §15) as given/when/then rows: their decisions, their fold, and the
//! alert-notice rule with time passed in as data (a QUESTION left alone gets reminders).

mod common;

use common::*;
use events::{
    NoticeFormat, ReapCause, SubscriptionConfigured, SubscriptionFilter, SubscriptionParked,
    Timestamp, Verdict,
};
use projections::subscriptions::alert_key;
use projections::{
    alert_notices, Alert, AlertKind, Command, Decision, NoticeKind, OpenAlert, Rejection,
    SubscriptionState,
};
use std::collections::BTreeMap;

fn config(name: &str) -> SubscriptionConfigured {
    SubscriptionConfigured {
        name: name.to_owned(),
        url: "https://hooks.example/…".into(),
        format: NoticeFormat::Json,
        filter: SubscriptionFilter {
            alerts: vec!["unanswered_question".into()],
            ..SubscriptionFilter::default()
        },
        remind_every_ms: Some(3_600_000),
        chat_id: None,
        secret_id: "0123456789abcdef".into(),
    }
}

fn configure(c: SubscriptionConfigured) -> Command {
    Command::ConfigureSubscription { config: c }
}

fn invalid_field(r: Result<Decision, Rejection>) -> String {
    match r {
        Err(Rejection::Invalid { field, .. }) => field.to_owned(),
        other => panic!("expected 422, got {other:?}"),
    }
}

#[test]
fn a_bad_subscription_is_refused_naming_its_field() {
    type Spoil = fn(&mut SubscriptionConfigured);
    let rows: [(&str, Spoil, &str); 10] = [
        ("empty name", |c| c.name.clear(), "name"),
        ("name with a space", |c| c.name = "a b".into(), "name"),
        ("ftp url", |c| c.url = "ftp://x/".into(), "url"),
        ("url without host", |c| c.url = "https:///x".into(), "url"),
        (
            "url with a space",
            |c| c.url = "https://x/a b".into(),
            "url",
        ),
        (
            "unknown event type",
            |c| c.filter.types = vec!["ticket.nope".into()],
            "filter.types",
        ),
        (
            "unknown alert kind",
            |c| c.filter.alerts = vec!["on_fire".into()],
            "filter.alerts",
        ),
        (
            "umbrella not a ticket",
            |c| c.filter.umbrella = Some("nope".into()),
            "filter.umbrella",
        ),
        (
            "reminders every 10 ms",
            |c| c.remind_every_ms = Some(10),
            "remind_every",
        ),
        (
            "telegram without a chat",
            |c| c.format = NoticeFormat::Telegram,
            "chat_id",
        ),
    ];
    for (what, spoil, field) in rows {
        let mut w = World::new();
        let mut c = config("ops");
        spoil(&mut c);
        assert_eq!(
            invalid_field(w.try_run(&orchestrator(), configure(c))),
            field,
            "{what}"
        );
        assert!(
            w.sim.ledger.subscriptions().is_empty(),
            "{what}: nothing appended"
        );
    }
}

#[test]
fn create_change_pause_resume_replay_park_delete() {
    let mut w = World::new();
    // Given nothing, when created, then it is active and its creator is recorded.
    assert!(matches!(
        w.run(&orchestrator(), configure(config("ops"))),
        Decision::Append(_)
    ));
    let view = w.sim.ledger.subscription("ops").unwrap();
    assert_eq!(view.state, SubscriptionState::Active);
    assert_eq!(view.created_by, orchestrator());
    assert!(view.origin > 0);
    // The same again changes nothing; another format is a change.
    assert!(matches!(
        w.run(&orchestrator(), configure(config("ops"))),
        Decision::Duplicate(_)
    ));
    let slack = SubscriptionConfigured {
        format: NoticeFormat::Slack,
        ..config("ops")
    };
    let Decision::Append(a) = w.run(&human(), configure(slack)) else {
        panic!("changed")
    };
    assert_eq!(a.events[0].type_name(), "subscription.changed");

    // Rows: (command, expected outcome appended?, state after).
    let name = || "ops".to_owned();
    let parked = SubscriptionParked {
        name: name(),
        delivery_id: "d1".into(),
        position: 3,
        attempts: 30,
        error: "HTTP 500".into(),
    };
    let rows: Vec<(Command, bool, SubscriptionState)> = vec![
        (
            Command::PauseSubscription {
                name: name(),
                reason: Some("maintenance".into()),
            },
            true,
            SubscriptionState::Paused,
        ),
        (
            Command::PauseSubscription {
                name: name(),
                reason: None,
            },
            false,
            SubscriptionState::Paused,
        ),
        (
            Command::ResumeSubscription { name: name() },
            true,
            SubscriptionState::Active,
        ),
        (
            Command::ResumeSubscription { name: name() },
            false,
            SubscriptionState::Active,
        ),
        (
            Command::ParkDelivery {
                parked: parked.clone(),
            },
            true,
            SubscriptionState::Failing,
        ),
        (
            Command::ParkDelivery { parked },
            false,
            SubscriptionState::Failing,
        ),
        (
            Command::ReplaySubscription {
                name: name(),
                from_position: 1,
            },
            true,
            SubscriptionState::Active,
        ),
    ];
    for (i, (cmd, appends, state)) in rows.into_iter().enumerate() {
        let d = w.run(&human(), cmd);
        assert_eq!(matches!(d, Decision::Append(_)), appends, "row {i}: {d:?}");
        assert_eq!(
            w.sim.ledger.subscription("ops").unwrap().state,
            state,
            "row {i}"
        );
    }
    let replay = w.sim.ledger.subscription("ops").unwrap().replay.unwrap();
    assert_eq!(replay.from_position, 1);
    // A failing subscription raises subscription_failing; a resume or replay clears it.
    assert!(!w.alert_kinds().contains(&"subscription_failing".to_owned()));

    // A replay beyond the head is refused.
    let head = w.sim.ledger.position();
    let far = Command::ReplaySubscription {
        name: name(),
        from_position: head + 2,
    };
    assert_eq!(invalid_field(w.try_run(&human(), far)), "from_position");
    // Deleted: gone, and commands on it are 404.
    w.run(&human(), Command::DeleteSubscription { name: name() });
    assert!(w.sim.ledger.subscription("ops").is_none());
    let r = w.try_run(&human(), Command::ResumeSubscription { name: name() });
    assert!(
        matches!(r, Err(Rejection::SubscriptionNotFound { .. })),
        "{r:?}"
    );
    // Created again: a new origin, so deliveries start afresh.
    w.run(&human(), configure(config("ops")));
    assert!(w.sim.ledger.subscription("ops").unwrap().origin > replay.requested_at);
}

#[test]
fn a_parked_delivery_raises_subscription_failing_until_resumed() {
    let mut w = World::new();
    w.run(&human(), configure(config("ops")));
    w.run(
        &watcher(),
        Command::ParkDelivery {
            parked: SubscriptionParked {
                name: "ops".into(),
                delivery_id: "d1".into(),
                position: 1,
                attempts: 9,
                error: "timed out".into(),
            },
        },
    );
    let alerts = w.sim.ledger.alerts(w.sim.now, &w.sim.config);
    let failing: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::SubscriptionFailing)
        .collect();
    assert_eq!(failing.len(), 1);
    assert_eq!(failing[0].subscription.as_deref(), Some("ops"));
    w.run(&human(), Command::ResumeSubscription { name: "ops".into() });
    assert!(!w.alert_kinds().contains(&"subscription_failing".to_owned()));
}

#[test]
fn no_ticket_may_take_a_subscription_stream() {
    let mut w = World::new();
    let r = w.try_run(&human(), open("SUB-123", "not a ticket"));
    assert!(
        matches!(r, Err(Rejection::Invalid { field: "id", .. })),
        "{r:?}"
    );
}

fn alert(kind: AlertKind, ticket: &str, since: u64) -> Alert {
    Alert {
        kind,
        ticket: Some(id(ticket)),
        pool: None,
        subscription: None,
        budget: None,
        runtime_id: Some("rt_1".into()),
        since: Timestamp(since),
        detail: "d".into(),
    }
}

const H: u64 = 3_600_000;

/// Given what the receiver was told (`open`) and the alerts now, when the rule runs at `now`,
/// then these notices, with these ids.
#[test]
fn notices_follow_alerts_through_time() {
    let q = |since| alert(AlertKind::UnansweredQuestion, "MC-1", since);
    let mut open: BTreeMap<String, OpenAlert> = BTreeMap::new();
    let kinds =
        |n: &[projections::Notice]| n.iter().map(|n| (n.kind, n.id.clone())).collect::<Vec<_>>();
    // A notice of the question alert since `since`: its kind and id, the id ending in `suffix`.
    let told = |kind, since: u64, suffix: &str| {
        (
            kind,
            format!("alert.unanswered_question.MC-1.{since}{suffix}"),
        )
    };
    // (now, alerts, expected notices)
    type Told = Vec<(NoticeKind, String)>;
    let rows: Vec<(u64, Vec<Alert>, Told)> = vec![
        (10 * H, vec![], vec![]),
        (
            10 * H,
            vec![q(10 * H)],
            vec![told(NoticeKind::Raised, 10 * H, "")],
        ),
        (10 * H + 1, vec![q(10 * H)], vec![]),
        (11 * H - 1, vec![q(10 * H)], vec![]),
        (
            11 * H,
            vec![q(10 * H)],
            vec![told(NoticeKind::Reminder, 10 * H, ".r1")],
        ),
        (11 * H + 5, vec![q(10 * H)], vec![]),
        // Three hours later: one reminder, numbered by the hours passed.
        (
            14 * H,
            vec![q(10 * H)],
            vec![told(NoticeKind::Reminder, 10 * H, ".r4")],
        ),
        // A new episode (another start): the old one is cleared, the new one raised.
        (
            15 * H,
            vec![q(15 * H)],
            vec![
                told(NoticeKind::Cleared, 10 * H, ".cleared"),
                told(NoticeKind::Raised, 15 * H, ""),
            ],
        ),
        (
            16 * H,
            vec![],
            vec![told(NoticeKind::Cleared, 15 * H, ".cleared")],
        ),
        (17 * H, vec![], vec![]),
    ];
    for (i, (now, alerts, expected)) in rows.into_iter().enumerate() {
        let got = alert_notices(&mut open, &alerts, Timestamp(now), Some(H));
        assert_eq!(kinds(&got), expected, "row {i}");
    }
    // An alert first seen long after it began: raised, and no burst of past reminders.
    let mut open = BTreeMap::new();
    let got = alert_notices(&mut open, &[q(0)], Timestamp(5 * H + 1), Some(H));
    assert_eq!(kinds(&got), vec![told(NoticeKind::Raised, 0, "")]);
    assert_eq!(open[&alert_key(&q(0))].reminders, 5);
    // Without remind_every: never a reminder.
    let mut open = BTreeMap::new();
    alert_notices(&mut open, &[q(0)], Timestamp(1), None);
    assert!(alert_notices(&mut open, &[q(0)], Timestamp(100 * H), None).is_empty());
}

/// The QUESTION story through the real fold: a worker asks, nobody answers; the alert comes
/// after `question_after` and the subscription is reminded every hour until the answer.
#[test]
fn a_question_left_alone_gets_reminders() {
    let mut w = World::new();
    w.run(&orchestrator(), open("MC-1", "asks"));
    w.run(&orchestrator(), dispatch("MC-1", "k1"));
    let rt = w.rt("MC-1");
    let nonce = w.nonce("MC-1");
    w.run(
        &agent(),
        signal(&rt, Verdict::Question, &nonce, "which branch?"),
    );
    let mut open = BTreeMap::new();
    let mut told = Vec::new();
    let wanted = |w: &World| -> Vec<Alert> {
        w.sim
            .ledger
            .alerts(w.sim.now, &w.sim.config)
            .into_iter()
            .filter(|a| a.kind == AlertKind::UnansweredQuestion)
            .collect()
    };
    for _ in 0..(3 * 60 + 40) {
        w.wait_min(1);
        told.extend(alert_notices(&mut open, &wanted(&w), w.sim.now, Some(H)));
    }
    let kinds: Vec<NoticeKind> = told.iter().map(|n| n.kind).collect();
    // Raised at 30 min; reminders at 1 h 30, 2 h 30, 3 h 30 after the QUESTION.
    assert_eq!(
        kinds,
        [
            NoticeKind::Raised,
            NoticeKind::Reminder,
            NoticeKind::Reminder,
            NoticeKind::Reminder
        ]
    );
    // The answer (a reap here: the question is moot) clears it.
    w.run(&watcher(), reap(&rt, ReapCause::TmuxMissing));
    let after = alert_notices(&mut open, &wanted(&w), w.sim.now, Some(H));
    assert_eq!(
        after.iter().map(|n| n.kind).collect::<Vec<_>>(),
        [NoticeKind::Cleared]
    );
}
