//! `mc-ledger demo`: loads the seeds' stories (MC-4000, MC-4030, MC-4031, MC-4502) through the
//! application layer (`service::Service::submit`, the same path the server's handlers take,
//! without HTTP), and prints each ticket after every step, so a newcomer sees the five pickups
//! collapse into one runtime and the failure banner appear and clear.

use std::path::Path;
use std::sync::Arc;

use events::{
    Actor, ActorKind, ExitReason, GateRecorded, GateVerdict, HarvestOutcome, Priority, ReapCause,
    Relation, Resolution, TicketClosed, TicketId, TicketOpened, Transport, Verdict,
};
use projections::{Command, HarvestReport};
use service::clock::now;
use service::home::StoreUrl;
use service::{Outcome, Service};

struct Demo {
    service: Arc<Service>,
}

/// What a step answered: its runtime and nonce, when it dispatched one.
#[derive(Default)]
struct Answer {
    runtime_id: String,
    nonce: String,
}

fn id(ticket: &str) -> anyhow::Result<TicketId> {
    Ok(TicketId::parse(ticket)?)
}

impl Demo {
    /// Submits a command as `actor` and prints what it did to the ticket.
    async fn step(
        &self,
        ticket: &str,
        what: &str,
        command: Command,
        actor: (&str, ActorKind),
    ) -> anyhow::Result<Answer> {
        let actor = Actor {
            name: actor.0.to_owned(),
            kind: actor.1,
        };
        let outcome = self
            .service
            .submit(None, Some(actor), command, None, None)
            .await
            .map_err(|f| anyhow::anyhow!("demo step {what:?} failed: {f:?}"))?;
        let (result, note) = match outcome {
            Outcome::Created(r) => (Some(r), ""),
            Outcome::Duplicate(r) => (Some(r), "  (duplicate: nothing appended)"),
            Outcome::Coalesced(_) => (None, "  (coalesced)"),
        };
        let shared = &self.service.shared;
        let ticket_id = id(ticket)?;
        let view = shared
            .read(|l| l.ticket_view(&ticket_id, now(), &shared.config))
            .ok_or_else(|| anyhow::anyhow!("{ticket} is not in the ledger after {what:?}"))?;
        out!(
            "{ticket:<8} {what:<44} → {:<11} next: {:<8} failure_reason: {}{note}",
            view.state.as_str(),
            view.next_action.code.as_str(),
            view.failure_reason.as_deref().unwrap_or("null"),
        );
        Ok(result.map_or_else(Answer::default, |r| Answer {
            runtime_id: r.runtime_id.unwrap_or_default(),
            nonce: r.nonce.unwrap_or_default(),
        }))
    }

    /// [`Demo::step`] for each `(ticket, what, command, actor)` in turn, when no answer is
    /// needed.
    async fn steps(
        &self,
        steps: Vec<(&str, &str, Command, (&str, ActorKind))>,
    ) -> anyhow::Result<()> {
        for (ticket, what, command, actor) in steps {
            self.step(ticket, what, command, actor).await?;
        }
        Ok(())
    }
}

fn open(ticket: &str, title: &str, priority: Priority, umbrella: bool) -> anyhow::Result<Command> {
    Ok(Command::Open {
        ticket: id(ticket)?,
        opened: TicketOpened {
            title: title.to_owned(),
            description: None,
            priority,
            owner: Some("luci".to_owned()),
            project: None,
            umbrella,
            labels: Vec::new(),
        },
    })
}

fn link(ticket: &str, relation: Relation, target: &str) -> anyhow::Result<Command> {
    Ok(Command::Link {
        ticket: id(ticket)?,
        relation,
        target: target.to_owned(),
    })
}

fn dispatch(
    ticket: &str,
    key: &str,
    agent: &str,
    transport: Transport,
    tmux_target: Option<&str>,
) -> anyhow::Result<Command> {
    Ok(Command::Dispatch {
        ticket: id(ticket)?,
        dispatch_key: key.to_owned(),
        agent: agent.to_owned(),
        transport,
        profile: None,
        provider: None,
        model: None,
        tmux_target: tmux_target.map(str::to_owned),
        process_id: None,
        cwd: None,
        replace: false,
        pool: None,
        max_budget_usd: None,
    })
}

fn signal(rt: &Answer, verdict: Verdict, payload: &str) -> Command {
    Command::Signal {
        runtime_id: rt.runtime_id.clone(),
        verdict,
        nonce: rt.nonce.clone(),
        payload: payload.to_owned(),
    }
}

