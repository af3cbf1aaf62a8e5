//! Quantities: integers with their unit in the type. No floating point.

use crate::FieldError;
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A weight in hundredths of a carat (1 ct = 100). A certificate states weights to 0.01 ct.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode, Serialize, Deserialize)]
pub struct Carats(pub u64);

/// A value in US cents.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode, Serialize, Deserialize)]
pub struct UsdCents(pub u64);

impl Carats {
    pub fn hundredths(self) -> u64 {
        self.0
    }
    pub fn checked_add(self, other: Carats) -> Option<Carats> {
        self.0.checked_add(other.0).map(Carats)
    }
}
impl UsdCents {
    pub fn cents(self) -> u64 {
        self.0
    }
    pub fn checked_add(self, other: UsdCents) -> Option<UsdCents> {
        self.0.checked_add(other.0).map(UsdCents)
    }
}
impl fmt::Display for Carats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02} ct", self.0 / 100, self.0 % 100)
    }
}
impl fmt::Debug for Carats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
impl fmt::Display for UsdCents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "USD {}.{:02}", self.0 / 100, self.0 % 100)
    }
}
impl fmt::Debug for UsdCents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The Harmonized System codes of rough diamonds under the KPCS (Annex I element 11).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode, Serialize, Deserialize)]
pub enum HsCode {
    /// 7102.10: unsorted.
    Unsorted,
    /// 7102.21: industrial, unworked or simply sawn, cleaved or bruted.
    Industrial,
    /// 7102.31: non-industrial, unworked or simply sawn, cleaved or bruted.
    NonIndustrial,
}

impl HsCode {
    pub const ALL: [HsCode; 3] = [HsCode::Unsorted, HsCode::Industrial, HsCode::NonIndustrial];

    /// The code as the six digits carried on the wire: 710210, 710221 or 710231.
    pub fn number(self) -> u32 {
        match self {
            HsCode::Unsorted => 710210,
            HsCode::Industrial => 710221,
            HsCode::NonIndustrial => 710231,
        }
    }
    pub fn from_number(n: u32) -> Result<Self, FieldError> {
        Self::ALL.into_iter().find(|c| c.number() == n).ok_or_else(|| {
            FieldError::new("", format!("unknown HS code {n}: rough diamonds are 710210, 710221 or 710231"))
        })
    }
}
impl fmt::Display for HsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.number();
        write!(f, "{}.{}", n / 100, n % 100)
    }
}

/// Carats and value declared under one HS code.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct HsLine {
    pub hs_code: HsCode,
    pub carats: Carats,
    pub value: UsdCents,
}

/// Sums of a list of HS lines, with the checks every list of lines must pass: at least one line,
/// each HS code at most once, in ascending order, every quantity non-zero, no overflow.
pub fn check_hs_lines(lines: &[HsLine]) -> Result<(Carats, UsdCents), FieldError> {
    if lines.is_empty() {
        return Err(FieldError::new("lines", "at least one HS code line is required"));
    }
    let mut carats = Carats(0);
    let mut value = UsdCents(0);
    for (i, line) in lines.iter().enumerate() {
        let at = |f: &str| format!("lines[{i}].{f}");
        if i > 0 && lines[i - 1].hs_code >= line.hs_code {
            return Err(FieldError::new(
                at("hs_code"),
                format!("HS code {} repeated or out of ascending order", line.hs_code),
            ));
        }
        if line.carats.0 == 0 {
            return Err(FieldError::new(at("carats"), "must be greater than zero"));
        }
        if line.value.0 == 0 {
            return Err(FieldError::new(at("value"), "must be greater than zero"));
        }
        carats =
            carats.checked_add(line.carats).ok_or_else(|| FieldError::new(at("carats"), "sum of carats overflows"))?;
        value = value.checked_add(line.value).ok_or_else(|| FieldError::new(at("value"), "sum of values overflows"))?;
    }
    Ok((carats, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hs_codes_round_trip_and_unknown_is_refused() {
        for c in HsCode::ALL {
            assert_eq!(HsCode::from_number(c.number()).unwrap(), c);
        }
        assert_eq!(HsCode::NonIndustrial.to_string(), "7102.31");
        assert!(HsCode::from_number(710299).unwrap_err().problem.contains("unknown HS code 710299"));
    }

    #[test]
    fn lines_are_checked() {
        let l = |c, ct, v| HsLine { hs_code: c, carats: Carats(ct), value: UsdCents(v) };
        assert_eq!(
            check_hs_lines(&[l(HsCode::Unsorted, 5, 7), l(HsCode::NonIndustrial, 1, 1)]).unwrap(),
            (Carats(6), UsdCents(8))
        );
        assert_eq!(check_hs_lines(&[]).unwrap_err().field, "lines");
        assert_eq!(check_hs_lines(&[l(HsCode::Unsorted, 0, 7)]).unwrap_err().field, "lines[0].carats");
        assert_eq!(check_hs_lines(&[l(HsCode::Unsorted, 1, 0)]).unwrap_err().field, "lines[0].value");
        assert_eq!(
            check_hs_lines(&[l(HsCode::Unsorted, 1, 1), l(HsCode::Unsorted, 1, 1)]).unwrap_err().field,
            "lines[1].hs_code"
        );
        assert_eq!(
            check_hs_lines(&[l(HsCode::Unsorted, u64::MAX, 1), l(HsCode::Industrial, 1, 1)]).unwrap_err().field,
            "lines[1].carats"
        );
        assert_eq!(Carats(12345).to_string(), "123.45 ct");
    }
}
