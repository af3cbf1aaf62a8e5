//! Custody events: what national authorities sign and submit.
//!
//! An [`Event`] here is already decoded and its signature already verified against `signer` by
//! the edge (the protobuf crate, with the crypto crate); the rules engine decides whether it is
//! admissible. Structural checks that need no ledger state are in the `validate` methods; the
//! rules engine runs them too, so that it is complete on its own.

use crate::{
    AuthorityKey, Carats, CertificateNumber, CountryCode, Date, EventId, FieldError, HalfYear, Hash32, HsLine, Label,
    MAX_PARCELS, MAX_SEALS, MAX_ZONES, Participant, ParticipantId, PublicKey, Status, Text, Timestamp, UsdCents,
    check_hs_lines, check_zones,
};
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Identification of a trading company (Annex I element 7).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct Trader {
    pub name: Text,
    /// Registration number, licence or address, as the authority records it.
    pub identification: Text,
}

/// Country of origin for unmixed parcels, or mixed origin (Annex I element 2).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Country(CountryCode),
    Mixed,
}
impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Country(c) => write!(f, "{c}"),
            Origin::Mixed => f.write_str("mixed"),
        }
    }
}

/// A Kimberley Process Certificate with the Annex I minimum content. Element 1 (title and
/// statement) is implied by the event kind and the signature's domain tag; element 12
/// (validation by the Exporting Authority) is the event's signature.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct Certificate {
    /// Element 3: unique, beginning with the exporter's code.
    pub number: CertificateNumber,
    /// The issuing (exporting) participant.
    pub exporter: ParticipantId,
    /// The importing participant.
    pub importer: ParticipantId,
    /// Element 2.
    pub origin: Origin,
    /// The mine or zone of production, when known; required from a restricted exporter.
    pub origin_zone: Option<Label>,
    /// Element 4.
    pub issued_on: Date,
    /// Element 5: the certificate is valid through this day (UTC).
    pub expires_on: Date,
    /// Element 6.
    pub issuing_authority: Text,
    /// Element 7.
    pub exporter_party: Trader,
    pub importer_party: Trader,
    /// Element 8: total weight; equals the sum of `lines`.
    pub carats: Carats,
    /// Element 9: total value; equals the sum of `lines`.
    pub value: UsdCents,
    /// Element 10.
    pub parcels: u32,
    /// Element 11: carats and value per HS code, ascending, each code once.
    pub lines: Vec<HsLine>,
}

impl Certificate {
    /// Checks that need no ledger state.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.number.prefix() != self.exporter.as_str() {
            return Err(FieldError::new(
                "number",
                format!("{} must begin with the exporter's code {}", self.number, self.exporter),
            ));
        }
        if self.exporter == self.importer {
            return Err(FieldError::new("importer", format!("{} is also the exporter", self.importer)));
        }
        if self.expires_on <= self.issued_on {
            return Err(FieldError::new(
                "expires_on",
                format!("{} is not after the issue date {}", self.expires_on, self.issued_on),
            ));
        }
        for (field, text) in [
            ("issuing_authority", &self.issuing_authority),
            ("exporter_party.name", &self.exporter_party.name),
            ("importer_party.name", &self.importer_party.name),
        ] {
            if text.is_empty() {
                return Err(FieldError::new(field, "must not be empty"));
            }
        }
        if self.parcels == 0 || self.parcels > MAX_PARCELS {
            return Err(FieldError::new("parcels", format!("must be 1 to {MAX_PARCELS}, got {}", self.parcels)));
        }
        if self.carats.0 == 0 {
            return Err(FieldError::new("carats", "must be greater than zero"));
        }
        if self.value.0 == 0 {
            return Err(FieldError::new("value", "must be greater than zero"));
        }
        let (carats, value) = check_hs_lines(&self.lines)?;
        if carats != self.carats {
            return Err(FieldError::new(
                "carats",
                format!("total {} differs from the sum of the HS lines {}", self.carats, carats),
            ));
        }
        if value != self.value {
            return Err(FieldError::new(
                "value",
                format!("total {} differs from the sum of the HS lines {}", self.value, value),
            ));
        }
        Ok(())
    }
}

/// The exporting authority has checked the contents and sealed the container.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct ShipmentSealed {
    pub certificate: CertificateNumber,
    /// Tamper-evident seal identifiers, distinct, 1 to [`MAX_SEALS`].
    pub seal_ids: Vec<Label>,
    pub sealed_at: Timestamp,
    pub port_of_exit: Label,
}

