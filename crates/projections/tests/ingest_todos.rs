//! Claude Code's `TodoWrite` list mirrored onto a ticket's tasks (SPEC §19): given the
//! ticket's tasks and a list, when mirrored, then exactly the missing adds and the changed
//! statuses, in the list's order; the same list again is nothing.

use events::{TaskStatus, TicketId};
use projections::ingest::todos::{mirror, parse, Todo};
use projections::views::TaskView;
use projections::Command;
use serde_json::json;

fn ticket() -> TicketId {
    TicketId::parse("MC-7").unwrap()
}

fn task(id: &str, title: &str, status: TaskStatus) -> TaskView {
    TaskView {
        task_id: id.into(),
        title: title.into(),
        status,
    }
}

fn todos(list: serde_json::Value) -> Vec<Todo> {
    parse(&json!({ "todos": list })).expect("a todos list")
}

fn id(text: &str) -> String {
    events::ids::todo_task_id(text)
}

/// A command, written short: `+id title`, `id=status`.
fn short(c: &Command) -> String {
    match c {
        Command::AddTask {
            ticket,
            task_id,
            title,
            ..
        } => {
            assert_eq!(ticket, &self::ticket());
            format!("+{} {title}", task_id.as_deref().unwrap_or("?"))
        }
        Command::UpdateTask {
            ticket,
            task_id,
            status,
        } => {
            assert_eq!(ticket, &self::ticket());
            format!("{task_id}={status:?}")
        }
        other => panic!("not a task command: {other:?}"),
    }
}

#[test]
fn given_tasks_and_a_list_when_mirrored_then_only_what_changed() {
    let (a, b, c) = (id("Read the code"), id("Fix the bug"), id("Run the tests"));
    let three = json!([
        {"content": "Read the code", "status": "completed", "activeForm": "Reading the code"},
        {"content": "Fix the bug", "status": "in_progress", "activeForm": "Fixing the bug"},
        {"content": "Run the tests", "status": "pending", "activeForm": "Running the tests"},
    ]);
    // (given the ticket's tasks, when this list, then these commands)
    let rows: Vec<(Vec<TaskView>, serde_json::Value, Vec<String>)> = vec![
        // A first list: every to-do added, then the statuses that are not open.
        (
            vec![],
            three.clone(),
            vec![
                format!("+{a} Read the code"),
                format!("{a}=Done"),
                format!("+{b} Fix the bug"),
                format!("{b}=InProgress"),
                format!("+{c} Run the tests"),
            ],
        ),
        // The same list again: nothing.
        (
            vec![
                task(&a, "Read the code", TaskStatus::Done),
                task(&b, "Fix the bug", TaskStatus::InProgress),
                task(&c, "Run the tests", TaskStatus::Open),
            ],
            three.clone(),
            vec![],
        ),
        // One status moved on: one update.
        (
            vec![
                task(&a, "Read the code", TaskStatus::Done),
                task(&b, "Fix the bug", TaskStatus::InProgress),
                task(&c, "Run the tests", TaskStatus::Open),
            ],
            json!([
                {"content": "Read the code", "status": "completed"},
                {"content": "Fix the bug", "status": "completed"},
                {"content": "Run the tests", "status": "in_progress"},
            ]),
            vec![format!("{b}=Done"), format!("{c}=InProgress")],
        ),
        // A to-do dropped from the list keeps its task; tasks of others are left alone.
        (
            vec![
                task("T1", "a person's task", TaskStatus::Open),
                task(&a, "Read the code", TaskStatus::Done),
            ],
            json!([{"content": "Fix the bug", "status": "pending"}]),
            vec![format!("+{b} Fix the bug")],
        ),
        // A to-do with its own id keeps it; an unknown status adds it open; empty text and
        // entries that are not to-dos are skipped; a to-do listed twice counts once.
        (
            vec![],
            json!([
                {"id": "7", "content": "With an id", "status": "in_progress"},
                {"content": "Odd status", "status": "blocked"},
                {"content": "   ", "status": "pending"},
                {"status": "pending"},
                "not an object",
                {"content": "Fix the bug", "status": "pending"},
                {"content": "Fix the bug", "status": "completed"},
            ]),
            vec![
                "+7 With an id".into(),
                "7=InProgress".into(),
                format!("+{} Odd status", id("Odd status")),
                format!("+{b} Fix the bug"),
            ],
        ),
    ];
    for (n, (given, list, then)) in rows.into_iter().enumerate() {
        let got: Vec<String> = mirror(&ticket(), &given, &todos(list))
            .iter()
            .map(short)
            .collect();
        assert_eq!(got, then, "row {n}");
    }
}

