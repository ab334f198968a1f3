//! Which events a consumer wants (SPEC §15): event types, tickets, an umbrella and everything
//! under it, agents. Every part left out matches everything; the parts given must all match.
//! One filter for a filtered event stream and for a subscription. Pure: the ledger is read for
//! the links (an umbrella's descendants, as linked now) and for a runtime's agent.

use std::collections::BTreeSet;

use events::{EventData, RecordedEvent, TicketId, EVENT_TYPES};

use crate::Ledger;

/// The most levels of `child_of` an umbrella filter follows (links cannot form a cycle, but
/// an odd import must not make a walk endless).
const DEPTH_MAX: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Event type names (`runtime.signaled`, …).
    pub types: BTreeSet<&'static str>,
    pub tickets: BTreeSet<TicketId>,
    /// An umbrella: its own events and those of every ticket under it, at any depth.
    pub umbrella: Option<TicketId>,
    /// The agents of runtime events (`claude`, `codex`, …); other events do not match.
    pub agents: BTreeSet<String>,
}

/// A filter that names something that is not there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterError {
    UnknownType(String),
    NotATicket { field: &'static str, value: String },
    Empty(&'static str),
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilterError::UnknownType(name) => write!(f, "types: {name:?} is not an event type"),
            FilterError::NotATicket { field, value } => {
                write!(f, "{field}: {value:?} is not a ticket id")
            }
            FilterError::Empty(field) => write!(f, "{field}: an empty item in the list"),
        }
    }
}

impl std::error::Error for FilterError {}

impl FilterError {
    /// The field at fault, as the API names it.
    pub fn field(&self) -> &'static str {
        match self {
            FilterError::UnknownType(_) => "types",
            FilterError::NotATicket { field, .. } | FilterError::Empty(field) => field,
        }
    }
}

/// The items of a comma-separated list, trimmed; an empty item is an error.
fn items<'a>(field: &'static str, list: &'a str) -> Result<Vec<&'a str>, FilterError> {
    list.split(',')
        .map(str::trim)
        .map(|s| {
            if s.is_empty() {
                Err(FilterError::Empty(field))
            } else {
                Ok(s)
            }
        })
        .collect()
}

impl EventFilter {
    /// Event types from a comma-separated list; an unknown name is an error (a typo must not
    /// silently match nothing).
    pub fn parse_types(list: &str) -> Result<BTreeSet<&'static str>, FilterError> {
        items("types", list)?
            .into_iter()
            .map(|name| {
                EVENT_TYPES
                    .iter()
                    .find(|t| **t == name)
                    .copied()
                    .ok_or_else(|| FilterError::UnknownType(name.to_owned()))
            })
            .collect()
    }

    /// Ticket ids from a comma-separated list.
    pub fn parse_tickets(
        field: &'static str,
        list: &str,
    ) -> Result<BTreeSet<TicketId>, FilterError> {
        items(field, list)?
            .into_iter()
            .map(|id| {
                TicketId::parse(id).map_err(|_| FilterError::NotATicket {
                    field,
                    value: crate::limits::excerpt(id, 64).to_owned(),
                })
            })
            .collect()
    }

    /// Agent names from a comma-separated list.
    pub fn parse_agents(list: &str) -> Result<BTreeSet<String>, FilterError> {
        Ok(items("agents", list)?
            .into_iter()
            .map(str::to_owned)
            .collect())
    }

    /// Whether matching an event asks the projections (an umbrella's descendants, a
    /// runtime's agent), so only what they have folded can be matched.
    pub fn needs_ledger(&self) -> bool {
        self.umbrella.is_some() || !self.agents.is_empty()
    }

    /// Whether nothing is filtered.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
            && self.tickets.is_empty()
            && self.umbrella.is_none()
            && self.agents.is_empty()
    }

    /// Whether `e` is wanted, with links and runtimes as the ledger has them now.
    pub fn matches(&self, ledger: &Ledger, e: &RecordedEvent) -> bool {
        if !self.types.is_empty() && !self.types.contains(e.type_name()) {
            return false;
        }
        if !self.tickets.is_empty() && !self.tickets.contains(&e.ticket) {
            return false;
        }
        if let Some(umbrella) = &self.umbrella {
            if !ledger.is_within(&e.ticket, umbrella) {
                return false;
            }
        }
        if !self.agents.is_empty() {
            let agent = match &e.data {
                EventData::RuntimeDispatched(d) => Some(d.agent.as_str()),
                data => data
                    .runtime_id()
                    .and_then(|r| ledger.runtime_owner(r))
                    .map(|(_, agent, _)| agent),
            };
            if !agent.is_some_and(|a| self.agents.contains(a)) {
                return false;
            }
        }
        true
    }
}

impl Ledger {
    /// Whether `ticket` is `ancestor` or under it through `child_of` links, as linked now.
    pub fn is_within(&self, ticket: &TicketId, ancestor: &TicketId) -> bool {
        let mut at = ticket;
        for _ in 0..=DEPTH_MAX {
            if at == ancestor {
                return true;
            }
            match self.tickets.get(at).and_then(|t| t.parent.as_ref()) {
                Some(parent) => at = parent,
                None => return false,
            }
        }
        false
    }
}
