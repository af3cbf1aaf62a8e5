//! Anomaly detection over the committed ledger (the patterns of the KP Working Group on
//! Statistics). The exact definitions are in the crate documentation.

use crate::ReviewError;
use crate::flow::csv_line;
use crate::model::{CertRecord, Ev, ParticipantRec, Review};
use crate::period::{Half, Period, Quarter};
use crate::report::{TradeRole, decimal};
use kp_domain::{
    Carats, CertificateNumber, Date, EventId, HsCode, Label, MS_PER_DAY, Origin, ParticipantId, Status, Timestamp,
    UsdCents,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// How many export certificates an `exports_exceed_supply` finding cites (the largest).
pub const MAX_EXPORT_EVIDENCE: usize = 20;

/// The parameters of [`Review::anomalies`].
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct AnomalyParams {
    /// First day of the period (inclusive); `None`: from the beginning.
    pub from: Option<Date>,
    /// Last day of the period (inclusive); `None`: to the end.
    pub to: Option<Date>,
    /// The day of the review: certificates that expired before it are due.
    pub today: Date,
    /// A confirmation recorded more than this many days after the seal is late (default 30).
    pub late_receipt_days: u32,
    /// Exports may exceed production plus imports by this percentage (default 5).
    pub balance_tolerance_percent: u32,
    /// Robust z-score beyond which a value per carat is flagged (default 3.5).
    pub undervaluation_threshold: f64,
    /// Fewest lines of an HS code in a quarter for the norm to be used (default 8).
    pub min_samples: usize,
}

impl AnomalyParams {
    /// The default parameters, for a review on `today`, over the whole ledger.
    pub fn new(today: Date) -> AnomalyParams {
        AnomalyParams {
            from: None,
            to: None,
            today,
            late_receipt_days: 30,
            balance_tolerance_percent: 5,
            undervaluation_threshold: 3.5,
            min_samples: 8,
        }
    }

    /// Checks the relations between the parameters (for values that come from a user).
    pub fn validate(&self) -> Result<(), ReviewError> {
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from > to
        {
            return Err(ReviewError::InvalidParameter { field: "from", problem: format!("{from} is after {to}") });
        }
        if !self.undervaluation_threshold.is_finite() || self.undervaluation_threshold.is_sign_negative() {
            return Err(ReviewError::InvalidParameter {
                field: "undervaluation_threshold",
                problem: format!("must be a finite number of 0 or more, got {}", self.undervaluation_threshold),
            });
        }
        if self.min_samples == 0 {
            return Err(ReviewError::InvalidParameter { field: "min_samples", problem: "must be at least 1".into() });
        }
        Ok(())
    }

    fn contains(&self, date: Date) -> bool {
        self.from.is_none_or(|f| date >= f) && self.to.is_none_or(|t| date <= t)
    }

    fn overlaps(&self, half: Half) -> bool {
        let (first, last) = half.days();
        self.from.is_none_or(|f| last >= f) && self.to.is_none_or(|t| first <= t)
    }
}

/// The kinds of anomaly.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    NeverConfirmed,
    LateConfirmation,
    ReceiptMismatch,
    ExportsExceedSupply,
    Undervaluation,
    TradeWhileSuspended,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 6] = [
        AnomalyKind::NeverConfirmed,
        AnomalyKind::LateConfirmation,
        AnomalyKind::ReceiptMismatch,
        AnomalyKind::ExportsExceedSupply,
        AnomalyKind::Undervaluation,
        AnomalyKind::TradeWhileSuspended,
    ];
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::NeverConfirmed => "never_confirmed",
            AnomalyKind::LateConfirmation => "late_confirmation",
            AnomalyKind::ReceiptMismatch => "receipt_mismatch",
            AnomalyKind::ExportsExceedSupply => "exports_exceed_supply",
            AnomalyKind::Undervaluation => "undervaluation",
            AnomalyKind::TradeWhileSuspended => "trade_while_suspended",
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The figures behind a finding, by kind (serialized as a plain object; the kind is beside it).
#[derive(Clone, PartialEq, Debug, Serialize)]
#[serde(untagged)]
pub enum Figures {
    NeverConfirmed {
        issued_on: Date,
        expires_on: Date,
        /// Whether the shipment was sealed (left the exporter).
        sealed: bool,
        days_since_expiry: i64,
    },
    LateConfirmation {
        /// Block time of the seal (or of the issue, for a receipt without a seal).
        reference_time: Timestamp,
        /// Block time of the confirmation of receipt.
        confirmed_at: Timestamp,
        /// The importer's stated time of receipt.
        received_at: Timestamp,
        /// `confirmed_at - reference_time`, in whole days (rounded down).
        delay_days: u64,
        allowed_days: u32,
        /// Whether the goods were received after the certificate's expiry.
        after_expiry: bool,
    },
    ReceiptMismatch {
        parcels_declared: u32,
        parcels_found: u32,
        carats_declared: Carats,
        carats_found: Carats,
        seals_intact: bool,
        /// The certificate revision compared against.
        revision: u32,
    },
    ExportsExceedSupply {
        exports: Carats,
        production: Carats,
        /// Whether a production report exists for the half-year.
        production_reported: bool,
        imports: Carats,
        /// `exports - (production + imports)`.
        excess: Carats,
        tolerance_percent: u32,
        export_certificates: u64,
    },
    Undervaluation {
        hs_code: HsCode,
        carats: Carats,
        value: UsdCents,
        usd_per_carat: f64,
        median_usd_per_carat: f64,
        /// 1.4826 × the median absolute deviation.
        spread_usd_per_carat: f64,
        /// `(median - usd_per_carat) / spread`; `None` when the spread is zero.
        robust_z: Option<f64>,
        /// Lines of the HS code in the quarter.
        samples: u64,
    },
    TradeWhileSuspended {
        /// The suspended participant's side of the certificate.
        role: TradeRole,
        /// `suspended`, `withdrawn` or `restricted`.
        status: String,
        /// Block time of the governance act that set the status.
        effective: Timestamp,
        /// Kinds of the custody events recorded under that status.
        custody_events: Vec<String>,
    },
}

