//! The daily spend chart: stacked bars per provider, laid out here and drawn as inline SVG
//! by the template, so it reads without JavaScript and within the page's CSP.

use chrono::NaiveDate;

use crate::money::MicroUsd;
use crate::providers::Provider;

pub const WIDTH: i64 = 760;
pub const HEIGHT: i64 = 270;
const LEFT: i64 = 80;
const TOP: i64 = 36;
const PLOT_HEIGHT: i64 = 190;
const BOTTOM: i64 = TOP + PLOT_HEIGHT;
const Y_TICKS: i64 = 4;

/// One provider's share of one day's bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
    pub fill: &'static str,
    /// What a hover shows, e.g. `2025-03-02 · OpenAI · $0.12`.
    pub title: String,
}

/// A labelled position on an axis or in the legend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub x: i64,
    pub y: i64,
    pub text: String,
    pub fill: &'static str,
}

/// Everything the template needs to draw the chart.
#[derive(Debug, Clone)]
pub struct Chart {
    pub width: i64,
    pub height: i64,
    pub left: i64,
    pub right: i64,
    pub bottom: i64,
    pub segments: Vec<Segment>,
    pub y_ticks: Vec<Label>,
    pub x_ticks: Vec<Label>,
    pub legend: Vec<Label>,
    pub total: MicroUsd,
    pub first_day: String,
    pub last_day: String,
}

impl Chart {
    pub fn is_empty(&self) -> bool {
        self.total == MicroUsd::ZERO
    }
}

/// The colour each provider's spend is drawn in.
pub fn colour(provider: Provider) -> &'static str {
    provider.colour()
}

/// Lays out one stacked bar per day in `days` from (day, provider, cost) rows.
pub fn daily_by_provider(days: &[NaiveDate], costs: &[(String, String, MicroUsd)]) -> Chart {
    let per_day: Vec<[MicroUsd; 3]> = days
        .iter()
        .map(|d| day_costs(&d.to_string(), costs))
        .collect();
    let max_day = per_day
        .iter()
        .map(|c| c.iter().fold(MicroUsd::ZERO, |a, &b| a + b))
        .max()
        .unwrap_or(MicroUsd::ZERO);
    let scale_max = nice_ceiling(max_day);
    let slot = (WIDTH - LEFT - 20) / i64::try_from(days.len().max(1)).unwrap_or(1);
    let mut segments = Vec::new();
    for (i, (day, costs)) in days.iter().zip(&per_day).enumerate() {
        let x = LEFT + slot * i64::try_from(i).unwrap_or(0) + slot / 6;
        segments.extend(stack(day, costs, x, slot - slot / 3, scale_max));
    }
    Chart {
        width: WIDTH,
        height: HEIGHT,
        left: LEFT,
        right: LEFT + slot * i64::try_from(days.len()).unwrap_or(0),
        bottom: BOTTOM,
        total: per_day.iter().flatten().fold(MicroUsd::ZERO, |a, &b| a + b),
        segments,
        y_ticks: y_ticks(scale_max),
        x_ticks: x_ticks(days, slot),
        legend: legend(),
        first_day: days.first().map(|d| d.to_string()).unwrap_or_default(),
        last_day: days.last().map(|d| d.to_string()).unwrap_or_default(),
    }
}

fn day_costs(day: &str, costs: &[(String, String, MicroUsd)]) -> [MicroUsd; 3] {
    let mut out = [MicroUsd::ZERO; 3];
    for (_, provider, cost) in costs.iter().filter(|(d, _, _)| d == day) {
        if let Some(i) = Provider::ALL.iter().position(|p| p.as_str() == provider) {
            out[i] += *cost;
        }
    }
    out
}

/// One day's segments, bottom up, each ending where the running total's height does so the
/// stack never drifts from rounding.
fn stack(
    day: &NaiveDate,
    costs: &[MicroUsd; 3],
    x: i64,
    width: i64,
    scale_max: MicroUsd,
) -> Vec<Segment> {
    let mut below = MicroUsd::ZERO;
    let mut segments = Vec::new();
    for (provider, &cost) in Provider::ALL.iter().zip(costs) {
        if cost <= MicroUsd::ZERO {
            continue;
        }
        let bottom = BOTTOM - pixels(below, scale_max);
        below += cost;
        let top = BOTTOM - pixels(below, scale_max);
        segments.push(Segment {
            x,
            y: top,
            width,
            // A tiny spend still shows as a sliver.
            height: (bottom - top).max(1),
            fill: colour(*provider),
            title: format!("{day} · {} · {cost}", provider.display_name()),
        });
    }
    segments
}

