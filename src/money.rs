//! Money as integers: micro-USD for balances and costs, pico-USD per token for rates.

use std::fmt;
use std::ops::{Add, AddAssign, Neg, Sub};

use serde::{Deserialize, Serialize};

/// An amount of money in micro-USD (1 USD = 1,000,000). Never a float.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct MicroUsd(pub i64);

impl MicroUsd {
    pub const ZERO: MicroUsd = MicroUsd(0);

    pub fn from_dollars(dollars: i64) -> Self {
        MicroUsd(dollars * 1_000_000)
    }

    /// Rounds a pico-USD amount up to the next whole micro-USD.
    pub fn from_pico_ceil(pico: i128) -> Self {
        let micro = if pico <= 0 {
            pico / 1_000_000
        } else {
            (pico + 999_999) / 1_000_000
        };
        MicroUsd(i64::try_from(micro).unwrap_or(i64::MAX))
    }

    /// Parses a dollar amount as a person types it (`10`, `2.50`, `$0.125`) exactly, without
    /// floats: at most six decimals, no sign, no exponent.
    pub fn parse_dollars(text: &str) -> Result<MicroUsd, String> {
        let text = text.trim();
        let text = text.strip_prefix('$').unwrap_or(text).trim();
        let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() && frac.is_empty() || !digits(whole) || !digits(frac) {
            return Err(format!(
                "“{text}” is not an amount in dollars, like 10 or 2.50"
            ));
        }
        if frac.len() > 6 {
            return Err("Amounts have at most six decimals.".to_string());
        }
        if whole.len() > 12 {
            return Err("That amount is far too large.".to_string());
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            parse_digits(whole)?
        };
        let frac: i64 = if frac.is_empty() {
            0
        } else {
            parse_digits(&format!("{frac:0<6}"))?
        };
        Ok(MicroUsd(whole * 1_000_000 + frac))
    }
}

fn parse_digits(s: &str) -> Result<i64, String> {
    s.parse()
        .map_err(|_| format!("“{s}” is not an amount in dollars, like 10 or 2.50"))
}

impl Add for MicroUsd {
    type Output = MicroUsd;
    fn add(self, rhs: Self) -> Self {
        MicroUsd(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for MicroUsd {
    fn add_assign(&mut self, rhs: Self) {
        self.0 = self.0.saturating_add(rhs.0);
    }
}

impl Sub for MicroUsd {
    type Output = MicroUsd;
    fn sub(self, rhs: Self) -> Self {
        MicroUsd(self.0.saturating_sub(rhs.0))
    }
}

impl Neg for MicroUsd {
    type Output = MicroUsd;
    fn neg(self) -> Self {
        MicroUsd(-self.0)
    }
}

/// Shows dollars: two decimals for whole cents, up to six when smaller amounts matter.
impl fmt::Display for MicroUsd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let dollars = abs / 1_000_000;
        let micros = abs % 1_000_000;
        if micros % 10_000 == 0 {
            write!(f, "{sign}${dollars}.{:02}", micros / 10_000)
        } else {
            let frac = format!("{micros:06}");
            write!(f, "{sign}${dollars}.{}", frac.trim_end_matches('0'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_to_the_next_micro_dollar() {
        assert_eq!(MicroUsd::from_pico_ceil(8_850_000), MicroUsd(9));
        assert_eq!(MicroUsd::from_pico_ceil(9_000_000), MicroUsd(9));
        assert_eq!(MicroUsd::from_pico_ceil(1), MicroUsd(1));
        assert_eq!(MicroUsd::from_pico_ceil(0), MicroUsd(0));
    }

    #[test]
    fn parses_dollars_exactly() {
        assert_eq!(MicroUsd::parse_dollars("10"), Ok(MicroUsd(10_000_000)));
        assert_eq!(MicroUsd::parse_dollars(" $2.50 "), Ok(MicroUsd(2_500_000)));
        assert_eq!(MicroUsd::parse_dollars("0.1"), Ok(MicroUsd(100_000)));
        assert_eq!(MicroUsd::parse_dollars(".000001"), Ok(MicroUsd(1)));
        assert_eq!(MicroUsd::parse_dollars("3."), Ok(MicroUsd(3_000_000)));
        for bad in [
            "",
            "$",
            ".",
            "-1",
            "1e3",
            "2,50",
            "1.0000001",
            "abc",
            "1.2.3",
            "9999999999999",
        ] {
            assert!(MicroUsd::parse_dollars(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn displays_dollars() {
        assert_eq!(MicroUsd(5_000_000).to_string(), "$5.00");
        assert_eq!(MicroUsd(120_000).to_string(), "$0.12");
        assert_eq!(MicroUsd(1_137).to_string(), "$0.001137");
        assert_eq!(MicroUsd(-2_500_000).to_string(), "-$2.50");
    }
}
