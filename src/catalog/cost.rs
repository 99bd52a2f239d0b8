//! What a request costs: one formula over [`Usage`] for every provider, and the credit hold
//! placed before a request is forwarded.

use serde::Serialize;

use crate::money::MicroUsd;
use crate::providers::Usage;

use super::{Model, Rates};

/// The exact cost of one request and what is charged for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Exact, in pico-USD.
    pub pico: i128,
    /// Rounded up once, to the next micro-USD.
    pub micro: MicroUsd,
}

/// The cost of `usage` at `model`'s list prices:
///
/// ```text
/// (input − cached − write_5m − write_1h) × in + cached × cached_in
///   + write_5m × write_5m_rate + write_1h × write_1h_rate + output × out
/// ```
///
/// Reasoning tokens are part of `output` and cost nothing extra. The long-context tier is chosen
/// from this request's own total input, cache reads and writes included (the cautious reading
/// where the provider leaves it open). A rate the model lacks (no cache price listed) falls back
/// to the input rate, so tokens are never priced at zero by omission. Unknown models are the
/// caller's to flag: this needs a [`Model`].
pub fn cost(model: &Model, usage: &Usage) -> Cost {
    let rates = model.rates_for_prompt(usage.input_tokens);
    let pico = times(usage.uncached_input_tokens(), rates.input)
        + times(usage.cached_input_tokens, cached_rate(&rates))
        + times(
            usage.cache_write_5m_tokens,
            rates.cache_write_5m.unwrap_or(rates.input),
        )
        + times(
            usage.cache_write_1h_tokens,
            rates.cache_write_1h.unwrap_or(rates.input),
        )
        + times(usage.output_tokens, rates.output);
    Cost {
        pico,
        micro: MicroUsd::from_pico_ceil(pico),
    }
}

/// One line of a request's cost: tokens of one kind at their list price.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostLine {
    pub what: &'static str,
    pub tokens: u64,
    /// USD per million tokens.
    pub price_per_million: f64,
    /// This line's share of the recorded cost; the lines add up to it exactly.
    pub micro_usd: i64,
}

/// The cost of `usage` on `model` as lines that add up to `recorded` micro-USD: each line's
/// exact amount rounded down, the cents of rounding given to the lines with the largest
/// remainders, and any difference from today's prices (a price changed since) as a line of
/// its own.
pub fn cost_lines(model: &Model, usage: &Usage, recorded: MicroUsd) -> Vec<CostLine> {
    let rates = model.rates_for_prompt(usage.input_tokens);
    let kinds = [
        ("input", usage.uncached_input_tokens(), rates.input),
        (
            "cached input",
            usage.cached_input_tokens,
            cached_rate(&rates),
        ),
        (
            "cache write",
            usage.cache_write_tokens(),
            rates.cache_write_5m.unwrap_or(rates.input),
        ),
        ("output", usage.output_tokens, rates.output),
    ];
    let exact: Vec<(&'static str, u64, i64, i128)> = kinds
        .into_iter()
        .filter(|(_, tokens, _)| *tokens > 0)
        .map(|(what, tokens, rate)| (what, tokens, rate, times(tokens, rate)))
        .collect();
    let total: i128 = exact.iter().map(|l| l.3).sum();
    let mut lines: Vec<CostLine> = exact
        .iter()
        .map(|(what, tokens, rate, pico)| CostLine {
            what,
            tokens: *tokens,
            price_per_million: *rate as f64 / 1_000_000.0,
            micro_usd: i64::try_from(pico / PICO_PER_MICRO).unwrap_or(i64::MAX),
        })
        .collect();
    let mut owed =
        MicroUsd::from_pico_ceil(total).0 - lines.iter().map(|l| l.micro_usd).sum::<i64>();
    let mut by_remainder: Vec<usize> = (0..exact.len()).collect();
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(exact[i].3 % PICO_PER_MICRO));
    for i in by_remainder {
        if owed <= 0 {
            break;
        }
        if exact[i].3 % PICO_PER_MICRO > 0 {
            lines[i].micro_usd += 1;
            owed -= 1;
        }
    }
    let difference = recorded.0 - lines.iter().map(|l| l.micro_usd).sum::<i64>();
    if difference != 0 {
        lines.push(CostLine {
            what: "difference from today's prices",
            tokens: 0,
            price_per_million: 0.0,
            micro_usd: difference,
        });
    }
    lines
}

const PICO_PER_MICRO: i128 = 1_000_000;

