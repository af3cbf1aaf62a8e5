//! The review-visit report: a participant's custody history over a period.

use crate::flow::{Flow, FlowBuilder, csv_line, write_flow};
use crate::model::{CertRecord, EventRef, Review};
use kp_domain::{Carats, CertificateNumber, Date, HsLine, ParticipantId, Status, UsdCents};
use serde::Serialize;
use std::fmt;

/// The participant's side of a certificate.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TradeRole {
    /// The participant issued the certificate.
    Exporter,
    /// The participant is the certificate's importer.
    Importer,
}

impl fmt::Display for TradeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TradeRole::Exporter => "exporter",
            TradeRole::Importer => "importer",
        })
    }
}

/// Where a certificate stands on a given day.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateState {
    Issued,
    Sealed,
    Received,
    Voided,
    /// Not received, not voided, and `expires_on` is before the report's day.
    ExpiredWithoutReceipt,
}

impl fmt::Display for CertificateState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertificateState::Issued => "issued",
            CertificateState::Sealed => "sealed",
            CertificateState::Received => "received",
            CertificateState::Voided => "voided",
            CertificateState::ExpiredWithoutReceipt => "expired without receipt",
        })
    }
}

/// A discrepancy found on receipt (KPCS Section IV), against the certificate's current revision.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "incident")]
pub enum Incident {
    ParcelsMismatch {
        declared: u32,
        found: u32,
    },
    CaratsMismatch {
        declared: Carats,
        found: Carats,
    },
    SealsBroken,
    /// Received on a day after the certificate's last day of validity.
    ReceivedAfterExpiry {
        expires_on: Date,
        received_on: Date,
    },
}

impl fmt::Display for Incident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Incident::ParcelsMismatch { declared, found } => {
                write!(f, "parcels: {found} found, {declared} declared")
            }
            Incident::CaratsMismatch { declared, found } => write!(f, "carats: {found} found, {declared} declared"),
            Incident::SealsBroken => f.write_str("seals broken"),
            Incident::ReceivedAfterExpiry { expires_on, received_on } => {
                write!(f, "received {received_on}, after expiry on {expires_on}")
            }
        }
    }
}

/// One certificate in a participant report.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct CertificateEntry {
    pub number: CertificateNumber,
    pub role: TradeRole,
    pub counterpart: ParticipantId,
    pub issued_on: Date,
    pub expires_on: Date,
    /// The current revision's HS lines.
    pub lines: Vec<HsLine>,
    pub carats: Carats,
    pub value: UsdCents,
    pub parcels: u32,
    /// 0 as issued, +1 per amendment.
    pub revision: u32,
    pub state: CertificateState,
    pub incidents: Vec<Incident>,
    /// Every event of the certificate (issue, amendments, seal, receipt, void), in commit order.
    pub events: Vec<EventRef>,
}

/// A certificate still awaiting receipt past the report's allowance.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct OverdueEntry {
    pub number: CertificateNumber,
    pub role: TradeRole,
    pub counterpart: ParticipantId,
    pub issued_on: Date,
    pub expires_on: Date,
    pub state: CertificateState,
    /// Days from the issue date to the report's day.
    pub days_outstanding: i64,
    pub events: Vec<EventRef>,
}

/// A change of the participant's status by a governance act.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct GovernanceEntry {
    /// `admit`, `suspend`, `restrict`, `readmit`, `withdraw`.
    pub action: String,
    /// The status the act set: `active`, `restricted`, `suspended`, `withdrawn`.
    pub status: String,
    /// The allowed zones of a restriction.
    pub zones: Vec<String>,
    pub event: EventRef,
}

/// A participant's custody history for a review visit: every certificate it issued or is the
/// importer of with an issue date in `[from, to]`, with state, incidents and evidence; trade
/// totals over those certificates (voided ones left out); every certificate of the participant
/// (whatever its issue date) still awaiting receipt more than `overdue_days` after issue on
/// `today`; and the participant's governance history.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ParticipantReport {
    pub participant: ParticipantId,
    /// `None` when the ledger does not know the participant's name.
    pub name: Option<String>,
    pub from: Date,
    pub to: Date,
    pub today: Date,
    pub overdue_days: u32,
    /// The status at genesis (`None`: not in the genesis).
    pub genesis_status: Option<String>,
    pub governance: Vec<GovernanceEntry>,
    /// Ordered by issue date, then number.
    pub certificates: Vec<CertificateEntry>,
    /// Certificates issued by the participant in the period, not voided.
    pub exports: Flow,
    /// Certificates naming the participant as importer in the period, not voided.
    pub imports: Flow,
    /// Ordered by issue date, then number.
    pub overdue: Vec<OverdueEntry>,
}

pub(crate) fn state(c: &CertRecord, today: Date) -> CertificateState {
    if c.void.is_some() {
        CertificateState::Voided
    } else if c.receipt.is_some() {
        CertificateState::Received
    } else if c.expires_on < today {
        CertificateState::ExpiredWithoutReceipt
    } else if c.seal.is_some() {
        CertificateState::Sealed
    } else {
        CertificateState::Issued
    }
}

