//! The `mc-ledger` command line. Errors are one clear line and a non-zero exit.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
#[macro_use]
mod output;

pub mod budget;
pub mod demo;
mod helpers;
mod mcp;
mod run;
mod salvage;
mod signals;
mod spool;
pub mod subscription;
pub mod transfer;
pub mod watch;

use events::TicketId;
use projections::Config;
use service::home::{OpenedStore, StoreUrl};
use service::open_store;
use store_sled::LogConfig;

use client::Client;
use service::tokens::Scope;
use service::{rebuild, snapshot};

#[derive(Parser, Debug)]
#[command(
    name = "mc-ledger",
    version,
    about = "Event-sourced ledger for an AI-agent mission control"
)]
pub struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

const DEFAULT_DATA_DIR: &str = "./mc-ledger-data";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the HTTP API (the embedded sled store unless --store names another).
    Serve {
        #[command(flatten)]
        store: StoreArg,
        #[arg(long, default_value = "127.0.0.1:7171")]
        listen: SocketAddr,
        /// sled's page cache, in MiB (the projections are extra: they live in memory).
        #[arg(long, default_value_t = store_sled::log::DEFAULT_CACHE_MIB)]
        cache_mib: u64,
        #[command(flatten)]
        delivery: DeliveryArgs,
    },
    /// Load the seeds' stories (MC-4000, MC-4030, MC-4031, MC-4502) into an empty data dir.
    Demo {
        #[command(flatten)]
        store: StoreArg,
    },
    /// Recompute the hash chain and the indexes; names the first bad position.
    Verify {
        #[command(flatten)]
        store: StoreArg,
        /// Read past damage and name every bad range (a sled log is read from its files,
        /// without opening it).
        #[arg(long, conflicts_with = "server")]
        all: bool,
        /// Ask a running server instead (admin token in MC_LEDGER_TOKEN).
        #[arg(long)]
        server: Option<String>,
    },
    /// Refold every projection from position 1 and swap the new snapshot in.
    Rebuild {
        #[command(flatten)]
        store: StoreArg,
        /// Ask a running server to rebuild instead (admin token in MC_LEDGER_TOKEN).
        #[arg(long)]
        server: Option<String>,
    },
    /// A ticket's audit timeline: each event and the state right after it.
    Replay {
        ticket: String,
        #[arg(long)]
        as_of: Option<u64>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArg,
        /// Read the timeline from a running server instead (token in MC_LEDGER_TOKEN).
        #[arg(long)]
        server: Option<String>,
    },
    /// Write the log as JSON lines (SPEC §3 envelopes) to stdout.
    Export {
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[command(flatten)]
        store: StoreArg,
        /// Read from a running server instead (token from MC_LEDGER_TOKEN).
        #[arg(long)]
        server: Option<String>,
    },
    /// Append the events of an export file; idempotent (event ids dedupe).
    Import {
        file: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        /// Write through a running server instead (admin token in MC_LEDGER_TOKEN).
        #[arg(long)]
        server: Option<String>,
    },
    /// Copy a whole ledger into an empty store (sled → PostgreSQL and back), keeping positions,
    /// ids and hashes; `verify` then reports the same head hash on both.
    /// (`--to` may also hold a prefix of the source: the copy resumes.)
    Copy {
        #[command(flatten)]
        stores: FromTo,
    },
    /// Copy every whole event of a damaged ledger into a new, empty one that verifies, and
    /// report what was lost (positions, tickets, event types, time range).
    /// (A sled source is read from its files, never opened.)
    Salvage {
        #[command(flatten)]
        stores: FromTo,
        /// Print the report as JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also write the JSON report to this file.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Forward an agent's hook event to the ledger (for Claude Code's hooks and Codex's
    /// `notify`). Server, token and runtime come from MC_LEDGER_SERVER, MC_LEDGER_TOKEN and
    /// MC_LEDGER_RUNTIME. Never fails the agent: exits 0 within 2 s, saying why on stderr.
    #[command(subcommand)]
    Hook(HookCommand),
    /// Benchmarks (JSON output with --json).
    #[cfg(feature = "bench")]
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Benchmarks: not in this build (built without the `bench` feature).
    #[cfg(not(feature = "bench"))]
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Reap live tmux and process runtimes whose worker is gone (a second probe confirms).
    Watch(crate::watch::WatchArgs),
    /// Manage subscriptions on a running server: signed webhooks of events and alert
    /// notices (SPEC §15).
    #[command(subcommand)]
    Subscription(subscription::SubscriptionCommand),
    /// Manage budgets on a running server: spend caps reserved at dispatch (SPEC §16).
    #[command(subcommand)]
    Budget(budget::BudgetCommand),
    /// A Model Context Protocol server over stdio for one runtime's agent (SPEC §19): tools
    /// ticket, signal, question, comment, add_task, update_task, with the runtime's token.
    Mcp {
        /// The server, http://host:port (token in MC_LEDGER_TOKEN).
        #[arg(
            long,
            env = "MC_LEDGER_SERVER",
            default_value = "http://127.0.0.1:7171"
        )]
        server: String,
        /// The runtime's id (`rt_…`).
        #[arg(long, env = "MC_LEDGER_RUNTIME")]
        runtime: String,
    },
    /// Run an agent on a ticket, start to end (SPEC §19): dispatch, start it in tmux (or as a
    /// process) wired to the ledger (hooks, notify, MCP), wait, harvest, print the console URL.
    Run(Box<run::RunArgs>),
    /// Send a pane's text (read from stdin) to a runtime as a raw signal.
    Signal {
        /// The server, http://host:port (token in MC_LEDGER_TOKEN).
        #[arg(long)]
        server: String,
        /// The runtime's id (`rt_…`).
        #[arg(long)]
        runtime: String,
        /// The actor's name recorded on the event (without a token; with `MC_LEDGER_TOKEN` the
        /// token's actor is recorded).
        #[arg(long, default_value = "agent")]
        actor: String,
        #[arg(long, default_value = "agent", value_parser = ACTOR_KINDS)]
        actor_kind: String,
    },
    /// Send a Claude result (`-p --output-format json`) or Codex events (`exec --json`) file
    /// to a runtime as its harvest.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["claude", "codex"])))]
    Harvest {
        /// The server, http://host:port (token in MC_LEDGER_TOKEN).
        #[arg(long)]
        server: String,
        /// The runtime's id (`rt_…`).
        #[arg(long)]
        runtime: String,
        /// Claude Code's JSON result file.
        #[arg(long)]
        claude: Option<PathBuf>,
        /// Codex's JSON-lines event file.
        #[arg(long)]
        codex: Option<PathBuf>,
        /// The ticket version you saw; a second, different harvest needs it (SPEC §6).
        #[arg(long)]
        expected_version: Option<u64>,
        /// The actor's name recorded on the event.
        #[arg(long, default_value = "controller")]
        actor: String,
        #[arg(long, default_value = "controller", value_parser = ACTOR_KINDS)]
        actor_kind: String,
    },
}