impl Figures {
    pub fn kind(&self) -> AnomalyKind {
        match self {
            Figures::NeverConfirmed { .. } => AnomalyKind::NeverConfirmed,
            Figures::LateConfirmation { .. } => AnomalyKind::LateConfirmation,
            Figures::ReceiptMismatch { .. } => AnomalyKind::ReceiptMismatch,
            Figures::ExportsExceedSupply { .. } => AnomalyKind::ExportsExceedSupply,
            Figures::Undervaluation { .. } => AnomalyKind::Undervaluation,
            Figures::TradeWhileSuspended { .. } => AnomalyKind::TradeWhileSuspended,
        }
    }
}

/// One finding: what, who, when, why (in words, with the figures), and the events that prove it.
#[derive(Clone, PartialEq, Debug, Serialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    /// The participant concerned (see the crate documentation for each kind).
    pub participant: ParticipantId,
    /// The other party of the certificate, for certificate findings.
    pub counterpart: Option<ParticipantId>,
    pub certificate: Option<CertificateNumber>,
    /// The quarter of the certificate's issue date, or the half-year of a balance finding.
    pub period: Period,
    pub explanation: String,
    pub figures: Figures,
    /// The committed events that prove the finding (hex in JSON), in commit order except for
    /// `exports_exceed_supply` (production report, then export certificates largest first).
    pub event_ids: Vec<EventId>,
}

