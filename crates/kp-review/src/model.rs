//! What the review keeps of the committed ledger, and how each committed event updates it.

use crate::period::{Half, Quarter};
use kp_domain::{
    CertificateNumber, CountryCode, Date, EventId, EventKind, EventPayload, Genesis, GovernanceAction, GovernanceEvent,
    HsCode, HsLine, Label, Origin, ParticipantId, ProcedureConclusion, Status, Timestamp,
};
use serde::Serialize;
use std::collections::BTreeMap;

/// One committed event, as the review consumes it: in commit order, with its block.
#[derive(Clone, Copy, Debug)]
pub struct Committed<'a> {
    /// Height of the block that committed the event.
    pub height: u64,
    /// The block's time (not the event's own `sealed_at` / `received_at`).
    pub time: Timestamp,
    pub id: EventId,
    pub payload: &'a EventPayload,
}

/// A reference to a committed event: what a finding cites as evidence.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct EventRef {
    #[serde(serialize_with = "serialize_kind")]
    pub kind: EventKind,
    /// SHA-256 of the signed envelope (hex in JSON).
    pub id: EventId,
    pub height: u64,
    /// Block time, milliseconds since the Unix epoch.
    pub time: Timestamp,
}

fn serialize_kind<S: serde::Serializer>(kind: &EventKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.field_name())
}

/// Index of a recorded event in [`Review::events`]: the order of recording is the commit order,
/// so comparing two indexes compares when the events were committed.
pub(crate) type Ev = u32;

/// Carats (hundredths) and value (cents) per HS code, indexed like [`HsCode::ALL`]; `(0, 0)`
/// means no line for that code. Three fixed slots instead of a `Vec`: no allocation per
/// certificate.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Lines(pub [(u64, u64); 3]);

pub(crate) fn hs_index(code: HsCode) -> usize {
    match code {
        HsCode::Unsorted => 0,
        HsCode::Industrial => 1,
        HsCode::NonIndustrial => 2,
    }
}

impl Lines {
    pub fn from_hs_lines(lines: &[HsLine]) -> Lines {
        let mut out = Lines::default();
        for l in lines {
            // A well-formed list has each code once; a malformed one is summed, not refused.
            let slot = &mut out.0[hs_index(l.hs_code)];
            slot.0 = slot.0.saturating_add(l.carats.0);
            slot.1 = slot.1.saturating_add(l.value.0);
        }
        out
    }
    /// The lines present, in HS code order: (code, carats in hundredths, value in cents).
    pub fn iter(&self) -> impl Iterator<Item = (HsCode, u64, u64)> + '_ {
        HsCode::ALL.into_iter().zip(self.0).filter(|(_, (c, v))| *c != 0 || *v != 0).map(|(h, (c, v))| (h, c, v))
    }
    pub fn totals(&self) -> (u64, u64) {
        self.0.iter().fold((0u64, 0u64), |(c, v), (lc, lv)| (c.saturating_add(*lc), v.saturating_add(*lv)))
    }
}

#[derive(Clone, Debug)]
pub(crate) struct SealRec {
    pub event: Ev,
    pub sealed_at: Timestamp,
}

#[derive(Clone, Debug)]
pub(crate) struct ReceiptRec {
    pub event: Ev,
    pub received_at: Timestamp,
    pub parcels_found: u32,
    pub carats_found: u64,
    pub seals_intact: bool,
}

/// What the review keeps of one certificate: the current revision's content (without the
/// free-text fields, which no output needs) and the custody events.
#[derive(Clone, Debug)]
pub(crate) struct CertRecord {
    pub exporter: ParticipantId,
    pub importer: ParticipantId,
    pub origin: Origin,
    pub origin_zone: Option<Label>,
    pub issued_on: Date,
    pub expires_on: Date,
    pub parcels: u32,
    /// The certificate's declared totals (element 8 and 9), hundredths of a carat and cents.
    pub carats: u64,
    pub value: u64,
    pub lines: Lines,
    /// 0 as issued, +1 per amendment.
    pub revision: u32,
    pub issue: Ev,
    pub amendments: Vec<Ev>,
    pub seal: Option<SealRec>,
    pub receipt: Option<ReceiptRec>,
    pub void: Option<Ev>,
}

