//! Credits as the pages and the API see them: the balance (always the ledger's sum), open
//! holds, local top-ups and the ledger history.

use serde::Serialize;

use super::{Hub, HubError};
use crate::money::MicroUsd;

/// The most one top-up may add: $10,000.
pub const MAX_TOP_UP: MicroUsd = MicroUsd(10_000 * 1_000_000);
/// The longest note a top-up may carry, in characters.
pub const MAX_NOTE_CHARS: usize = 200;

/// The balance, what requests in flight hold, and what is left to spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CreditSummary {
    #[serde(rename = "balance_micro_usd")]
    pub balance: MicroUsd,
    #[serde(rename = "held_micro_usd")]
    pub held: MicroUsd,
    #[serde(rename = "available_micro_usd")]
    pub available: MicroUsd,
}

impl Hub {
    pub fn credit_summary(&self) -> CreditSummary {
        let credits = self.credits();
        let (balance, held) = (credits.balance(), credits.held());
        CreditSummary {
            balance,
            held,
            available: balance - held,
        }
    }

    /// Adds `amount` to the credits: one `topup` line in the ledger, then the in-memory
    /// balance. Returns the new balance.
    pub fn top_up(&self, amount: MicroUsd, note: &str) -> Result<MicroUsd, HubError> {
        check_top_up(amount, note)?;
        let note = note.trim();
        let note = if note.is_empty() { "Top-up" } else { note };
        self.store().append_ledger("topup", amount, note)?;
        self.credits().credit(amount);
        Ok(self.credits().balance())
    }
}

/// A top-up is positive, at most [`MAX_TOP_UP`], with a note of at most
/// [`MAX_NOTE_CHARS`] characters.
pub fn check_top_up(amount: MicroUsd, note: &str) -> Result<(), HubError> {
    if amount <= MicroUsd::ZERO {
        return Err(HubError::bad_input(
            "amount",
            "Enter an amount of credits above zero, like 10 or 2.50.",
        ));
    }
    if amount > MAX_TOP_UP {
        return Err(HubError::bad_input(
            "amount",
            format!("One top-up can add at most {MAX_TOP_UP}."),
        ));
    }
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(HubError::bad_input(
            "note",
            format!("Keep the note to {MAX_NOTE_CHARS} characters or fewer."),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn top_ups_are_bounded() {
        assert!(check_top_up(MicroUsd(1), "").is_ok());
        assert!(check_top_up(MAX_TOP_UP, &"n".repeat(MAX_NOTE_CHARS)).is_ok());
        assert!(check_top_up(MicroUsd::ZERO, "").is_err());
        assert!(check_top_up(MicroUsd(-5), "").is_err());
        assert!(check_top_up(MAX_TOP_UP + MicroUsd(1), "").is_err());
        let long = check_top_up(MicroUsd(1), &"é".repeat(MAX_NOTE_CHARS + 1)).unwrap_err();
        assert!(matches!(long, HubError::BadInput { field: "note", .. }));
    }
}
