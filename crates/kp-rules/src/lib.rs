//! The rules engine of the KP custody ledger.
//!
//! [`Ledger`] is the ledger state; [`Ledger::apply`] is the pure, deterministic function of
//! (state, event, block time) that admits an event or refuses it with a [`Rejection`] naming the
//! offending field. A refused event changes nothing. [`Ledger::state_root`] summarises the whole
//! state in one hash (see [`commitment`]) that block headers carry.
//!
//! Architecture invariants:
//! - No I/O, no clock, no randomness, no floating point, no hash-map iteration: the same
//!   genesis and the same sequence of (event, block time) give the same state and state root on
//!   every machine.
//! - Input events have had their signatures verified at the edge (`kp-proto`); the engine checks
//!   that the signer is entitled to sign what it signed.
//! - Checks come before changes: `check` computes every write from `&self`; `apply` commits them.
//!   docs/rules.md lists every rule and the test that covers it.

pub mod commitment;
mod rejection;

pub use rejection::Rejection;

use bincode::{Decode, Encode};
use commitment::Commitment;
use kp_domain::*;
use rejection::key_str;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Most tentative blocks open at once (a node's executed proposal, its pool's block on top,
/// and a check on top of that).
pub const MAX_TENTATIVE_DEPTH: usize = 4;

/// Most written procedures open at once (a bound on what governance keeps in the state).
pub const MAX_OPEN_PROCEDURES: usize = 64;

/// Longest written procedure, from the block that opens it to its deadline.
pub const MAX_PROCEDURE_DAYS: u64 = 90;

/// Most amendments of one certificate.
pub const MAX_AMENDMENTS: u32 = 16;

/// Where a certificate is in its custody life.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, Serialize)]
pub enum CertificateState {
    Issued,
    Sealed,
    Received,
    Voided,
}

/// A discrepancy recorded on receipt: the receipt is accepted, the incident kept.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize)]
pub enum Incident {
    ParcelsMismatch { declared: u32, found: u32 },
    CaratsMismatch { declared: Carats, found: Carats },
    SealsBroken,
    ReceivedAfterExpiry { expires_on: Date, received_on: Date },
}

/// One step of a certificate's custody, in ledger order.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize)]
pub struct CustodyStep {
    pub event: EventId,
    pub kind: EventKind,
    pub block_time: Timestamp,
    pub signer: PublicKey,
}

/// What the ledger knows of one certificate.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize)]
pub struct CertificateRecord {
    /// The current revision's content.
    pub certificate: Certificate,
    /// 0 as issued, +1 per amendment.
    pub revision: u32,
    pub state: CertificateState,
    pub sealed: Option<ShipmentSealed>,
    pub receipt: Option<ReceiptConfirmed>,
    pub void_reason: Option<Text>,
    pub incidents: Vec<Incident>,
    /// Every event that concerns the certificate, in order (at most 4 + MAX_AMENDMENTS).
    pub history: Vec<CustodyStep>,
}

/// The latest production report of a participant for a half-year.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize)]
pub struct ProductionRecord {
    pub report: ProductionReported,
    pub event: EventId,
}

/// Where a written procedure stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, Serialize)]
pub enum ProcedureOutcome {
    /// Taking responses until the deadline.
    Open,
    /// Concluded at or after the deadline: the act applied.
    Adopted,
    /// An entitled participant objected: the act died.
    Objected,
    /// Concluded without an objection but the act did not pass (too few approvals, or it no
    /// longer applied); `ProcedureRecord::lapse` says why.
    Lapsed,
}

impl ProcedureOutcome {
    pub fn name(self) -> &'static str {
        match self {
            ProcedureOutcome::Open => "open",
            ProcedureOutcome::Adopted => "adopted",
            ProcedureOutcome::Objected => "objected",
            ProcedureOutcome::Lapsed => "lapsed",
        }
    }
}

/// A governance act under written procedure, from its opening to its outcome.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize)]
pub struct ProcedureRecord {
    pub act: GovernanceAct,
    pub act_digest: Hash32,
    pub proposer: ParticipantId,
    /// The event that opened it, and its block time.
    pub opened_by: EventId,
    pub opened_at: Timestamp,
    pub deadline: Timestamp,
    /// Participants that approved, in ledger order (the proposer first).
    pub approvals: Vec<ParticipantId>,
    /// The objection that ended it: who, and why.
    pub objection: Option<(ParticipantId, Text)>,
    pub outcome: ProcedureOutcome,
    /// When it closed: the block time of its conclusion or of the objection.
    pub closed_at: Option<Timestamp>,
    /// Why it lapsed.
    pub lapse: Option<String>,
}

/// Who holds an authority key, and whether it is still valid.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct KeyOwner {
    pub participant: ParticipantId,
    pub role: Role,
    pub revoked: bool,
}

/// What an admitted event did, beyond what the state shows.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Outcome {
    /// Discrepancies recorded on a receipt.
    pub incidents: Vec<Incident>,
}

/// The writes an admissible event makes. Computed by [`Ledger::check`], committed by [`Ledger::apply`].
#[derive(Debug, Default)]
struct Change {
    certificate: Option<CertificateRecord>,
    participant: Option<Participant>,
    /// Authority keys whose owner record changes: (key, owner).
    keys: Vec<(PublicKey, KeyOwner)>,
    production: Option<ProductionRecord>,
    act: Option<(Label, Hash32)>,
    procedure: Option<ProcedureRecord>,
    incidents: Vec<Incident>,
}

