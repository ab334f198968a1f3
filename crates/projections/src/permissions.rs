//! Who may write what (SPEC §12): one table, decided before anything is appended. A token's
//! actor kind names a row; a command is allowed when its action is in that row. Scopes
//! (`read` < `write` < `admin`) are checked before this, by the HTTP layer; this table is the
//! least-privilege part: a worker's token cannot pass its own gate or close a ticket.

use events::ActorKind;
use serde::Serialize;

use crate::decide::Command;

/// What a command does, as the permission table names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
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
}

impl Action {
    pub const ALL: [Action; 23] = [
        Action::Open,
        Action::Edit,
        Action::Comment,
        Action::Link,
        Action::Unlink,
        Action::Park,
        Action::Gate,
        Action::Close,
        Action::Reopen,
        Action::Task,
        Action::Dispatch,
        Action::Signal,
        Action::Activity,
        Action::Harvest,
        Action::Reap,
        Action::Kill,
        Action::Cancel,
        Action::Switch,
        Action::Retry,
        Action::Complete,
        Action::Input,
        Action::Abort,
        Action::Pool,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Open => "open",
            Action::Edit => "edit",
            Action::Comment => "comment",
            Action::Link => "link",
            Action::Unlink => "unlink",
            Action::Park => "park",
            Action::Gate => "gate",
            Action::Close => "close",
            Action::Reopen => "reopen",
            Action::Task => "task",
            Action::Dispatch => "dispatch",
            Action::Signal => "signal",
            Action::Activity => "activity",
            Action::Harvest => "harvest",
            Action::Reap => "reap",
            Action::Kill => "kill",
            Action::Cancel => "cancel",
            Action::Switch => "switch",
            Action::Retry => "retry",
            Action::Complete => "complete",
            Action::Input => "input",
            Action::Abort => "abort",
            Action::Pool => "pool",
        }
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
            // What an agent's hooks report about itself: activity, in the table's terms.
            Command::RequestInput { .. } | Command::EndSession { .. } => Action::Activity,
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
];

/// The table of SPEC §12: each kind, the rule's name, and what it may write. A human may write
/// everything its scope allows.
pub const TABLE: &[(ActorKind, &str, &[&[Action]])] = &[
    (
        ActorKind::Agent,
        "agents may signal, post activity or input, and comment",
        &[&[A::Signal, A::Activity, A::Input, A::Comment]],
    ),
    (
        ActorKind::System,
        "watchers (system) may reap, post activity and harvest",
        &[&[A::Reap, A::Activity, A::Harvest]],
    ),
    (
        ActorKind::Controller,
        "controllers may drive runtimes, comment and manage tasks",
        &[RUNTIME, &[A::Comment, A::Task]],
    ),
    (
        ActorKind::Orchestrator,
        "orchestrators may do what controllers may, open, edit, link, park, gate, close and reopen tickets, and manage pools",
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
