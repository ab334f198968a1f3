//! `mc-ledger subscription …`: create, list, show, pause, resume, replay and delete
//! subscriptions on a running server (SPEC §15).

use client::Client;
use events::NoticeFormat;
use serde_json::{json, Value};

#[derive(clap::Subcommand, Debug)]
pub enum SubscriptionCommand {
    /// Create a subscription, or change the one of that name. A secret the server generates
    /// is printed once.
    Create {
        name: String,
        /// Where deliveries are POSTed (kept beside the log, shown with its path hidden).
        #[arg(long)]
        url: String,
        #[arg(long, value_parser = crate::named::<NoticeFormat>(), default_value = "json")]
        format: NoticeFormat,
        /// Event types, comma-separated (runtime.reaped,runtime.signaled).
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
        /// Tickets, comma-separated.
        #[arg(long, value_delimiter = ',')]
        tickets: Vec<String>,
        /// An umbrella: its events and everything under it.
        #[arg(long)]
        umbrella: Option<String>,
        /// Agents of runtime events, comma-separated.
        #[arg(long, value_delimiter = ',')]
        agents: Vec<String>,
        /// Alert kinds to notify of, comma-separated (worker_lost,unanswered_question).
        #[arg(long, value_delimiter = ',')]
        alerts: Vec<String>,
        /// Remind of an alert that stays, every this long (30m, 1h).
        #[arg(long)]
        remind_every: Option<String>,
        /// whsec_… (left out: kept, or generated and printed once).
        #[arg(long)]
        secret: Option<String>,
        /// Telegram's chat_id.
        #[arg(long)]
        chat_id: Option<String>,
        #[command(flatten)]
        on: On,
    },
    /// Every subscription: state, position delivered, lag, last error.
    List(ListArgs),
    /// One subscription, in full (JSON).
    Show(Named),
    /// Stop delivering until resumed.
    Pause {
        name: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        on: On,
    },
    /// Deliver again where it stopped (after a pause or a parked delivery).
    Resume(Named),
    /// Deliver again from a log position (what was parked, or anything since).
    Replay {
        name: String,
        #[arg(long = "from")]
        from_position: u64,
        #[command(flatten)]
        on: On,
    },
    /// Delete a subscription (its facts stay in the log).
    Delete(Named),
}

/// A list's arguments: the server, and JSON lines instead of a table.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    on: On,
}

/// One item by name, on a server.
#[derive(clap::Args, Debug)]
pub struct Named {
    pub(crate) name: String,
    #[command(flatten)]
    pub(crate) on: On,
}

/// The server and, without a token, who writes.
#[derive(clap::Args, Debug)]
pub struct On {
    /// The server, http://host:port (token in MC_LEDGER_TOKEN).
    #[arg(long, env = "MC_LEDGER_SERVER")]
    server: String,
    /// Who writes, on a server without tokens.
    #[arg(long, default_value = "operator")]
    actor: String,
}

impl On {
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        Client::new(&self.server)
    }

    pub(crate) fn actor(&self) -> Value {
        json!({"name": self.actor, "kind": "human"})
    }
}

fn path(name: &str, what: &str) -> String {
    let name = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    format!("/v1/subscriptions/{name}{what}")
}

