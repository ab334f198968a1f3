//! Shared test vocabulary: a `World` around the in-memory `Sim`, command builders and actors.
#![allow(dead_code)]

use events::{
    Actor, ActorKind, EventData, ExitReason, HarvestOutcome, Priority, ReapCause, Relation,
    Resolution, RuntimeHarvested, RuntimeReaped, TicketClosed, TicketId, TicketOpened, Timestamp,
    Transport, Verdict,
};
use projections::sim::{actor, Sim};
use projections::{Command, Decision, HarvestReport, Rejection, TicketState, TicketView};

/// 2026-11-02T10:00:00Z, the start of every story.
pub(crate) const T0: u64 = 1_793_613_600_000;
pub(crate) const MIN: u64 = 60_000;

pub(crate) fn id(s: &str) -> TicketId {
    TicketId::parse(s).expect("test ticket id")
}

pub(crate) struct World {
    pub(crate) sim: Sim,
    /// Values a `given` step keeps for the `when` step (e.g. a nonce from before a switch).
    pub(crate) memo: std::collections::HashMap<&'static str, String>,
}

impl World {
    pub(crate) fn new() -> World {
        World {
            sim: Sim::new(Timestamp(T0)),
            memo: Default::default(),
        }
    }

    /// Runs a command that the story needs to succeed.
    pub(crate) fn run(&mut self, who: &Actor, cmd: Command) -> Decision {
        match self.sim.exec(who, &cmd) {
            Ok(d) => d,
            Err(r) => panic!("given step {cmd:?} was rejected: {} ({r})", r.code()),
        }
    }

    pub(crate) fn try_run(&mut self, who: &Actor, cmd: Command) -> Result<Decision, Rejection> {
        self.sim.exec(who, &cmd)
    }

    /// Runs `open` as a human, then `dispatch` as the orchestrator: the new runtime's id.
    pub(crate) fn open_and_dispatch(&mut self, open: Command, dispatch: Command) -> String {
        let Command::Open { ticket, .. } = &open else {
            panic!("{open:?} opens no ticket")
        };
        let ticket = ticket.to_string();
        self.run(&human(), open);
        self.run(&orchestrator(), dispatch);
        self.rt(&ticket)
    }

    pub(crate) fn wait_min(&mut self, minutes: u64) {
        self.sim.advance_ms(minutes * MIN);
    }

    pub(crate) fn view(&self, ticket: &str) -> TicketView {
        self.sim
            .ledger
            .ticket_view(&id(ticket), self.sim.now, &self.sim.config)
            .unwrap_or_else(|| panic!("ticket {ticket} exists"))
    }

    pub(crate) fn state(&self, ticket: &str) -> TicketState {
        self.view(ticket).state
    }

    pub(crate) fn next(&self, ticket: &str) -> String {
        self.view(ticket).next_action.code.as_str().to_owned()
    }

    pub(crate) fn failure(&self, ticket: &str) -> Option<String> {
        self.view(ticket).failure_reason
    }

    /// The ticket's current runtime id.
    pub(crate) fn rt(&self, ticket: &str) -> String {
        self.view(ticket)
            .current_runtime
            .expect("a current runtime")
            .id
    }

    /// The current nonce of the ticket's current runtime.
    pub(crate) fn nonce(&self, ticket: &str) -> String {
        self.view(ticket)
            .current_runtime
            .expect("a current runtime")
            .nonce
    }

    pub(crate) fn version(&self, ticket: &str) -> u64 {
        self.sim.ledger.ticket_version(&id(ticket)).unwrap_or(0)
    }

    pub(crate) fn class(&self, runtime_id: &str) -> String {
        self.sim
            .ledger
            .runtime_class(runtime_id, self.sim.now, &self.sim.config)
            .expect("runtime exists")
            .as_str()
            .to_owned()
    }

    pub(crate) fn alert_kinds(&self) -> Vec<String> {
        self.sim
            .ledger
            .alerts(self.sim.now, &self.sim.config)
            .iter()
            .map(|a| match (&a.ticket, &a.pool) {
                (Some(t), _) => format!("{}:{t}", a.kind.as_str()),
                (None, Some(p)) => format!("{}:pool {p}", a.kind.as_str()),
                (None, None) => a.kind.as_str().to_owned(),
            })
            .collect()
    }
}

/// The event of a harvest of runtime `rt` with only its outcome and exit reason, as appended
/// straight to the log.
pub(crate) fn harvested(rt: &str, outcome: HarvestOutcome, exit_reason: ExitReason) -> EventData {
    EventData::RuntimeHarvested(RuntimeHarvested {
        runtime_id: rt.into(),
        outcome,
        exit_reason,
        turns: None,
        cost_usd: None,
        session_id: None,
        summary: None,
        raw_subtype: None,
    })
}

/// The event of a reap of runtime `rt`, without evidence.
pub(crate) fn reaped(rt: &str, cause: ReapCause) -> EventData {
    EventData::RuntimeReaped(RuntimeReaped {
        runtime_id: rt.into(),
        cause,
        evidence: None,
    })
}

pub(crate) fn human() -> Actor {
    actor("elmar", ActorKind::Human)
}
pub(crate) fn orchestrator() -> Actor {
    actor("luci", ActorKind::Orchestrator)
}
pub(crate) fn agent() -> Actor {
    actor("claude", ActorKind::Agent)
}
pub(crate) fn controller() -> Actor {
    actor("controller", ActorKind::Controller)
}
pub(crate) fn validator() -> Actor {
    actor("validator", ActorKind::Validator)
}
pub(crate) fn watcher() -> Actor {
    actor("watcher", ActorKind::System)
}

