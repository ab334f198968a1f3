//! Who may do what (SPEC §12), decided in one place before anything is appended or read:
//! [`authorize`] takes who asks (a [`Principal`]: actor kind, scope, and the runtime of a
//! runtime token), what they do (an [`Operation`]: a command's [`Action`], a read, the stream,
//! …) and what it touches (a [`Target`], or the whole ledger), and answers yes or the rule that
//! says no. Every HTTP route and every command declares its operation; the console asks the
//! same function which buttons to show.
//!
//! Three layers, in order: the token's scope (`read` < `write` < `admin`); a runtime token's
//! confinement to its runtime, its ticket and what relates to it; and the table of what each
//! actor kind may write ([`TABLE`]): a worker's token cannot pass its own gate or close a
//! ticket.

use events::{ActorKind, TicketId};
use utoipa::ToSchema;

use crate::decide::{Command, Target};
use crate::Ledger;

events::names! {
    /// A token's scope: what kind of request it may make at all.
    #[derive(PartialOrd, Ord, ToSchema)]
    pub enum Scope as "lowercase" { Read, Write, Admin }

    /// What a command does, as the permission table names it.
    pub enum Action as "snake_case" {
        Open,
        Edit,
        Comment,
        Link,
        Unlink,
        Park,
        Gate,
        Close,
        Reopen,
        Task,
        Dispatch,
        Signal,
        Activity,
        Harvest,
        Reap,
        Kill,
        Cancel,
        Switch,
        Retry,
        Complete,
        Input,
        Abort,
        /// Create a pool or change its capacity (SPEC §14: orchestrators and humans).
        Pool,
        /// An agent waits for a person (its permission or idle prompt): pauses a runtime.
        RequestInput,
        /// An agent's session ended: ends a runtime.
        EndSession,
        /// Create, change, pause, resume, replay or delete a subscription (SPEC §15:
        /// orchestrators and humans).
        Subscribe,
        /// Create or change a budget (SPEC §16: orchestrators and humans).
        Budget,
    }
}

impl Command {
    pub fn action(&self) -> Action {
        match self {
            Command::Open { .. } => Action::Open,
            Command::Edit { .. } => Action::Edit,
            Command::Comment { .. } => Action::Comment,
            Command::Link { .. } => Action::Link,
            Command::Unlink { .. } => Action::Unlink,
            Command::Park { .. } => Action::Park,
            Command::Gate { .. } => Action::Gate,
            Command::Close { .. } => Action::Close,
            Command::Reopen { .. } => Action::Reopen,
            Command::AddTask { .. } | Command::UpdateTask { .. } => Action::Task,
            Command::Dispatch { .. } => Action::Dispatch,
            Command::Signal { .. } => Action::Signal,
            Command::Activity { .. } => Action::Activity,
            Command::Harvest { .. } => Action::Harvest,
            Command::Reap { .. } => Action::Reap,
            Command::Kill { .. } => Action::Kill,
            Command::Cancel { .. } => Action::Cancel,
            Command::Switch { .. } => Action::Switch,
            Command::Retry { .. } => Action::Retry,
            Command::Complete { .. } => Action::Complete,
            Command::Input { .. } => Action::Input,
            Command::AbortLaunch { .. } => Action::Abort,
            Command::ConfigurePool { .. } => Action::Pool,
            Command::ConfigureBudget { .. } => Action::Budget,
            // What an agent's hooks report about a runtime: they pause or end it, so they are
            // actions of their own (a plain agent token may not end another's runtime).
            Command::RequestInput { .. } => Action::RequestInput,
            Command::EndSession { .. } => Action::EndSession,
            Command::ConfigureSubscription { .. }
            | Command::PauseSubscription { .. }
            | Command::ResumeSubscription { .. }
            | Command::ReplaySubscription { .. }
            | Command::DeleteSubscription { .. }
            | Command::ParkDelivery { .. } => Action::Subscribe,
        }
    }
}

use Action as A;

/// The runtime commands a controller drives.
const RUNTIME: &[Action] = &[
    A::Dispatch,
    A::Harvest,
    A::Reap,
    A::Kill,
    A::Cancel,
    A::Switch,
    A::Retry,
    A::Complete,
    A::Abort,
    A::Input,
    A::Activity,
    A::RequestInput,
    A::EndSession,
];

