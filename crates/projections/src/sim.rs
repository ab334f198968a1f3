//! An in-memory log that runs commands through `decide` and folds what they append: the test
//! bench for the rules, and a way to script stories (the seeds, a demo) without a store.

use std::collections::HashMap;

use events::{Actor, ActorKind, EventData, Hash, RecordedEvent, TicketId, Timestamp};

use crate::config::Config;
use crate::decide::{decide, turn_nonce, Command, Context, Decision, Rejection};
use crate::ledger::Ledger;
use crate::rules::TicketStatus;

/// A log, its fold and a fake clock. Deterministic: ids and nonces come from a counter.
#[derive(Debug, Clone)]
pub struct Sim {
    pub ledger: Ledger,
    pub log: Vec<RecordedEvent>,
    pub now: Timestamp,
    pub config: Config,
    versions: HashMap<TicketId, u64>,
    seq: u64,
}

impl Sim {
    pub fn new(start: Timestamp) -> Sim {
        Sim {
            ledger: Ledger::default(),
            log: Vec::new(),
            now: start,
            config: Config::default(),
            versions: HashMap::new(),
            seq: 0,
        }
    }

    pub fn advance_ms(&mut self, ms: u64) {
        self.now = Timestamp(self.now.millis().saturating_add(ms));
    }

    /// A context with fresh ids for `cmd`, as the server would build it.
    pub fn context(&mut self, cmd: &Command, expected_version: Option<u64>) -> Context {
        self.seq += 1;
        let random = u32::try_from(self.seq.wrapping_mul(2_654_435_761) & 0xffff_ffff).unwrap_or(0);
        let nonce = match cmd.ticket_id(&self.ledger) {
            Some(t) => turn_nonce(&t, self.now, random),
            None => format!("MC_TICKET_TURN:0:{}:{random:08x}", self.now.millis()),
        };
        let mut ctx = Context::new(self.now, format!("rt_{:06}", self.seq), nonce)
            .with_expected_version(expected_version);
        ctx.activity_every_ms = self.config.activity_every_ms;
        ctx
    }

    /// Decides `cmd` as `actor` and appends what the decision says to append (new events, or
    /// the record of a refused signal).
    pub fn exec(&mut self, actor: &Actor, cmd: &Command) -> Result<Decision, Rejection> {
        self.exec_with(actor, cmd, None)
    }

    pub fn exec_with(
        &mut self,
        actor: &Actor,
        cmd: &Command,
        expected_version: Option<u64>,
    ) -> Result<Decision, Rejection> {
        let ctx = self.context(cmd, expected_version);
        let decision = decide(&self.ledger, cmd, &ctx)?;
        match &decision {
            Decision::Append(a) => {
                self.append(&a.ticket, actor, a.events.clone());
                for also in &a.also {
                    self.append(&also.ticket, actor, also.events.clone());
                }
            }
            Decision::Refuse { ticket, record, .. } => {
                self.append(ticket, actor, record.clone());
            }
            Decision::Duplicate(_) | Decision::Coalesced { .. } => {}
        }
        Ok(decision)
    }

    /// Appends events to a ticket stream as they are (the typed raw append) and folds them.
    pub fn append(
        &mut self,
        ticket: &TicketId,
        actor: &Actor,
        events: Vec<EventData>,
    ) -> Vec<RecordedEvent> {
        let mut out = Vec::with_capacity(events.len());
        for data in events {
            let version = self.versions.entry(ticket.clone()).or_insert(0);
            *version += 1;
            let position = u64::try_from(self.log.len())
                .unwrap_or(u64::MAX)
                .saturating_add(1);
            let e = RecordedEvent {
                position,
                ticket: ticket.clone(),
                version: *version,
                id: format!("ev_{position:08}"),
                recorded_at: self.now,
                actor: actor.clone(),
                token_id: None,
                data,
                prev_hash: Hash::ZERO,
                hash: Hash::ZERO,
            };
            self.ledger.apply(&e);
            self.log.push(e.clone());
            out.push(e);
        }
        out
    }

    pub fn status(&self, ticket: &str) -> Option<TicketStatus> {
        TicketId::parse(ticket)
            .ok()
            .and_then(|t| self.ledger.status(&t))
    }
}

/// An actor for scripts and tests.
pub fn actor(name: &str, kind: ActorKind) -> Actor {
    Actor {
        name: name.to_owned(),
        kind,
    }
}