impl Anomaly {
    fn new(
        participant: ParticipantId,
        counterpart: Option<ParticipantId>,
        certificate: Option<&CertificateNumber>,
        period: Period,
        explanation: String,
        figures: Figures,
        event_ids: Vec<EventId>,
    ) -> Anomaly {
        Anomaly {
            kind: figures.kind(),
            participant,
            counterpart,
            certificate: certificate.cloned(),
            period,
            explanation,
            figures,
            event_ids,
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {} {}", self.kind, self.participant, self.period)?;
        if let Some(c) = &self.certificate {
            write!(f, " {c}")?;
        }
        writeln!(f, ": {}", self.explanation)?;
        for id in &self.event_ids {
            writeln!(f, "    event {id}")?;
        }
        Ok(())
    }
}

/// The findings as CSV: kind, participant, counterpart, certificate, period, explanation,
/// event ids (hex, joined by spaces).
pub fn anomalies_to_csv(anomalies: &[Anomaly]) -> String {
    let mut out =
        csv_line(&["kind", "participant", "counterpart", "certificate", "period", "explanation", "event_ids"]);
    for a in anomalies {
        out.push_str(&csv_line(&[
            a.kind.to_string(),
            a.participant.to_string(),
            a.counterpart.map(|c| c.to_string()).unwrap_or_default(),
            a.certificate.as_ref().map(ToString::to_string).unwrap_or_default(),
            a.period.to_string(),
            a.explanation.clone(),
            a.event_ids.iter().map(EventId::to_hex).collect::<Vec<_>>().join(" "),
        ]));
    }
    out
}

/// Whether a certificate from a restricted exporter meets the restriction: its own origin and
/// a listed zone (the rule the rules engine applies at issue).
fn meets_restriction(c: &CertRecord, zones: &[Label], members: &[kp_domain::CountryCode]) -> bool {
    match (&c.origin, &c.origin_zone) {
        (Origin::Country(o), Some(z)) => members.contains(o) && zones.contains(z),
        _ => false,
    }
}

/// Whether `status` forbids what a certificate records for a party in `role`.
fn forbids(status: &Status, role: TradeRole, c: &CertRecord, p: &ParticipantRec) -> bool {
    match status {
        Status::Active => false,
        Status::Suspended | Status::Withdrawn => true,
        Status::Restricted { zones } => role == TradeRole::Exporter && !meets_restriction(c, zones, &p.members),
    }
}

/// A duration as `36 days` or `30 days 1 h` (whole hours, rounded down).
fn days_and_hours(ms: u64) -> String {
    let (days, hours) = (ms / MS_PER_DAY, ms % MS_PER_DAY / 3_600_000);
    if hours == 0 { format!("{days} days") } else { format!("{days} days {hours} h") }
}

fn cts(hundredths: u64) -> String {
    format!("{} ct", decimal(hundredths))
}

impl Review {
    /// Every anomaly of the ledger over the period of `params` (see the crate documentation for
    /// the exact definitions), ordered by kind, participant, period and certificate.
    pub fn anomalies(&self, params: &AnomalyParams) -> Vec<Anomaly> {
        let mut out = Vec::new();
        for (number, c) in &self.certificates {
            if params.contains(c.issued_on) {
                self.certificate_anomalies(params, number, c, &mut out);
            }
        }
        self.balance_anomalies(params, &mut out);
        self.undervaluation(params, &mut out);
        out.sort_by(|a, b| {
            (a.kind, a.participant, a.period, &a.certificate, &a.explanation).cmp(&(
                b.kind,
                b.participant,
                b.period,
                &b.certificate,
                &b.explanation,
            ))
        });
        out
    }

    fn ids(&self, evs: impl IntoIterator<Item = Ev>) -> Vec<EventId> {
        evs.into_iter().map(|e| self.event_id(e)).collect()
    }