impl ShipmentSealed {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.seal_ids.is_empty() || self.seal_ids.len() > MAX_SEALS {
            return Err(FieldError::new(
                "seal_ids",
                format!("must list 1 to {MAX_SEALS} seals, got {}", self.seal_ids.len()),
            ));
        }
        let mut sorted: Vec<_> = self.seal_ids.iter().collect();
        sorted.sort();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(FieldError::new("seal_ids", format!("seal {} is listed twice", w[0])));
        }
        Ok(())
    }
}

/// The importing authority confirms receipt (KPCS Section IV: "expeditiously").
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct ReceiptConfirmed {
    pub certificate: CertificateNumber,
    pub received_at: Timestamp,
    pub parcels_found: u32,
    pub carats_found: Carats,
    pub seals_intact: bool,
    pub remarks: Text,
}

impl ReceiptConfirmed {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.parcels_found > MAX_PARCELS {
            return Err(FieldError::new("parcels_found", format!("at most {MAX_PARCELS}")));
        }
        Ok(())
    }
}

#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct CertificateVoided {
    pub certificate: CertificateNumber,
    pub reason: Text,
}

/// A correction: the whole corrected certificate, under the same number, replacing the current
/// revision (the original stays in the ledger).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct CertificateAmended {
    pub certificate: Certificate,
    pub reason: Text,
}

/// Production of one mine or zone within a production report.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct ZoneProduction {
    pub zone: Label,
    pub carats: Carats,
    pub value: UsdCents,
}

/// A participant's production for a half-year (Annex III). A correction is a new report for the
/// same period with the next revision number.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct ProductionReported {
    pub participant: ParticipantId,
    pub period: HalfYear,
    /// 0 for the first report of the period, then 1, 2, ... for corrections.
    pub revision: u32,
    pub lines: Vec<HsLine>,
    /// Optional breakdown by mine or zone; when present, it sums to the lines' totals.
    pub zones: Vec<ZoneProduction>,
}

impl ProductionReported {
    pub fn validate(&self) -> Result<(), FieldError> {
        let (carats, value) = check_hs_lines(&self.lines)?;
        if self.zones.is_empty() {
            return Ok(());
        }
        if self.zones.len() > MAX_ZONES {
            return Err(FieldError::new("zones", format!("at most {MAX_ZONES} zones")));
        }
        check_zones(&self.zones.iter().map(|z| z.zone.clone()).collect::<Vec<_>>())?;
        let mut zone_carats = Carats(0);
        let mut zone_value = UsdCents(0);
        for (i, z) in self.zones.iter().enumerate() {
            zone_carats = zone_carats
                .checked_add(z.carats)
                .ok_or_else(|| FieldError::new(format!("zones[{i}].carats"), "sum overflows"))?;
            zone_value = zone_value
                .checked_add(z.value)
                .ok_or_else(|| FieldError::new(format!("zones[{i}].value"), "sum overflows"))?;
        }
        if zone_carats != carats || zone_value != value {
            return Err(FieldError::new(
                "zones",
                format!("zones sum to {zone_carats} and {zone_value}, the HS lines to {carats} and {value}"),
            ));
        }
        Ok(())
    }
}

/// What a governance act does. Who must approve it is the rules engine's (see `kp-rules`).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub enum GovernanceAction {
    /// A new participant joins (Uzbekistan, 2024). Its status must be `Active`.
    Admit(Participant),
    Suspend {
        participant: ParticipantId,
    },
    /// Export only from the listed zones (CAR, 2015).
    Restrict {
        participant: ParticipantId,
        zones: Vec<Label>,
    },
    /// Back to active, from suspended, restricted or withdrawn (Congo 2007, CAR 2024).
    Readmit {
        participant: ParticipantId,
    },
    /// Removed from the list of participants (Congo, 2004).
    Withdraw {
        participant: ParticipantId,
    },
    AuthorityKeyAdded {
        participant: ParticipantId,
        key: AuthorityKey,
    },
    AuthorityKeyRevoked {
        participant: ParticipantId,
        key: PublicKey,
    },
}

