//! Sums of trade: carats, value and certificate counts, by HS code and by counterpart.

use crate::model::CertRecord;
use kp_domain::{Carats, HsCode, ParticipantId, UsdCents};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// Carats, value and number of certificates.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug, Serialize)]
pub struct Amount {
    /// Hundredths of a carat.
    pub carats: Carats,
    /// US cents.
    pub value: UsdCents,
    pub certificates: u64,
}

impl Amount {
    pub(crate) fn add(&mut self, carats: u64, value: u64) {
        self.carats = Carats(self.carats.0.saturating_add(carats));
        self.value = UsdCents(self.value.0.saturating_add(value));
        self.certificates = self.certificates.saturating_add(1);
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, {}, {} certificate(s)", self.carats, self.value, self.certificates)
    }
}

/// An amount under one HS code (`certificates`: those with a line of that code).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct HsAmount {
    pub hs_code: HsCode,
    #[serde(flatten)]
    pub amount: Amount,
}

/// An amount traded with one counterpart.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct CounterpartAmount {
    pub counterpart: ParticipantId,
    #[serde(flatten)]
    pub amount: Amount,
}

/// An amount under one HS code with one counterpart.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct Cell {
    pub hs_code: HsCode,
    pub counterpart: ParticipantId,
    #[serde(flatten)]
    pub amount: Amount,
}

/// One direction of trade (exports or imports) over a period.
#[derive(Clone, PartialEq, Eq, Default, Debug, Serialize)]
pub struct Flow {
    pub total: Amount,
    /// In HS code order; codes without trade are left out.
    pub by_hs_code: Vec<HsAmount>,
    /// In participant id order.
    pub by_counterpart: Vec<CounterpartAmount>,
    /// Per (HS code, counterpart), in that order.
    pub cells: Vec<Cell>,
}

impl Flow {
    /// The amount for one HS code (zero if none).
    pub fn hs(&self, code: HsCode) -> Amount {
        self.by_hs_code.iter().find(|h| h.hs_code == code).map(|h| h.amount).unwrap_or_default()
    }
    /// The amount with one counterpart (zero if none).
    pub fn counterpart(&self, id: ParticipantId) -> Amount {
        self.by_counterpart.iter().find(|c| c.counterpart == id).map(|c| c.amount).unwrap_or_default()
    }
}

#[derive(Default, Debug)]
pub(crate) struct FlowBuilder {
    total: Amount,
    by_hs: BTreeMap<HsCode, Amount>,
    by_counterpart: BTreeMap<ParticipantId, Amount>,
    cells: BTreeMap<(HsCode, ParticipantId), Amount>,
}

impl FlowBuilder {
    pub fn add(&mut self, c: &CertRecord, counterpart: ParticipantId) {
        self.total.add(c.carats, c.value);
        self.by_counterpart.entry(counterpart).or_default().add(c.carats, c.value);
        for (code, carats, value) in c.lines.iter() {
            self.by_hs.entry(code).or_default().add(carats, value);
            self.cells.entry((code, counterpart)).or_default().add(carats, value);
        }
    }
    pub fn finish(self) -> Flow {
        Flow {
            total: self.total,
            by_hs_code: self.by_hs.into_iter().map(|(hs_code, amount)| HsAmount { hs_code, amount }).collect(),
            by_counterpart: self
                .by_counterpart
                .into_iter()
                .map(|(counterpart, amount)| CounterpartAmount { counterpart, amount })
                .collect(),
            cells: self
                .cells
                .into_iter()
                .map(|((hs_code, counterpart), amount)| Cell { hs_code, counterpart, amount })
                .collect(),
        }
    }
}

/// Writes a flow's totals as indented lines (for the `Display` of reports).
pub(crate) fn write_flow(f: &mut fmt::Formatter<'_>, title: &str, flow: &Flow) -> fmt::Result {
    writeln!(f, "  {title}: {}", flow.total)?;
    for h in &flow.by_hs_code {
        writeln!(f, "    HS {}: {}", h.hs_code, h.amount)?;
    }
    for c in &flow.by_counterpart {
        writeln!(f, "    with {}: {}", c.counterpart, c.amount)?;
    }
    Ok(())
}

/// One CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180).
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// One CSV line from its fields (RFC 4180 quoting), ending with `\n`.
pub fn csv_line<S: AsRef<str>>(fields: &[S]) -> String {
    let mut line = fields.iter().map(|s| csv_field(s.as_ref())).collect::<Vec<_>>().join(",");
    line.push('\n');
    line
}
