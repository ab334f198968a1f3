//! `mc-ledger budget …`: create, list and show spend caps on a running server (SPEC §16).

use events::{BudgetPeriod, BudgetScopeKind};
use serde_json::{json, Value};

use crate::named;

use crate::subscription::{list, post, show, ListArgs, Named, On};

#[derive(clap::Subcommand, Debug)]
pub enum BudgetCommand {
    /// Create a budget, or change the one of that name (its period cannot change).
    Create {
        name: String,
        /// What it covers: all, agent, owner, umbrella (and its descendants) or ticket.
        #[arg(long, value_parser = named::<BudgetScopeKind>(), default_value = "all")]
        scope: BudgetScopeKind,
        /// The agent, owner, umbrella or ticket (not with --scope all).
        #[arg(long)]
        value: Option<String>,
        /// Dollars.
        #[arg(long)]
        limit_usd: f64,
        /// total, or a UTC day or month.
        #[arg(long, value_parser = named::<BudgetPeriod>(), default_value = "total")]
        period: BudgetPeriod,
        /// budget_near from this share of the limit (default 80).
        #[arg(long)]
        warn_at_pct: Option<u8>,
        /// What a dispatch without --max-budget-usd reserves (default: a tenth of the limit).
        #[arg(long)]
        default_reservation_usd: Option<f64>,
        #[command(flatten)]
        on: On,
    },
    /// Every budget: limit, spent, reserved, remaining.
    List(ListArgs),
    /// One budget, in full, with the runtimes holding reservations (JSON).
    Show(Named),
}

pub fn run(command: BudgetCommand) -> anyhow::Result<()> {
    match command {
        BudgetCommand::Create {
            name,
            scope,
            value,
            limit_usd,
            period,
            warn_at_pct,
            default_reservation_usd,
            on,
        } => {
            let mut body = json!({
                "name": name, "actor": on.actor(),
                "scope": {"kind": scope},
                "limit_usd": limit_usd, "period": period,
            });
            if let Some(v) = value {
                body["scope"]["value"] = json!(v);
            }
            if let Some(p) = warn_at_pct {
                body["warn_at_pct"] = json!(p);
            }
            if let Some(d) = default_reservation_usd {
                body["default_reservation_usd"] = json!(d);
            }
            post(
                &on,
                "/v1/budgets",
                &body,
                &format!("{name} saved"),
                &format!("{name} unchanged"),
            )
        }
        BudgetCommand::List(args) => list(&args, "/v1/budgets", "budgets", |budgets| {
            out!(
                "{:<20} {:<22} {:<6} {:>10} {:>10} {:>10} {:>10}  STATUS",
                "NAME",
                "SCOPE",
                "PERIOD",
                "LIMIT",
                "SPENT",
                "RESERVED",
                "REMAINING"
            );
            for b in budgets {
                out!(
                    "{:<20} {:<22} {:<6} {:>10} {:>10} {:>10} {:>10}  {}",
                    b["name"].as_str().unwrap_or(""),
                    scope_text(&b["scope"]),
                    b["period"].as_str().unwrap_or(""),
                    dollars(&b["limit_usd"]),
                    dollars(&b["spent_usd"]),
                    dollars(&b["reserved_usd"]),
                    dollars(&b["remaining_usd"]),
                    b["status"].as_str().unwrap_or(""),
                );
            }
        }),
        BudgetCommand::Show(Named { name, on }) => {
            let name =
                percent_encoding::utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC);
            show(&on, &format!("/v1/budgets/{name}"))
        }
    }
}

fn scope_text(scope: &Value) -> String {
    match (scope["kind"].as_str(), scope["value"].as_str()) {
        (Some(kind), Some(value)) => format!("{kind}:{value}"),
        (Some(kind), None) => kind.to_owned(),
        _ => String::new(),
    }
}

fn dollars(v: &Value) -> String {
    v.as_f64().map_or_else(String::new, |d| format!("${d:.2}"))
}