impl GovernanceAction {
    /// The participant the act is about.
    pub fn subject(&self) -> ParticipantId {
        match self {
            GovernanceAction::Admit(p) => p.id,
            GovernanceAction::Suspend { participant }
            | GovernanceAction::Restrict { participant, .. }
            | GovernanceAction::Readmit { participant }
            | GovernanceAction::Withdraw { participant }
            | GovernanceAction::AuthorityKeyAdded { participant, .. }
            | GovernanceAction::AuthorityKeyRevoked { participant, .. } => *participant,
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            GovernanceAction::Admit(_) => "admit",
            GovernanceAction::Suspend { .. } => "suspend",
            GovernanceAction::Restrict { .. } => "restrict",
            GovernanceAction::Readmit { .. } => "readmit",
            GovernanceAction::Withdraw { .. } => "withdraw",
            GovernanceAction::AuthorityKeyAdded { .. } => "authority-key-added",
            GovernanceAction::AuthorityKeyRevoked { .. } => "authority-key-revoked",
        }
    }
}

/// A governance act as its approvers signed it.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct GovernanceAct {
    /// Unique reference of the decision (e.g. the plenary communiqué's paragraph); an act with a
    /// reference already used is a replay.
    pub reference: Label,
    pub action: GovernanceAction,
    pub rationale: Text,
}

impl GovernanceAct {
    pub fn validate(&self) -> Result<(), FieldError> {
        match &self.action {
            GovernanceAction::Admit(p) => {
                p.validate().map_err(|e| e.within("action.admit"))?;
                if p.status != Status::Active {
                    return Err(FieldError::new("action.admit.status", "an admitted participant starts active"));
                }
            }
            GovernanceAction::Restrict { zones, .. } => check_zones(zones).map_err(|e| e.within("action.restrict"))?,
            _ => {}
        }
        Ok(())
    }
}

/// A governance act with the approvals it carries. The edge has verified every approval
/// signature over the act's exact bytes (`act_digest` is their SHA-256); `approvers` lists the
/// keys that signed, in the order carried.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct GovernanceEvent {
    pub act: GovernanceAct,
    pub act_digest: Hash32,
    pub approvers: Vec<PublicKey>,
}

/// A governance act put to written procedure (between plenaries): adopted at `deadline` when
/// no participant entitled to decide objected before it and enough approved (docs/rules.md,
/// "Written procedure"). The event's signer is the proposer; responses are events of their own.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct WrittenProcedure {
    pub act: GovernanceAct,
    /// SHA-256 of the act's protobuf bytes (what an ordinary act's approvers sign), so that an
    /// act adopted this way is recorded like any other.
    pub act_digest: Hash32,
    /// The procedure closes at this instant: responses are taken strictly before it.
    pub deadline: Timestamp,
}

/// A participant's answer to a written procedure: an approval, or an objection (with its
/// reason), which ends the procedure. The reference names exactly one act, since no reference
/// is ever used twice.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct ProcedureResponse {
    pub reference: Label,
    pub objection: bool,
    /// Required for an objection; optional for an approval.
    pub reason: Text,
}

/// Closes a written procedure whose deadline has come: the act it concerns, exactly as opened
/// (so that anyone reading this event alone knows what it decided and about whom), and the
/// outcome its submitter states, which the rules engine confirms or refuses.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct ProcedureConclusion {
    pub act: GovernanceAct,
    /// SHA-256 of the act's protobuf bytes: must be the opened act's.
    pub act_digest: Hash32,
    /// True: adopted (the act applies); false: lapsed.
    pub adopted: bool,
}

/// What an event says.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub enum EventPayload {
    CertificateIssued(Certificate),
    ShipmentSealed(ShipmentSealed),
    ReceiptConfirmed(ReceiptConfirmed),
    CertificateVoided(CertificateVoided),
    CertificateAmended(CertificateAmended),
    ProductionReported(ProductionReported),
    Governance(GovernanceEvent),
    WrittenProcedure(WrittenProcedure),
    ProcedureResponse(ProcedureResponse),
    ProcedureConclusion(ProcedureConclusion),
}