fn pixels(amount: MicroUsd, scale_max: MicroUsd) -> i64 {
    let px = i128::from(amount.0) * i128::from(PLOT_HEIGHT) / i128::from(scale_max.0.max(1));
    i64::try_from(px).unwrap_or(PLOT_HEIGHT)
}

/// The smallest 1, 2 or 5 × 10ⁿ micro-USD step whose four ticks cover `max`, so even a day of
/// fractions of a cent draws a visible bar; a two-cent scale when nothing was spent.
fn nice_ceiling(max: MicroUsd) -> MicroUsd {
    let floor = if max.0 <= 0 { 10_000 } else { 0 };
    let mut magnitude: i64 = 1;
    loop {
        for step in [1, 2, 5] {
            let candidate = step * magnitude * Y_TICKS;
            if candidate >= max.0 && candidate >= floor {
                return MicroUsd(candidate);
            }
        }
        magnitude = match magnitude.checked_mul(10) {
            Some(m) => m,
            None => return max,
        };
    }
}

fn y_ticks(scale_max: MicroUsd) -> Vec<Label> {
    (0..=Y_TICKS)
        .map(|i| Label {
            x: LEFT - 8,
            y: BOTTOM - PLOT_HEIGHT * i / Y_TICKS,
            text: MicroUsd(scale_max.0 * i / Y_TICKS).to_string(),
            fill: "#5d6677",
        })
        .collect()
}

/// Every fifth day is labelled, counting back from the last so today always is.
fn x_ticks(days: &[NaiveDate], slot: i64) -> Vec<Label> {
    let last = days.len().saturating_sub(1);
    days.iter()
        .enumerate()
        .filter(|(i, _)| (last - i) % 5 == 0)
        .map(|(i, d)| Label {
            x: LEFT + slot * i64::try_from(i).unwrap_or(0) + slot / 2,
            y: BOTTOM + 18,
            text: d.format("%b %-d").to_string(),
            fill: "#5d6677",
        })
        .collect()
}

fn legend() -> Vec<Label> {
    Provider::ALL
        .iter()
        .enumerate()
        .map(|(i, p)| Label {
            x: LEFT + 150 * i64::try_from(i).unwrap_or(0),
            y: 12,
            text: p.display_name().to_string(),
            fill: colour(*p),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn days() -> Vec<NaiveDate> {
        let last = NaiveDate::from_ymd_opt(2025, 3, 30).unwrap();
        (0..30).rev().map(|n| last - chrono::Days::new(n)).collect()
    }

    #[test]
    fn bars_stack_to_the_day_total_on_a_nice_scale() {
        let costs = vec![
            (
                "2025-03-30".to_string(),
                "openai".to_string(),
                MicroUsd(300_000),
            ),
            (
                "2025-03-30".to_string(),
                "gemini".to_string(),
                MicroUsd(500_000),
            ),
            (
                "2025-03-01".to_string(),
                "anthropic".to_string(),
                MicroUsd(100_000),
            ),
        ];
        let chart = daily_by_provider(&days(), &costs);
        assert_eq!(chart.total, MicroUsd(900_000));
        // 0.80 peaks under a $0.80 scale: ticks at $0.00, $0.20 … $0.80.
        assert_eq!(chart.y_ticks.last().unwrap().text, "$0.80");
        assert_eq!(chart.y_ticks[1].text, "$0.20");
        assert_eq!(chart.segments.len(), 3);
        let last_day: Vec<&Segment> = chart
            .segments
            .iter()
            .filter(|s| s.title.starts_with("2025-03-30"))
            .collect();
        assert_eq!(last_day.len(), 2);
        assert_eq!(last_day[0].y + last_day[0].height, BOTTOM);
        assert_eq!(last_day[1].y, TOP, "the tallest bar reaches the top");
        assert_eq!(last_day[0].y, last_day[1].y + last_day[1].height);
        assert!(last_day[1].title.contains("Google Gemini · $0.50"));
        assert_eq!(chart.x_ticks.last().unwrap().text, "Mar 30");
        assert_eq!(chart.x_ticks.len(), 6);
    }

    #[test]
    fn fractions_of_a_cent_get_a_scale_of_their_own() {
        assert_eq!(nice_ceiling(MicroUsd(149)), MicroUsd(200));
        assert_eq!(nice_ceiling(MicroUsd(1_137)), MicroUsd(2_000));
        assert_eq!(nice_ceiling(MicroUsd(0)), MicroUsd(20_000));
    }

    #[test]
    fn an_empty_month_still_has_axes() {
        let chart = daily_by_provider(&days(), &[]);
        assert!(chart.is_empty());
        assert!(chart.segments.is_empty());
        assert_eq!(chart.y_ticks.last().unwrap().text, "$0.02");
    }
}
