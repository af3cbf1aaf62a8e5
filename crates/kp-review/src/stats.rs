//! KP statistics in the manner of Annex III: quarterly trade, semi-annual production.

use crate::flow::{Amount, Flow, FlowBuilder, csv_line};
use crate::model::{EventRef, Review};
use crate::period::{Half, Quarter};
use crate::report::decimal;
use kp_domain::{Carats, HsLine, ParticipantId, UsdCents};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Trade statistics of one calendar year, per participant and quarter, with semi-annual
/// production and world totals.
///
/// **Voided certificates are excluded** throughout. A certificate counts in the quarter of its
/// issue date, with its current (latest amended) content; exports are the certificates a
/// participant issued, imports those naming it as importer, whether or not receipt was
/// confirmed. Production is each participant's latest report revision for the half-year.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Stats {
    pub year: i32,
    /// The participant asked for, or `None` for every participant.
    pub participant: Option<ParticipantId>,
    /// In id order: the one asked for, or every participant the ledger knows.
    pub participants: Vec<ParticipantStats>,
    /// World totals per quarter (all participants, whichever were asked for). Every
    /// certificate is one participant's export and another's import, so world exports and
    /// imports are equal.
    pub world: Vec<WorldQuarter>,
    /// World production per half-year (sum of every participant's reports).
    pub world_production: Vec<ProductionHalf>,
}

/// One participant's year.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ParticipantStats {
    pub participant: ParticipantId,
    pub name: Option<String>,
    /// Q1 to Q4.
    pub quarters: Vec<QuarterStats>,
    /// H1 and H2.
    pub production: Vec<ProductionHalf>,
}

/// One participant's trade in one quarter.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct QuarterStats {
    pub quarter: Quarter,
    pub exports: Flow,
    pub imports: Flow,
}

/// Production in a half-year.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ProductionHalf {
    pub period: Half,
    /// Whether a report exists (for the world: whether any participant reported).
    pub reported: bool,
    /// The revision used (`None` for the world, or when not reported).
    pub revision: Option<u32>,
    pub carats: Carats,
    pub value: UsdCents,
    /// In HS code order.
    pub by_hs_code: Vec<HsLine>,
    /// The report's event (`None` for the world, or when not reported).
    pub event: Option<EventRef>,
}

/// World trade in one quarter.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct WorldQuarter {
    pub quarter: Quarter,
    pub exports: Amount,
    pub imports: Amount,
}

impl ParticipantStats {
    /// The quarter's statistics, `quarter` from 1 to 4.
    pub fn quarter(&self, quarter: u8) -> Option<&QuarterStats> {
        self.quarters.iter().find(|q| q.quarter.quarter == quarter)
    }
    /// The half-year's production, `half` 1 or 2.
    pub fn half(&self, half: u8) -> Option<&ProductionHalf> {
        self.production.iter().find(|p| p.period.half == half)
    }
}

fn quarters(year: i32) -> [Quarter; 4] {
    [1, 2, 3, 4].map(|quarter| Quarter { year, quarter })
}

impl Review {
    /// The statistics of `year`, for one participant or (with `None`) for every participant.
    pub fn stats(&self, year: i32, participant: Option<ParticipantId>) -> Stats {
        let wanted = |p: ParticipantId| participant.is_none_or(|w| w == p);
        let mut ids: BTreeSet<ParticipantId> = self.participants.keys().copied().filter(|p| wanted(*p)).collect();
        if let Some(p) = participant {
            ids.insert(p);
        }
        let mut flows: BTreeMap<ParticipantId, [(FlowBuilder, FlowBuilder); 4]> =
            ids.iter().map(|p| (*p, Default::default())).collect();
        let mut world = [Amount::default(); 4];
        for c in self.certificates.values().filter(|c| c.void.is_none()) {
            let q = c.quarter();
            if q.year != year {
                continue;
            }
            let Some(index) = usize::from(q.quarter).checked_sub(1).filter(|i| *i < 4) else { continue };
            if let Some(w) = world.get_mut(index) {
                w.add(c.carats, c.value);
            }
            if let Some((exports, _)) = flows.get_mut(&c.exporter).and_then(|f| f.get_mut(index)) {
                exports.add(c, c.importer);
            }
            if let Some((_, imports)) = flows.get_mut(&c.importer).and_then(|f| f.get_mut(index)) {
                imports.add(c, c.exporter);
            }
        }
        let halves = [1, 2].map(|half| Half { year, half });
        let mut world_production: Vec<ProductionHalf> = halves
            .iter()
            .map(|h| ProductionHalf {
                period: *h,
                reported: false,
                revision: None,
                carats: Carats(0),
                value: UsdCents(0),
                by_hs_code: Vec::new(),
                event: None,
            })
            .collect();
        let mut world_hs: [BTreeMap<kp_domain::HsCode, (u64, u64)>; 2] = Default::default();
        for ((_, half), r) in self.production.iter().filter(|((_, h), _)| h.year == year) {
            let i = usize::from(half.half.saturating_sub(1)).min(1);
            if let (Some(w), Some(hs)) = (world_production.get_mut(i), world_hs.get_mut(i)) {
                let (carats, value) = r.lines.totals();
                w.reported = true;
                w.carats = Carats(w.carats.0.saturating_add(carats));
                w.value = UsdCents(w.value.0.saturating_add(value));
                for (code, c, v) in r.lines.iter() {
                    let e = hs.entry(code).or_default();
                    *e = (e.0.saturating_add(c), e.1.saturating_add(v));
                }
            }
        }
        for (w, hs) in world_production.iter_mut().zip(world_hs) {
            w.by_hs_code = hs
                .into_iter()
                .map(|(hs_code, (c, v))| HsLine { hs_code, carats: Carats(c), value: UsdCents(v) })
                .collect();
        }
        let participants = flows
            .into_iter()
            .map(|(id, builders)| ParticipantStats {
                participant: id,
                name: self.participant_name(id).map(str::to_owned),
                quarters: quarters(year)
                    .into_iter()
                    .zip(builders)
                    .map(|(quarter, (e, i))| QuarterStats { quarter, exports: e.finish(), imports: i.finish() })
                    .collect(),
                production: halves.iter().map(|h| self.production_half(id, *h)).collect(),
            })
            .collect();
        Stats {
            year,
            participant,
            participants,
            world: quarters(year)
                .into_iter()
                .zip(world)
                .map(|(quarter, amount)| WorldQuarter { quarter, exports: amount, imports: amount })
                .collect(),
            world_production,
        }
    }