impl EventPayload {
    pub fn kind(&self) -> EventKind {
        match self {
            EventPayload::CertificateIssued(_) => EventKind::CertificateIssued,
            EventPayload::ShipmentSealed(_) => EventKind::ShipmentSealed,
            EventPayload::ReceiptConfirmed(_) => EventKind::ReceiptConfirmed,
            EventPayload::CertificateVoided(_) => EventKind::CertificateVoided,
            EventPayload::CertificateAmended(_) => EventKind::CertificateAmended,
            EventPayload::ProductionReported(_) => EventKind::ProductionReported,
            EventPayload::Governance(_) => EventKind::Governance,
            EventPayload::WrittenProcedure(_) => EventKind::WrittenProcedure,
            EventPayload::ProcedureResponse(_) => EventKind::ProcedureResponse,
            EventPayload::ProcedureConclusion(_) => EventKind::ProcedureConclusion,
        }
    }
    /// The certificate this event concerns, if any.
    pub fn certificate(&self) -> Option<&CertificateNumber> {
        match self {
            EventPayload::CertificateIssued(c) => Some(&c.number),
            EventPayload::ShipmentSealed(s) => Some(&s.certificate),
            EventPayload::ReceiptConfirmed(r) => Some(&r.certificate),
            EventPayload::CertificateVoided(v) => Some(&v.certificate),
            EventPayload::CertificateAmended(a) => Some(&a.certificate.number),
            EventPayload::ProductionReported(_)
            | EventPayload::Governance(_)
            | EventPayload::WrittenProcedure(_)
            | EventPayload::ProcedureResponse(_)
            | EventPayload::ProcedureConclusion(_) => None,
        }
    }
    /// Checks that need no ledger state; the offending field is named from the payload's root
    /// (e.g. `certificate_issued.lines[0].carats`).
    pub fn validate(&self) -> Result<(), FieldError> {
        let kind = self.kind().field_name();
        match self {
            EventPayload::CertificateIssued(c) => c.validate().map_err(|e| e.within("certificate")),
            EventPayload::ShipmentSealed(s) => s.validate(),
            EventPayload::ReceiptConfirmed(r) => r.validate(),
            EventPayload::CertificateVoided(v) => {
                if v.reason.is_empty() {
                    Err(FieldError::new("reason", "must not be empty"))
                } else {
                    Ok(())
                }
            }
            EventPayload::CertificateAmended(a) => {
                if a.reason.is_empty() {
                    Err(FieldError::new("reason", "must not be empty"))
                } else {
                    a.certificate.validate().map_err(|e| e.within("certificate"))
                }
            }
            EventPayload::ProductionReported(p) => p.validate(),
            EventPayload::Governance(g) => g.act.validate().map_err(|e| e.within("act")),
            EventPayload::WrittenProcedure(w) => w.act.validate().map_err(|e| e.within("act")),
            EventPayload::ProcedureConclusion(c) => c.act.validate().map_err(|e| e.within("act")),
            EventPayload::ProcedureResponse(r) => {
                if r.objection && r.reason.is_empty() {
                    Err(FieldError::new("reason", "an objection states its reason"))
                } else {
                    Ok(())
                }
            }
        }
        .map_err(|e| e.within(kind))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode, Serialize, Deserialize)]
pub enum EventKind {
    CertificateIssued,
    ShipmentSealed,
    ReceiptConfirmed,
    CertificateVoided,
    CertificateAmended,
    ProductionReported,
    Governance,
    WrittenProcedure,
    ProcedureResponse,
    ProcedureConclusion,
}

impl EventKind {
    /// The field name of this kind in the protobuf `EventPayload` oneof.
    pub fn field_name(self) -> &'static str {
        match self {
            EventKind::CertificateIssued => "certificate_issued",
            EventKind::ShipmentSealed => "shipment_sealed",
            EventKind::ReceiptConfirmed => "receipt_confirmed",
            EventKind::CertificateVoided => "certificate_voided",
            EventKind::CertificateAmended => "certificate_amended",
            EventKind::ProductionReported => "production_reported",
            EventKind::Governance => "governance",
            EventKind::WrittenProcedure => "written_procedure",
            EventKind::ProcedureResponse => "procedure_response",
            EventKind::ProcedureConclusion => "procedure_conclusion",
        }
    }
}
impl EventKind {
    /// Whether events of this kind change governance state (participants, keys, acts,
    /// procedures): such an event is proposed in a block of its own, and a verifier holding
    /// only the genesis and these events derives every voter set.
    pub fn is_governance(self) -> bool {
        matches!(
            self,
            EventKind::Governance
                | EventKind::WrittenProcedure
                | EventKind::ProcedureResponse
                | EventKind::ProcedureConclusion
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field_name())
    }
}

/// A decoded event whose signature by `signer` has been verified over its exact stored bytes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Event {
    pub id: EventId,
    pub signer: PublicKey,
    pub payload: EventPayload,
}