/// SPEC §3's `actor.kind` values.
const ACTOR_KINDS: [&str; 6] = [
    "human",
    "agent",
    "orchestrator",
    "controller",
    "validator",
    "system",
];

/// The store a command opens: `--store sled:PATH | postgres://…` (or `MC_LEDGER_STORE`), else
/// the sled store in `--data-dir`.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArg {
    /// The store: sled:PATH or postgres://USER@HOST:PORT/DB[?schema=NAME].
    #[arg(long, env = "MC_LEDGER_STORE")]
    pub store: Option<String>,
    /// The sled store's data directory (the same as --store sled:PATH).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// The PostgreSQL schema (default mc_ledger; `?schema=NAME` in the URL wins).
    #[arg(long)]
    pub pg_schema: Option<String>,
}

impl StoreArg {
    pub fn url(&self) -> anyhow::Result<StoreUrl> {
        match &self.store {
            Some(url) => StoreUrl::parse(url, self.pg_schema.as_deref()),
            None => Ok(StoreUrl::Sled(self.data_dir.clone())),
        }
    }
}

/// Two stores, for `copy` and `salvage`: where the events come from and the empty store they
/// go to.
#[derive(Debug, clap::Args)]
pub struct FromTo {
    /// sled:PATH or postgres://…
    #[arg(long)]
    from: String,
    /// sled:PATH (an empty or new directory) or postgres://… (an empty schema)
    #[arg(long)]
    to: String,
    /// The PostgreSQL schema for either side (`?schema=NAME` in a URL wins).
    #[arg(long)]
    pg_schema: Option<String>,
}

