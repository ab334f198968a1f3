//! Dollars as whole nano-dollars, and what a runtime spent (SPEC §13): the sums the fold
//! (budgets) and the cost views share.

use super::Runtime;

pub(crate) const NANOS_PER_USD: f64 = 1e9;

/// One model's share of a runtime's spend.
pub(crate) struct Line<'a> {
    pub(crate) model: &'a str,
    pub(crate) nanos: Option<u64>,
    pub(crate) input: u64,
    pub(crate) cached: u64,
    pub(crate) output: u64,
}

pub(crate) fn nanos(usd: f64) -> u64 {
    // decide refuses negative and non-finite costs; a raw append's are clamped here.
    if usd.is_finite() && usd > 0.0 {
        // Positive and finite, so no sign is lost; `as` saturates a too-large value at
        // u64::MAX (18 billion dollars), never UB.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = (usd * NANOS_PER_USD).round() as u64;
        n
    } else {
        0
    }
}

pub(crate) fn lines(r: &Runtime) -> Vec<Line<'_>> {
    let fallback = r.model.as_deref().unwrap_or("unknown");
    let mut lines: Vec<Line<'_>> = r
        .usage
        .iter()
        .map(|m| Line {
            model: m.model.as_deref().unwrap_or(fallback),
            nanos: m.cost_usd.map(nanos),
            input: m.input_tokens,
            cached: m.cached_input_tokens,
            output: m.output_tokens,
        })
        .collect();
    let harvest_cost = r.facts.harvest.as_ref().and_then(|h| h.cost_usd);
    if let Some(usd) = harvest_cost {
        if lines.iter().all(|l| l.nanos.is_none()) {
            match lines.first_mut() {
                Some(first) => first.nanos = Some(nanos(usd)),
                None => lines.push(Line {
                    model: fallback,
                    nanos: Some(nanos(usd)),
                    input: 0,
                    cached: 0,
                    output: 0,
                }),
            }
        }
    }
    lines
}

/// A runtime's spend by model, in nanodollars (lines that tell no cost left out).
pub(crate) fn spend_by_model(r: &Runtime) -> Vec<(&str, u64)> {
    lines(r)
        .into_iter()
        .filter_map(|l| l.nanos.map(|n| (l.model, n)))
        .collect()
}

/// A runtime's whole spend, in nanodollars (0 when it reported none).
pub(crate) fn spend_nanos(r: &Runtime) -> u64 {
    lines(r)
        .iter()
        .filter_map(|l| l.nanos)
        .fold(0u64, u64::saturating_add)
}

/// Nanodollars as dollars.
pub(crate) fn usd(nanos: u64) -> f64 {
    nanos as f64 / NANOS_PER_USD
}