fn reap(rt: &Answer, cause: ReapCause, evidence: Option<&str>) -> Command {
    Command::Reap {
        runtime_id: rt.runtime_id.clone(),
        cause,
        evidence: evidence.map(str::to_owned),
    }
}

fn close(ticket: &str, commit: Option<&str>) -> anyhow::Result<Command> {
    Ok(Command::Close {
        ticket: id(ticket)?,
        close: TicketClosed {
            resolution: Resolution::Done,
            commit: commit.map(str::to_owned),
            evidence: None,
        },
    })
}

pub fn run(data_dir: &Path) -> anyhow::Result<()> {
    run_url(&StoreUrl::Sled(data_dir.to_owned()))
}

pub fn run_url(url: &StoreUrl) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let service = Arc::new(Service::open(url, store_sled::LogConfig::default())?);
        let first = id("MC-4000")?;
        if service.shared.read(|l| l.contains_ticket(&first)) {
            anyhow::bail!(
                "the demo tickets already exist in {}; use an empty store",
                url.describe()
            );
        }
        let demo = Demo {
            service: service.clone(),
        };
        use ActorKind::{Agent, Controller, Human, Orchestrator, System, Validator};
        let orch = ("luci", Orchestrator);
        let disp = ("mc-dispatcher", System);
        let watcher = ("watcher", System);
        let ctl = ("controller", Controller);

        out!("— MC-4000: an umbrella whose orchestrator console goes idle —");
        demo.step(
            "MC-4000",
            "open (umbrella)",
            open(
                "MC-4000",
                "MC unified recovery loop",
                Priority::default(),
                true,
            )?,
            ("elmar", Human),
        )
        .await?;
        let rt = demo
            .step(
                "MC-4000",
                "dispatch orchestrator (websocket)",
                dispatch(
                    "MC-4000",
                    "mc-4000-orchestrator",
                    "luci",
                    Transport::Websocket,
                    None,
                )?,
                disp,
            )
            .await?;
        demo.step(
            "MC-4000",
            "reap idle_timeout: umbrella, no banner",
            reap(&rt, ReapCause::IdleTimeout, None),
            watcher,
        )
        .await?;

        out!("— MC-4030: five pickups, one runtime; parked on MC-4031 —");
        let title = "MC Runtime Workbench/Console audit + fix loop";
        demo.steps(vec![
            (
                "MC-4030",
                "open",
                open("MC-4030", title, Priority::High, false)?,
                orch,
            ),
            (
                "MC-4030",
                "link child_of MC-4000",
                link("MC-4030", Relation::ChildOf, "MC-4000")?,
                orch,
            ),
        ])
        .await?;
        let mut rt30 = Answer::default();
        for i in 1..=5 {
            let mut pickup = dispatch(
                "MC-4030",
                "pickup-mc-4030",
                "luci",
                Transport::Tmux,
                Some("mc-4030"),
            )?;
            if let Command::Dispatch { profile, .. } = &mut pickup {
                *profile = Some("claude_opus_1m_high".to_owned());
            }
            rt30 = demo
                .step(
                    "MC-4030",
                    &format!("\"Ticket picked up\" #{i} (same dispatch key)"),
                    pickup,
                    disp,
                )
                .await?;
        }
        demo.step(
            "MC-4030",
            "REVIEW signal with the turn nonce",
            signal(
                &rt30,
                Verdict::Review,
                "Workbench audit complete; 14 findings",
            ),
            ("luci", Agent),
        )
        .await?;
        let title = "Workbench/Console Lane A implementation";
        let park = Command::Park {
            ticket: id("MC-4030")?,
            waiting_on: vec!["MC-4031".to_owned()],
            reason: "blocked_by MC-4031".to_owned(),
        };
        demo.steps(vec![
            (
                "MC-4031",
                "open Lane A worker ticket",
                open("MC-4031", title, Priority::default(), false)?,
                orch,
            ),
            (
                "MC-4031",
                "link child_of MC-4030",
                link("MC-4031", Relation::ChildOf, "MC-4030")?,
                orch,
            ),
            (
                "MC-4030",
                "link blocked_by MC-4031",
                link("MC-4030", Relation::BlockedBy, "MC-4031")?,
                orch,
            ),
            ("MC-4030", "park waiting on MC-4031", park, orch),
            (
                "MC-4030",
                "reap terminal_state while waiting",
                reap(&rt30, ReapCause::TerminalState, None),
                watcher,
            ),
        ])
        .await?;
        let rt31 = demo
            .step(
                "MC-4031",
                "dispatch worker",
                dispatch(
                    "MC-4031",
                    "pickup-mc-4031",
                    "luci",
                    Transport::Tmux,
                    Some("mc-4031"),
                )?,
                disp,
            )
            .await?;
        let comment = Command::Comment {
            ticket: id("MC-4030")?,
            body: "MC-4031 landed; resuming for QA/docs/ship gate".to_owned(),
        };
        demo.steps(vec![
            (
                "MC-4031",
                "DONE signal",
                signal(&rt31, Verdict::Done, "Lane A shipped d2c50c1"),
                ("luci", Agent),
            ),
            (
                "MC-4031",
                "close done (d2c50c1)",
                close("MC-4031", Some("d2c50c1"))?,
                orch,
            ),
            (
                "MC-4030",
                "(MC-4031 closed: ready to resume)",
                comment,
                orch,
            ),
            (
                "MC-4030",
                "orchestrator closes it",
                close("MC-4030", None)?,
                orch,
            ),
        ])
        .await?;

        out!("— MC-4502: a banner appears and clears —");
        let opened = open(
            "MC-4502",
            "Harden Control Room CLI worker launch/liveness ledger",
            Priority::High,
            false,
        )?;
        demo.step("MC-4502", "open", opened, ("telegram", Human))
            .await?;
        let mut smoke = dispatch("MC-4502", "codex-smoke", "codex", Transport::Process, None)?;
        if let Command::Dispatch { model, .. } = &mut smoke {
            *model = Some("gpt-5.5".to_owned());
        }
        let codex = demo
            .step("MC-4502", "dispatch codex (process)", smoke, ctl)
            .await?;
        let abort = Command::AbortLaunch {
            runtime_id: codex.runtime_id.clone(),
            reason: "model_smoke_failed".to_owned(),
            detail: Some("codex-cli rejects gpt-5.5 under ChatGPT OAuth".to_owned()),
        };
        demo.step(
            "MC-4502",
            "launch aborted: model smoke test failed",
            abort,
            ctl,
        )
        .await?;
        let mut coder = dispatch(
            "MC-4502",
            "coder-mc-4502",
            "claude",
            Transport::Tmux,
            Some("mc-4502-runtime-hardening"),
        )?;
        if let Command::Dispatch { profile, .. } = &mut coder {
            *profile = Some("claude_opus_1m_high".to_owned());
        }
        let rt02 = demo
            .step(
                "MC-4502",
                "dispatch coder (Claude Code in tmux)",
                coder,
                ctl,
            )
            .await?;
        demo.step(
            "MC-4502",
            "reap tmux_missing: the banner appears",
            reap(
                &rt02,
                ReapCause::TmuxMissing,
                Some("tmux has-session: can't find session"),
            ),
            watcher,
        )
        .await?;
        let harvest = Command::Harvest {
            runtime_id: rt02.runtime_id.clone(),
            report: HarvestReport {
                outcome: HarvestOutcome::Partial,
                exit_reason: ExitReason::MaxTurns,
                turns: Some(200),
                cost_usd: Some(14.2),
                session_id: None,
                summary: None,
                raw_subtype: None,
                usage: Vec::new(),
            },
        };
        demo.step(
            "MC-4502",
            "harvest: max_turns partial (outranks reap)",
            harvest,
            ctl,
        )
        .await?;
        let complete = Command::Complete {
            runtime_id: rt02.runtime_id.clone(),
            reason: "recovered max-turns partial work".to_owned(),
            commit: Some("1bd1c48".to_owned()),
        };
        demo.step("MC-4502", "completed by controller", complete, ctl)
            .await?;
        let gate = Command::Gate {
            ticket: id("MC-4502")?,
            gate: GateRecorded {
                gate: "validator".to_owned(),
                verdict: GateVerdict::Passed,
                commit: Some("1bd1c48".to_owned()),
                evidence: None,
            },
        };
        let validator = ("validator", Validator);
        demo.steps(vec![
            ("MC-4502", "validator gate passed", gate, validator),
            (
                "MC-4502",
                "validator closes it",
                close("MC-4502", Some("1bd1c48"))?,
                validator,
            ),
        ])
        .await?;

        service.store.close()?;
        service.shared.catch_up()?;
        service.snapshots.save()?;
        let store = match url {
            StoreUrl::Sled(dir) => format!("--data-dir {}", dir.display()),
            StoreUrl::Postgres(_) => "--store …".to_owned(),
        };
        out!(
            "\nloaded into {}. Try: mc-ledger replay MC-4502 {store}",
            url.describe()
        );
        Ok(())
    })
}