impl CertRecord {
    fn set_content(&mut self, c: &kp_domain::Certificate) {
        self.exporter = c.exporter;
        self.importer = c.importer;
        self.origin = c.origin.clone();
        self.origin_zone = c.origin_zone.clone();
        self.issued_on = c.issued_on;
        self.expires_on = c.expires_on;
        self.parcels = c.parcels;
        self.carats = c.carats.0;
        self.value = c.value.0;
        self.lines = Lines::from_hs_lines(&c.lines);
    }

    /// The event that carries the current content: the latest amendment, or the issue.
    pub fn content_event(&self) -> Ev {
        self.amendments.last().copied().unwrap_or(self.issue)
    }

    /// The issue and every amendment, in commit order.
    pub fn content_events(&self) -> impl Iterator<Item = Ev> + '_ {
        std::iter::once(self.issue).chain(self.amendments.iter().copied())
    }

    /// Every event of the certificate, in commit order.
    pub fn all_events(&self) -> Vec<Ev> {
        let mut evs: Vec<Ev> = self.content_events().collect();
        evs.extend(self.seal.as_ref().map(|s| s.event));
        evs.extend(self.receipt.as_ref().map(|r| r.event));
        evs.extend(self.void);
        evs.sort_unstable();
        evs
    }

    pub fn quarter(&self) -> Quarter {
        Quarter::of(self.issued_on)
    }
}

/// The latest revision of a participant's production report for a half-year.
#[derive(Clone, Debug)]
pub(crate) struct ProductionRec {
    pub revision: u32,
    pub event: Ev,
    pub lines: Lines,
}

/// A change of a participant's status by a governance act.
#[derive(Clone, Debug)]
pub(crate) struct StatusChange {
    pub event: Ev,
    pub action: &'static str,
    pub status: Status,
}

#[derive(Clone, Debug)]
pub(crate) struct ParticipantRec {
    pub name: String,
    pub members: Vec<CountryCode>,
    /// The status at genesis; `None` for a participant that was not in the genesis (admitted
    /// later, or only named by an event).
    pub genesis_status: Option<Status>,
    /// Status changes, in commit order.
    pub changes: Vec<StatusChange>,
}

impl ParticipantRec {
    /// The status in force just before the event `at` was committed, and the governance event
    /// that set it (`None`: the genesis status, or unknown).
    pub fn status_before(&self, at: Ev) -> (Option<&Status>, Option<Ev>) {
        let applied = self.changes.partition_point(|c| c.event < at);
        match applied.checked_sub(1).and_then(|i| self.changes.get(i)) {
            Some(c) => (Some(&c.status), Some(c.event)),
            None => (self.genesis_status.as_ref(), None),
        }
    }
}

/// An event the review could not place (a seal for an unknown certificate, a second issue of
/// a number...): counted, and the first [`MAX_IGNORED_KEPT`] are kept with the reason.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct IgnoredEvent {
    pub event: EventRef,
    pub reason: &'static str,
}

/// How many ignored events are kept for inspection (all are counted).
pub const MAX_IGNORED_KEPT: usize = 256;

/// The review state: everything the reports, statistics and anomaly checks need, built
/// incrementally from the committed events. See the crate documentation for the model.
#[derive(Clone, Debug)]
pub struct Review {
    /// Every recorded event, in commit order (an [`Ev`] indexes it).
    pub(crate) events: Vec<EventRef>,
    pub(crate) certificates: BTreeMap<CertificateNumber, CertRecord>,
    pub(crate) production: BTreeMap<(ParticipantId, Half), ProductionRec>,
    pub(crate) participants: BTreeMap<ParticipantId, ParticipantRec>,
    ignored_total: u64,
    ignored: Vec<IgnoredEvent>,
    /// The time of the last block seen ([`Review::note_block`]), the genesis time before any:
    /// the consensus time the reports judge "due" and "overdue" by.
    head_time: kp_domain::Timestamp,
}