/// The table of SPEC §12: each kind, the rule's name, and what it may write. A human may write
/// everything its scope allows.
pub const TABLE: &[(ActorKind, &str, &[&[Action]])] = &[
    (
        ActorKind::Agent,
        "agents may signal, post activity or input, comment, and manage their ticket's tasks",
        &[&[A::Signal, A::Activity, A::Input, A::Comment, A::Task]],
    ),
    (
        ActorKind::System,
        "watchers (system) may reap, post activity, harvest and report an agent's session",
        &[&[
            A::Reap,
            A::Activity,
            A::Harvest,
            A::RequestInput,
            A::EndSession,
        ]],
    ),
    (
        ActorKind::Controller,
        "controllers may drive runtimes, comment and manage tasks",
        &[RUNTIME, &[A::Comment, A::Task]],
    ),
    (
        ActorKind::Orchestrator,
        "orchestrators may do what controllers may, open, edit, link, park, gate, close and reopen tickets, and manage pools, subscriptions and budgets",
        &[
            RUNTIME,
            &[A::Comment, A::Task],
            &[
                A::Open,
                A::Edit,
                A::Link,
                A::Unlink,
                A::Park,
                A::Gate,
                A::Close,
                A::Reopen,
                A::Pool,
                A::Subscribe,
                A::Budget,
            ],
        ],
    ),
    (
        ActorKind::Validator,
        "validators may record gates, close, reopen and comment",
        &[&[A::Gate, A::Close, A::Reopen, A::Comment]],
    ),
    (
        ActorKind::Human,
        "humans may write everything their scope allows",
        &[&Action::ALL],
    ),
];

/// Why an actor may not take an action: the rule of its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotPermitted {
    pub kind: ActorKind,
    pub action: Action,
    pub rule: &'static str,
}

/// Whether an actor of `kind` may take `action`.
pub fn permitted(kind: ActorKind, action: Action) -> Result<(), NotPermitted> {
    let (_, rule, groups) = TABLE
        .iter()
        .find(|(k, _, _)| *k == kind)
        .expect("every kind has a row");
    if groups.iter().any(|g| g.contains(&action)) {
        Ok(())
    } else {
        Err(NotPermitted { kind, action, rule })
    }
}

/// Who asks: what the rules need to know of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal<'a> {
    pub kind: ActorKind,
    pub scope: Scope,
    /// A runtime token's runtime: the only one it may act on.
    pub runtime: Option<&'a str>,
}

/// What a request does, as a route or a command declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Health checks and the API document: no token needed.
    Public,
    /// A read: of one ticket or runtime when it has a target, else across the ledger (lists,
    /// board, alerts, costs, pools, the event log, verify, metrics).
    Read,
    /// The event stream: runtime tokens get it filtered to what they may read.
    Stream,
    /// The console's pages and assets: without a token they show a sign-in form and no data.
    Console,
    /// A command.
    Write(Action),
    /// An agent's hook input on a runtime; each command it becomes is authorized again, all
    /// before any is appended.
    Hook,
    /// Raw events appended as they are (import, repair): admin humans only.
    RawAppend,
    /// Token management and rebuilds.
    Admin,
}

impl Operation {
    /// The scope this operation needs; `None` for public ones.
    pub fn scope(self) -> Option<Scope> {
        match self {
            Operation::Public => None,
            Operation::Read | Operation::Stream | Operation::Console => Some(Scope::Read),
            Operation::Write(_) | Operation::Hook => Some(Scope::Write),
            Operation::RawAppend | Operation::Admin => Some(Scope::Admin),
        }
    }

    /// Whether a request without any token may get an answer (the console's pages then ask
    /// for one and show no data).
    pub fn open_without_token(self) -> bool {
        matches!(self, Operation::Public | Operation::Console)
    }
}

/// The commands an agent's hooks become.
pub const HOOK_ACTIONS: [Action; 4] = [
    Action::Activity,
    Action::Signal,
    Action::RequestInput,
    Action::EndSession,
];

/// What a runtime token may write on its own runtime.
const RUNTIME_TOKEN_WRITES: [Action; 5] = [
    Action::Signal,
    Action::Activity,
    Action::Input,
    Action::RequestInput,
    Action::EndSession,
];

/// A refusal: which layer said no, the rule, and what to tell the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The token's scope is below what the operation needs (403 `forbidden`).
    Scope { needed: Scope },
    /// A rule of the table or of a runtime token's confinement (403 `not_permitted`).
    NotPermitted {
        rule: &'static str,
        detail: String,
        /// What was refused, as the API names it (a command's action, `raw_append`).
        action: Option<&'static str>,
    },
}

pub const RUNTIME_TOKEN_RULE: &str = "runtime tokens are confined to their runtime";
pub const RUNTIME_TOKEN_READ_RULE: &str =
    "runtime tokens read only their ticket, its runtime, its parent, children and blockers";
