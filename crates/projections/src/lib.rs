//! mc-ledger's pure domain rules: the fold of the event log into a [`Ledger`] (`apply`), the
//! views read from it (tickets, runtimes, board, alerts, audit timeline) and the command
//! decisions (`decide`) that turn a request into new events or a named rejection.
//!
//! Nothing here does IO or reads the clock: time enters as event `recorded_at` stamps and as
//! explicit `now` arguments, so a replay of the same log always gives the same answer.

pub mod alerts;
pub mod audit;
pub mod budgets;
pub mod class;
pub mod config;
pub mod cost;
pub mod decide;
pub mod filter;
pub mod gauges;
pub mod ingest;
pub mod ledger;
pub mod limits;
pub mod permissions;
pub mod pools;
pub mod rules;
pub mod sim;
pub mod subscription_state;
pub mod subscriptions;
pub mod views;

pub use alerts::{Alert, AlertKind};
pub use audit::{as_of, timeline, TimelineEntry};
pub use budgets::{BudgetHolder, BudgetPage, BudgetScopeView, BudgetStatus, BudgetView};
pub use class::RuntimeClass;
pub use config::Config;
pub use cost::{CostGroup, CostGroupBy, CostReport, CostView};
pub use decide::{
    decide, turn_nonce, AlsoAppend, Append, BudgetRequest, BudgetShortfall, Command, Context,
    Decision, Duplicate, HarvestReport, Rejection, RejectionKind, Target,
};
pub use filter::{EventFilter, FilterError};
pub use gauges::Gauges;
pub use ledger::{EventRef, Ledger};
pub use permissions::{
    authorize, may_read_ticket, permitted, Action, NotPermitted, Operation, Principal, Refused,
    Scope,
};
pub use pools::{PoolHolder, PoolPage, PoolView};
pub use rules::{NextAction, NextActionCode, TicketState, TicketStatus};
pub use subscription_state::SubscriptionState;
pub use subscriptions::{alert_notices, Notice, NoticeKind, OpenAlert, SubscriptionView, Wants};
pub use views::{
    Board, BoardCard, BoardTotals, ExitView, GateView, Progress, RuntimeFilter, RuntimePage,
    RuntimeView, TaskCounts, TaskView, Tasks, TicketFilter, TicketPage, TicketView, VerdictView,
    BOARD_CLOSED_DEFAULT,
};

/// Version of the persisted [`Ledger`] snapshot layout. Bump it whenever a field of the
/// projection state changes meaning or shape: the IO shell then rebuilds from the log instead
/// of loading an incompatible snapshot.
pub const SCHEMA_VERSION: u32 = 7;