impl Review {
    /// An empty review of the network that `genesis` starts.
    pub fn new(genesis: &Genesis) -> Review {
        let participants = genesis
            .participants
            .iter()
            .map(|p| {
                let rec = ParticipantRec {
                    name: p.name.as_str().to_owned(),
                    members: p.members.clone(),
                    genesis_status: Some(p.status.clone()),
                    changes: Vec::new(),
                };
                (p.id, rec)
            })
            .collect();
        Review {
            events: Vec::new(),
            certificates: BTreeMap::new(),
            production: BTreeMap::new(),
            participants,
            ignored_total: 0,
            ignored: Vec::new(),
            head_time: genesis.genesis_time,
        }
    }

    /// Notes a committed block's time (every block, with events or not), so that what is due is
    /// judged as of the ledger's consensus time, the same on any machine, whatever its clock.
    pub fn note_block(&mut self, time: kp_domain::Timestamp) {
        self.head_time = self.head_time.max(time);
    }

    /// The date the reports judge by: that of the last block's consensus time.
    pub fn as_of(&self) -> kp_domain::Date {
        self.head_time.date()
    }

    /// Takes the next committed event. Events must come in commit order; they were admitted
    /// by the rules engine, but nothing here relies on it: an event that cannot be placed is
    /// ignored and counted ([`Review::ignored`]), never a panic.
    pub fn add(&mut self, event: Committed<'_>) {
        let reference = EventRef { kind: event.payload.kind(), id: event.id, height: event.height, time: event.time };
        let Ok(index) = Ev::try_from(self.events.len()) else {
            self.ignore(reference, "more events than the review can index");
            return;
        };
        match event.payload {
            EventPayload::CertificateIssued(c) => {
                if self.certificates.contains_key(&c.number) {
                    self.ignore(reference, "certificate number already issued");
                    return;
                }
                let mut record = CertRecord {
                    exporter: c.exporter,
                    importer: c.importer,
                    origin: Origin::Mixed,
                    origin_zone: None,
                    issued_on: c.issued_on,
                    expires_on: c.expires_on,
                    parcels: 0,
                    carats: 0,
                    value: 0,
                    lines: Lines::default(),
                    revision: 0,
                    issue: index,
                    amendments: Vec::new(),
                    seal: None,
                    receipt: None,
                    void: None,
                };
                record.set_content(c);
                self.certificates.insert(c.number.clone(), record);
                self.note_participant(c.exporter);
                self.note_participant(c.importer);
            }
            EventPayload::CertificateAmended(a) => {
                let Some(record) = self.certificates.get_mut(&a.certificate.number) else {
                    self.ignore(reference, "amendment of an unknown certificate");
                    return;
                };
                record.set_content(&a.certificate);
                record.revision = record.revision.saturating_add(1);
                record.amendments.push(index);
                self.note_participant(a.certificate.importer);
            }
            EventPayload::ShipmentSealed(s) => match self.certificates.get_mut(&s.certificate) {
                Some(record) if record.seal.is_none() => {
                    record.seal = Some(SealRec { event: index, sealed_at: s.sealed_at });
                }
                Some(_) => return self.ignore(reference, "certificate already sealed"),
                None => return self.ignore(reference, "seal of an unknown certificate"),
            },
            EventPayload::ReceiptConfirmed(r) => match self.certificates.get_mut(&r.certificate) {
                Some(record) if record.receipt.is_none() => {
                    record.receipt = Some(ReceiptRec {
                        event: index,
                        received_at: r.received_at,
                        parcels_found: r.parcels_found,
                        carats_found: r.carats_found.0,
                        seals_intact: r.seals_intact,
                    });
                }
                Some(_) => return self.ignore(reference, "certificate already received"),
                None => return self.ignore(reference, "receipt of an unknown certificate"),
            },
            EventPayload::CertificateVoided(v) => match self.certificates.get_mut(&v.certificate) {
                Some(record) if record.void.is_none() => record.void = Some(index),
                Some(_) => return self.ignore(reference, "certificate already voided"),
                None => return self.ignore(reference, "void of an unknown certificate"),
            },
            EventPayload::ProductionReported(p) => {
                let key = (p.participant, Half::from(p.period));
                if self.production.get(&key).is_some_and(|old| old.revision > p.revision) {
                    return self.ignore(reference, "production report older than the one recorded");
                }
                let rec = ProductionRec { revision: p.revision, event: index, lines: Lines::from_hs_lines(&p.lines) };
                self.production.insert(key, rec);
                self.note_participant(p.participant);
            }
            // A written procedure's opening and responses change no status; its conclusion
            // states whether the act it carries was adopted (the rules engine confirmed it).
            EventPayload::WrittenProcedure(_) | EventPayload::ProcedureResponse(_) => {}
            EventPayload::ProcedureConclusion(c) if !c.adopted => {}
            EventPayload::Governance(GovernanceEvent { act, .. })
            | EventPayload::ProcedureConclusion(ProcedureConclusion { act, .. }) => {
                let (subject, status, name, members) = match &act.action {
                    GovernanceAction::Admit(p) => {
                        (p.id, p.status.clone(), Some(p.name.as_str().to_owned()), Some(p.members.clone()))
                    }
                    GovernanceAction::Suspend { participant } => (*participant, Status::Suspended, None, None),
                    GovernanceAction::Restrict { participant, zones } => {
                        (*participant, Status::Restricted { zones: zones.clone() }, None, None)
                    }
                    GovernanceAction::Readmit { participant } => (*participant, Status::Active, None, None),
                    GovernanceAction::Withdraw { participant } => (*participant, Status::Withdrawn, None, None),
                    // Key rotations change no status: nothing to keep.
                    GovernanceAction::AuthorityKeyAdded { .. } | GovernanceAction::AuthorityKeyRevoked { .. } => {
                        return;
                    }
                };
                let rec = self.participants.entry(subject).or_insert_with(|| ParticipantRec {
                    name: String::new(),
                    members: Vec::new(),
                    genesis_status: None,
                    changes: Vec::new(),
                });
                if let Some(name) = name {
                    rec.name = name;
                }
                if let Some(members) = members {
                    rec.members = members;
                }
                rec.changes.push(StatusChange { event: index, action: act.action.name(), status });
            }
        }
        self.events.push(reference);
    }

