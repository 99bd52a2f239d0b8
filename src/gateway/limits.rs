//! Per-app limits checked before forwarding: requests and tokens per minute, and the
//! monthly budget (spend so far plus the holds of requests in flight).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::money::MicroUsd;

/// A minute, in the microseconds the limits count in.
const MINUTE_US: u128 = 60_000_000;

/// One generic cell rate (GCRA) meter: `tat` is the theoretical arrival time, the moment the
/// meter would be empty again. A request of weight `n` under a limit of `L` per minute moves it
/// on by `n / L` of a minute, and is admitted while that stays within a minute of now. A burst
/// can use a whole minute's allowance at once, but a second burst must wait for the first to
/// drain: no fixed window boundary lets two through back to back.
#[derive(Debug, Default, Clone, Copy)]
struct Cell {
    tat_us: u128,
}

impl Cell {
    /// The new arrival time if `weight` is admitted under `limit`, or the microseconds to wait.
    /// A meter that has drained admits any single request, so one request larger than the
    /// whole limit is not refused forever; it then holds the meter for as long as it weighs.
    fn try_take(&self, limit: u64, weight: u64, now_us: u128) -> Result<u128, u128> {
        let limit = u128::from(limit.max(1));
        let cost = u128::from(weight) * MINUTE_US / limit;
        let start = self.tat_us.max(now_us);
        let next = start + cost;
        if self.tat_us <= now_us || next - now_us <= MINUTE_US {
            Ok(next)
        } else {
            Err(next - MINUTE_US - now_us)
        }
    }

    /// Gives back (or takes more of) the allowance once the real weight is known.
    fn adjust(&mut self, limit: u64, reserved: u64, actual: u64) {
        let limit = u128::from(limit.max(1));
        let per = |n: u64| u128::from(n) * MINUTE_US / limit;
        if actual < reserved {
            self.tat_us = self.tat_us.saturating_sub(per(reserved - actual));
        } else {
            self.tat_us += per(actual - reserved);
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct AppCells {
    requests: Cell,
    tokens: Cell,
}

/// Requests and tokens per minute for every app. Tokens are reserved before a request is
/// forwarded (its estimate) and settled to the real count after, like credit holds, so
/// concurrent requests cannot all pass a limit that allows one.
#[derive(Debug, Default)]
pub struct RateLimits {
    apps: Mutex<HashMap<String, AppCells>>,
}

/// Tokens reserved for one request under its app's per-minute limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenReservation {
    app: String,
    limit: u64,
    tokens: u64,
}

impl RateLimits {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AppCells>> {
        self.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one request against the app's requests-per-minute limit, or says how many
    /// seconds to wait.
    pub fn admit_request(&self, app: &str, rpm: Option<i64>, now_us: u128) -> Result<(), u64> {
        let Some(limit) = positive(rpm) else {
            return Ok(());
        };
        let mut apps = self.lock();
        let cells = cells_of(&mut apps, app);
        cells.requests.tat_us = cells
            .requests
            .try_take(limit, 1, now_us)
            .map_err(wait_secs)?;
        Ok(())
    }

    /// Reserves `tokens` under the app's tokens-per-minute limit, or says how many seconds
    /// to wait. `None` when the app has no such limit.
    pub fn reserve_tokens(
        &self,
        app: &str,
        tpm: Option<i64>,
        tokens: u64,
        now_us: u128,
    ) -> Result<Option<TokenReservation>, u64> {
        let Some(limit) = positive(tpm) else {
            return Ok(None);
        };
        let mut apps = self.lock();
        let cells = cells_of(&mut apps, app);
        cells.tokens.tat_us = cells
            .tokens
            .try_take(limit, tokens, now_us)
            .map_err(wait_secs)?;
        Ok(Some(TokenReservation {
            app: app.to_string(),
            limit,
            tokens,
        }))
    }

    /// Settles a reservation to the tokens the request really used.
    pub fn settle_tokens(&self, reservation: Option<TokenReservation>, actual: u64) {
        let Some(r) = reservation else { return };
        if let Some(cells) = self.lock().get_mut(&r.app) {
            cells.tokens.adjust(r.limit, r.tokens, actual);
        }
    }
}

/// The app's meters, made on its first request: no key is allocated for the others.
fn cells_of<'m>(apps: &'m mut HashMap<String, AppCells>, app: &str) -> &'m mut AppCells {
    if !apps.contains_key(app) {
        apps.insert(app.to_string(), AppCells::default());
    }
    apps.get_mut(app)
        .unwrap_or_else(|| unreachable!("inserted above"))
}

fn positive(limit: Option<i64>) -> Option<u64> {
    limit.map(|l| l.max(0) as u64)
}

fn wait_secs(us: u128) -> u64 {
    u64::try_from(us.div_ceil(1_000_000))
        .unwrap_or(u64::MAX)
        .max(1)
}

#[derive(Debug, Default)]
struct Spend {
    month: String,
    spent: MicroUsd,
    open: MicroUsd,
}

/// What each app spent this month and holds open, for its budget.
#[derive(Debug, Default, Clone)]
pub struct Budgets {
    apps: Arc<Mutex<HashMap<String, Spend>>>,
}

/// The budget refused a request: what is spent and held already.
#[derive(Debug, Clone, Copy)]
pub struct OverBudget {
    pub spent: MicroUsd,
    pub open: MicroUsd,
}

impl Budgets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Spend>> {
        self.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when the app's spend for `month` still has to be loaded from the database.
    pub fn needs_load(&self, app: &str, month: &str) -> bool {
        self.lock().get(app).is_none_or(|s| s.month != month)
    }

