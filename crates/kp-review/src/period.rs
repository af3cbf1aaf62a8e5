//! Statistical periods: quarters (trade, Annex III) and half-years (production).

use kp_domain::{Date, HalfYear};
use serde::{Serialize, Serializer};
use std::fmt;

/// A calendar quarter, `2026-Q1` to `2026-Q4`. Certificates fall in the quarter of their issue
/// date.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Quarter {
    pub year: i32,
    /// 1 to 4.
    pub quarter: u8,
}

impl Quarter {
    pub fn of(date: Date) -> Quarter {
        Quarter { year: date.year(), quarter: date.month().saturating_sub(1) / 3 + 1 }
    }
    /// The half-year this quarter belongs to.
    pub fn half(self) -> Half {
        Half { year: self.year, half: if self.quarter <= 2 { 1 } else { 2 } }
    }
}

/// A half-year, `2026-H1` (January to June) or `2026-H2`: the period of production reports.
/// Unlike [`HalfYear`] it holds any year, so that odd dates never fail.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Half {
    pub year: i32,
    /// 1 or 2.
    pub half: u8,
}

impl Half {
    pub fn of(date: Date) -> Half {
        Quarter::of(date).half()
    }
    /// The first and last day of the half-year.
    pub fn days(self) -> (Date, Date) {
        let (first, last) = if self.half == 1 { ((1, 1), (6, 30)) } else { ((7, 1), (12, 31)) };
        let day = |(m, d): (u8, u8)| Date::from_ymd(self.year, m, d).unwrap_or_default();
        (day(first), day(last))
    }
    /// Its two quarters.
    pub fn quarters(self) -> [Quarter; 2] {
        let q = if self.half == 1 { 1 } else { 3 };
        [Quarter { year: self.year, quarter: q }, Quarter { year: self.year, quarter: q + 1 }]
    }
}

impl From<HalfYear> for Half {
    fn from(h: HalfYear) -> Half {
        Half { year: i32::from(h.year), half: h.half }
    }
}

impl fmt::Display for Quarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-Q{}", self.year, self.quarter)
    }
}
impl fmt::Display for Half {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-H{}", self.year, self.half)
    }
}

/// The period a finding concerns: the quarter of a certificate's issue date, or a half-year.
/// Serialized as its text (`2026-Q2`, `2026-H1`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Period {
    Quarter(Quarter),
    Half(Half),
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::Quarter(q) => q.fmt(f),
            Period::Half(h) => h.fmt(f),
        }
    }
}

macro_rules! serialize_as_text {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}
serialize_as_text!(Quarter, Half, Period);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarter_and_half_boundaries() {
        let d = |s| Date::parse(s).unwrap();
        assert_eq!(Quarter::of(d("2026-03-31")).to_string(), "2026-Q1");
        assert_eq!(Quarter::of(d("2026-04-01")).to_string(), "2026-Q2");
        assert_eq!(Quarter::of(d("2026-12-31")).to_string(), "2026-Q4");
        assert_eq!(Half::of(d("2026-06-30")).to_string(), "2026-H1");
        assert_eq!(Half::of(d("2026-07-01")).to_string(), "2026-H2");
        let h2 = Half { year: 2026, half: 2 };
        assert_eq!(h2.days(), (d("2026-07-01"), d("2026-12-31")));
        assert_eq!(h2.quarters().map(|q| q.to_string()), ["2026-Q3", "2026-Q4"]);
    }
}