    fn certificate_anomalies(
        &self,
        p: &AnomalyParams,
        number: &CertificateNumber,
        c: &CertRecord,
        out: &mut Vec<Anomaly>,
    ) {
        let period = Period::Quarter(c.quarter());
        let content = || c.content_events().collect::<Vec<_>>();
        let seal = c.seal.as_ref().map(|s| s.event);
        if c.void.is_none() && c.receipt.is_none() && c.expires_on < p.today {
            let days = i64::from(p.today.days()) - i64::from(c.expires_on.days());
            let shipped = match &c.seal {
                Some(s) => format!("sealed at {}", s.sealed_at),
                None => "never sealed".to_owned(),
            };
            let mut evs = content();
            evs.extend(seal);
            out.push(Anomaly::new(
                c.exporter,
                Some(c.importer),
                Some(number),
                period,
                format!(
                    "certificate {number} from {} to {} ({}, {}) issued {}, {shipped}, expired {} without a \
                     confirmation of receipt ({days} days before {})",
                    c.exporter,
                    c.importer,
                    cts(c.carats),
                    UsdCents(c.value),
                    c.issued_on,
                    c.expires_on,
                    p.today
                ),
                Figures::NeverConfirmed {
                    issued_on: c.issued_on,
                    expires_on: c.expires_on,
                    sealed: c.seal.is_some(),
                    days_since_expiry: days,
                },
                self.ids(evs),
            ));
        }
        if let Some(r) = &c.receipt {
            let (reference, what) = match seal {
                Some(s) => (self.event(s).time, "the seal"),
                None => (self.event(c.issue).time, "the issue"),
            };
            let confirmed_at = self.event(r.event).time;
            let delay_ms = confirmed_at.0.saturating_sub(reference.0);
            let allowed_ms = u64::from(p.late_receipt_days).saturating_mul(MS_PER_DAY);
            let mut evs = content();
            evs.extend(seal);
            evs.push(r.event);
            if delay_ms > allowed_ms {
                let received_on = r.received_at.date();
                let after_expiry = received_on > c.expires_on;
                let expiry = if after_expiry {
                    format!(
                        "; the goods were received on {received_on}, after the certificate expired on {}",
                        c.expires_on
                    )
                } else {
                    String::new()
                };
                out.push(Anomaly::new(
                    c.importer,
                    Some(c.exporter),
                    Some(number),
                    period,
                    format!(
                        "{} confirmed receipt of certificate {number} from {} at {confirmed_at}, {} after {what} at \
                         {reference}: more than the {} days allowed{expiry}",
                        c.importer,
                        c.exporter,
                        days_and_hours(delay_ms),
                        p.late_receipt_days
                    ),
                    Figures::LateConfirmation {
                        reference_time: reference,
                        confirmed_at,
                        received_at: r.received_at,
                        delay_days: delay_ms / MS_PER_DAY,
                        allowed_days: p.late_receipt_days,
                        after_expiry,
                    },
                    self.ids(evs.iter().copied()),
                ));
            }
            let mut differences = Vec::new();
            if r.parcels_found != c.parcels {
                differences.push(format!("{} parcels found, {} declared", r.parcels_found, c.parcels));
            }
            if r.carats_found != c.carats {
                differences.push(format!("{} found, {} declared", cts(r.carats_found), cts(c.carats)));
            }
            if !r.seals_intact {
                differences.push("seals found broken".to_owned());
            }
            if !differences.is_empty() {
                out.push(Anomaly::new(
                    c.exporter,
                    Some(c.importer),
                    Some(number),
                    period,
                    format!(
                        "the receipt of certificate {number} from {} to {} differs from the certificate (revision {}): {}",
                        c.exporter,
                        c.importer,
                        c.revision,
                        differences.join("; ")
                    ),
                    Figures::ReceiptMismatch {
                        parcels_declared: c.parcels,
                        parcels_found: r.parcels_found,
                        carats_declared: Carats(c.carats),
                        carats_found: Carats(r.carats_found),
                        seals_intact: r.seals_intact,
                        revision: c.revision,
                    },
                    self.ids(evs),
                ));
            }
        }
        self.suspension_anomalies(number, c, period, out);
    }

    /// `trade_while_suspended`: custody events of the certificate recorded while a party's
    /// status, set by a governance act, forbade them.
    fn suspension_anomalies(&self, number: &CertificateNumber, c: &CertRecord, period: Period, out: &mut Vec<Anomaly>) {
        let mut parties = vec![(c.exporter, TradeRole::Exporter, c.importer)];
        if c.importer != c.exporter {
            parties.push((c.importer, TradeRole::Importer, c.exporter));
        }
        let custody: Vec<Ev> = std::iter::once(c.issue)
            .chain(c.seal.as_ref().map(|s| s.event))
            .chain(c.receipt.as_ref().map(|r| r.event))
            .collect();
        for (party, role, other) in parties {
            let Some(rec) = self.participants.get(&party) else { continue };
            let mut offending = Vec::new();
            let mut acts = BTreeSet::new();
            let mut first: Option<(&Status, Ev)> = None;
            for &ev in &custody {
                if let (Some(status), Some(act)) = rec.status_before(ev)
                    && forbids(status, role, c, rec)
                {
                    offending.push(ev);
                    acts.insert(act);
                    first.get_or_insert((status, act));
                }
            }
            let Some((status, act)) = first else { continue };
            let effective = self.event(act).time;
            let kinds: Vec<String> = offending.iter().map(|e| self.event(*e).kind.field_name().to_owned()).collect();
            let recorded = offending
                .iter()
                .map(|e| {
                    let r = self.event(*e);
                    format!("{} at {}", r.kind.field_name().replace('_', " "), r.time)
                })
                .collect::<Vec<_>>()
                .join(", ");
            let status_name = status.name();
            let mut evs: Vec<Ev> = std::iter::once(c.issue).chain(offending).chain(acts).collect();
            evs.sort_unstable();
            evs.dedup();
            out.push(Anomaly::new(
                party,
                Some(other),
                Some(number),
                period,
                format!(
                    "{party} ({role} of certificate {number} with {other}, issued {}) was {status_name} by the act \
                     committed at {effective}; custody events recorded under that status: {recorded}",
                    c.issued_on
                ),
                Figures::TradeWhileSuspended { role, status: status_name.to_owned(), effective, custody_events: kinds },
                self.ids(evs),
            ));
        }
    }