pub(crate) fn incidents(c: &CertRecord) -> Vec<Incident> {
    let Some(r) = &c.receipt else { return Vec::new() };
    let mut out = Vec::new();
    if r.parcels_found != c.parcels {
        out.push(Incident::ParcelsMismatch { declared: c.parcels, found: r.parcels_found });
    }
    if r.carats_found != c.carats {
        out.push(Incident::CaratsMismatch { declared: Carats(c.carats), found: Carats(r.carats_found) });
    }
    if !r.seals_intact {
        out.push(Incident::SealsBroken);
    }
    let received_on = r.received_at.date();
    if received_on > c.expires_on {
        out.push(Incident::ReceivedAfterExpiry { expires_on: c.expires_on, received_on });
    }
    out
}

pub(crate) fn hs_lines(c: &CertRecord) -> Vec<HsLine> {
    c.lines
        .iter()
        .map(|(hs_code, carats, value)| HsLine { hs_code, carats: Carats(carats), value: UsdCents(value) })
        .collect()
}

fn status_name(s: &Status) -> String {
    s.name().to_owned()
}

impl Review {
    /// The review-visit report of `participant` (see [`ParticipantReport`]). An unknown
    /// participant, or `from` after `to`, gives a report without certificates.
    pub fn participant_report(
        &self,
        participant: ParticipantId,
        from: Date,
        to: Date,
        overdue_days: u32,
        today: Date,
    ) -> ParticipantReport {
        let allowance = i32::try_from(overdue_days).unwrap_or(i32::MAX);
        let mut certificates = Vec::new();
        let mut overdue = Vec::new();
        let mut exports = FlowBuilder::default();
        let mut imports = FlowBuilder::default();
        for (number, c) in &self.certificates {
            let (role, counterpart) = if c.exporter == participant {
                (TradeRole::Exporter, c.importer)
            } else if c.importer == participant {
                (TradeRole::Importer, c.exporter)
            } else {
                continue;
            };
            let state = state(c, today);
            let events = || c.all_events().into_iter().map(|e| self.event(e)).collect::<Vec<_>>();
            if (from..=to).contains(&c.issued_on) {
                if c.void.is_none() {
                    match role {
                        TradeRole::Exporter => exports.add(c, counterpart),
                        TradeRole::Importer => imports.add(c, counterpart),
                    }
                }
                certificates.push(CertificateEntry {
                    number: number.clone(),
                    role,
                    counterpart,
                    issued_on: c.issued_on,
                    expires_on: c.expires_on,
                    lines: hs_lines(c),
                    carats: Carats(c.carats),
                    value: UsdCents(c.value),
                    parcels: c.parcels,
                    revision: c.revision,
                    state,
                    incidents: incidents(c),
                    events: events(),
                });
            }
            if c.receipt.is_none() && c.void.is_none() && c.issued_on.add_days(allowance) < today {
                overdue.push(OverdueEntry {
                    number: number.clone(),
                    role,
                    counterpart,
                    issued_on: c.issued_on,
                    expires_on: c.expires_on,
                    state,
                    days_outstanding: i64::from(today.days()) - i64::from(c.issued_on.days()),
                    events: events(),
                });
            }
        }
        certificates.sort_by(|a, b| (a.issued_on, &a.number).cmp(&(b.issued_on, &b.number)));
        overdue.sort_by(|a, b| (a.issued_on, &a.number).cmp(&(b.issued_on, &b.number)));
        let rec = self.participants.get(&participant);
        let governance = rec.map(|p| self.governance_entries(p)).unwrap_or_default();
        ParticipantReport {
            participant,
            name: self.participant_name(participant).map(str::to_owned),
            from,
            to,
            today,
            overdue_days,
            genesis_status: rec.and_then(|p| p.genesis_status.as_ref()).map(status_name),
            governance,
            certificates,
            exports: exports.finish(),
            imports: imports.finish(),
            overdue,
        }
    }
}

/// A participant and its status over time: at genesis, then each change by a governance act.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ParticipantHistory {
    pub participant: ParticipantId,
    pub name: Option<String>,
    /// The status at genesis (`None`: not in the genesis).
    pub genesis_status: Option<String>,
    /// The status in force after every committed act (the genesis status without one).
    pub status: Option<String>,
    pub governance: Vec<GovernanceEntry>,
}

impl Review {
    fn governance_entries(&self, p: &crate::model::ParticipantRec) -> Vec<GovernanceEntry> {
        p.changes
            .iter()
            .map(|ch| GovernanceEntry {
                action: ch.action.to_owned(),
                status: status_name(&ch.status),
                zones: match &ch.status {
                    Status::Restricted { zones } => zones.iter().map(ToString::to_string).collect(),
                    _ => Vec::new(),
                },
                event: self.event(ch.event),
            })
            .collect()
    }

