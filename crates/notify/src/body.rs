//! What a delivery says: the body of each format, and the one line every notice opens with
//! (what happened, on which ticket, the console URL).

use events::{EventData, RecordedEvent, SubscriptionConfigured, TicketId};
use projections::{Notice, NoticeKind};
use serde_json::{json, Value};

/// Something to deliver: an event of the log, or an alert notice.
#[derive(Debug, Clone)]
pub enum Item {
    Event(Box<RecordedEvent>),
    Notice(Notice),
}

impl Item {
    /// The delivery's stable id (`webhook-id`): the event's id, or the notice's.
    pub fn id(&self) -> &str {
        match self {
            Item::Event(e) => &e.id,
            Item::Notice(n) => &n.id,
        }
    }
}

/// Where the console shows what an item is about.
pub fn console_url(public_url: &str, item: &Item) -> String {
    let base = public_url.trim_end_matches('/');
    let ticket = |t: &TicketId| {
        if events::ids::is_reserved_stream(t) {
            format!("{base}/events")
        } else {
            format!("{base}/tickets/{t}")
        }
    };
    match item {
        Item::Event(e) => ticket(&e.ticket),
        Item::Notice(n) => match (&n.alert.ticket, &n.alert.subscription) {
            (Some(t), _) => ticket(t),
            (None, Some(_)) => format!("{base}/subscriptions"),
            (None, None) => format!("{base}/alerts"),
        },
    }
}