    /// `exports_exceed_supply`, per participant and half-year.
    fn balance_anomalies(&self, p: &AnomalyParams, out: &mut Vec<Anomaly>) {
        type Exports<'a> = (u64, Vec<(u64, &'a CertificateNumber, Ev)>);
        let mut exports: BTreeMap<(ParticipantId, Half), Exports<'_>> = BTreeMap::new();
        let mut imports: BTreeMap<(ParticipantId, Half), u64> = BTreeMap::new();
        for (number, c) in self.certificates.iter().filter(|(_, c)| c.void.is_none()) {
            let half = Half::of(c.issued_on);
            let e = exports.entry((c.exporter, half)).or_default();
            e.0 = e.0.saturating_add(c.carats);
            e.1.push((c.carats, number, c.content_event()));
            let i = imports.entry((c.importer, half)).or_default();
            *i = i.saturating_add(c.carats);
        }
        for ((participant, half), (exported, mut certificates)) in exports {
            if !p.overlaps(half) || exported == 0 {
                continue;
            }
            let report = self.production.get(&(participant, half));
            let produced = report.map_or(0, |r| r.lines.totals().0);
            let imported = imports.get(&(participant, half)).copied().unwrap_or(0);
            let supply = produced.saturating_add(imported);
            let allowed = u128::from(supply) * (100 + u128::from(p.balance_tolerance_percent));
            if u128::from(exported) * 100 <= allowed {
                continue;
            }
            let excess = exported.saturating_sub(supply);
            let over = if supply == 0 {
                "with no production or imports at all".to_owned()
            } else {
                format!("{}% over", u128::from(excess) * 100 / u128::from(supply))
            };
            let production = match report {
                Some(r) => format!("a reported production of {} (report revision {})", cts(produced), r.revision),
                None => "no production report".to_owned(),
            };
            let count = u64::try_from(certificates.len()).unwrap_or(u64::MAX);
            certificates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
            let mut evs: Vec<Ev> = report.map(|r| r.event).into_iter().collect();
            evs.extend(certificates.iter().take(MAX_EXPORT_EVIDENCE).map(|c| c.2));
            out.push(Anomaly::new(
                participant,
                None,
                None,
                Period::Half(half),
                format!(
                    "{participant} exported {} in {half} on {count} certificate(s) (voided ones excluded) against \
                     {production} and imports of {}: exports exceed production plus imports by {} ({over}; \
                     tolerance {}%)",
                    cts(exported),
                    cts(imported),
                    cts(excess),
                    p.balance_tolerance_percent
                ),
                Figures::ExportsExceedSupply {
                    exports: Carats(exported),
                    production: Carats(produced),
                    production_reported: report.is_some(),
                    imports: Carats(imported),
                    excess: Carats(excess),
                    tolerance_percent: p.balance_tolerance_percent,
                    export_certificates: count,
                },
                self.ids(evs),
            ));
        }
    }

    /// `undervaluation`, per HS line.
    // Floating point is used here only (the workspace warns on float arithmetic): the norm is a
    // median of ratios (value per carat) and the robust z-score a ratio of differences of them,
    // which integer hundredths and cents cannot express without choosing an arbitrary scale.
    // It stays deterministic: every value comes from integers by one division, sorting uses
    // `total_cmp`, and no sum depends on an iteration order.
    #[allow(clippy::float_arithmetic)]
    fn undervaluation(&self, p: &AnomalyParams, out: &mut Vec<Anomaly>) {
        struct Line<'a> {
            usd_per_carat: f64,
            number: &'a CertificateNumber,
            certificate: &'a CertRecord,
            carats: u64,
            value: u64,
        }
        let mut groups: BTreeMap<(HsCode, Quarter), Vec<Line<'_>>> = BTreeMap::new();
        for (number, c) in self.certificates.iter().filter(|(_, c)| c.void.is_none()) {
            for (code, carats, value) in c.lines.iter().filter(|(_, carats, _)| *carats > 0) {
                // Cents over hundredths of a carat: US dollars per carat.
                let usd_per_carat = value as f64 / carats as f64;
                groups.entry((code, c.quarter())).or_default().push(Line {
                    usd_per_carat,
                    number,
                    certificate: c,
                    carats,
                    value,
                });
            }
        }
        for ((code, quarter), lines) in groups {
            if lines.len() < p.min_samples {
                continue;
            }
            let mut prices: Vec<f64> = lines.iter().map(|l| l.usd_per_carat).collect();
            let norm = median(&mut prices);
            let mut deviations: Vec<f64> = prices.iter().map(|x| (x - norm).abs()).collect();
            let spread = 1.4826 * median(&mut deviations);
            let samples = u64::try_from(lines.len()).unwrap_or(u64::MAX);
            for l in lines.iter().filter(|l| p.contains(l.certificate.issued_on)) {
                let x = l.usd_per_carat;
                if x >= norm / 2.0 {
                    continue;
                }
                let z = (spread > 0.0).then(|| (norm - x) / spread);
                if z.is_some_and(|z| z <= p.undervaluation_threshold) {
                    continue;
                }
                let c = l.certificate;
                let z_text = z.map_or("unbounded (the spread is zero)".to_owned(), |z| format!("{z:.2}"));
                out.push(Anomaly::new(
                    c.exporter,
                    Some(c.importer),
                    Some(l.number),
                    Period::Quarter(quarter),
                    format!(
                        "certificate {} from {} to {} declares HS {code} at USD {x:.2}/ct ({}, {}) in {quarter}, \
                         against a median of USD {norm:.2}/ct over {samples} lines (spread USD {spread:.2}/ct): \
                         robust z {z_text}, threshold {}",
                        l.number,
                        c.exporter,
                        c.importer,
                        cts(l.carats),
                        UsdCents(l.value),
                        p.undervaluation_threshold
                    ),
                    Figures::Undervaluation {
                        hs_code: code,
                        carats: Carats(l.carats),
                        value: UsdCents(l.value),
                        usd_per_carat: x,
                        median_usd_per_carat: norm,
                        spread_usd_per_carat: spread,
                        robust_z: z,
                        samples,
                    },
                    self.ids(c.content_events()),
                ));
            }
        }
    }
}