    /// Every participant the ledger knows, in id order, with its status history. Costs the
    /// participants and their governance acts, not the certificates.
    pub fn participant_histories(&self) -> Vec<ParticipantHistory> {
        self.participants
            .iter()
            .map(|(id, p)| ParticipantHistory {
                participant: *id,
                name: self.participant_name(*id).map(str::to_owned),
                genesis_status: p.genesis_status.as_ref().map(status_name),
                status: p.changes.last().map(|c| &c.status).or(p.genesis_status.as_ref()).map(status_name),
                governance: self.governance_entries(p),
            })
            .collect()
    }

    /// One certificate as a report lists it, from its exporter's side (`counterpart` is the
    /// importer), judged on `today`; `None` if the ledger has no such certificate. One lookup.
    pub fn certificate(&self, number: &CertificateNumber, today: Date) -> Option<CertificateEntry> {
        let c = self.certificates.get(number)?;
        Some(CertificateEntry {
            number: number.clone(),
            role: TradeRole::Exporter,
            counterpart: c.importer,
            issued_on: c.issued_on,
            expires_on: c.expires_on,
            lines: hs_lines(c),
            carats: Carats(c.carats),
            value: UsdCents(c.value),
            parcels: c.parcels,
            revision: c.revision,
            state: state(c, today),
            incidents: incidents(c),
            events: c.all_events().into_iter().map(|e| self.event(e)).collect(),
        })
    }

    /// The exporter of a certificate (whose side [`Review::certificate`] takes).
    pub fn exporter_of(&self, number: &CertificateNumber) -> Option<ParticipantId> {
        self.certificates.get(number).map(|c| c.exporter)
    }

    /// Whether the ledger knows the participant (from the genesis, an admission or an event).
    pub fn knows_participant(&self, id: ParticipantId) -> bool {
        self.participants.contains_key(&id)
    }
}

impl ParticipantReport {
    /// One row per certificate: number, role, counterpart, dates, HS lines (`code:carats:usd`
    /// joined by `;`), carats, value in USD, parcels, revision, state, incidents (joined by
    /// `;`), event ids (hex, joined by spaces).
    pub fn to_csv(&self) -> String {
        let mut out = csv_line(&[
            "number",
            "role",
            "counterpart",
            "issued_on",
            "expires_on",
            "hs_lines",
            "carats",
            "value_usd",
            "parcels",
            "revision",
            "state",
            "incidents",
            "event_ids",
        ]);
        for c in &self.certificates {
            let lines = c
                .lines
                .iter()
                .map(|l| format!("{}:{}:{}", l.hs_code, decimal(l.carats.0), decimal(l.value.0)))
                .collect::<Vec<_>>()
                .join(";");
            out.push_str(&csv_line(&[
                c.number.to_string(),
                c.role.to_string(),
                c.counterpart.to_string(),
                c.issued_on.to_string(),
                c.expires_on.to_string(),
                lines,
                decimal(c.carats.0),
                decimal(c.value.0),
                c.parcels.to_string(),
                c.revision.to_string(),
                c.state.to_string(),
                c.incidents.iter().map(ToString::to_string).collect::<Vec<_>>().join(";"),
                c.events.iter().map(|e| e.id.to_hex()).collect::<Vec<_>>().join(" "),
            ]));
        }
        out
    }
}

/// Hundredths as a decimal with two places: 12345 → `123.45`.
pub(crate) fn decimal(hundredths: u64) -> String {
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

impl fmt::Display for ParticipantReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name.as_deref().unwrap_or("(name unknown)");
        writeln!(f, "Custody report: {} {name}, certificates issued {} to {}", self.participant, self.from, self.to)?;
        writeln!(f, "  as of {}; genesis status: {}", self.today, self.genesis_status.as_deref().unwrap_or("none"))?;
        for g in &self.governance {
            write!(f, "  {} {}: {} -> {}", g.event.time, g.event.id, g.action, g.status)?;
            if !g.zones.is_empty() {
                write!(f, " (zones: {})", g.zones.join(", "))?;
            }
            writeln!(f)?;
        }
        writeln!(f, "Certificates ({}):", self.certificates.len())?;
        for c in &self.certificates {
            writeln!(
                f,
                "  {} {} {} {} {} to {}: {}, {}, {} parcel(s), rev {}",
                c.number,
                c.role,
                c.counterpart,
                c.state,
                c.issued_on,
                c.expires_on,
                c.carats,
                c.value,
                c.parcels,
                c.revision
            )?;
            for i in &c.incidents {
                writeln!(f, "    incident: {i}")?;
            }
            for e in &c.events {
                writeln!(f, "    {} at height {} ({}): {}", e.kind, e.height, e.time, e.id)?;
            }
        }
        writeln!(f, "Totals (voided certificates excluded):")?;
        write_flow(f, "exports", &self.exports)?;
        write_flow(f, "imports", &self.imports)?;
        writeln!(f, "Awaiting receipt more than {} days after issue ({}):", self.overdue_days, self.overdue.len())?;
        for o in &self.overdue {
            writeln!(
                f,
                "  {} {} {} issued {}, {} days, {}",
                o.number, o.role, o.counterpart, o.issued_on, o.days_outstanding, o.state
            )?;
        }
        Ok(())
    }
}