fn excerpt(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// What happened, in one line, without the URL.
pub fn headline(item: &Item) -> String {
    match item {
        Item::Event(e) => {
            let what = match &e.data {
                EventData::TicketOpened(o) => format!("opened “{}”", excerpt(&o.title, 80)),
                EventData::TicketClosed(c) => format!("closed ({:?})", c.resolution).to_lowercase(),
                EventData::TicketCommented(_) => "commented".into(),
                EventData::RuntimeDispatched(d) => {
                    format!("dispatched {} to {}", d.runtime_id, d.agent)
                }
                EventData::RuntimeSignaled(s) => {
                    format!("{} signaled {}", s.runtime_id, s.verdict.as_str())
                }
                EventData::RuntimeReaped(r) => {
                    format!("{} reaped: {}", r.runtime_id, r.cause.as_str())
                }
                EventData::RuntimeInputRequested(r) => format!(
                    "{} waits for a person ({}){}",
                    r.runtime_id,
                    r.kind,
                    r.message
                        .as_deref()
                        .map(|m| format!(": {}", excerpt(m, 120)))
                        .unwrap_or_default()
                ),
                EventData::GateRecorded(g) => {
                    format!("gate {} {:?}", g.gate, g.verdict).to_lowercase()
                }
                data => data.type_name().to_owned(),
            };
            format!(
                "{}: {what} (by {}, {})",
                e.ticket,
                e.actor.name,
                e.type_name()
            )
        }
        Item::Notice(n) => {
            let a = &n.alert;
            let verb = match n.kind {
                NoticeKind::Raised => "Alert",
                NoticeKind::Cleared => "Cleared",
                NoticeKind::Reminder => "Still open",
            };
            let subject = projections::subscriptions::alert_subject(a);
            let runtime = a
                .runtime_id
                .as_deref()
                .map(|r| format!(", runtime {r}"))
                .unwrap_or_default();
            format!(
                "{verb}: {} on {subject}{runtime} since {}: {}",
                a.kind,
                a.since.to_rfc3339(),
                excerpt(&a.detail, 200)
            )
        }
    }
}

/// The body for a subscription's format.
pub fn render(sub: &SubscriptionConfigured, item: &Item, public_url: &str) -> Vec<u8> {
    let url = console_url(public_url, item);
    let line = headline(item);
    let value = match sub.format {
        events::NoticeFormat::Json => match item {
            Item::Event(e) => serde_json::to_value(&**e).unwrap_or(Value::Null),
            Item::Notice(n) => json!({
                "type": n.kind.as_str(),
                "id": n.id,
                "timestamp": n.at,
                "data": {
                    "alert": n.alert,
                    "url": url,
                    "text": line,
                },
            }),
        },
        events::NoticeFormat::Slack => {
            let escaped = slack_escape(&line);
            json!({
                "text": format!("{line} {url}"),
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": escaped}},
                    {"type": "context", "elements": [
                        {"type": "mrkdwn", "text": format!("<{url}|Open in mission control>")}
                    ]},
                ],
            })
        }
        events::NoticeFormat::Telegram => json!({
            "chat_id": sub.chat_id.clone().unwrap_or_default(),
            "text": format!("{}\n<a href=\"{}\">Open in mission control</a>", html_escape(&line), html_escape(&url)),
            "parse_mode": "HTML",
            "disable_web_page_preview": true,
        }),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn html_escape(s: &str) -> String {
    slack_escape(s).replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::{Actor, ActorKind, Hash, NoticeFormat, ReapCause, RuntimeReaped, Timestamp};
    use projections::{Alert, AlertKind};

    fn reaped() -> Item {
        Item::Event(Box::new(RecordedEvent {
            position: 7,
            ticket: TicketId::parse("MC-4030").unwrap(),
            version: 3,
            id: "01JDEVENT".into(),
            recorded_at: Timestamp(1_764_000_000_000),
            actor: Actor {
                name: "watcher".into(),
                kind: ActorKind::System,
            },
            token_id: None,
            data: EventData::RuntimeReaped(RuntimeReaped {
                runtime_id: "rt_1".into(),
                cause: ReapCause::TmuxMissing,
                evidence: None,
            }),
            prev_hash: Hash::ZERO,
            hash: Hash::ZERO,
        }))
    }

    fn raised() -> Item {
        Item::Notice(Notice {
            kind: NoticeKind::Raised,
            id: "alert.worker_lost.MC-4030.1764000000000".into(),
            alert: Alert {
                kind: AlertKind::WorkerLost,
                ticket: Some(TicketId::parse("MC-4030").unwrap()),
                pool: None,
                subscription: None,
                budget: None,
                runtime_id: Some("rt_1".into()),
                since: Timestamp(1_764_000_000_000),
                detail: "tmux_session_missing <b>".into(),
            },
            at: Timestamp(1_764_000_001_000),
        })
    }

    fn sub(format: NoticeFormat) -> SubscriptionConfigured {
        SubscriptionConfigured {
            name: "ops".into(),
            url: "https://hooks.example/…".into(),
            format,
            filter: Default::default(),
            remind_every_ms: None,
            chat_id: Some("-100123".into()),
            secret_id: "x".into(),
        }
    }

    #[test]
    fn each_format_says_what_where_and_links_the_console() {
        let public = "https://mc.example/";
        // Given an item and a format, when rendered, then the body has these fields.
        for item in [reaped(), raised()] {
            let line = headline(&item);
            assert!(line.contains("MC-4030"), "{line}");
            let json: Value =
                serde_json::from_slice(&render(&sub(NoticeFormat::Json), &item, public)).unwrap();
            match &item {
                Item::Event(_) => assert_eq!(json["type"], "runtime.reaped"),
                Item::Notice(_) => {
                    assert_eq!(json["type"], "alert.raised");
                    assert_eq!(json["data"]["url"], "https://mc.example/tickets/MC-4030");
                }
            }
            let slack: Value =
                serde_json::from_slice(&render(&sub(NoticeFormat::Slack), &item, public)).unwrap();
            assert!(slack["text"]
                .as_str()
                .unwrap()
                .contains("https://mc.example/tickets/MC-4030"));
            assert_eq!(slack["blocks"][0]["type"], "section");
            let tg: Value =
                serde_json::from_slice(&render(&sub(NoticeFormat::Telegram), &item, public))
                    .unwrap();
            assert_eq!(tg["chat_id"], "-100123");
            assert_eq!(tg["parse_mode"], "HTML");
            let text = tg["text"].as_str().unwrap();
            assert!(!text.contains("<b>"), "HTML in a detail is escaped: {text}");
            assert!(text.contains("href=\"https://mc.example/tickets/MC-4030\""));
        }
        assert_eq!(
            headline(&reaped()),
            "MC-4030: rt_1 reaped: tmux_missing (by watcher, runtime.reaped)"
        );
        assert!(
            headline(&raised()).starts_with("Alert: worker_lost on MC-4030, runtime rt_1 since ")
        );
    }
}