pub(crate) fn open(ticket: &str, title: &str) -> Command {
    Command::Open {
        ticket: id(ticket),
        opened: TicketOpened {
            title: title.to_owned(),
            description: None,
            priority: Priority::Normal,
            owner: Some("luci".to_owned()),
            project: None,
            umbrella: false,
            labels: Vec::new(),
        },
    }
}

pub(crate) fn open_umbrella(ticket: &str, title: &str) -> Command {
    let Command::Open { ticket, mut opened } = open(ticket, title) else {
        unreachable!()
    };
    opened.umbrella = true;
    Command::Open { ticket, opened }
}

pub(crate) fn comment(ticket: &str, body: &str) -> Command {
    Command::Comment {
        ticket: id(ticket),
        body: body.to_owned(),
    }
}

pub(crate) fn link(ticket: &str, relation: Relation, target: &str) -> Command {
    Command::Link {
        ticket: id(ticket),
        relation,
        target: target.to_owned(),
    }
}

pub(crate) fn unlink(ticket: &str, relation: Relation, target: &str) -> Command {
    Command::Unlink {
        ticket: id(ticket),
        relation,
        target: target.to_owned(),
    }
}

pub(crate) fn park(ticket: &str, waiting_on: &[&str], reason: &str) -> Command {
    Command::Park {
        ticket: id(ticket),
        waiting_on: waiting_on.iter().map(|s| (*s).to_owned()).collect(),
        reason: reason.to_owned(),
    }
}

pub(crate) fn close(ticket: &str, resolution: Resolution) -> Command {
    Command::Close {
        ticket: id(ticket),
        close: TicketClosed {
            resolution,
            commit: None,
            evidence: None,
        },
    }
}

pub(crate) fn reopen(ticket: &str) -> Command {
    Command::Reopen {
        ticket: id(ticket),
        reason: "regression found".to_owned(),
    }
}

pub(crate) fn dispatch_with(
    ticket: &str,
    key: &str,
    transport: Transport,
    replace: bool,
) -> Command {
    Command::Dispatch {
        ticket: id(ticket),
        dispatch_key: key.to_owned(),
        agent: "claude".to_owned(),
        transport,
        profile: Some("claude_opus_1m_high".to_owned()),
        provider: Some("anthropic".to_owned()),
        model: Some("opus".to_owned()),
        tmux_target: (transport == Transport::Tmux).then(|| format!("mc:{ticket}")),
        process_id: None,
        cwd: Some("/home/lucienne/workspace/mission-control".to_owned()),
        replace,
        pool: None,
        max_budget_usd: None,
    }
}

pub(crate) fn dispatch(ticket: &str, key: &str) -> Command {
    dispatch_with(ticket, key, Transport::Tmux, false)
}

pub(crate) fn signal(runtime_id: &str, verdict: Verdict, nonce: &str, payload: &str) -> Command {
    Command::Signal {
        runtime_id: runtime_id.to_owned(),
        verdict,
        nonce: nonce.to_owned(),
        payload: payload.to_owned(),
    }
}

pub(crate) fn harvest(
    runtime_id: &str,
    outcome: HarvestOutcome,
    exit_reason: ExitReason,
) -> Command {
    Command::Harvest {
        runtime_id: runtime_id.to_owned(),
        report: HarvestReport {
            outcome,
            exit_reason,
            turns: Some(40),
            cost_usd: Some(3.25),
            session_id: Some("sess-1".to_owned()),
            summary: None,
            raw_subtype: None,
            usage: Vec::new(),
        },
    }
}

pub(crate) fn reap(runtime_id: &str, cause: ReapCause) -> Command {
    Command::Reap {
        runtime_id: runtime_id.to_owned(),
        cause,
        evidence: None,
    }
}

pub(crate) fn kill(runtime_id: &str) -> Command {
    Command::Kill {
        runtime_id: runtime_id.to_owned(),
        reason: "operator stop".to_owned(),
    }
}

pub(crate) fn cancel(runtime_id: &str) -> Command {
    Command::Cancel {
        runtime_id: runtime_id.to_owned(),
        reason: "not needed".to_owned(),
    }
}

pub(crate) fn switch(runtime_id: &str) -> Command {
    Command::Switch {
        runtime_id: runtime_id.to_owned(),
        agent: None,
        profile: None,
        model: Some("sonnet".to_owned()),
    }
}

pub(crate) fn retry(runtime_id: &str, resume: bool) -> Command {
    retry_in(runtime_id, resume, None)
}

pub(crate) fn retry_in(runtime_id: &str, resume: bool, pool: Option<&str>) -> Command {
    Command::Retry {
        runtime_id: runtime_id.to_owned(),
        resume,
        pool: pool.map(str::to_owned),
        max_budget_usd: None,
    }
}

pub(crate) fn complete(runtime_id: &str) -> Command {
    Command::Complete {
        runtime_id: runtime_id.to_owned(),
        reason: "controller recovered partial work".to_owned(),
        commit: Some("1bd1c48".to_owned()),
    }
}

pub(crate) fn input(runtime_id: &str, text: &str) -> Command {
    Command::Input {
        runtime_id: runtime_id.to_owned(),
        text: text.to_owned(),
    }
}

pub(crate) fn activity(runtime_id: &str) -> Command {
    Command::Activity {
        runtime_id: runtime_id.to_owned(),
        note: None,
    }
}

pub(crate) fn abort_launch(runtime_id: &str, reason: &str) -> Command {
    Command::AbortLaunch {
        runtime_id: runtime_id.to_owned(),
        reason: reason.to_owned(),
        detail: None,
    }
}