/// The most a request may cost, held from the credits before it is forwarded: the estimated
/// input at the input rate plus the requested output limit (or, without one, the model's
/// maximum output) at the output rate, at the tier the estimated input falls in. Rounded up.
pub fn hold_estimate(
    model: &Model,
    estimated_input_tokens: u64,
    max_output_tokens: Option<u64>,
) -> MicroUsd {
    let rates = model.rates_for_prompt(estimated_input_tokens);
    let output = max_output_tokens.unwrap_or(model.max_output_tokens);
    let pico = times(estimated_input_tokens, rates.input) + times(output, rates.output);
    MicroUsd::from_pico_ceil(pico)
}

fn cached_rate(rates: &Rates) -> i64 {
    rates.cached_input.unwrap_or(rates.input)
}

fn times(tokens: u64, pico_per_token: i64) -> i128 {
    i128::from(tokens) * i128::from(pico_per_token)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::providers::Provider;

    fn model(provider: Provider, id: &str) -> &'static Model {
        Catalog::embedded().resolve(provider, id).unwrap()
    }

    fn usage(input: u64, cached: u64, w5m: u64, w1h: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            cached_input_tokens: cached,
            cache_write_5m_tokens: w5m,
            cache_write_1h_tokens: w1h,
            output_tokens: output,
            ..Usage::default()
        }
    }

    #[test]
    fn cost_lines_add_up_to_the_recorded_cost() {
        let catalog = Catalog::embedded();
        let model = catalog
            .resolve(Provider::Anthropic, "claude-sonnet-4-5")
            .unwrap();
        let usage = Usage {
            input_tokens: 1_249,
            cached_input_tokens: 1_000,
            cache_write_5m_tokens: 7,
            output_tokens: 26,
            ..Usage::default()
        };
        let recorded = cost(model, &usage).micro;
        let lines = cost_lines(model, &usage, recorded);
        assert_eq!(lines.iter().map(|l| l.micro_usd).sum::<i64>(), recorded.0);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(lines[0].what, "input");
        assert_eq!(lines[0].tokens, 242);
        let changed = cost_lines(model, &usage, MicroUsd(recorded.0 + 5));
        assert_eq!(
            changed.last().unwrap().micro_usd,
            5,
            "a price change shows as its own line"
        );
    }

    #[test]
    fn openai_worked_example_rounds_up_once() {
        // 19 × 0.15 + 10 × 0.60 = 8.85 µUSD → 9
        let c = cost(
            model(Provider::OpenAi, "gpt-4o-mini-2024-07-18"),
            &usage(19, 0, 0, 0, 10),
        );
        assert_eq!(c.pico, 8_850_000);
        assert_eq!(c.micro, MicroUsd(9));
    }

    #[test]
    fn openai_cached_and_reasoning() {
        // gpt-4o: 1000 prompt of which 400 cached, 300 completion of which 200 reasoning.
        // 600 × 2.50 + 400 × 1.25 + 300 × 10.00 = 1500 + 500 + 3000 = 5000 µUSD
        let mut u = usage(1000, 400, 0, 0, 300);
        u.reasoning_tokens = 200;
        let c = cost(model(Provider::OpenAi, "gpt-4o"), &u);
        assert_eq!(c.micro, MicroUsd(5000));
        assert_eq!(c.pico, 5_000_000_000);
        // o3: 10 in, 1 cached (0.50), 5 out incl. reasoning: 9×2 + 0.5 + 5×8 = 58.5 → 59
        let c = cost(model(Provider::OpenAi, "o3"), &usage(10, 1, 0, 0, 5));
        assert_eq!(c.pico, 58_500_000);
        assert_eq!(c.micro, MicroUsd(59));
    }

    #[test]
    fn embeddings_cost_input_only() {
        // 8 × 0.02 = 0.16 µUSD → 1
        let c = cost(
            model(Provider::OpenAi, "text-embedding-3-small"),
            &usage(8, 0, 0, 0, 0),
        );
        assert_eq!(c.pico, 160_000);
        assert_eq!(c.micro, MicroUsd(1));
    }

    #[test]
    fn anthropic_worked_example() {
        // 249 × 3.00 + 26 × 15.00 = 747 + 390 = 1,137 µUSD
        let c = cost(
            model(Provider::Anthropic, "claude-sonnet-4-5-20250929"),
            &usage(249, 0, 0, 0, 26),
        );
        assert_eq!(c.micro, MicroUsd(1137));
        assert_eq!(c.pico, 1_137_000_000);
    }

    #[test]
    fn anthropic_cache_reads_and_writes() {
        // haiku 4.5: plain 100 × 1.00, read 1000 × 0.10, 5m 200 × 1.25, 1h 50 × 2.00, out 10 × 5
        // = 100 + 100 + 250 + 100 + 50 = 600 µUSD; total input 1350.
        let c = cost(
            model(Provider::Anthropic, "claude-haiku-4-5"),
            &usage(1350, 1000, 200, 50, 10),
        );
        assert_eq!(c.micro, MicroUsd(600));
        // Thinking is output: 3 in, 7 out (5 thinking) at sonnet 4.5 = 9 + 105 = 114
        let mut u = usage(3, 0, 0, 0, 7);
        u.reasoning_tokens = 5;
        let c = cost(model(Provider::Anthropic, "claude-sonnet-4-5"), &u);
        assert_eq!(c.micro, MicroUsd(114));
    }

    #[test]
    fn anthropic_long_context_counts_cache_tokens_toward_the_threshold() {
        let sonnet = model(Provider::Anthropic, "claude-sonnet-4-5");
        // 150k plain + 60k cache read = 210k total input > 200k: long-context rates.
        // 150000 × 6.00 + 60000 × 0.60 + 1000 × 22.50 = 900000 + 36000 + 22500 = 958500
        let c = cost(sonnet, &usage(210_000, 60_000, 0, 0, 1000));
        assert_eq!(c.micro, MicroUsd(958_500));
        // Exactly 200k stays on the base tier: 200000 × 3 + 1000 × 15 = 615000
        let c = cost(sonnet, &usage(200_000, 0, 0, 0, 1000));
        assert_eq!(c.micro, MicroUsd(615_000));
    }

    #[test]
    fn gemini_worked_example_adds_thoughts() {
        // 15 × 0.30 + (935 + 1304) × 2.50 = 4.5 + 5597.5 = 5602 µUSD
        let mut u = usage(15, 0, 0, 0, 935 + 1304);
        u.reasoning_tokens = 1304;
        let c = cost(model(Provider::Gemini, "gemini-2.5-flash"), &u);
        assert_eq!(c.pico, 5_602_000_000);
        assert_eq!(c.micro, MicroUsd(5602));
    }

    #[test]
    fn gemini_cached_and_long_context() {
        // flash: 1000 prompt, 800 cached: 200 × 0.30 + 800 × 0.03 + 10 × 2.50 = 60 + 24 + 25
        let c = cost(
            model(Provider::Gemini, "gemini-2.5-flash"),
            &usage(1000, 800, 0, 0, 10),
        );
        assert_eq!(c.micro, MicroUsd(109));
        // pro over 200k: 250000 × 2.50 + 100 × 15.00 = 625000 + 1500
        let pro = model(Provider::Gemini, "gemini-2.5-pro");
        assert_eq!(
            cost(pro, &usage(250_000, 0, 0, 0, 100)).micro,
            MicroUsd(626_500)
        );
        // the same at 200k: 200000 × 1.25 + 100 × 10 = 251000
        assert_eq!(
            cost(pro, &usage(200_000, 0, 0, 0, 100)).micro,
            MicroUsd(251_000)
        );
    }

    #[test]
    fn missing_cache_rates_fall_back_to_input() {
        // gpt-4o lists no cache write price: 100 written tokens cost the input rate.
        let c = cost(model(Provider::OpenAi, "gpt-4o"), &usage(100, 0, 100, 0, 0));
        assert_eq!(c.micro, MicroUsd(250));
        // text-embedding-3-small lists no cached rate.
        let c = cost(
            model(Provider::OpenAi, "text-embedding-3-small"),
            &usage(1000, 500, 0, 0, 0),
        );
        assert_eq!(c.pico, 20_000_000);
    }

    #[test]
    fn zero_usage_costs_nothing() {
        let c = cost(model(Provider::OpenAi, "gpt-4o"), &Usage::default());
        assert_eq!(
            c,
            Cost {
                pico: 0,
                micro: MicroUsd(0)
            }
        );
    }

    #[test]
    fn hold_uses_the_requested_limit_or_the_model_maximum() {
        let mini = model(Provider::OpenAi, "gpt-4o-mini");
        // 100 × 0.15 + 256 × 0.60 = 15 + 153.6 = 168.6 → 169
        assert_eq!(hold_estimate(mini, 100, Some(256)), MicroUsd(169));
        // 16,384 max output × 0.60 = 9830.4, + 15 → 9845.4 → 9846
        assert_eq!(hold_estimate(mini, 100, None), MicroUsd(9846));
        // Over 200k estimated input, the long-context tier applies to the hold too.
        let pro = model(Provider::Gemini, "gemini-2.5-pro");
        assert_eq!(hold_estimate(pro, 200_001, Some(0)), MicroUsd(500_003)); // 200001 × 2.50 = 500002.5
    }
}