/// The median of `values` (sorted in place); 0 for none.
#[allow(clippy::float_arithmetic)] // See `Review::undervaluation`.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let upper = values.get(n / 2).copied().unwrap_or(0.0);
    match n.checked_sub(1).map(|last| last / 2).and_then(|i| values.get(i)) {
        Some(lower) if n % 2 == 0 => (lower + upper) / 2.0,
        _ => upper,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(days_and_hours(36 * MS_PER_DAY), "36 days");
        assert_eq!(days_and_hours(30 * MS_PER_DAY + 3_600_000 + 5), "30 days 1 h");
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median(&mut [3.0]), 3.0);
        assert_eq!(median(&mut [4.0, 1.0]), 2.5);
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&mut [5.0, 1.0, 3.0, 100.0]), 4.0);
    }

    #[test]
    fn params_are_checked() {
        let today = Date::parse("2027-01-01").unwrap();
        assert!(AnomalyParams::new(today).validate().is_ok());
        let mut p = AnomalyParams::new(today);
        p.from = Some(today);
        p.to = Some(today.add_days(-1));
        assert!(matches!(p.validate(), Err(ReviewError::InvalidParameter { field: "from", .. })));
        let mut p = AnomalyParams::new(today);
        p.undervaluation_threshold = f64::NAN;
        assert!(p.validate().is_err());
        let mut p = AnomalyParams::new(today);
        p.min_samples = 0;
        assert!(p.validate().is_err());
    }
}