    /// How many events could not be placed, and the first [`MAX_IGNORED_KEPT`] of them.
    pub fn ignored(&self) -> (u64, &[IgnoredEvent]) {
        (self.ignored_total, &self.ignored)
    }

    /// How many events the review holds (placed events only).
    pub fn events_recorded(&self) -> usize {
        self.events.len()
    }

    /// How many certificates the review holds.
    pub fn certificate_count(&self) -> usize {
        self.certificates.len()
    }

    fn ignore(&mut self, event: EventRef, reason: &'static str) {
        self.ignored_total = self.ignored_total.saturating_add(1);
        if self.ignored.len() < MAX_IGNORED_KEPT {
            self.ignored.push(IgnoredEvent { event, reason });
        }
    }

    /// Makes sure a participant named by an event is known (by its code only, if it was in
    /// neither the genesis nor an admission).
    fn note_participant(&mut self, id: ParticipantId) {
        self.participants.entry(id).or_insert_with(|| ParticipantRec {
            name: String::new(),
            members: Vec::new(),
            genesis_status: None,
            changes: Vec::new(),
        });
    }

    /// The reference of a recorded event. Every [`Ev`] held comes from `add`, which pushes
    /// the event it indexes; a missing one would be a bug, and yields a zero reference rather
    /// than a panic.
    pub(crate) fn event(&self, ev: Ev) -> EventRef {
        usize::try_from(ev).ok().and_then(|i| self.events.get(i)).copied().unwrap_or(EventRef {
            kind: EventKind::CertificateIssued,
            id: EventId::default(),
            height: 0,
            time: Timestamp(0),
        })
    }

    pub(crate) fn event_id(&self, ev: Ev) -> EventId {
        self.event(ev).id
    }

    pub(crate) fn participant_name(&self, id: ParticipantId) -> Option<&str> {
        self.participants.get(&id).map(|p| p.name.as_str()).filter(|n| !n.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crate documentation's memory figures rest on these sizes: keep them from growing
    /// unnoticed.
    #[test]
    fn records_stay_compact() {
        assert!(size_of::<EventRef>() <= 56, "EventRef is {} bytes", size_of::<EventRef>());
        assert!(size_of::<CertRecord>() <= 208, "CertRecord is {} bytes", size_of::<CertRecord>());
        assert!(size_of::<ProductionRec>() <= 56, "ProductionRec is {} bytes", size_of::<ProductionRec>());
    }
}