    fn production_half(&self, participant: ParticipantId, period: Half) -> ProductionHalf {
        match self.production.get(&(participant, period)) {
            Some(r) => {
                let (carats, value) = r.lines.totals();
                ProductionHalf {
                    period,
                    reported: true,
                    revision: Some(r.revision),
                    carats: Carats(carats),
                    value: UsdCents(value),
                    by_hs_code: r
                        .lines
                        .iter()
                        .map(|(hs_code, c, v)| HsLine { hs_code, carats: Carats(c), value: UsdCents(v) })
                        .collect(),
                    event: Some(self.event(r.event)),
                }
            }
            None => ProductionHalf {
                period,
                reported: false,
                revision: None,
                carats: Carats(0),
                value: UsdCents(0),
                by_hs_code: Vec::new(),
                event: None,
            },
        }
    }
}

impl Stats {
    /// The statistics of one participant, if they were computed.
    pub fn participant(&self, id: ParticipantId) -> Option<&ParticipantStats> {
        self.participants.iter().find(|p| p.participant == id)
    }

    /// One row per (participant, quarter, flow, HS code, counterpart) with trade, then one row
    /// per (participant, half-year, HS code) of production with `flow` = `production`, the
    /// half-year in the `period` column and no counterpart or count. Carats and USD with two
    /// decimals.
    pub fn to_csv(&self) -> String {
        let mut out = csv_line(&[
            "participant",
            "period",
            "flow",
            "hs_code",
            "counterpart",
            "carats",
            "value_usd",
            "certificates",
        ]);
        for p in &self.participants {
            for q in &p.quarters {
                for (flow, data) in [("exports", &q.exports), ("imports", &q.imports)] {
                    for cell in &data.cells {
                        out.push_str(&csv_line(&[
                            p.participant.to_string(),
                            q.quarter.to_string(),
                            flow.to_owned(),
                            cell.hs_code.to_string(),
                            cell.counterpart.to_string(),
                            decimal(cell.amount.carats.0),
                            decimal(cell.amount.value.0),
                            cell.amount.certificates.to_string(),
                        ]));
                    }
                }
            }
            for h in &p.production {
                for line in &h.by_hs_code {
                    out.push_str(&csv_line(&[
                        p.participant.to_string(),
                        h.period.to_string(),
                        "production".to_owned(),
                        line.hs_code.to_string(),
                        String::new(),
                        decimal(line.carats.0),
                        decimal(line.value.0),
                        String::new(),
                    ]));
                }
            }
        }
        out
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "KP statistics {} (voided certificates excluded)", self.year)?;
        for p in &self.participants {
            writeln!(f, "{} {}", p.participant, p.name.as_deref().unwrap_or(""))?;
            for q in &p.quarters {
                writeln!(f, "  {} exports: {}", q.quarter, q.exports.total)?;
                writeln!(f, "  {} imports: {}", q.quarter, q.imports.total)?;
            }
            for h in &p.production {
                if h.reported {
                    writeln!(f, "  {} production: {}, {}", h.period, h.carats, h.value)?;
                } else {
                    writeln!(f, "  {} production: not reported", h.period)?;
                }
            }
        }
        writeln!(f, "World")?;
        for w in &self.world {
            writeln!(f, "  {} trade: {}", w.quarter, w.exports)?;
        }
        for h in &self.world_production {
            writeln!(f, "  {} production: {}, {}", h.period, h.carats, h.value)?;
        }
        Ok(())
    }
}
