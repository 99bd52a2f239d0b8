//! Per-app limits checked before forwarding: requests and tokens per minute, and the
//! monthly budget (spend so far plus the holds of requests in flight).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::money::MicroUsd;

#[derive(Debug, Default, Clone, Copy)]
struct Window {
    minute: u64,
    requests: u64,
    tokens: u64,
}

/// Fixed one-minute windows per app.
#[derive(Debug, Default)]
pub struct RateLimits {
    windows: Mutex<HashMap<String, Window>>,
}

impl RateLimits {
    /// Counts a request against the app's limits, or says how many seconds to wait.
    pub fn admit(
        &self,
        app: &str,
        rpm: Option<i64>,
        tpm: Option<i64>,
        now_secs: u64,
    ) -> Result<(), u64> {
        if rpm.is_none() && tpm.is_none() {
            return Ok(());
        }
        let minute = now_secs / 60;
        let wait = 60 - now_secs % 60;
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let w = windows.entry(app.to_string()).or_default();
        if w.minute != minute {
            *w = Window {
                minute,
                ..Window::default()
            };
        }
        let over = |limit: Option<i64>, used: u64| limit.is_some_and(|l| used >= l.max(0) as u64);
        if over(rpm, w.requests) || over(tpm, w.tokens) {
            return Err(wait);
        }
        w.requests += 1;
        Ok(())
    }

    /// Adds the tokens a finished request used to its minute.
    pub fn add_tokens(&self, app: &str, tokens: u64, now_secs: u64) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = windows.get_mut(app) {
            if w.minute == now_secs / 60 {
                w.tokens = w.tokens.saturating_add(tokens);
            }
        }
    }
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

    #[test]
    fn requests_per_minute_reset_each_minute() {
        let r = RateLimits::default();
        assert!(r.admit("a", Some(2), None, 120).is_ok());
        assert!(r.admit("a", Some(2), None, 121).is_ok());
        assert_eq!(r.admit("a", Some(2), None, 130), Err(50));
        assert!(
            r.admit("b", Some(2), None, 130).is_ok(),
            "apps are separate"
        );
        assert!(r.admit("a", Some(2), None, 180).is_ok());
    }

    #[test]
    fn tokens_per_minute_count_finished_requests() {
        let r = RateLimits::default();
        assert!(r.admit("a", None, Some(100), 0).is_ok());
        r.add_tokens("a", 150, 1);
        assert!(r.admit("a", None, Some(100), 2).is_err());
    }

    #[test]
    fn budgets_count_spend_and_open_holds() {
        let b = Budgets::default();
        b.load("a", "2026-11", MicroUsd(900));
        let h = b.reserve("a", MicroUsd(1_000), MicroUsd(100)).unwrap();
        assert!(b.reserve("a", MicroUsd(1_000), MicroUsd(1)).is_err());
        b.settle("a", Some(h), MicroUsd(40));
        assert!(b.reserve("a", MicroUsd(1_000), MicroUsd(60)).is_ok());
        assert!(b.reserve("a", MicroUsd(1_000), MicroUsd(61)).is_err());
    }
}
