//! An agent's own task list mirrored onto its ticket's tasks (SPEC §19): Claude Code's
//! `TodoWrite` tool sends the whole list each time (`{todos: [{content, status, activeForm}]}`,
//! status `pending`, `in_progress` or `completed`), and its `PostToolUse` hook hands that input
//! to the ledger. [`mirror`] turns one list into the commands that bring the ticket's tasks up
//! to it: a to-do the ticket lacks is added, a changed status is updated, and nothing else, so
//! the same list sent again is no command at all. A to-do dropped from the list keeps its task
//! (the ticket's tasks are a record, not the agent's scratch pad).
//!
//! A to-do's task id is its `id` when the tool gives one, else `todo-` and a hash of its text
//! ([`events::ids::todo_task_id`]): the same text is the same task across calls and hooks.
//!
//! Claude Code 2.1's default task tools (`TaskCreate {subject, description}` answering
//! `{task: {id}}`, and `TaskUpdate {taskId, status}`) carry one task per call, numbered per
//! session: [`from_task_tool`] reads them as a list of one, with the task id
//! `cc-<session's first 8 characters>-<id>` so two sessions' task 1 are two tasks.

use std::collections::{BTreeMap, BTreeSet};

use events::{TaskStatus, TicketId};
use serde_json::Value;

use crate::decide::Command;
use crate::limits::{excerpt, KEY_BYTES_MAX, TASKS_PER_TICKET_MAX, TITLE_CHARS_MAX};
use crate::views::TaskView;

/// One to-do as the tool sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Todo {
    pub task_id: String,
    pub title: String,
    /// `None` for a status this ledger does not know (the task is still added, open).
    pub status: Option<TaskStatus>,
}

/// Claude Code's task statuses as the ledger's (`deleted` and others: none).
fn status(s: Option<&str>) -> Option<TaskStatus> {
    match s {
        Some("pending") => Some(TaskStatus::Open),
        Some("in_progress") => Some(TaskStatus::InProgress),
        Some("completed") => Some(TaskStatus::Done),
        _ => None,
    }
}

/// The to-dos of a `TodoWrite` input (`tool_input`); `None` when it holds no `todos` list.
/// Entries without text are skipped; a text longer than a task title is cut to one.
pub fn parse(tool_input: &Value) -> Option<Vec<Todo>> {
    let todos = tool_input.get("todos")?.as_array()?;
    Some(
        todos
            .iter()
            .filter_map(|todo| {
                let text = todo.get("content").and_then(Value::as_str)?.trim();
                if text.is_empty() {
                    return None;
                }
                let task_id = match todo.get("id").and_then(Value::as_str) {
                    Some(id) if !id.trim().is_empty() => excerpt(id, KEY_BYTES_MAX).to_owned(),
                    _ => events::ids::todo_task_id(text),
                };
                let status = status(todo.get("status").and_then(Value::as_str));
                Some(Todo {
                    task_id,
                    title: text.chars().take(TITLE_CHARS_MAX).collect(),
                    status,
                })
            })
            .collect(),
    )
}

/// The to-do of a `TaskCreate` or `TaskUpdate` call (`None` for another tool or a call
/// without the task's id). An update carries no title: [`mirror`] updates the task when the
/// ticket has it and adds nothing.
pub fn from_task_tool(
    tool_name: &str,
    tool_input: &Value,
    tool_response: &Value,
    session_id: &str,
) -> Option<Vec<Todo>> {
    fn text<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
        v.get(key).and_then(Value::as_str).map(str::trim)
    }
    let (id, title) = match tool_name {
        "TaskCreate" => (
            tool_response.get("task").and_then(|t| text(t, "id"))?,
            text(tool_input, "subject").unwrap_or_default(),
        ),
        "TaskUpdate" => (text(tool_input, "taskId")?, ""),
        _ => return None,
    };
    if id.is_empty() {
        return None;
    }
    let session: String = session_id.chars().take(8).collect();
    let status = status(text(tool_input, "status"));
    Some(vec![Todo {
        task_id: excerpt(&format!("cc-{session}-{id}"), KEY_BYTES_MAX).to_owned(),
        title: title.chars().take(TITLE_CHARS_MAX).collect(),
        status,
    }])
}

/// The commands that bring `tasks` (the ticket's) up to `todos`: an add for each new to-do
/// (while the ticket has room, and when it has a title), then a status update where the
/// to-do's differs from the task's.
/// A to-do listed twice counts once (its first entry).
pub fn mirror(ticket: &TicketId, tasks: &[TaskView], todos: &[Todo]) -> Vec<Command> {
    let mut known: BTreeMap<&str, TaskStatus> = tasks
        .iter()
        .map(|t| (t.task_id.as_str(), t.status))
        .collect();
    let mut seen = BTreeSet::new();
    let mut commands = Vec::new();
    for todo in todos {
        if !seen.insert(todo.task_id.as_str()) {
            continue;
        }
        let current = match known.get(todo.task_id.as_str()) {
            Some(status) => *status,
            None if known.len() < TASKS_PER_TICKET_MAX && !todo.title.trim().is_empty() => {
                commands.push(Command::AddTask {
                    ticket: ticket.clone(),
                    task_id: Some(todo.task_id.clone()),
                    title: todo.title.clone(),
                });
                TaskStatus::Open
            }
            None => continue,
        };
        match todo.status {
            Some(wanted) if wanted != current => {
                commands.push(Command::UpdateTask {
                    ticket: ticket.clone(),
                    task_id: todo.task_id.clone(),
                    status: wanted,
                });
                known.insert(&todo.task_id, wanted);
            }
            _ => {
                known.insert(&todo.task_id, current);
            }
        }
    }
    commands
}
