//! `mc-ledger bench budgets`: HTTP writes with dispatches in the scope of N budgets against
//! the same load with no budget, arms interleaved (A B, B A, …) on fresh servers in one run,
//! so the ratio is of the same machine at the same time. A dispatch in a budget's scope also
//! writes the budget's stream at its version (SPEC §16), so dispatches covered by the same
//! budgets commit one at a time per budget stream; comments are untouched.

use std::time::Duration;

use clap::Args;
use serde_json::json;

use crate::http::{comment, open_tickets, phase, start_server, Conn};
use crate::{machine, per_second, percentile, print_result, work_dir};

#[derive(Args, Debug)]
pub struct BudgetsArgs {
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Writes per arm and round.
    #[arg(long, default_value_t = 20_000)]
    pub writes: usize,
    #[arg(long, default_value_t = 1000)]
    pub tickets: usize,
    /// Budgets (scope `all`) covering every dispatch in the measured arm.
    #[arg(long, default_value_t = 5)]
    pub budgets: usize,
    /// One write in this many is a dispatch replacing the ticket's runtime (1: all of them).
    #[arg(long, default_value_t = 20)]
    pub dispatch_every: usize,
    /// Rounds of the two arms.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[command(flatten)]
    pub out: crate::Out,
}

struct Arm {
    writes_per_s: f64,
    p99_ms: f64,
    errors: usize,
}

fn arm(dir: &std::path::Path, args: &BudgetsArgs, budgets: usize) -> anyhow::Result<Arm> {
    let (server_rt, opened, addr) = start_server(dir)?;
    open_tickets(addr, args.tickets)?;
    let conn = Conn::open(addr);
    for b in 0..budgets {
        let body = json!({"name": format!("b{b}"), "scope": {"kind": "all"}, "limit_usd": 1e9,
            "default_reservation_usd": 0.01, "actor": {"name": "bench", "kind": "human"}});
        let (status, _) = conn.call("POST", "/v1/budgets", &body.to_string())?;
        anyhow::ensure!(status == 201, "creating budget b{b}: {status}");
    }
    drop(conn);
    let (tickets, every) = (args.tickets, args.dispatch_every.max(1));
    let request = |i: usize| {
        if i.is_multiple_of(every) {
            let body = json!({"dispatch_key": format!("d{i}"), "agent": "claude", "transport": "tmux",
                "tmux_target": format!("mc-{i}"), "replace": true,
                "actor": {"name": "bench", "kind": "orchestrator"}});
            (
                "POST",
                format!("/v1/tickets/LOAD-{}/dispatch", i % tickets),
                body.to_string(),
            )
        } else {
            comment(i, tickets)
        }
    };
    let writes = phase(addr, args.connections, args.writes, &request)?;
    opened.store.close()?;
    drop(server_rt);
    drop(opened);
    Ok(Arm {
        writes_per_s: per_second(writes.requests, writes.elapsed),
        p99_ms: percentile(&writes.latencies, 990),
        errors: writes.errors,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub(crate) fn run(args: BudgetsArgs) -> anyhow::Result<()> {
    let (dir, _guard) = work_dir(args.out.dir.clone())?;
    let (mut none, mut with) = (Vec::new(), Vec::new());
    let mut errors = (0, 0);
    let mut p99 = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        // Alternate which arm goes first, so a drift of the machine hits both alike.
        let order = if round.is_multiple_of(2) {
            [0, args.budgets]
        } else {
            [args.budgets, 0]
        };
        for n in order {
            let a = arm(&dir.join(format!("r{round}-b{n}")), &args, n)?;
            if n == 0 {
                none.push(a.writes_per_s);
                errors.0 += a.errors;
                p99.0.push(a.p99_ms);
            } else {
                with.push(a.writes_per_s);
                errors.1 += a.errors;
                p99.1.push(a.p99_ms);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let (base, measured) = (median(none.clone()), median(with.clone()));
    let line = json!({
        "bench": "budgets",
        "connections": args.connections,
        "writes_per_arm": args.writes,
        "dispatch_every": args.dispatch_every,
        "budgets": args.budgets,
        "rounds": args.rounds,
        "writes_per_s_no_budget": none.iter().map(|v| v.round()).collect::<Vec<_>>(),
        "writes_per_s_with_budgets": with.iter().map(|v| v.round()).collect::<Vec<_>>(),
        "p99_ms_no_budget": median(p99.0),
        "p99_ms_with_budgets": median(p99.1),
        "errors_no_budget": errors.0,
        "errors_with_budgets": errors.1,
        "ratio_median": measured / base.max(1e-9),
        "machine": machine(),
    });
    print_result(&line, args.out.json);
    Ok(())
}
