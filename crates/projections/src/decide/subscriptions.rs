//! Subscription commands (SPEC §15): create or change, pause, resume, replay, delete, and the
//! delivery engine's record of a parked delivery. Each writes the subscription's own stream.

use events::{
    EventData, SubscriptionConfigured, SubscriptionNamed, SubscriptionParked, SubscriptionPaused,
    SubscriptionReplayed, TicketId,
};

use events::ids::POOL_NAME_BYTES_MAX;

use super::checks::{append_named, unchanged_named};
use super::types::{Decision, Rejection};
use crate::subscription_state::Subscription;
use crate::subscriptions::Wants;
use crate::Ledger;

/// Longest receiver URL.
pub const SUBSCRIPTION_URL_BYTES_MAX: usize = 2048;
/// Reminders at most this often, and at least this rarely.
pub const REMIND_EVERY_MS_MIN: u64 = 1_000;
pub const REMIND_EVERY_MS_MAX: u64 = 30 * 24 * 3_600_000;
const REASON_BYTES_MAX: usize = 1024;

fn stream_of(ledger: &Ledger, name: &str) -> Result<TicketId, Rejection> {
    if !events::ids::is_pool_name(name) {
        return Err(Rejection::invalid(
            "name",
            format!("1 to {POOL_NAME_BYTES_MAX} characters of A-Z a-z 0-9 _ . -"),
        ));
    }
    let stream = events::ids::subscription_stream(name);
    let taken = ledger
        .subscriptions
        .values()
        .find(|s| s.stream == stream && s.name != name);
    if let Some(other) = taken {
        return Err(Rejection::invalid(
            "name",
            format!(
                "{name:?} shares its stream {stream} with subscription {:?}; choose another name",
                other.name
            ),
        ));
    }
    Ok(stream)
}

fn existing<'a>(ledger: &'a Ledger, name: &str) -> Result<&'a Subscription, Rejection> {
    ledger
        .subscriptions
        .get(name)
        .ok_or_else(|| Rejection::SubscriptionNotFound {
            name: crate::limits::excerpt(name, 64).to_owned(),
        })
}

/// An `http://` or `https://` URL with a host, no whitespace or control characters.
pub fn check_url(url: &str) -> Result<(), Rejection> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    if url.len() > SUBSCRIPTION_URL_BYTES_MAX
        || host.is_none_or(str::is_empty)
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Rejection::invalid(
            "url",
            format!("an http:// or https:// URL with a host, at most {SUBSCRIPTION_URL_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

pub(super) fn configure(
    ledger: &Ledger,
    c: &SubscriptionConfigured,
) -> Result<Decision, Rejection> {
    let stream = stream_of(ledger, &c.name)?;
    check_url(&c.url)?;
    Wants::of(&c.filter).map_err(|bad| Rejection::invalid(bad.field, bad.message))?;
    if let Some(every) = c.remind_every_ms {
        if !(REMIND_EVERY_MS_MIN..=REMIND_EVERY_MS_MAX).contains(&every) {
            return Err(Rejection::invalid("remind_every", "between 1s and 30d"));
        }
    }
    match (&c.format, &c.chat_id) {
        (events::NoticeFormat::Telegram, None) => {
            return Err(Rejection::invalid(
                "chat_id",
                "format telegram needs the chat to send to",
            ))
        }
        (_, Some(chat)) if chat.is_empty() || chat.len() > 128 => {
            return Err(Rejection::invalid("chat_id", "1 to 128 bytes"))
        }
        _ => {}
    }
    let data = match ledger.subscriptions.get(&c.name) {
        Some(s) if s.config() == *c => return Ok(unchanged_named(ledger, stream)),
        Some(_) => EventData::SubscriptionChanged(c.clone()),
        None => EventData::SubscriptionCreated(c.clone()),
    };
    Ok(append_named(ledger, stream, data))
}

pub(super) fn pause(
    ledger: &Ledger,
    name: &str,
    reason: Option<&str>,
) -> Result<Decision, Rejection> {
    let s = existing(ledger, name)?;
    if reason.is_some_and(|r| r.len() > REASON_BYTES_MAX) {
        return Err(Rejection::invalid(
            "reason",
            format!("at most {REASON_BYTES_MAX} bytes"),
        ));
    }
    if s.paused.is_some() {
        return Ok(unchanged_named(ledger, s.stream.clone()));
    }
    Ok(append_named(
        ledger,
        s.stream.clone(),
        EventData::SubscriptionPaused(SubscriptionPaused {
            name: name.to_owned(),
            reason: reason.map(str::to_owned),
        }),
    ))
}

pub(super) fn resume(ledger: &Ledger, name: &str) -> Result<Decision, Rejection> {
    let s = existing(ledger, name)?;
    if s.paused.is_none() && s.parked.is_none() {
        return Ok(unchanged_named(ledger, s.stream.clone()));
    }
    Ok(append_named(
        ledger,
        s.stream.clone(),
        EventData::SubscriptionResumed(SubscriptionNamed {
            name: name.to_owned(),
        }),
    ))
}

pub(super) fn replay(
    ledger: &Ledger,
    name: &str,
    from_position: u64,
) -> Result<Decision, Rejection> {
    let s = existing(ledger, name)?;
    let head = ledger.position();
    if from_position == 0 || from_position > head.saturating_add(1) {
        return Err(Rejection::invalid(
            "from_position",
            format!("a log position from 1 to {}", head.saturating_add(1)),
        ));
    }
    Ok(append_named(
        ledger,
        s.stream.clone(),
        EventData::SubscriptionReplayed(SubscriptionReplayed {
            name: name.to_owned(),
            from_position,
        }),
    ))
}

pub(super) fn delete(ledger: &Ledger, name: &str) -> Result<Decision, Rejection> {
    let s = existing(ledger, name)?;
    Ok(append_named(
        ledger,
        s.stream.clone(),
        EventData::SubscriptionDeleted(SubscriptionNamed {
            name: name.to_owned(),
        }),
    ))
}

/// The delivery engine gave up on a delivery. The same delivery parked again is a duplicate.
pub(super) fn park(ledger: &Ledger, p: &SubscriptionParked) -> Result<Decision, Rejection> {
    let s = existing(ledger, &p.name)?;
    if s.parked
        .as_ref()
        .is_some_and(|x| x.delivery_id == p.delivery_id)
    {
        return Ok(unchanged_named(ledger, s.stream.clone()));
    }
    let mut p = p.clone();
    p.error = crate::limits::excerpt(&p.error, REASON_BYTES_MAX).to_owned();
    Ok(append_named(
        ledger,
        s.stream.clone(),
        EventData::SubscriptionParked(p),
    ))
}