    pub fn load(&self, app: &str, month: &str, spent: MicroUsd) {
        let mut apps = self.lock();
        let entry = apps.entry(app.to_string()).or_default();
        if entry.month != month {
            *entry = Spend {
                month: month.to_string(),
                spent,
                open: MicroUsd::ZERO,
            };
        }
    }

    /// What is spent and held, when that already reaches `budget` for `month` (known only
    /// once the month's spend was loaded).
    pub fn exhausted(&self, app: &str, month: &str, budget: MicroUsd) -> Option<OverBudget> {
        let apps = self.lock();
        let s = apps.get(app).filter(|s| s.month == month)?;
        (s.spent + s.open >= budget).then_some(OverBudget {
            spent: s.spent,
            open: s.open,
        })
    }

    /// Reserves `estimate` under `budget` for the month.
    pub fn reserve(
        &self,
        app: &str,
        budget: MicroUsd,
        estimate: MicroUsd,
    ) -> Result<BudgetHold, OverBudget> {
        let mut apps = self.lock();
        let s = apps.entry(app.to_string()).or_default();
        if s.spent + s.open + estimate > budget {
            return Err(OverBudget {
                spent: s.spent,
                open: s.open,
            });
        }
        s.open += estimate;
        Ok(BudgetHold {
            budgets: self.clone(),
            app: app.to_string(),
            amount: estimate,
            open: true,
        })
    }

    /// Adds a committed cost to the app's month and releases its hold.
    pub fn settle(&self, app: &str, hold: Option<BudgetHold>, cost: MicroUsd) {
        let mut apps = self.lock();
        if let Some(s) = apps.get_mut(app) {
            s.spent += cost;
            if let Some(mut h) = hold {
                s.open = s.open - h.amount;
                h.open = false;
            }
        }
    }
}

/// Budget reserved for one request; released on drop unless settled.
#[derive(Debug)]
pub struct BudgetHold {
    budgets: Budgets,
    app: String,
    amount: MicroUsd,
    open: bool,
}

impl Drop for BudgetHold {
    fn drop(&mut self) {
        if self.open {
            if let Some(s) = self.budgets.lock().get_mut(&self.app) {
                s.open = s.open - self.amount;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u128 = 1_000_000;

    #[test]
    fn a_burst_uses_the_minute_and_then_waits_for_it_to_drain() {
        let r = RateLimits::default();
        assert!(r.admit_request("a", Some(2), 120 * S).is_ok());
        assert!(r.admit_request("a", Some(2), 120 * S).is_ok());
        assert_eq!(r.admit_request("a", Some(2), 130 * S), Err(20));
        assert!(
            r.admit_request("b", Some(2), 130 * S).is_ok(),
            "apps are separate"
        );
        assert!(
            r.admit_request("a", Some(2), 150 * S).is_ok(),
            "half a minute frees one"
        );
        assert!(r.admit_request("a", Some(2), 151 * S).is_err());
    }

    #[test]
    fn no_minute_boundary_doubles_a_burst() {
        let r = RateLimits::default();
        for _ in 0..10 {
            assert!(r.admit_request("a", Some(10), 59 * S).is_ok());
        }
        // A fixed window would start afresh at 60 s and let ten more through.
        let admitted = (0..10)
            .filter(|_| r.admit_request("a", Some(10), 61 * S).is_ok())
            .count();
        assert_eq!(admitted, 0);
    }

    #[test]
    fn tokens_are_reserved_before_and_settled_after() {
        let r = RateLimits::default();
        let first = r.reserve_tokens("a", Some(100), 80, 0).unwrap();
        assert!(
            r.reserve_tokens("a", Some(100), 80, 0).is_err(),
            "reserved, not yet used"
        );
        r.settle_tokens(first, 10);
        assert!(
            r.reserve_tokens("a", Some(100), 80, 0).unwrap().is_some(),
            "unused tokens come back"
        );
        assert_eq!(r.reserve_tokens("a", None, 1_000_000, 0), Ok(None));
    }

    #[test]
    fn one_request_larger_than_the_limit_passes_an_idle_meter_only() {
        let r = RateLimits::default();
        assert!(r.reserve_tokens("a", Some(10), 500, 0).is_ok());
        assert!(r.reserve_tokens("a", Some(10), 1, 60 * S).is_err());
    }

    #[test]
    fn budgets_count_spend_and_open_holds() {
        let b = Budgets::default();
        b.load("a", "2026-11", MicroUsd(900));
        let h = b.reserve("a", MicroUsd(1_000), MicroUsd(100)).unwrap();
        assert!(b.reserve("a", MicroUsd(1_000), MicroUsd(1)).is_err());
        assert!(b.exhausted("a", "2026-11", MicroUsd(1_000)).is_some());
        assert!(
            b.exhausted("a", "2026-12", MicroUsd(1_000)).is_none(),
            "another month"
        );
        b.settle("a", Some(h), MicroUsd(40));
        assert!(b.exhausted("a", "2026-11", MicroUsd(1_000)).is_none());
        assert!(b.reserve("a", MicroUsd(1_000), MicroUsd(60)).is_ok());
        assert!(b.reserve("a", MicroUsd(1_000), MicroUsd(61)).is_err());
    }
}