#[test]
fn a_list_is_bounded_by_the_ticket_s_room_and_titles_by_their_limit() {
    let full: Vec<TaskView> = (0..projections::limits::TASKS_PER_TICKET_MAX)
        .map(|n| task(&format!("T{n}"), "x", TaskStatus::Open))
        .collect();
    let list = todos(json!([{"content": "one more", "status": "completed"}]));
    assert!(
        mirror(&ticket(), &full, &list).is_empty(),
        "no room: nothing"
    );
    let long = "x".repeat(500);
    let parsed = todos(json!([{ "content": long, "status": "pending" }]));
    assert_eq!(
        parsed[0].title.chars().count(),
        projections::limits::TITLE_CHARS_MAX
    );
    assert_eq!(parsed[0].task_id, id(&long), "the id is of the whole text");
}

#[test]
fn an_input_without_a_todos_list_is_not_a_list() {
    for input in [
        json!({}),
        json!({"todos": "no"}),
        json!([1, 2]),
        json!(null),
    ] {
        assert_eq!(parse(&input), None, "{input}");
    }
    assert_eq!(parse(&json!({"todos": []})), Some(vec![]));
}

/// A task tool's call: its name, input and response.
type Call = (&'static str, serde_json::Value, serde_json::Value);

/// Claude Code 2.1's default task tools, one task per call, numbered per session (payloads
/// as captured from the real CLI in `tests/agents/FINDINGS.md`): given the ticket's tasks and a
/// call, then the commands.
#[test]
fn task_create_and_task_update_calls_are_lists_of_one() {
    use projections::ingest::todos::from_task_tool;
    let session = "9cc14658-21a0-467b-9dd3-c9221a1d89c0";
    let create = (
        "TaskCreate",
        json!({"subject": "Read the launcher", "description": "Read scripts/launch.sh", "activeForm": "Reading the launcher"}),
        json!({"task": {"id": "1", "subject": "Read the launcher", "description": "Read scripts/launch.sh"}}),
    );
    let update = |id: &str, status: &str| {
        (
            "TaskUpdate",
            json!({"taskId": id, "status": status}),
            json!({"success": true, "taskId": id, "updatedFields": ["status"]}),
        )
    };
    let one = "cc-9cc14658-1";
    // (given tasks, when this call, then these commands)
    let rows: Vec<(Vec<TaskView>, Call, Vec<String>)> = vec![
        (
            vec![],
            create.clone(),
            vec![format!("+{one} Read the launcher")],
        ),
        (
            vec![task(one, "Read the launcher", TaskStatus::Open)],
            create.clone(),
            vec![],
        ),
        (
            vec![task(one, "Read the launcher", TaskStatus::Open)],
            update("1", "in_progress"),
            vec![format!("{one}=InProgress")],
        ),
        (
            vec![task(one, "Read the launcher", TaskStatus::Done)],
            update("1", "completed"),
            vec![],
        ),
        // An update of a task the ticket never saw created: nothing to add it with.
        (vec![], update("9", "completed"), vec![]),
        // `deleted` is not a ledger status: the task stays as it was.
        (
            vec![task(one, "Read the launcher", TaskStatus::Open)],
            update("1", "deleted"),
            vec![],
        ),
    ];
    for (n, (given, (tool, input, response), then)) in rows.into_iter().enumerate() {
        let list = from_task_tool(tool, &input, &response, session).expect("a task call");
        let got: Vec<String> = mirror(&ticket(), &given, &list).iter().map(short).collect();
        assert_eq!(got, then, "row {n}");
    }
    for (tool, input, response) in [
        ("Bash", json!({}), json!({})),
        ("TaskCreate", json!({"subject": "s"}), json!({})),
        ("TaskUpdate", json!({"status": "completed"}), json!({})),
        ("TaskUpdate", json!({"taskId": " "}), json!({})),
    ] {
        assert_eq!(
            from_task_tool(tool, &input, &response, session),
            None,
            "{tool} {input}"
        );
    }
}
