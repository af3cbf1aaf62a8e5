//! Time as the ledger sees it: block times in milliseconds since the Unix epoch (UTC), and
//! calendar dates in days since 1970-01-01. The ledger never reads a clock: times are inputs.

use crate::FieldError;
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode, Serialize, Deserialize)]
pub struct Timestamp(pub u64);

pub const MS_PER_DAY: u64 = 86_400_000;

impl Timestamp {
    pub fn millis(self) -> u64 {
        self.0
    }
    /// The UTC calendar day this instant falls in.
    pub fn date(self) -> Date {
        // u64 ms / day fits i32 days for 5.8 million years.
        Date(i32::try_from(self.0 / MS_PER_DAY).unwrap_or(i32::MAX))
    }
    pub fn saturating_add_ms(self, ms: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }
}
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = i64::try_from(self.0 / 1000).unwrap_or(i64::MAX);
        match time::OffsetDateTime::from_unix_timestamp(secs) {
            Ok(t) => write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                self.0 % 1000
            ),
            Err(_) => write!(f, "{}ms", self.0),
        }
    }
}
impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A calendar date (UTC), as days since 1970-01-01.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Date(pub i32);

const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

impl Date {
    pub fn from_ymd(year: i32, month: u8, day: u8) -> Result<Date, FieldError> {
        let month = time::Month::try_from(month).map_err(|e| FieldError::new("", format!("bad month: {e}")))?;
        let d = time::Date::from_calendar_date(year, month, day)
            .map_err(|e| FieldError::new("", format!("bad date: {e}")))?;
        Ok(Date(d.to_julian_day() - UNIX_EPOCH_JULIAN_DAY))
    }
    /// Parses `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Result<Date, FieldError> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let d = time::Date::parse(s, format)
            .map_err(|e| FieldError::new("", format!("{s:?} is not a YYYY-MM-DD date: {e}")))?;
        Ok(Date(d.to_julian_day() - UNIX_EPOCH_JULIAN_DAY))
    }
    pub fn days(self) -> i32 {
        self.0
    }
    pub fn add_days(self, days: i32) -> Date {
        Date(self.0.saturating_add(days))
    }
    /// The first instant of this day.
    pub fn start(self) -> Timestamp {
        Timestamp(u64::try_from(self.0).unwrap_or(0).saturating_mul(MS_PER_DAY))
    }
    fn to_time(self) -> Option<time::Date> {
        time::Date::from_julian_day(self.0.checked_add(UNIX_EPOCH_JULIAN_DAY)?).ok()
    }
    pub fn year(self) -> i32 {
        self.to_time().map_or(0, |d| d.year())
    }
    pub fn month(self) -> u8 {
        self.to_time().map_or(0, |d| u8::from(d.month()))
    }
}
impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_time() {
            Some(d) => write!(f, "{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()),
            None => write!(f, "day {}", self.0),
        }
    }
}
impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
impl TryFrom<String> for Date {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        Date::parse(&s)
    }
}
impl From<Date> for String {
    fn from(d: Date) -> String {
        d.to_string()
    }
}

/// A half-year, the period of KP production statistics (Annex III).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct HalfYear {
    pub year: u16,
    /// 1 (January to June) or 2 (July to December).
    pub half: u8,
}

impl HalfYear {
    pub fn new(year: u32, half: u32) -> Result<HalfYear, FieldError> {
        let year = u16::try_from(year)
            .ok()
            .filter(|y| (2000..=2999).contains(y))
            .ok_or_else(|| FieldError::new("year", format!("{year} is not a year from 2000 to 2999")))?;
        let half = u8::try_from(half)
            .ok()
            .filter(|h| (1..=2).contains(h))
            .ok_or_else(|| FieldError::new("half", format!("{half} is not 1 or 2")))?;
        Ok(HalfYear { year, half })
    }
    pub fn first_day(self) -> Date {
        let month = if self.half == 1 { 1 } else { 7 };
        Date::from_ymd(i32::from(self.year), month, 1).unwrap_or_default()
    }
}
impl fmt::Display for HalfYear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-H{}", self.year, self.half)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let d = Date::parse("2026-11-22").unwrap();
        assert_eq!(d.to_string(), "2026-11-22");
        assert_eq!(Date::from_ymd(1970, 1, 1).unwrap(), Date(0));
        assert_eq!(d.start().date(), d);
        assert_eq!((d.year(), d.month()), (2026, 11));
        assert!(Date::parse("2026-02-30").is_err());
        assert!(Date::parse("26-1-1").is_err());
        assert_eq!(Timestamp(1_700_000_000_123).to_string(), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn half_years() {
        assert_eq!(HalfYear::new(2026, 2).unwrap().first_day().to_string(), "2026-07-01");
        assert_eq!(HalfYear::new(2026, 3).unwrap_err().field, "half");
        assert_eq!(HalfYear::new(1999, 1).unwrap_err().field, "year");
    }
}