impl FromTo {
    /// Both stores, which must differ.
    fn urls(&self) -> anyhow::Result<(StoreUrl, StoreUrl)> {
        let from = StoreUrl::parse(&self.from, self.pg_schema.as_deref())?;
        let to = StoreUrl::parse(&self.to, self.pg_schema.as_deref())?;
        anyhow::ensure!(from != to, "--from and --to name the same store");
        Ok((from, to))
    }
}

/// The command line's parser of a closed set of names (`events::names!`): its possible values
/// are the names the JSON uses, so the two cannot differ.
pub(crate) fn named<T: events::names::Named>() -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(T::all().iter().map(|v| v.name())).map(|name| {
        let found = T::all().iter().copied().find(|v| v.name() == name);
        found.expect("clap checked the name against the same list")
    })
}

#[derive(Subcommand, Debug)]
pub enum HookCommand {
    /// A Claude Code hook: the hook's JSON on stdin (`"command": "mc-ledger hook claude"` in
    /// `.claude/settings.json`, for Stop, SubagentStop, Notification and SessionEnd).
    Claude,
    /// Codex's notify program: the JSON as the last argument (`notify = ["mc-ledger", "hook",
    /// "codex"]` in `~/.codex/config.toml`).
    Codex { json: String },
    /// Deliver the hooks waiting in the spool (`MC_LEDGER_SPOOL`, else
    /// `$XDG_STATE_HOME/mc-ledger/spool`, else `~/.local/state/mc-ledger/spool`), in order;
    /// exits 1 when some are still waiting.
    Flush {
        /// Send them here instead of the server each names.
        #[arg(long)]
        server: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token bound to an actor (name and kind), a scope and an optional expiry; the
    /// secret is printed once and stored hashed. Every server on the store uses it within 1 s.
    Create {
        #[arg(long, value_parser = named::<Scope>())]
        scope: Scope,
        /// The actor name the token writes as.
        #[arg(long, default_value = "token")]
        name: String,
        #[arg(long, value_parser = named::<events::ActorKind>(), default_value = "human")]
        kind: events::ActorKind,
        /// A duration such as 90s, 12h, 30d.
        #[arg(long)]
        expires_in: Option<String>,
        #[command(flatten)]
        store: StoreArg,
    },
    /// List tokens (never their secrets): id, actor, scope, expiry, revocation.
    List {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Revoke a token by id; every server refuses it within 1 s (401 token_revoked).
    Revoke {
        id: String,
        #[command(flatten)]
        store: StoreArg,
    },
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!, which panics when stderr cannot be written (a full disk under a
            // redirected log): the exit code must still say failure, not 101.
            let _ = writeln!(std::io::stderr(), "mc-ledger: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// stderr for the log lines, dropping a line it cannot write. tracing-subscriber reports a
/// failed write with `eprintln!`, which panics when stderr itself fails (a log redirected to
/// a full disk, seen under fiu-run): a request must never fail because its log line could not
/// be written.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// How `serve` delivers subscriptions (SPEC §15).
#[derive(Debug, clap::Args)]
pub struct DeliveryArgs {
    /// The console's address as notices link it (default: http://LISTEN).
    #[arg(long)]
    public_url: Option<String>,
    /// The first retry of a failed delivery waits this long; each further one twice as long
    /// (with jitter), up to an hour.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    delivery_retry_base: std::time::Duration,
    /// A delivery failing this long is parked and its subscription stops (failing).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    delivery_park_after: std::time::Duration,
    /// One delivery attempt's limit, connection to answer.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    delivery_timeout: std::time::Duration,
}

impl DeliveryArgs {
    fn config(self, listen: SocketAddr) -> notify::EngineConfig {
        let public = self
            .public_url
            .unwrap_or_else(|| format!("http://{listen}"));
        notify::EngineConfig {
            retry_base: self.delivery_retry_base,
            park_after: self.delivery_park_after,
            timeout: self.delivery_timeout,
            ..notify::EngineConfig::new(&public)
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            store,
            listen,
            cache_mib,
            delivery,
        } => {
            let store = store.url()?;
            // Before any thread: this reads and clears environment variables.
            let inherited = api::restart::inherited_listener()?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let delivery = delivery.config(listen);
            runtime.block_on(api::server::serve(api::server::ServeArgs {
                store,
                listen,
                cache_mib,
                delivery,
                inherited,
            }))
        }
        Command::Demo { store } => crate::demo::run_url(&store.url()?),
        Command::Verify {
            server: Some(url), ..
        } => {
            let body = Client::new(&url)?.get("/v1/admin/verify")?.ok()?;
            if body["ok"] == serde_json::json!(true) {
                out!(
                    "ok: {} events, {} tickets, head hash {}",
                    body["events"],
                    body["tickets"],
                    body["head_hash"].as_str().unwrap_or("")
                );
                Ok(())
            } else {
                anyhow::bail!(
                    "corrupt at position {}: {}",
                    body["first_bad_position"],
                    body["detail"].as_str().unwrap_or("")
                )
            }
        }
        Command::Verify {
            store, all: true, ..
        } => match salvage::verify_all(&store.url()?)? {
            None => verify(&store.url()?),
            Some(report) => {
                let _ = write!(std::io::stderr(), "{report}");
                anyhow::bail!(
                    "{} bad range{}; `mc-ledger salvage` copies every whole event into a new ledger",
                    report.lost.len() + report.chain_breaks.len(),
                    if report.lost.len() + report.chain_breaks.len() == 1 { "" } else { "s" }
                )
            }
        },
        Command::Verify { store, .. } => verify(&store.url()?),
        Command::Salvage {
            stores,
            json,
            report,
        } => {
            let (from, to) = stores.urls()?;
            salvage::salvage(&from, &to, json, report.as_deref())
        }
        Command::Rebuild {
            server: Some(url), ..
        } => {
            let body = Client::new(&url)?
                .post("/v1/admin/rebuild", &serde_json::json!({}))?
                .ok()?;
            let differences: Vec<TicketId> = serde_json::from_value(body["differences"].clone())?;
            out!(
                "server rebuilt its projections to position {} in {:.0} ms",
                body["position"],
                body["elapsed_ms"].as_f64().unwrap_or(0.0)
            );
            report_differences(&differences);
            Ok(())
        }
        Command::Rebuild { store, .. } => rebuild(&store.url()?),
        Command::Replay {
            ticket,
            as_of,
            json,
            store,
            server,
        } => replay(&store, server.as_deref(), &ticket, as_of, json),
        Command::Token(command) => token(command),
        Command::Hook(HookCommand::Flush { server }) => hook_flush(server.as_deref()),
        Command::Hook(command) => {
            hook(command);
            Ok(())
        }
        Command::Export {
            after,
            store,
            server,
        } => transfer::with_target(server, &store, false, |target| {
            let count = transfer::export(target, after, &mut std::io::stdout().lock())?;
            say!("exported {count} events");
            Ok(())
        }),
        Command::Import {
            file,
            store,
            server,
        } => transfer::with_target(server, &store, true, |target| {
            let done = transfer::import(target, &file)?;
            out!(
                "imported {} events ({} already present)",
                done.appended,
                done.duplicates
            );
            Ok(())
        }),
        Command::Copy { stores } => {
            let (from, to) = stores.urls()?;
            let source = open_existing(&from, false)?;
            let target = open_existing(&to, true)?;
            let copied = transfer::copy(source.store.as_ref(), target.store.as_ref())?;
            let report = target.store.verify()?;
            target.store.close()?;
            out!(
                "copied {copied} events from {} to {}; head {} hash {}",
                from.describe(),
                to.describe(),
                report.events,
                report.head_hash.to_hex()
            );
            Ok(())
        }
        #[cfg(feature = "bench")]
        Command::Bench(b) => bench::run(b),
        #[cfg(not(feature = "bench"))]
        Command::Bench { .. } => anyhow::bail!(
            "this mc-ledger is built without the benchmark harness (cargo feature `bench`); \
             run `cargo run --release --features bench -- bench …`, \
             or build it with `cargo build --release --features bench`"
        ),
        Command::Watch(args) => crate::watch::run(&args),
        Command::Subscription(command) => subscription::run(command),
        Command::Budget(command) => budget::run(command),
        Command::Mcp { server, runtime } => mcp::serve(&server, &runtime),
        Command::Run(args) => run::run(&args),
        Command::Signal {
            server,
            runtime,
            actor,
            actor_kind,
        } => helpers::signal(&server, &runtime, &actor, &actor_kind),
        Command::Harvest {
            server,
            runtime,
            claude,
            codex,
            expected_version,
            actor,
            actor_kind,
        } => {
            let source = match (claude, codex) {
                (Some(path), _) => helpers::Harvest::Claude(path),
                (None, Some(path)) => helpers::Harvest::Codex(path),
                (None, None) => anyhow::bail!("give --claude FILE or --codex FILE"),
            };
            helpers::harvest(
                &server,
                &runtime,
                &source,
                expected_version,
                &actor,
                &actor_kind,
            )
        }
    }
}

/// How long a hook may take, start to end.
const HOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

/// Forwards one hook event; any failure is one line on stderr, never a non-zero exit.
fn hook(command: HookCommand) {
    use std::io::Read;
    let input = match command {
        HookCommand::Claude => {
            let mut text = String::new();
            std::io::stdin()
                .take(1024 * 1024)
                .read_to_string(&mut text)
                .map(|_| ("claude", text))
                .map_err(|e| anyhow::anyhow!("reading the hook's stdin: {e}"))
        }
        HookCommand::Codex { json } => Ok(("codex", json)),
        HookCommand::Flush { .. } => Err(anyhow::anyhow!("`hook flush` is not a hook")),
    };
    if let Err(e) = input.and_then(|(agent, raw)| try_hook(agent, raw)) {
        say!("mc-ledger hook: not recorded: {e:#}");
    }
}

/// The hook's payload goes to the spool first (fsync'd), then the spool is delivered in order
/// for as long as the hook may take: a server that is down or slow keeps it for the next hook,
/// `hook flush` or the dispatcher (SPEC §17).
fn try_hook(agent: &str, raw: String) -> anyhow::Result<()> {
    use anyhow::Context;
    let started = std::time::Instant::now();
    let _: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&raw).context("the hook's input is not a JSON object")?;
    let runtime = std::env::var("MC_LEDGER_RUNTIME")
        .ok()
        .filter(|r| !r.is_empty())
        .context("MC_LEDGER_RUNTIME is not set (the dispatcher puts the runtime id there)")?;
    let server = std::env::var("MC_LEDGER_SERVER")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "http://127.0.0.1:7171".to_owned());
    client::Client::with_timeout(&server, HOOK_TIMEOUT)?;
    let token = std::env::var("MC_LEDGER_TOKEN").ok();
    let spool = spool::Spool::for_user()?;
    spool.push(&server, &runtime, agent, raw, token)?;
    let flushed = spool.flush(Some(started + HOOK_TIMEOUT), None, false)?;
    if flushed.left > 0 {
        say!(
            "mc-ledger hook: {} hook(s) kept in {} for the next hook or `mc-ledger hook flush`",
            flushed.left,
            spool.dir().display()
        );
    }
    Ok(())
}

/// `mc-ledger hook flush`: the spool delivered, each answer waited for.
fn hook_flush(server: Option<&str>) -> anyhow::Result<()> {
    let spool = spool::Spool::for_user()?;
    let flushed = spool.flush(None, server, true)?;
    out!(
        "delivered {} hook(s), {} refused (in {}/rejected), {} left in {}",
        flushed.delivered,
        flushed.rejected,
        spool.dir().display(),
        flushed.left,
        spool.dir().display()
    );
    if flushed.left > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn now_ms() -> u64 {
    service::clock::now().millis()
}

fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            scope,
            name,
            kind,
            expires_in,
            store,
        } => {
            let expires_in = expires_in
                .as_deref()
                .map(service::tokens::parse_expires_in)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--{e}"))?;
            let url = store.url()?;
            let home = open_home(&url, true)?;
            let new = service::tokens::NewToken {
                name,
                kind,
                scope,
                expires_in,
            };
            let (info, secret) = service::tokens::create_token_in(&home, &new, now_ms())?;
            out!("{secret}");
            say!(
                "token {} stored hashed in {}; servers use it within a second",
                info.id,
                url.describe()
            );
            Ok(())
        }
        TokenCommand::List { json, store } => {
            let home = open_home(&store.url()?, false)?;
            let now = now_ms();
            for t in service::tokens::list_tokens_in(&home)? {
                if json {
                    out!("{}", serde_json::to_string(&t)?);
                    continue;
                }
                let state = match (t.revoked_at, t.expires_at) {
                    (Some(_), _) => "revoked".to_owned(),
                    (None, Some(at)) if at <= now => "expired".to_owned(),
                    (None, Some(at)) => format!("expires in {}s", (at - now) / 1000),
                    (None, None) => "valid".to_owned(),
                };
                let name = |v: serde_json::Value| v.as_str().unwrap_or("?").to_owned();
                out!(
                    "{}  {} ({})  {}  {state}",
                    t.id,
                    t.name,
                    name(serde_json::to_value(t.kind)?),
                    name(serde_json::to_value(t.scope)?)
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { id, store } => {
            let home = open_home(&store.url()?, false)?;
            if !service::tokens::revoke_token_in(&home, &id, now_ms())? {
                anyhow::bail!("no token has the id {id:?} (see `mc-ledger token list`)");
            }
            out!("revoked {id}; servers refuse it within a second");
            Ok(())
        }
    }
}

/// Where a store keeps its tokens, without opening its log: a sled data directory is only a
/// directory here, so `token …` works while a server holds the log.
fn open_home(url: &StoreUrl, create: bool) -> anyhow::Result<service::home::Home> {
    match url {
        StoreUrl::Sled(dir) => {
            if create {
                std::fs::create_dir_all(dir)?;
            } else if !dir.join("log").exists() {
                anyhow::bail!("no ledger at {} (is --data-dir right?)", dir.display());
            }
            Ok(service::home::Home::Dir(dir.clone()))
        }
        StoreUrl::Postgres(_) => Ok(open_existing(url, create)?.home),
    }
}

/// Opens the store a command names; a sled data directory must already hold a ledger unless
/// the command creates one.
pub(crate) fn open_existing(url: &StoreUrl, create: bool) -> anyhow::Result<OpenedStore> {
    if let StoreUrl::Sled(dir) = url {
        if !create && !dir.join("log").exists() {
            anyhow::bail!("no ledger at {} (is --data-dir right?)", dir.display());
        }
    }
    open_store(url, LogConfig::default())
}

fn verify(url: &StoreUrl) -> anyhow::Result<()> {
    let OpenedStore { store: log, .. } = open_existing(url, false)?;
    let report = log.verify()?;
    out!(
        "ok: {} events, {} tickets, head hash {}",
        report.events,
        report.tickets,
        report.head_hash.to_hex()
    );
    Ok(())
}

fn rebuild(url: &StoreUrl) -> anyhow::Result<()> {
    let OpenedStore { store, home } = open_existing(url, false)?;
    let reader = store.reader();
    let reader = reader.as_ref();
    let started = Instant::now();
    let bar = indicatif::ProgressBar::new(reader.head());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} events, {per_sec}, eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let ledger = rebuild::fold_all(reader, |position| bar.set_position(position))?;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let events = ledger.position();
    let cfg = Config::default();
    let differences = match snapshot::load(&home) {
        Ok(previous) => {
            // Bring the previous projections to the same position, then compare views.
            let mut old = previous.ledger;
            rebuild::catch_up_with(&mut old, reader, |_| {})?;
            rebuild::differences(&old, &ledger, rebuild::view_time(reader, events)?, &cfg)
        }
        Err(snapshot::Unusable::Missing) => Vec::new(),
        Err(e) => {
            say!("previous snapshot not compared: {e}");
            Vec::new()
        }
    };
    let anchor = service::state::anchor_hash(reader, events)?;
    snapshot::save(&home, &ledger, anchor)?.commit()?;
    store.close()?;
    let per_s =
        f64::from(u32::try_from(events).unwrap_or(u32::MAX)) / elapsed.as_secs_f64().max(1e-9);
    out!(
        "rebuilt {} tickets from {events} events in {:.2} s ({per_s:.0} events/s); snapshot swapped in",
        ledger.ticket_count(),
        elapsed.as_secs_f64()
    );
    report_differences(&differences);
    Ok(())
}

pub fn report_differences(differences: &[TicketId]) {
    if differences.is_empty() {
        out!("no ticket view differs from the previous projections");
    } else {
        out!(
            "{} ticket views differ from the previous projections (a fold bug or a changed rule): {}",
            differences.len(),
            differences.iter().map(TicketId::as_str).collect::<Vec<_>>().join(", ")
        );
    }
}

fn replay(
    store: &StoreArg,
    server: Option<&str>,
    ticket: &str,
    as_of: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    let ticket = TicketId::parse(ticket)?;
    let (timeline, head) = match server {
        Some(url) => {
            let client = Client::new(url)?;
            let path = match as_of {
                Some(p) => format!("/v1/tickets/{ticket}/timeline?as_of={p}"),
                None => format!("/v1/tickets/{ticket}/timeline"),
            };
            let body = client.get(&path)?.ok()?;
            let entries: Vec<serde_json::Value> =
                body["timeline"].as_array().cloned().unwrap_or_default();
            let head = entries
                .last()
                .and_then(|e| e["event"]["position"].as_u64())
                .unwrap_or(0);
            (entries, head)
        }
        None => {
            let log = open_existing(&store.url()?, false)?.store;
            let reader = log.reader();
            let reader = reader.as_ref();
            let head = as_of.unwrap_or(reader.head()).min(reader.head());
            let events = rebuild::events_up_to(reader, head)?;
            let timeline = projections::timeline(&events, &ticket, &Config::default());
            let entries = timeline
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<_>, _>>()?;
            (entries, head)
        }
    };
    if timeline.is_empty() {
        anyhow::bail!("ticket {ticket} has no events up to position {head}");
    }
    if json {
        for entry in &timeline {
            out!("{}", serde_json::to_string(entry)?);
        }
        return Ok(());
    }
    out!(
        "{ticket}: {} events (up to position {head})",
        timeline.len()
    );
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_owned();
    // `label` and the value, or nothing without one.
    let labelled = |label: &str, v: &serde_json::Value| {
        v.as_str()
            .map(|t| format!("{label}{t}"))
            .unwrap_or_default()
    };
    for entry in &timeline {
        let e = &entry["event"];
        let token = labelled(" with ", &e["token_id"]);
        out!(
            "#{:<6} v{:<4} {}  {:<32} by {} ({}){token}",
            e["position"],
            e["version"],
            text(&e["recorded_at"]),
            text(&e["type"]),
            text(&e["actor"]["name"]),
            text(&e["actor"]["kind"]),
        );
        let class = labelled("  runtime: ", &entry["runtime_class"]);
        out!(
            "         state: {:<12} next: {} ({})  failure: {}{class}",
            text(&entry["state"]),
            text(&entry["next_action"]["code"]),
            text(&entry["next_action"]["text"]),
            entry["failure_reason"].as_str().unwrap_or("none"),
        );
    }
    Ok(())
}