pub fn run(command: SubscriptionCommand) -> anyhow::Result<()> {
    match command {
        SubscriptionCommand::Create {
            name,
            url,
            format,
            types,
            tickets,
            umbrella,
            agents,
            alerts,
            remind_every,
            secret,
            chat_id,
            on,
        } => {
            let mut body = json!({
                "name": name, "url": url, "format": format, "actor": on.actor(),
                "filter": {"types": types, "tickets": tickets, "agents": agents, "alerts": alerts},
            });
            if let Some(u) = umbrella {
                body["filter"]["umbrella"] = json!(u);
            }
            for (field, value) in [
                ("remind_every", remind_every),
                ("secret", secret),
                ("chat_id", chat_id),
            ] {
                if let Some(v) = value {
                    body[field] = json!(v);
                }
            }
            let answer = on.client()?.post("/v1/subscriptions", &body)?;
            let created = answer.status == 201;
            let body = answer.ok()?;
            match (created, body["secret"].as_str()) {
                (true, Some(secret)) => {
                    out!("created {name}; its signing secret (shown this once):\n{secret}")
                }
                (true, None) => out!("{name} saved at position {}", body["position"]),
                (false, _) => out!("{name} unchanged"),
            }
            Ok(())
        }
        SubscriptionCommand::List(args) => {
            list(&args, "/v1/subscriptions", "subscriptions", |subs| {
                out!(
                    "{:<24} {:<8} {:<9} {:>10} {:>8}  LAST ERROR",
                    "NAME",
                    "FORMAT",
                    "STATE",
                    "POSITION",
                    "LAG"
                );
                for s in subs {
                    let d = &s["delivery"];
                    out!(
                        "{:<24} {:<8} {:<9} {:>10} {:>8}  {}",
                        s["name"].as_str().unwrap_or(""),
                        s["format"].as_str().unwrap_or(""),
                        s["state"].as_str().unwrap_or(""),
                        d["position"].as_u64().unwrap_or(0),
                        d["lag"].as_u64().unwrap_or(0),
                        d["last_error"].as_str().unwrap_or("-"),
                    );
                }
            })
        }
        SubscriptionCommand::Show(Named { name, on }) => show(&on, &path(&name, "")),
        SubscriptionCommand::Pause { name, reason, on } => {
            let mut body = json!({"actor": on.actor()});
            if let Some(r) = reason {
                body["reason"] = json!(r);
            }
            write(&on, &name, "/pause", &body, "paused")
        }
        SubscriptionCommand::Resume(Named { name, on }) => write(
            &on,
            &name,
            "/resume",
            &json!({"actor": on.actor()}),
            "resumed",
        ),
        SubscriptionCommand::Replay {
            name,
            from_position,
            on,
        } => write(
            &on,
            &name,
            "/replay",
            &json!({"actor": on.actor(), "from_position": from_position}),
            "replaying",
        ),
        SubscriptionCommand::Delete(Named { name, on }) => {
            let answer = on
                .client()?
                .delete(&path(&name, ""), &json!({"actor": on.actor()}))?;
            answer.ok()?;
            out!("deleted {name}");
            Ok(())
        }
    }
}

/// `GET path` in full, pretty JSON.
pub(crate) fn show(on: &On, path: &str) -> anyhow::Result<()> {
    let body = on.client()?.get(path)?.ok()?;
    out!("{}", serde_json::to_string_pretty(&body)?);
    Ok(())
}

/// The items under `key` of `GET path`: a JSON line each with `json`, else `table` prints them.
pub(crate) fn list(
    args: &ListArgs,
    path: &str,
    key: &str,
    table: impl FnOnce(&[Value]),
) -> anyhow::Result<()> {
    let body = args.on.client()?.get(path)?.ok()?;
    let items = body[key].as_array().cloned().unwrap_or_default();
    if args.json {
        for item in &items {
            out!("{}", serde_json::to_string(item)?);
        }
    } else {
        table(&items);
    }
    Ok(())
}

fn write(on: &On, name: &str, what: &str, body: &Value, done: &str) -> anyhow::Result<()> {
    post(
        on,
        &path(name, what),
        body,
        &format!("{name} {done}"),
        &format!("{name} was already so; nothing changed"),
    )
}

/// `POST path`: prints `changed` when the server changed something (201), else `unchanged`.
pub(crate) fn post(
    on: &On,
    path: &str,
    body: &Value,
    changed: &str,
    unchanged: &str,
) -> anyhow::Result<()> {
    let answer = on.client()?.post(path, body)?;
    let said = if answer.status == 201 {
        changed
    } else {
        unchanged
    };
    answer.ok()?;
    out!("{said}");
    Ok(())
}
