//! Command decisions (SPEC §6): `decide(ledger, command, context)` turns a request into new
//! events for one ticket stream, a duplicate answer, or a named rejection with a stable code.
//!
//! Every decision is a flat run of early returns (TigerBeetle's state machine style), checked
//! in one order: the target exists (404), the input is well formed (422), the command was
//! already applied (duplicate, 200), the client's expected version (409), then the rules of
//! the ticket and runtime state (409). Duplicates come before the version check on purpose: a
//! client retrying a dispatch after a timeout still holds the old version and must get its
//! original runtime back, not a conflict.

mod budgets;
mod checks;
mod pools;
mod runtimes;
mod subscriptions;
mod tickets;
mod types;

pub use budgets::BUDGET_USD_MAX;
pub use pools::POOL_CAPACITY_MAX;
pub use subscriptions::{
    check_url, REMIND_EVERY_MS_MAX, REMIND_EVERY_MS_MIN, SUBSCRIPTION_URL_BYTES_MAX,
};
pub use types::*;

use crate::ledger::Ledger;

use checks::On;

use pools::configure_pool;
use runtimes::*;
use tickets::*;

/// Decides `cmd` against `ledger`. Pure: the same inputs always give the same answer.
pub fn decide(ledger: &Ledger, cmd: &Command, ctx: &Context) -> Result<Decision, Rejection> {
    let on = |id| -> Result<On<'_>, Rejection> {
        let t = checks::find_ticket(ledger, id)?;
        Ok(On { ledger, t, ctx })
    };
    match cmd {
        Command::Open { ticket, opened } => open(ledger, ticket, opened, ctx),
        Command::Edit { ticket, edit } => edit_ticket(on(ticket)?, edit),
        Command::Comment { ticket, body } => comment(on(ticket)?, body),
        Command::Link {
            ticket,
            relation,
            target,
        } => link(on(ticket)?, *relation, target),
        Command::Unlink {
            ticket,
            relation,
            target,
        } => unlink(on(ticket)?, *relation, target),
        Command::Park {
            ticket,
            waiting_on,
            reason,
        } => park(on(ticket)?, waiting_on, reason),
        Command::Gate { ticket, gate } => record_gate(on(ticket)?, gate),
        Command::Close { ticket, close } => close_ticket(on(ticket)?, close),
        Command::Reopen { ticket, reason } => reopen(on(ticket)?, reason),
        Command::AddTask {
            ticket,
            task_id,
            title,
        } => add_task(on(ticket)?, task_id.as_deref(), title),
        Command::UpdateTask {
            ticket,
            task_id,
            status,
        } => update_task(on(ticket)?, task_id, *status),
        Command::Dispatch { .. } => dispatch(ledger, cmd, ctx),
        Command::Signal {
            runtime_id,
            verdict,
            nonce,
            payload,
        } => signal(ledger, runtime_id, *verdict, nonce, payload, ctx),
        Command::Harvest { runtime_id, report } => harvest(ledger, runtime_id, report, ctx),
        Command::Reap {
            runtime_id,
            cause,
            evidence,
        } => reap(ledger, runtime_id, *cause, evidence, ctx),
        Command::RequestInput {
            runtime_id,
            kind,
            message,
        } => request_input(ledger, runtime_id, kind, message.as_deref(), ctx),
        Command::EndSession { runtime_id, reason } => end_session(ledger, runtime_id, reason, ctx),
        Command::Kill { runtime_id, reason } => {
            end_live(ledger, runtime_id, reason, ctx, Ending::Kill)
        }
        Command::Cancel { runtime_id, reason } => {
            end_live(ledger, runtime_id, reason, ctx, Ending::Cancel)
        }
        Command::Switch {
            runtime_id,
            agent,
            profile,
            model,
        } => switch(ledger, runtime_id, agent, profile, model, ctx),
        Command::Retry { .. } => retry(ledger, cmd, ctx),
        Command::ConfigurePool { name, capacity } => configure_pool(ledger, name, *capacity),
        Command::ConfigureBudget { budget } => budgets::configure_budget(ledger, budget),
        Command::Complete {
            runtime_id,
            reason,
            commit,
        } => complete(ledger, runtime_id, reason, commit, ctx),
        Command::Input { runtime_id, text } => input(ledger, runtime_id, text, ctx),
        Command::Activity { runtime_id, note } => activity(ledger, runtime_id, note, ctx),
        Command::AbortLaunch {
            runtime_id,
            reason,
            detail,
        } => end_live(
            ledger,
            runtime_id,
            reason,
            ctx,
            Ending::AbortLaunch(detail.as_deref()),
        ),
        Command::ConfigureSubscription { config } => subscriptions::configure(ledger, config),
        Command::PauseSubscription { name, reason } => {
            subscriptions::pause(ledger, name, reason.as_deref())
        }
        Command::ResumeSubscription { name } => subscriptions::resume(ledger, name),
        Command::ReplaySubscription {
            name,
            from_position,
        } => subscriptions::replay(ledger, name, *from_position),
        Command::DeleteSubscription { name } => subscriptions::delete(ledger, name),
        Command::ParkDelivery { parked } => subscriptions::park(ledger, parked),
    }
}