pub const RAW_APPEND_RULE: &str = "raw appends are for humans";

fn not_permitted(rule: &'static str, detail: String, action: Option<&'static str>) -> Refused {
    Refused::NotPermitted {
        rule,
        detail,
        action,
    }
}

/// Whether `who` may do `op` on `target` (`None`: the whole ledger). Pure: the ledger is read
/// for what a runtime token's runtime relates to, and nothing else.
pub fn authorize(
    ledger: &Ledger,
    who: &Principal<'_>,
    op: Operation,
    target: Option<Target<'_>>,
) -> Result<(), Refused> {
    let Some(needed) = op.scope() else {
        return Ok(());
    };
    if who.scope < needed {
        return Err(Refused::Scope { needed });
    }
    if let Some(runtime) = who.runtime {
        return confine(ledger, runtime, op, target);
    }
    match op {
        Operation::Write(action) => permitted(who.kind, action).map_err(|refused| {
            not_permitted(
                refused.rule,
                format!(
                    "{:?} may not {}: {}",
                    who.kind,
                    action.as_str(),
                    refused.rule
                ),
                Some(action.as_str()),
            )
        }),
        // The hook route is open to every kind that may write one of its commands; each
        // command is then authorized on its own.
        Operation::Hook if HOOK_ACTIONS.iter().any(|a| permitted(who.kind, *a).is_ok()) => Ok(()),
        Operation::Hook => Err(not_permitted(
            table_rule(who.kind),
            format!("{:?} may not post an agent's hook events", who.kind),
            Some("hook"),
        )),
        Operation::RawAppend if who.kind == ActorKind::Human => Ok(()),
        Operation::RawAppend => Err(not_permitted(
            RAW_APPEND_RULE,
            format!(
                "{:?} may not append raw events: raw appends (import, repair) are for humans",
                who.kind
            ),
            Some("raw_append"),
        )),
        Operation::Public
        | Operation::Read
        | Operation::Stream
        | Operation::Console
        | Operation::Admin => Ok(()),
    }
}

fn table_rule(kind: ActorKind) -> &'static str {
    TABLE
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map_or("", |(_, rule, _)| rule)
}

/// A runtime token: its runtime's writes, comments on its ticket, reads of its ticket and
/// what relates to it, the stream (filtered by the caller with [`may_read_ticket`]).
fn confine(
    ledger: &Ledger,
    runtime: &str,
    op: Operation,
    target: Option<Target<'_>>,
) -> Result<(), Refused> {
    let own_ticket = ledger.runtime_ticket(runtime);
    let allowed = match (op, target) {
        (Operation::Write(a), Some(Target::Runtime(r))) => {
            r == runtime && RUNTIME_TOKEN_WRITES.contains(&a)
        }
        // Comments and tasks on its ticket: its notes and its own work plan (SPEC §19).
        (Operation::Write(Action::Comment | Action::Task), Some(Target::Ticket(t))) => {
            own_ticket == Some(t)
        }
        (Operation::Hook, Some(Target::Runtime(r))) => r == runtime,
        (Operation::Read, Some(Target::Runtime(r))) => r == runtime,
        (Operation::Read, Some(Target::Ticket(t))) => may_read_ticket(ledger, runtime, t),
        (Operation::Stream, None) => true,
        _ => false,
    };
    if allowed {
        return Ok(());
    }
    let (rule, detail) = match op {
        Operation::Read | Operation::Stream | Operation::Console => (
            RUNTIME_TOKEN_READ_RULE,
            format!(
                "a runtime token may read only its runtime ({runtime}), its ticket and the \
                 ticket's parent, children and blockers"
            ),
        ),
        _ => (
            RUNTIME_TOKEN_RULE,
            format!(
                "a runtime token may only signal, post activity, input or its agent's hooks on \
                 its runtime ({runtime}), and comment on or manage the tasks of its ticket"
            ),
        ),
    };
    let action = match op {
        Operation::Write(a) => Some(a.as_str()),
        _ => None,
    };
    Err(not_permitted(rule, detail, action))
}

/// Whether a runtime token's runtime may read `ticket`: its own ticket, that ticket's parent,
/// children and blockers, as linked now.
pub fn may_read_ticket(ledger: &Ledger, runtime: &str, ticket: &TicketId) -> bool {
    ledger
        .runtime_ticket(runtime)
        .is_some_and(|own| own == ticket || ledger.neighbours(own).contains(ticket))
}