/// The ledger state, from genesis through every admitted event.
#[derive(Debug, Clone)]
pub struct Ledger {
    format_version: u32,
    chain_id: ChainId,
    params: ProtocolParams,
    participants: BTreeMap<ParticipantId, Participant>,
    observers: BTreeMap<ObserverId, Observer>,
    /// Every authority key ever held, current or revoked, and every node key (as a marker, so
    /// that no key serves two purposes).
    keys: BTreeMap<PublicKey, KeyOwner>,
    node_keys: BTreeSet<PublicKey>,
    /// Hashed, not ordered: nothing reads certificates in order ([`Ledger::records`] sorts), and
    /// a lookup in an ordered map of a million certificate numbers chased a dozen pointers (a
    /// quarter of a block's commit). std's hasher is keyed per process, so certificate numbers
    /// chosen to collide cannot slow a node down.
    certificates: HashMap<CertificateNumber, CertificateRecord>,
    production: BTreeMap<(ParticipantId, HalfYear), ProductionRecord>,
    acts: BTreeMap<Label, Hash32>,
    /// Every written procedure, open or closed, by reference.
    procedures: BTreeMap<Label, ProcedureRecord>,
    /// The open ones, by deadline (derived from `procedures`, kept in step by `set_procedure`).
    open_procedures: BTreeSet<(Timestamp, Label)>,
    last_block_time: Timestamp,
    events_applied: u64,
    commitment: Commitment,
    /// While tentative blocks are open: how to undo each change, in order.
    journal: Vec<Undo>,
    /// The tentative blocks open, innermost last (a voter's executed proposal, and a node's
    /// pending pool on top of it): where each starts in the journal, and what it wrote.
    levels: Vec<Level>,
    /// Set while a rollback restores records: nothing is journaled or tracked (and, when the
    /// block rolled back was a scratch block, the commitment is not touched either).
    restoring: Option<bool>,
    /// With [`Ledger::track_changes`]: every record written since the last
    /// [`Ledger::take_changes`], with its latest value (`None`: removed). A store persists them.
    changes: Option<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

/// Why stored state records do not make a ledger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state record {key}: {reason}")]
pub struct RecordError {
    /// The record's key, printable.
    pub key: String,
    pub reason: String,
}

fn printable_key(key: &[u8]) -> String {
    match key.split_first() {
        Some((ns, rest)) if rest.iter().all(|b| b.is_ascii_graphic()) => {
            format!("{}/{}", char::from(*ns), String::from_utf8_lossy(rest))
        }
        Some((ns, rest)) => format!("{}/{}", char::from(*ns), hex_string(rest)),
        None => "(empty key)".to_owned(),
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One open tentative block.
#[derive(Debug, Clone)]
struct Level {
    /// Where its undo entries start in the journal.
    start: usize,
    /// A scratch block (see [`Ledger::begin_scratch`]): no state root, no tracked changes.
    scratch: bool,
    /// The records it wrote, with their latest value (`None`: removed), when changes are
    /// tracked: handed to the enclosing block, or to the tracked changes, when it is kept, and
    /// dropped when it is rolled back.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

/// How to undo one change of a tentative block.
#[derive(Debug, Clone)]
enum Undo {
    Certificate(CertificateNumber, Option<Box<CertificateRecord>>),
    /// The previous record, and the node key the change added to the used set, if any.
    Participant(ParticipantId, Option<Box<Participant>>, Option<PublicKey>),
    Key(PublicKey, Option<KeyOwner>),
    Production((ParticipantId, HalfYear), Option<ProductionRecord>),
    Act(Label, Option<Hash32>),
    Procedure(Label, Option<Box<ProcedureRecord>>),
    Time(Timestamp),
    EventsApplied(u64),
}

fn encode<T: Encode>(value: &T) -> Vec<u8> {
    // Encoding into a Vec cannot fail for these plain types.
    bincode::encode_to_vec(value, bincode::config::standard().with_fixed_int_encoding()).unwrap_or_default()
}

/// Decodes a stored record value: exactly the bytes `encode` gives for the value, nothing more.
fn decode<T: Decode<()> + Encode>(key: &[u8], bytes: &[u8]) -> Result<T, RecordError> {
    let err = |reason: String| RecordError { key: printable_key(key), reason };
    let (value, used): (T, usize) =
        bincode::decode_from_slice(bytes, bincode::config::standard().with_fixed_int_encoding())
            .map_err(|e| err(format!("does not decode: {e}")))?;
    if used != bytes.len() {
        return Err(err(format!("{} trailing bytes", bytes.len() - used)));
    }
    if encode(&value) != bytes {
        return Err(err("is not in canonical form".to_owned()));
    }
    Ok(value)
}

/// The protocol parameters as the state's `chain` record holds them: every one but the
/// signature rule, in the encoding the record had before the rule existed, so that a ledger
/// made then keeps its state root.
#[derive(Encode, Decode)]
struct StoredParams {
    max_event_time_ahead_ms: u64,
    max_issue_backdate_days: u16,
    max_events_per_block: u32,
    max_block_bytes: u32,
}

impl StoredParams {
    fn of(p: &ProtocolParams) -> StoredParams {
        StoredParams {
            max_event_time_ahead_ms: p.max_event_time_ahead_ms,
            max_issue_backdate_days: p.max_issue_backdate_days,
            max_events_per_block: p.max_events_per_block,
            max_block_bytes: p.max_block_bytes,
        }
    }
    fn with_rule(self, signature_rule: SignatureRule) -> ProtocolParams {
        ProtocolParams {
            max_event_time_ahead_ms: self.max_event_time_ahead_ms,
            max_issue_backdate_days: self.max_issue_backdate_days,
            max_events_per_block: self.max_events_per_block,
            max_block_bytes: self.max_block_bytes,
            signature_rule,
        }
    }
}

/// The state's records of the chain and its parameters: `chain` (format version, chain id and
/// every parameter but the signature rule), and `signature-rule` for a rule other than the
/// strict one (absent from every ledger made before the rule existed, which is strict).
fn meta_records(format_version: u32, chain_id: &ChainId, params: &ProtocolParams) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = vec![(record_key(NS_META, b"chain"), encode(&(format_version, chain_id, StoredParams::of(params))))];
    match params.signature_rule {
        SignatureRule::Strict => {}
        SignatureRule::Cofactored => out.push((record_key(NS_META, b"signature-rule"), encode(&1u8))),
    }
    out
}

fn record_key(namespace: u8, id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(namespace);
    k.extend_from_slice(id);
    k
}

const NS_META: u8 = b'm';
const NS_PARTICIPANT: u8 = b'p';
const NS_OBSERVER: u8 = b'o';
const NS_KEY: u8 = b'k';
const NS_CERTIFICATE: u8 = b'c';
const NS_PRODUCTION: u8 = b'r';
const NS_ACT: u8 = b'g';
const NS_PROCEDURE: u8 = b'w';

/// The key of a certificate's record in the state (what a store looks it up by).
pub fn certificate_record_key(number: &CertificateNumber) -> Vec<u8> {
    record_key(NS_CERTIFICATE, number.as_str().as_bytes())
}

/// Whether a state record key is a certificate record's.
pub fn is_certificate_record_key(key: &[u8]) -> bool {
    key.first() == Some(&NS_CERTIFICATE)
}

/// Whether a state record key is a governance act's or a written procedure's: written only by
/// governance events (which a proof bundle carries, so that its verifier derives the voter sets).
pub fn is_act_record_key(key: &[u8]) -> bool {
    matches!(key.first(), Some(&NS_ACT | &NS_PROCEDURE))
}

/// The certificate a certificate record key names, if it is one.
pub fn certificate_number_of_record_key(key: &[u8]) -> Option<CertificateNumber> {
    match key.split_first() {
        Some((&NS_CERTIFICATE, rest)) => std::str::from_utf8(rest).ok().and_then(|n| CertificateNumber::new(n).ok()),
        _ => None,
    }
}

/// The bytes of a certificate record, exactly as the state commits them.
pub fn encode_certificate_record(r: &CertificateRecord) -> Vec<u8> {
    encode(r)
}

impl Ledger {
    /// The state at genesis. The genesis is validated first.
    pub fn from_genesis(genesis: &Genesis) -> Result<Ledger, FieldError> {
        genesis.validate()?;
        let mut ledger = Ledger::empty(genesis.format_version, genesis.chain_id.clone(), genesis.params.clone());
        ledger.last_block_time = genesis.genesis_time;
        for (key, value) in meta_records(genesis.format_version, &genesis.chain_id, &genesis.params) {
            ledger.commitment.set(&key, Some(&value));
        }
        for o in &genesis.observers {
            ledger.node_keys.insert(o.node_key);
            ledger.observers.insert(o.id.clone(), o.clone());
            ledger.commitment.set(&record_key(NS_OBSERVER, o.id.as_str().as_bytes()), Some(&encode(o)));
        }
        for p in &genesis.participants {
            for a in &p.authorities {
                ledger.set_key(a.key, Some(KeyOwner { participant: p.id, role: a.role, revoked: false }));
            }
            ledger.set_participant(p.id, Some(p.clone()));
        }
        ledger.set_time(genesis.genesis_time);
        Ok(ledger)
    }

    /// A ledger with no records.
    fn empty(format_version: u32, chain_id: ChainId, params: ProtocolParams) -> Ledger {
        Ledger {
            format_version,
            chain_id,
            params,
            participants: BTreeMap::new(),
            observers: BTreeMap::new(),
            keys: BTreeMap::new(),
            node_keys: BTreeSet::new(),
            certificates: HashMap::new(),
            production: BTreeMap::new(),
            acts: BTreeMap::new(),
            procedures: BTreeMap::new(),
            open_procedures: BTreeSet::new(),
            last_block_time: Timestamp(0),
            events_applied: 0,
            commitment: Commitment::new(),
            journal: Vec::new(),
            levels: Vec::new(),
            restoring: None,
            changes: None,
        }
    }

    /// The ledger whose records are `records` (as [`Ledger::take_changes`] gave them, in any
    /// order) after `events_applied` events. Every record must decode to exactly its stored
    /// bytes and sit under its own key; the caller compares [`Ledger::state_root`] with the root
    /// it trusts (the last block's header).
    pub fn from_records(
        records: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
        events_applied: u64,
    ) -> Result<Ledger, RecordError> {
        let mut chain = None;
        let mut time = None;
        let mut rule = None;
        // The chain record fills these in below; a store without it is refused.
        let placeholder =
            ChainId::new("kp-restoring").map_err(|e| RecordError { key: String::new(), reason: e.to_string() })?;
        let mut ledger = Ledger::empty(0, placeholder, ProtocolParams::default());
        ledger.events_applied = events_applied;
        for (key, value) in records {
            let wrong_key = |expected: Vec<u8>| -> Result<(), RecordError> {
                if expected == key {
                    Ok(())
                } else {
                    Err(RecordError {
                        key: printable_key(&key),
                        reason: format!("holds the record of {}", printable_key(&expected)),
                    })
                }
            };
            match key.split_first() {
                Some((&NS_META, b"chain")) => {
                    chain = Some(decode::<(u32, ChainId, StoredParams)>(&key, &value)?);
                }
                Some((&NS_META, b"signature-rule")) => {
                    // Written only for a rule other than the strict one (see `meta_records`).
                    match decode::<u8>(&key, &value)? {
                        1 => rule = Some(SignatureRule::Cofactored),
                        other => {
                            return Err(RecordError {
                                key: printable_key(&key),
                                reason: format!("{other} is not a signature rule this build stores (1 cofactored)"),
                            });
                        }
                    }
                }
                Some((&NS_META, b"time")) => {
                    let bytes: [u8; 8] = value.as_slice().try_into().map_err(|_| RecordError {
                        key: printable_key(&key),
                        reason: format!("is {} bytes, not 8", value.len()),
                    })?;
                    time = Some(Timestamp(u64::from_be_bytes(bytes)));
                }
                Some((&NS_OBSERVER, _)) => {
                    let o: Observer = decode(&key, &value)?;
                    wrong_key(record_key(NS_OBSERVER, o.id.as_str().as_bytes()))?;
                    ledger.node_keys.insert(o.node_key);
                    ledger.observers.insert(o.id.clone(), o);
                }
                Some((&NS_PARTICIPANT, _)) => {
                    let p: Participant = decode(&key, &value)?;
                    wrong_key(record_key(NS_PARTICIPANT, p.id.as_str().as_bytes()))?;
                    ledger.node_keys.insert(p.node_key);
                    ledger.participants.insert(p.id, p);
                }
                Some((&NS_KEY, raw)) => {
                    let (participant, role, revoked): (ParticipantId, Role, bool) = decode(&key, &value)?;
                    let k: [u8; 32] = raw.try_into().map_err(|_| RecordError {
                        key: printable_key(&key),
                        reason: "is not a 32-byte key".to_owned(),
                    })?;
                    ledger.keys.insert(PublicKey(k), KeyOwner { participant, role, revoked });
                }
                Some((&NS_CERTIFICATE, _)) => {
                    let r: CertificateRecord = decode(&key, &value)?;
                    wrong_key(record_key(NS_CERTIFICATE, r.certificate.number.as_str().as_bytes()))?;
                    ledger.certificates.insert(r.certificate.number.clone(), r);
                }
                Some((&NS_PRODUCTION, _)) => {
                    let r: ProductionRecord = decode(&key, &value)?;
                    let id = (r.report.participant, r.report.period);
                    wrong_key(record_key(NS_PRODUCTION, &encode(&id)))?;
                    ledger.production.insert(id, r);
                }
                Some((&NS_ACT, reference)) => {
                    let digest: [u8; 32] = value.as_slice().try_into().map_err(|_| RecordError {
                        key: printable_key(&key),
                        reason: format!("is {} bytes, not a 32-byte digest", value.len()),
                    })?;
                    let label =
                        std::str::from_utf8(reference).ok().and_then(|r| Label::new(r).ok()).ok_or_else(|| {
                            RecordError { key: printable_key(&key), reason: "is not a valid act reference".to_owned() }
                        })?;
                    ledger.acts.insert(label, Hash32(digest));
                }
                Some((&NS_PROCEDURE, _)) => {
                    let r: ProcedureRecord = decode(&key, &value)?;
                    wrong_key(record_key(NS_PROCEDURE, r.act.reference.as_str().as_bytes()))?;
                    if r.outcome == ProcedureOutcome::Open {
                        ledger.open_procedures.insert((r.deadline, r.act.reference.clone()));
                    }
                    ledger.procedures.insert(r.act.reference.clone(), r);
                }
                _ => return Err(RecordError { key: printable_key(&key), reason: "unknown record".to_owned() }),
            }
            ledger.commitment.set(&key, Some(&value));
        }
        let missing = |what: &str| RecordError {
            key: printable_key(&record_key(NS_META, what.as_bytes())),
            reason: "is missing".to_owned(),
        };
        let (format_version, chain_id, params) = chain.ok_or_else(|| missing("chain"))?;
        ledger.format_version = format_version;
        ledger.chain_id = chain_id;
        ledger.params = params.with_rule(rule.unwrap_or(SignatureRule::Strict));
        ledger.last_block_time = time.ok_or_else(|| missing("time"))?;
        Ok(ledger)
    }

    /// From now on, record every state record written, for [`Ledger::take_changes`].
    pub fn track_changes(&mut self) {
        if self.changes.is_none() {
            self.changes = Some(BTreeMap::new());
        }
    }

    /// The records written since the last call (or since [`Ledger::track_changes`]), each with
    /// its latest value (`None`: removed), in key order. A tentative block's writes count once
    /// it is committed; a block rolled back leaves none. Empty if changes are not tracked.
    pub fn take_changes(&mut self) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        assert!(self.levels.is_empty(), "internal invariant: changes are taken between blocks");
        self.changes.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Every record of the state, in key order (what a store holds after taking every change).
    pub fn records(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let l = self;
        let mut out = meta_records(l.format_version, &l.chain_id, &l.params);
        out.push((record_key(NS_META, b"time"), l.last_block_time.0.to_be_bytes().to_vec()));
        out.extend(l.observers.values().map(|o| (record_key(NS_OBSERVER, o.id.as_str().as_bytes()), encode(o))));
        out.extend(l.participants.values().map(|p| (record_key(NS_PARTICIPANT, p.id.as_str().as_bytes()), encode(p))));
        out.extend(l.keys.iter().map(|(k, o)| (record_key(NS_KEY, &k.0), encode(&(o.participant, o.role, o.revoked)))));
        out.extend(
            l.certificates
                .values()
                .map(|r| (record_key(NS_CERTIFICATE, r.certificate.number.as_str().as_bytes()), encode(r))),
        );
        out.extend(l.production.iter().map(|(id, r)| (record_key(NS_PRODUCTION, &encode(id)), encode(r))));
        out.extend(l.acts.iter().map(|(a, d)| (record_key(NS_ACT, a.as_str().as_bytes()), d.0.to_vec())));
        out.extend(l.procedures.iter().map(|(a, r)| (record_key(NS_PROCEDURE, a.as_str().as_bytes()), encode(r))));
        out.sort();
        out
    }

    pub fn chain_id(&self) -> &ChainId {
        &self.chain_id
    }
    pub fn params(&self) -> &ProtocolParams {
        &self.params
    }
    pub fn participant(&self, id: &ParticipantId) -> Option<&Participant> {
        self.participants.get(id)
    }
    pub fn participants(&self) -> impl Iterator<Item = &Participant> {
        self.participants.values()
    }
    /// The participants whose nodes sign blocks, with their node keys, in id order.
    pub fn voters(&self) -> Vec<(ParticipantId, PublicKey)> {
        self.participants.values().filter(|p| p.status.votes()).map(|p| (p.id, p.node_key)).collect()
    }
    pub fn certificate(&self, number: &CertificateNumber) -> Option<&CertificateRecord> {
        self.certificates.get(number)
    }
    /// Every certificate record, in no particular order.
    pub fn certificates(&self) -> impl Iterator<Item = &CertificateRecord> {
        self.certificates.values()
    }
    pub fn production(&self, participant: ParticipantId, period: HalfYear) -> Option<&ProductionRecord> {
        self.production.get(&(participant, period))
    }
    pub fn key_owner(&self, key: &PublicKey) -> Option<KeyOwner> {
        self.keys.get(key).copied()
    }
    pub fn last_block_time(&self) -> Timestamp {
        self.last_block_time
    }
    pub fn events_applied(&self) -> u64 {
        self.events_applied
    }

    /// The root of the state commitment over every record of the state.
    pub fn state_root(&mut self) -> Hash32 {
        assert!(
            !self.levels.iter().any(|l| l.scratch),
            "internal invariant: no state root while a scratch block is open"
        );
        self.commitment.root()
    }

    /// Admits `event` at `block_time`, or refuses it and changes nothing.
    pub fn apply(&mut self, event: &Event, block_time: Timestamp) -> Result<Outcome, Rejection> {
        let change = self.check(event, block_time)?;
        Ok(self.write_change(change, block_time))
    }

    /// Writes what an admitted event changes, and counts it.
    fn write_change(&mut self, change: Change, block_time: Timestamp) -> Outcome {
        let incidents = self.write_records(change);
        if block_time != self.last_block_time {
            self.set_time(block_time);
        }
        self.journal(Undo::EventsApplied(self.events_applied));
        self.events_applied += 1;
        Outcome { incidents }
    }

    /// Writes the records a change makes; gives back its incidents.
    fn write_records(&mut self, change: Change) -> Vec<Incident> {
        if let Some(r) = change.certificate {
            self.set_certificate(r.certificate.number.clone(), Some(r));
        }
        if let Some(p) = change.participant {
            self.set_participant(p.id, Some(p));
        }
        for (key, owner) in change.keys {
            self.set_key(key, Some(owner));
        }
        if let Some(r) = change.production {
            self.set_production((r.report.participant, r.report.period), Some(r));
        }
        if let Some((reference, digest)) = change.act {
            self.set_act(reference, Some(digest));
        }
        if let Some(r) = change.procedure {
            self.set_procedure(r.act.reference.clone(), Some(r));
        }
        change.incidents
    }

    /// Starts a tentative block: every change until [`Ledger::commit_block`] or
    /// [`Ledger::rollback_block`] is journaled, so that a voter can execute a proposal, compute
    /// its state root, and undo it in time proportional to the block (not to the state).
    /// Tentative blocks nest: the innermost open one is the one committed or rolled back.
    pub fn begin_block(&mut self) {
        assert!(!self.in_scratch(), "internal invariant: a rooted block is not opened on a scratch block");
        self.open_level(false);
    }

    /// Starts a scratch block: a tentative block only for checking which events are admissible
    /// (a node's pending pool, a proposer's choice). It keeps no state root up to date and
    /// tracks no changes for a store, so applying and undoing cost a fraction of a rooted
    /// block's; it is always rolled back (or committed into an enclosing scratch block), and
    /// [`Ledger::state_root`] is not asked while one is open.
    pub fn begin_scratch(&mut self) {
        self.open_level(true);
    }

    fn open_level(&mut self, scratch: bool) {
        assert!(
            self.levels.len() < MAX_TENTATIVE_DEPTH,
            "internal invariant: tentative blocks nest at most {MAX_TENTATIVE_DEPTH} deep"
        );
        self.levels.push(Level { start: self.journal.len(), scratch, writes: BTreeMap::new() });
    }

    /// Whether the innermost open tentative block is a scratch block.
    fn in_scratch(&self) -> bool {
        self.levels.last().is_some_and(|l| l.scratch)
    }

    /// Whether writes reach the state commitment (and the tracked changes): not inside a
    /// scratch block, nor while one is rolled back.
    fn rooted(&self) -> bool {
        match self.restoring {
            Some(scratch) => !scratch,
            None => !self.in_scratch(),
        }
    }

    /// Tentative blocks open (0: the ledger is the committed state).
    pub fn tentative_depth(&self) -> usize {
        self.levels.len()
    }

    /// Keeps the innermost tentative block's changes: they become the enclosing block's (undone
    /// with it), or, if it was the outermost, the state's.
    pub fn commit_block(&mut self) {
        assert!(!self.levels.is_empty(), "internal invariant: no tentative block to commit");
        let Some(level) = self.levels.pop() else { return };
        assert!(
            !level.scratch || self.in_scratch(),
            "internal invariant: a scratch block is rolled back, never committed into the state"
        );
        match self.levels.last_mut() {
            Some(outer) => outer.writes.extend(level.writes),
            None => {
                self.journal.clear();
                if let Some(changes) = &mut self.changes {
                    changes.extend(level.writes);
                }
            }
        }
    }

    /// Undoes every change since the innermost [`Ledger::begin_block`]: the state and its root
    /// are as before, and the block leaves no tracked change.
    pub fn rollback_block(&mut self) {
        let Some(level) = self.levels.pop() else { return };
        let undo: Vec<Undo> = self.journal.drain(level.start..).collect();
        self.restoring = Some(level.scratch);
        for undo in undo.into_iter().rev() {
            match undo {
                Undo::Certificate(number, old) => self.set_certificate(number, old.map(|b| *b)),
                Undo::Participant(id, old, node_key_added) => {
                    if let Some(key) = node_key_added {
                        self.node_keys.remove(&key);
                    }
                    self.set_participant(id, old.map(|b| *b));
                }
                Undo::Key(key, old) => self.set_key(key, old),
                Undo::Production(id, old) => self.set_production(id, old),
                Undo::Act(reference, old) => self.set_act(reference, old),
                Undo::Procedure(reference, old) => self.set_procedure(reference, old.map(|b| *b)),
                Undo::Time(t) => self.set_time(t),
                Undo::EventsApplied(n) => self.events_applied = n,
            }
        }
        self.restoring = None;
    }

    /// Writes one record: into the commitment, and into the tracked changes — unless a scratch
    /// block is open (or rolled back), which touches neither, so the record is not even encoded.
    fn write(&mut self, key: impl FnOnce() -> Vec<u8>, value: impl FnOnce() -> Option<Vec<u8>>) {
        if !self.rooted() {
            return;
        }
        let (key, value) = (key(), value());
        self.commitment.set(&key, value.as_deref());
        if self.restoring.is_some() {
            return;
        }
        if let Some(changes) = &mut self.changes {
            match self.levels.last_mut() {
                Some(level) => level.writes.insert(key, value),
                None => changes.insert(key, value),
            };
        }
    }

    fn journal(&mut self, undo: Undo) {
        if !self.levels.is_empty() && self.restoring.is_none() {
            self.journal.push(undo);
        }
    }

    fn set_certificate(&mut self, number: CertificateNumber, value: Option<CertificateRecord>) {
        self.write(|| record_key(NS_CERTIFICATE, number.as_str().as_bytes()), || value.as_ref().map(encode));
        let old = match value {
            Some(r) => self.certificates.insert(number.clone(), r),
            None => self.certificates.remove(&number),
        };
        self.journal(Undo::Certificate(number, old.map(Box::new)));
    }

    fn set_participant(&mut self, id: ParticipantId, value: Option<Participant>) {
        self.write(|| record_key(NS_PARTICIPANT, id.as_str().as_bytes()), || value.as_ref().map(encode));
        // A node key, once a participant's, never serves another purpose (admission included).
        let node_key_added = value.as_ref().map(|p| p.node_key).filter(|k| self.node_keys.insert(*k));
        let old = match value {
            Some(p) => self.participants.insert(id, p),
            None => self.participants.remove(&id),
        };
        self.journal(Undo::Participant(id, old.map(Box::new), node_key_added));
    }

    fn set_key(&mut self, key: PublicKey, value: Option<KeyOwner>) {
        self.write(|| record_key(NS_KEY, &key.0), || value.map(|o| encode(&(o.participant, o.role, o.revoked))));
        let old = match value {
            Some(o) => self.keys.insert(key, o),
            None => self.keys.remove(&key),
        };
        self.journal(Undo::Key(key, old));
    }

    fn set_production(&mut self, id: (ParticipantId, HalfYear), value: Option<ProductionRecord>) {
        self.write(|| record_key(NS_PRODUCTION, &encode(&id)), || value.as_ref().map(encode));
        let old = match value {
            Some(r) => self.production.insert(id, r),
            None => self.production.remove(&id),
        };
        self.journal(Undo::Production(id, old));
    }

    fn set_act(&mut self, reference: Label, value: Option<Hash32>) {
        self.write(|| record_key(NS_ACT, reference.as_str().as_bytes()), || value.as_ref().map(|d| d.0.to_vec()));
        let old = match value {
            Some(d) => self.acts.insert(reference.clone(), d),
            None => self.acts.remove(&reference),
        };
        self.journal(Undo::Act(reference, old));
    }

    fn set_procedure(&mut self, reference: Label, value: Option<ProcedureRecord>) {
        self.write(|| record_key(NS_PROCEDURE, reference.as_str().as_bytes()), || value.as_ref().map(encode));
        if let Some(r) = value.as_ref().filter(|r| r.outcome == ProcedureOutcome::Open) {
            self.open_procedures.insert((r.deadline, reference.clone()));
        }
        let old = match value {
            Some(r) => self.procedures.insert(reference.clone(), r),
            None => self.procedures.remove(&reference),
        };
        if let Some(o) = old.as_ref().filter(|o| o.outcome == ProcedureOutcome::Open) {
            let still_open = self
                .procedures
                .get(&reference)
                .is_some_and(|r| r.outcome == ProcedureOutcome::Open && r.deadline == o.deadline);
            if !still_open {
                self.open_procedures.remove(&(o.deadline, reference.clone()));
            }
        }
        self.journal(Undo::Procedure(reference, old.map(Box::new)));
    }

    fn set_time(&mut self, t: Timestamp) {
        let old = self.last_block_time;
        self.last_block_time = t;
        self.write(|| record_key(NS_META, b"time"), || Some(t.0.to_be_bytes().to_vec()));
        self.journal(Undo::Time(old));
    }

    /// Decides whether `event` is admissible at `block_time`, without changing anything.
    pub fn is_admissible(&self, event: &Event, block_time: Timestamp) -> Result<(), Rejection> {
        self.check(event, block_time).map(|_| ())
    }

    fn check(&self, event: &Event, block_time: Timestamp) -> Result<Change, Rejection> {
        if block_time < self.last_block_time {
            return Err(Rejection::BlockTimeWentBack { last: self.last_block_time, got: block_time });
        }
        event.payload.validate()?;
        let signer = self.signer(&event.signer)?;
        let step = |kind| CustodyStep { event: event.id, kind, block_time, signer: event.signer };
        match &event.payload {
            EventPayload::CertificateIssued(c) => {
                self.check_issue(signer, c, block_time, step(EventKind::CertificateIssued))
            }
            EventPayload::ShipmentSealed(s) => self.check_seal(signer, s, block_time, step(EventKind::ShipmentSealed)),
            EventPayload::ReceiptConfirmed(r) => {
                self.check_receipt(signer, r, block_time, step(EventKind::ReceiptConfirmed))
            }
            EventPayload::CertificateVoided(v) => self.check_void(signer, v, step(EventKind::CertificateVoided)),
            EventPayload::CertificateAmended(a) => {
                self.check_amend(signer, a, block_time, step(EventKind::CertificateAmended))
            }
            EventPayload::ProductionReported(p) => self.check_production(signer, p, event.id, block_time),
            EventPayload::Governance(g) => self.check_governance(signer, g),
            EventPayload::WrittenProcedure(w) => self.check_procedure_opening(signer, w, event.id, block_time),
            EventPayload::ProcedureResponse(r) => self.check_procedure_response(signer, r, block_time),
            EventPayload::ProcedureConclusion(c) => self.check_procedure_conclusion(signer, c, block_time),
        }
    }

    /// The current owner of a signing key, or why it may not sign.
    fn signer(&self, key: &PublicKey) -> Result<KeyOwner, Rejection> {
        match self.keys.get(key) {
            None => Err(Rejection::UnknownSigner { key: key_str(key) }),
            Some(o) if o.revoked => Err(Rejection::RevokedSigner { key: key_str(key), participant: o.participant }),
            Some(o) => Ok(*o),
        }
    }

    fn require_authority(
        signer: KeyOwner,
        kind: EventKind,
        participant: ParticipantId,
        role: Role,
    ) -> Result<(), Rejection> {
        if signer.participant == participant && signer.role == role {
            Ok(())
        } else {
            Err(Rejection::WrongAuthority {
                kind,
                required: participant,
                required_role: role,
                participant: signer.participant,
                role: signer.role,
            })
        }
    }

    fn known(&self, field: &'static str, id: ParticipantId) -> Result<&Participant, Rejection> {
        self.participants.get(&id).ok_or(Rejection::UnknownParticipant { field, id })
    }

    fn trading(&self, field: &'static str, id: ParticipantId) -> Result<&Participant, Rejection> {
        let p = self.known(field, id)?;
        if p.status.trades() { Ok(p) } else { Err(Rejection::NotTrading { field, id, status: p.status.name() }) }
    }

    /// The checks a certificate's content must pass whether issued or amended.
    fn check_certificate_content(&self, c: &Certificate, block_time: Timestamp) -> Result<(), Rejection> {
        let exporter = self.trading("exporter", c.exporter)?;
        self.trading("importer", c.importer)?;
        if let Status::Restricted { zones } = &exporter.status {
            let allowed: Vec<String> = zones.iter().map(ToString::to_string).collect();
            let reason = match (&c.origin, &c.origin_zone) {
                (Origin::Country(o), Some(z)) if exporter.members.contains(o) && zones.contains(z) => None,
                (Origin::Country(o), Some(_)) if !exporter.members.contains(o) => {
                    Some(format!("origin {o} is not {}'s own", c.exporter))
                }
                (Origin::Mixed, _) => Some("mixed origin is not allowed".to_owned()),
                (_, None) => Some("no origin zone is stated".to_owned()),
                (_, Some(z)) => Some(format!("zone {z} is not listed")),
            };
            if let Some(reason) = reason {
                return Err(Rejection::RestrictedZone { exporter: c.exporter, allowed, reason });
            }
        }
        let days = i64::from(c.expires_on.days()) - i64::from(c.issued_on.days());
        if days > i64::from(exporter.max_certificate_validity_days) {
            return Err(Rejection::ValidityTooLong {
                participant: c.exporter,
                days,
                max: exporter.max_certificate_validity_days,
            });
        }
        let block_date = block_time.date();
        if c.issued_on > block_date.add_days(1) {
            return Err(Rejection::IssueDateInFuture { issued_on: c.issued_on, block_date });
        }
        let max_days = self.params.max_issue_backdate_days;
        if c.issued_on < block_date.add_days(-i32::from(max_days)) {
            return Err(Rejection::IssueDateTooOld { issued_on: c.issued_on, block_date, max_days });
        }
        if c.expires_on < block_date {
            return Err(Rejection::Expired { number: c.number.clone(), expires_on: c.expires_on, block_date });
        }
        Ok(())
    }

    fn check_issue(
        &self,
        signer: KeyOwner,
        c: &Certificate,
        block_time: Timestamp,
        step: CustodyStep,
    ) -> Result<Change, Rejection> {
        self.known("exporter", c.exporter)?;
        Self::require_authority(signer, EventKind::CertificateIssued, c.exporter, Role::Exporting)?;
        if self.certificates.contains_key(&c.number) {
            return Err(Rejection::DuplicateCertificate { number: c.number.clone() });
        }
        self.check_certificate_content(c, block_time)?;
        Ok(Change {
            certificate: Some(CertificateRecord {
                certificate: c.clone(),
                revision: 0,
                state: CertificateState::Issued,
                sealed: None,
                receipt: None,
                void_reason: None,
                incidents: vec![],
                history: vec![step],
            }),
            ..Change::default()
        })
    }

    fn existing(&self, number: &CertificateNumber) -> Result<&CertificateRecord, Rejection> {
        self.certificates.get(number).ok_or_else(|| Rejection::UnknownCertificate { number: number.clone() })
    }

    fn not_after(&self, field: &'static str, time: Timestamp, block_time: Timestamp) -> Result<(), Rejection> {
        let ahead_ms = self.params.max_event_time_ahead_ms;
        if time > block_time.saturating_add_ms(ahead_ms) {
            return Err(Rejection::InFuture { field, time, block_time, ahead_ms });
        }
        Ok(())
    }

    fn check_seal(
        &self,
        signer: KeyOwner,
        s: &ShipmentSealed,
        block_time: Timestamp,
        step: CustodyStep,
    ) -> Result<Change, Rejection> {
        let record = self.existing(&s.certificate)?;
        let c = &record.certificate;
        Self::require_authority(signer, EventKind::ShipmentSealed, c.exporter, Role::Exporting)?;
        match record.state {
            CertificateState::Issued => {}
            CertificateState::Sealed | CertificateState::Received => {
                return Err(Rejection::AlreadySealed { number: c.number.clone() });
            }
            CertificateState::Voided => return Err(Rejection::Voided { number: c.number.clone() }),
        }
        self.trading("exporter", c.exporter)?;
        let block_date = block_time.date();
        if c.expires_on < block_date {
            return Err(Rejection::Expired { number: c.number.clone(), expires_on: c.expires_on, block_date });
        }
        if s.sealed_at < c.issued_on.start() {
            return Err(Rejection::TooEarly {
                field: "sealed_at",
                time: s.sealed_at,
                what: "the issue date",
                earliest: c.issued_on.start(),
            });
        }
        self.not_after("sealed_at", s.sealed_at, block_time)?;
        let mut r = record.clone();
        r.state = CertificateState::Sealed;
        r.sealed = Some(s.clone());
        r.history.push(step);
        Ok(Change { certificate: Some(r), ..Change::default() })
    }

    fn check_receipt(
        &self,
        signer: KeyOwner,
        rc: &ReceiptConfirmed,
        block_time: Timestamp,
        step: CustodyStep,
    ) -> Result<Change, Rejection> {
        let record = self.existing(&rc.certificate)?;
        let c = &record.certificate;
        Self::require_authority(signer, EventKind::ReceiptConfirmed, c.importer, Role::Importing)?;
        let sealed_at = match (&record.state, &record.sealed) {
            (CertificateState::Sealed, Some(s)) => s.sealed_at,
            (CertificateState::Issued, _) | (CertificateState::Sealed, None) => {
                return Err(Rejection::NotSealed { number: c.number.clone() });
            }
            (CertificateState::Received, _) => return Err(Rejection::AlreadyReceived { number: c.number.clone() }),
            (CertificateState::Voided, _) => return Err(Rejection::Voided { number: c.number.clone() }),
        };
        if rc.received_at < sealed_at {
            return Err(Rejection::TooEarly {
                field: "received_at",
                time: rc.received_at,
                what: "the sealing",
                earliest: sealed_at,
            });
        }
        self.not_after("received_at", rc.received_at, block_time)?;
        let mut incidents = Vec::new();
        if rc.parcels_found != c.parcels {
            incidents.push(Incident::ParcelsMismatch { declared: c.parcels, found: rc.parcels_found });
        }
        if rc.carats_found != c.carats {
            incidents.push(Incident::CaratsMismatch { declared: c.carats, found: rc.carats_found });
        }
        if !rc.seals_intact {
            incidents.push(Incident::SealsBroken);
        }
        if rc.received_at.date() > c.expires_on {
            incidents
                .push(Incident::ReceivedAfterExpiry { expires_on: c.expires_on, received_on: rc.received_at.date() });
        }
        let mut r = record.clone();
        r.state = CertificateState::Received;
        r.receipt = Some(rc.clone());
        r.incidents.extend(incidents.iter().cloned());
        r.history.push(step);
        Ok(Change { certificate: Some(r), incidents, ..Change::default() })
    }

    fn check_void(&self, signer: KeyOwner, v: &CertificateVoided, step: CustodyStep) -> Result<Change, Rejection> {
        let record = self.existing(&v.certificate)?;
        let c = &record.certificate;
        Self::require_authority(signer, EventKind::CertificateVoided, c.exporter, Role::Exporting)?;
        match record.state {
            CertificateState::Issued | CertificateState::Sealed => {}
            CertificateState::Received => return Err(Rejection::AlreadyReceived { number: c.number.clone() }),
            CertificateState::Voided => return Err(Rejection::Voided { number: c.number.clone() }),
        }
        let mut r = record.clone();
        r.state = CertificateState::Voided;
        r.void_reason = Some(v.reason.clone());
        r.history.push(step);
        Ok(Change { certificate: Some(r), ..Change::default() })
    }

    fn check_amend(
        &self,
        signer: KeyOwner,
        a: &CertificateAmended,
        block_time: Timestamp,
        step: CustodyStep,
    ) -> Result<Change, Rejection> {
        let record = self.existing(&a.certificate.number)?;
        let original = &record.certificate;
        Self::require_authority(signer, EventKind::CertificateAmended, original.exporter, Role::Exporting)?;
        match record.state {
            CertificateState::Issued => {}
            CertificateState::Sealed | CertificateState::Received => {
                return Err(Rejection::AmendAfterSeal { number: original.number.clone() });
            }
            CertificateState::Voided => return Err(Rejection::Voided { number: original.number.clone() }),
        }
        // The amendment keeps the number, and the number's prefix names the exporter
        // (checked by `validate`), so the exporter cannot change.
        debug_assert_eq!(a.certificate.exporter, original.exporter);
        if record.revision >= MAX_AMENDMENTS {
            return Err(Rejection::TooManyAmendments { number: original.number.clone(), max: MAX_AMENDMENTS });
        }
        self.check_certificate_content(&a.certificate, block_time)?;
        let mut r = record.clone();
        r.certificate = a.certificate.clone();
        r.revision += 1;
        r.history.push(step);
        Ok(Change { certificate: Some(r), ..Change::default() })
    }

    fn check_production(
        &self,
        signer: KeyOwner,
        p: &ProductionReported,
        id: EventId,
        block_time: Timestamp,
    ) -> Result<Change, Rejection> {
        let participant = self.known("participant", p.participant)?;
        Self::require_authority(signer, EventKind::ProductionReported, p.participant, Role::Exporting)?;
        if participant.status == Status::Withdrawn {
            return Err(Rejection::WithdrawnReporter { participant: p.participant });
        }
        let expected = self.production.get(&(p.participant, p.period)).map_or(0, |r| r.report.revision + 1);
        if p.revision != expected {
            return Err(Rejection::WrongRevision {
                participant: p.participant,
                period: p.period,
                expected,
                got: p.revision,
            });
        }
        let block_date = block_time.date();
        if p.period.first_day() > block_date {
            return Err(Rejection::PeriodNotStarted { period: p.period, block_date });
        }
        Ok(Change { production: Some(ProductionRecord { report: p.clone(), event: id }), ..Change::default() })
    }

    fn key_free(&self, field: &'static str, key: &PublicKey) -> Result<(), Rejection> {
        if self.keys.contains_key(key) || self.node_keys.contains(key) {
            return Err(Rejection::KeyInUse { field, key: key_str(key) });
        }
        Ok(())
    }

    fn check_governance(&self, signer: KeyOwner, g: &GovernanceEvent) -> Result<Change, Rejection> {
        let proposer = self.known("signer", signer.participant)?;
        if !proposer.status.votes() {
            return Err(Rejection::ProposerNotVoting { participant: proposer.id, status: proposer.status.name() });
        }
        let (change, required) = self.governance_change(g)?;
        if !required.is_empty() {
            return Err(Rejection::MissingApprovals {
                action: g.act.action.name(),
                subject: g.act.action.subject(),
                missing: required,
            });
        }
        Ok(change)
    }

    /// Whether a governance act with these approvals would apply now: the participants whose
    /// approval is still missing (empty: complete), or why the act cannot apply whoever
    /// approves (a replayed reference, an impossible transition, an unknown approver...). What
    /// the nodes use to collect approvals before an act is proposed.
    pub fn missing_approvals(&self, g: &GovernanceEvent) -> Result<Vec<ParticipantId>, Rejection> {
        self.governance_change(g).map(|(_, missing)| missing)
    }

    /// The participants entitled to decide `action` by written procedure, in the state as it
    /// stands: every voting participant, except the party concerned by a suspension, a
    /// restriction or a withdrawal (consensus minus the party concerned). Key changes are a
    /// participant's own business and are not decided this way.
    fn entitled(&self, action: &GovernanceAction) -> Result<Vec<ParticipantId>, Rejection> {
        let voters = self.participants.values().filter(|p| p.status.votes()).map(|p| p.id);
        match action {
            GovernanceAction::Admit(_) | GovernanceAction::Readmit { .. } => Ok(voters.collect()),
            GovernanceAction::Suspend { participant }
            | GovernanceAction::Restrict { participant, .. }
            | GovernanceAction::Withdraw { participant } => Ok(voters.filter(|p| p != participant).collect()),
            GovernanceAction::AuthorityKeyAdded { .. } | GovernanceAction::AuthorityKeyRevoked { .. } => {
                Err(Rejection::NotByWrittenProcedure { action: action.name() })
            }
        }
    }

    fn check_procedure_opening(
        &self,
        signer: KeyOwner,
        w: &WrittenProcedure,
        event: EventId,
        block_time: Timestamp,
    ) -> Result<Change, Rejection> {
        let act = &w.act;
        let entitled = self.entitled(&act.action)?;
        let proposer = self.known("signer", signer.participant)?;
        if !proposer.status.votes() {
            return Err(Rejection::ProposerNotVoting { participant: proposer.id, status: proposer.status.name() });
        }
        // The act must apply now, whoever approves (its approvals are the procedure's).
        let g = GovernanceEvent { act: act.clone(), act_digest: w.act_digest, approvers: Vec::new() };
        self.governance_change(&g)?;
        if !entitled.contains(&proposer.id) {
            return Err(Rejection::NotEntitled {
                participant: proposer.id,
                action: act.action.name(),
                subject: act.action.subject(),
            });
        }
        if w.deadline <= block_time {
            return Err(Rejection::DeadlinePassed { deadline: w.deadline, block_time });
        }
        if w.deadline.0 - block_time.0 > MAX_PROCEDURE_DAYS * MS_PER_DAY {
            return Err(Rejection::DeadlineTooFar { deadline: w.deadline, block_time, max_days: MAX_PROCEDURE_DAYS });
        }
        if self.open_procedures.len() >= MAX_OPEN_PROCEDURES {
            return Err(Rejection::TooManyProcedures { max: MAX_OPEN_PROCEDURES });
        }
        let record = ProcedureRecord {
            act: act.clone(),
            act_digest: w.act_digest,
            proposer: proposer.id,
            opened_by: event,
            opened_at: block_time,
            deadline: w.deadline,
            approvals: vec![proposer.id],
            objection: None,
            outcome: ProcedureOutcome::Open,
            closed_at: None,
            lapse: None,
        };
        Ok(Change { procedure: Some(record), ..Change::default() })
    }

    fn check_procedure_response(
        &self,
        signer: KeyOwner,
        r: &ProcedureResponse,
        block_time: Timestamp,
    ) -> Result<Change, Rejection> {
        let record = self
            .procedures
            .get(&r.reference)
            .ok_or_else(|| Rejection::UnknownProcedure { reference: r.reference.clone() })?;
        if block_time >= record.deadline {
            return Err(Rejection::ProcedureDeadlinePassed {
                reference: r.reference.clone(),
                deadline: record.deadline,
                block_time,
            });
        }
        if record.outcome != ProcedureOutcome::Open {
            return Err(Rejection::ProcedureClosed { reference: r.reference.clone(), outcome: record.outcome.name() });
        }
        let who = signer.participant;
        if !self.entitled(&record.act.action)?.contains(&who) {
            return Err(Rejection::NotEntitled {
                participant: who,
                action: record.act.action.name(),
                subject: record.act.action.subject(),
            });
        }
        if record.approvals.contains(&who) {
            return Err(Rejection::AlreadyResponded { participant: who, reference: r.reference.clone() });
        }
        let mut updated = record.clone();
        if r.objection {
            updated.objection = Some((who, r.reason.clone()));
            updated.outcome = ProcedureOutcome::Objected;
            updated.closed_at = Some(block_time);
        } else {
            updated.approvals.push(who);
        }
        Ok(Change { procedure: Some(updated), ..Change::default() })
    }

    fn check_procedure_conclusion(
        &self,
        signer: KeyOwner,
        c: &ProcedureConclusion,
        block_time: Timestamp,
    ) -> Result<Change, Rejection> {
        let reference = &c.act.reference;
        let record = self
            .procedures
            .get(reference)
            .ok_or_else(|| Rejection::UnknownProcedure { reference: reference.clone() })?;
        if record.act_digest != c.act_digest {
            return Err(Rejection::ProcedureActDiffers { reference: reference.clone() });
        }
        if record.outcome != ProcedureOutcome::Open {
            return Err(Rejection::ProcedureClosed { reference: reference.clone(), outcome: record.outcome.name() });
        }
        if block_time < record.deadline {
            return Err(Rejection::DeadlineNotReached {
                reference: reference.clone(),
                deadline: record.deadline,
                block_time,
            });
        }
        let concluder = self.known("signer", signer.participant)?;
        if !concluder.status.votes() {
            return Err(Rejection::ProposerNotVoting { participant: concluder.id, status: concluder.status.name() });
        }
        let decision = self.procedure_decision(record)?;
        if decision.is_ok() != c.adopted {
            return Err(Rejection::WrongConclusion {
                reference: reference.clone(),
                stated: if c.adopted { "adopted" } else { "lapsed" },
                actual: match &decision {
                    Ok(_) => "adopted".to_owned(),
                    Err(why) => format!("lapsed: {why}"),
                },
            });
        }
        let mut updated = record.clone();
        updated.closed_at = Some(block_time);
        Ok(match decision {
            Ok(change) => {
                updated.outcome = ProcedureOutcome::Adopted;
                Change { procedure: Some(updated), ..change }
            }
            Err(why) => {
                updated.outcome = ProcedureOutcome::Lapsed;
                updated.lapse = Some(why);
                Change { procedure: Some(updated), ..Change::default() }
            }
        })
    }

    /// What the conclusion of the written procedure `reference` would state now, if its
    /// deadline has come: adopted (`true`) or lapsed. `None`: no such open procedure, or its
    /// deadline is after `block_time`.
    pub fn procedure_conclusion(&self, reference: &Label, block_time: Timestamp) -> Option<bool> {
        let record = self.procedures.get(reference).filter(|r| r.outcome == ProcedureOutcome::Open)?;
        if block_time < record.deadline {
            return None;
        }
        self.procedure_decision(record).ok().map(|d| d.is_ok())
    }

    /// What concluding `record` now does: the act's change (adopted), or why it lapses.
    fn procedure_decision(&self, record: &ProcedureRecord) -> Result<Result<Change, String>, Rejection> {
        let entitled = self.entitled(&record.act.action)?;
        let approved = record.approvals.iter().filter(|p| entitled.contains(p)).count();
        if approved * 2 <= entitled.len() {
            return Ok(Err(format!(
                "{approved} of the {} participants entitled to decide approved; more than half must",
                entitled.len()
            )));
        }
        let g = GovernanceEvent { act: record.act.clone(), act_digest: record.act_digest, approvers: Vec::new() };
        Ok(self.action_change(&g).map(|(change, _)| change).map_err(|r| r.to_string()))
    }

    /// A written procedure, by its act's reference.
    pub fn procedure(&self, reference: &Label) -> Option<&ProcedureRecord> {
        self.procedures.get(reference)
    }

    /// Every written procedure, by reference.
    pub fn procedures(&self) -> impl Iterator<Item = &ProcedureRecord> {
        self.procedures.values()
    }

    /// The digest of the act applied under this reference, if one has been.
    pub fn applied_act(&self, reference: &Label) -> Option<Hash32> {
        self.acts.get(reference).copied()
    }

    /// What a governance act changes, and whose approvals it still lacks.
    fn governance_change(&self, g: &GovernanceEvent) -> Result<(Change, Vec<ParticipantId>), Rejection> {
        let reference = &g.act.reference;
        if self.acts.contains_key(reference) || self.procedures.contains_key(reference) {
            return Err(Rejection::DuplicateAct { reference: reference.clone() });
        }
        self.action_change(g)
    }

    /// What a governance act changes if it applies now, and whose approvals it still lacks
    /// (whether its reference is new is the caller's to check).
    fn action_change(&self, g: &GovernanceEvent) -> Result<(Change, Vec<ParticipantId>), Rejection> {
        let act = &g.act;
        // Who approved: participant → the keys it approved with.
        let mut approved: BTreeMap<ParticipantId, Vec<PublicKey>> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for (index, key) in g.approvers.iter().enumerate() {
            if !seen.insert(*key) {
                return Err(Rejection::DuplicateApproval { index, key: key_str(key) });
            }
            match self.keys.get(key) {
                Some(o) if !o.revoked => approved.entry(o.participant).or_default().push(*key),
                _ => return Err(Rejection::UnknownApprover { index, key: key_str(key) }),
            }
        }
        let subject = act.action.subject();
        let action = act.action.name();
        let voters: Vec<ParticipantId> =
            self.participants.values().filter(|p| p.status.votes()).map(|p| p.id).collect();
        let missing = |required: &mut dyn Iterator<Item = ParticipantId>| -> Vec<ParticipantId> {
            required.filter(|p| !approved.contains_key(p)).collect()
        };
        let all_but_subject = missing(&mut voters.iter().copied().filter(|p| *p != subject));
        let transition = |allowed: bool, p: &Participant| -> Result<(), Rejection> {
            if allowed {
                Ok(())
            } else {
                Err(Rejection::InvalidTransition { action, participant: p.id, status: p.status.name() })
            }
        };
        let leaves_a_voter = |p: &Participant| -> Result<(), Rejection> {
            if voters.iter().any(|v| *v != p.id) {
                Ok(())
            } else {
                Err(Rejection::NoVoterLeft { action, participant: p.id })
            }
        };
        let mut change = Change { act: Some((act.reference.clone(), g.act_digest)), ..Change::default() };
        // First what the act does and whether it applies; then whether everyone needed approved.
        let required = match &act.action {
            GovernanceAction::Admit(newcomer) => {
                if self.participants.contains_key(&newcomer.id) {
                    return Err(Rejection::ParticipantExists { id: newcomer.id });
                }
                self.key_free("act.action.admit.node_key", &newcomer.node_key)?;
                let mut fresh = BTreeSet::new();
                for a in &newcomer.authorities {
                    self.key_free("act.action.admit.authorities", &a.key)?;
                    if a.key == newcomer.node_key || !fresh.insert(a.key) {
                        return Err(Rejection::KeyInUse {
                            field: "act.action.admit.authorities",
                            key: key_str(&a.key),
                        });
                    }
                    change.keys.push((a.key, KeyOwner { participant: newcomer.id, role: a.role, revoked: false }));
                }
                change.participant = Some(newcomer.clone());
                missing(&mut voters.iter().copied())
            }
            GovernanceAction::Suspend { participant } => {
                let p = self.known("act.action.participant", *participant)?;
                transition(p.status.votes(), p)?;
                leaves_a_voter(p)?;
                change.participant = Some(Participant { status: Status::Suspended, ..p.clone() });
                // A participant may suspend itself (Venezuela, 2008): that restricts only its own
                // trade, so its own approval suffices; otherwise every other voter must approve.
                if approved.contains_key(participant) { vec![] } else { all_but_subject }
            }
            GovernanceAction::Withdraw { participant } => {
                let p = self.known("act.action.participant", *participant)?;
                transition(p.status != Status::Withdrawn, p)?;
                leaves_a_voter(p)?;
                change.participant = Some(Participant { status: Status::Withdrawn, ..p.clone() });
                all_but_subject
            }
            GovernanceAction::Restrict { participant, zones } => {
                let p = self.known("act.action.participant", *participant)?;
                transition(p.status != Status::Withdrawn, p)?;
                change.participant =
                    Some(Participant { status: Status::Restricted { zones: zones.clone() }, ..p.clone() });
                all_but_subject
            }
            GovernanceAction::Readmit { participant } => {
                let p = self.known("act.action.participant", *participant)?;
                transition(p.status != Status::Active, p)?;
                change.participant = Some(Participant { status: Status::Active, ..p.clone() });
                missing(&mut voters.iter().copied())
            }
            GovernanceAction::AuthorityKeyAdded { participant, key } => {
                let p = self.known("act.action.participant", *participant)?;
                transition(p.status != Status::Withdrawn, p)?;
                self.key_free("act.action.authority_key_added.key", &key.key)?;
                if p.authorities.len() >= MAX_AUTHORITY_KEYS {
                    return Err(Rejection::TooManyKeys { participant: p.id, max: MAX_AUTHORITY_KEYS });
                }
                let mut updated = p.clone();
                updated.authorities.push(key.clone());
                change.keys.push((key.key, KeyOwner { participant: p.id, role: key.role, revoked: false }));
                change.participant = Some(updated);
                // The participant approves its own new key; otherwise every other voter must.
                if approved.contains_key(participant) { vec![] } else { all_but_subject }
            }
            GovernanceAction::AuthorityKeyRevoked { participant, key } => {
                let p = self.known("act.action.participant", *participant)?;
                let owner = self.keys.get(key).filter(|o| o.participant == *participant && !o.revoked);
                let Some(owner) = owner else {
                    return Err(Rejection::KeyNotOwned { participant: *participant, key: key_str(key) });
                };
                let mut updated = p.clone();
                updated.authorities.retain(|a| a.key != *key);
                change.keys.push((*key, KeyOwner { revoked: true, ..*owner }));
                change.participant = Some(updated);
                // The participant approves its own rotation with a key other than the one revoked;
                // otherwise every other voter must approve (recovery from a lost or stolen key).
                let self_approved = approved.get(participant).is_some_and(|keys| keys.iter().any(|k| k != key));
                if self_approved { vec![] } else { all_but_subject }
            }
        };
        Ok((change, required))
    }
}
