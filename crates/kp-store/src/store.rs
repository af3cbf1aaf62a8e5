//! The ledger store over a [`Backend`]: commit, open-time checks, `verify`, the pending pool,
//! consensus records and the queries nodes and reviewers need.

use crate::backend::{Backend, BackendError, Batch, Cf, Op, ReadView};
use crate::layout::*;
use kp_chain::LedgerApp;
use kp_consensus::block::{Block, BlockHeader, Certificate, block_hash, voters_hash};
use kp_consensus::{Application, Evidence, Record, apply_committed, wire};
use kp_domain::{
    CertificateNumber, ChainId, EventId, EventKind, EventPayload, Genesis, Hash32, ParticipantId, PublicKey,
    SignatureRule, Timestamp,
};
use kp_rules::{CertificateRecord, CertificateState, Ledger};
use std::collections::{BTreeMap, HashMap};

/// Most submitted events waiting in the pool; a submission beyond it is refused.
pub const MAX_PENDING: usize = 100_000;
/// Most consensus records kept for one height: one per [`RecordSlot`], whatever the number of
/// rounds (a voter away for a day, or a Byzantine voter's `NewRound`s, runs thousands).
pub const MAX_RECORDS_PER_HEIGHT: u32 = 4;
/// Most pieces of evidence kept for one height.
pub const MAX_EVIDENCE_PER_HEIGHT: u32 = 256;
/// Most entries one review query returns.
pub const MAX_PAGE: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("the store is format version {found}; this build reads version {supported} (a migration is needed)")]
    FormatVersion { found: u32, supported: u32 },
    #[error("the store holds chain {found}, but the genesis is for chain {expected}")]
    WrongChain { found: String, expected: String },
    #[error("the store was created from another genesis (stored hash {found}, this genesis {expected})")]
    WrongGenesis { found: String, expected: String },
    #[error("the directory holds data that is not a KP ledger store ({0})")]
    NotAStore(String),
    #[error("the genesis is invalid: {0}")]
    Genesis(String),
    /// The stored data disagree with each other: the store refuses to start, and never repairs.
    #[error("store integrity: height {height}: {reason}")]
    Integrity { height: u64, reason: String },
    #[error("block at height {got} does not extend the stored head (height {head})")]
    NotNext { got: u64, head: u64 },
    #[error("the ledger handed to the store is not at the block being committed: {0}")]
    LedgerMismatch(String),
    #[error("the pending pool is full ({0} events)")]
    PoolFull(usize),
    #[error("a submitted event of {0} bytes is over the limit of {max} bytes", max = kp_domain::MAX_EVENT_BYTES)]
    TooLarge(usize),
}

/// Where a consensus record of the open height is kept. What a restarted engine needs for
/// safety is, per height, its prevote and precommit of the highest round it voted in, its
/// proposal of the highest round it proposed in, and its highest lock: rounds only go up, so a
/// restarted engine resumes at the highest round it recorded and never signs in an earlier one
/// (`kp_consensus::Engine::new`). A record replaces its slot's only if its round is higher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordSlot {
    Prevote = 0,
    Precommit = 1,
    Proposal = 2,
    Lock = 3,
}

const _: () = assert!(RecordSlot::ALL.len() == MAX_RECORDS_PER_HEIGHT as usize);

impl RecordSlot {
    pub const ALL: [RecordSlot; 4] =
        [RecordSlot::Prevote, RecordSlot::Precommit, RecordSlot::Proposal, RecordSlot::Lock];

    /// The record's height, slot and round.
    pub fn of(record: &Record) -> (u64, RecordSlot, u32) {
        use kp_consensus::block::VoteKind;
        match record {
            Record::Voted(v) => {
                let slot = if v.kind == VoteKind::Prevote { RecordSlot::Prevote } else { RecordSlot::Precommit };
                (v.height, slot, v.round)
            }
            Record::Proposed(p) => (p.height, RecordSlot::Proposal, p.round),
            Record::Locked { certificate, .. } => (certificate.body.height, RecordSlot::Lock, certificate.body.round),
        }
    }
}

fn integrity(height: u64, reason: impl Into<String>) -> StoreError {
    StoreError::Integrity { height, reason: reason.into() }
}

/// What happened to one submitted envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    Added,
    AlreadyPending,
    AlreadyCommitted(Position),
}

/// One step of a certificate's custody as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustodyEntry {
    pub at: Position,
    pub block_time: Timestamp,
    pub envelope: Vec<u8>,
}

/// A committed block as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlock {
    pub block: Block,
    pub certificate: Certificate,
}

/// A block's bytes exactly as stored, unchecked (see [`Store::raw_block`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBlock {
    pub header: Vec<u8>,
    pub events: Vec<Vec<u8>>,
    pub certificate: Vec<u8>,
}

/// What `verify` checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub blocks: u64,
    pub events: u64,
    pub state_records: u64,
    pub custody_entries: u64,
    pub head_hash: Hash32,
}

/// The ledger store of one node.
#[derive(Debug)]
pub struct Store<B: Backend> {
    backend: B,
    chain_id: ChainId,
    /// The genesis's signature rule, for every signature the store checks.
    rule: SignatureRule,
    genesis_hash: Hash32,
    head: Head,
    /// The voters of the next height, as last stored.
    voters: Vec<(ParticipantId, PublicKey)>,
    /// The pending pool's event ids and their submission seq (at most `pending_limit`).
    pending: HashMap<EventId, u64>,
    pending_limit: usize,
    next_pending_seq: u64,
    /// The round of the record in each [`RecordSlot`] of the open height (head + 1).
    record_rounds: [Option<u32>; 4],
}

fn decode_header(height: u64, bytes: &[u8]) -> Result<BlockHeader, StoreError> {
    BlockHeader::decode(bytes).map_err(|e| integrity(height, format!("header does not decode: {e}")))
}

fn position_of(height: u64, index: usize) -> Position {
    Position { height, index: u32::try_from(index).unwrap_or(u32::MAX) }
}

/// Reads a state record as it was before the block being written.
type StateLookup<'a> = dyn Fn(&[u8]) -> Result<Option<Vec<u8>>, StoreError> + 'a;

/// Every write a committed block makes, but for the pending pool: the block itself, its
/// indexes, the state changes and the indexes derived from them, the next voter set if it
/// changed, the pruning of consensus records, and the new head. Commit writes it; `verify`
/// recomputes it on a replay and compares. `previous_state` reads a state record as it was
/// before the block (read only for a certificate amended in the block).
#[allow(clippy::too_many_arguments)]
fn block_writes(
    block: &Block,
    certificate: &Certificate,
    ids: &[EventId],
    changes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    voters_changed: Option<&[(ParticipantId, PublicKey)]>,
    head: Head,
    ledger: &Ledger,
    previous_state: &StateLookup<'_>,
) -> Result<Batch, StoreError> {
    let h = block.header();
    let height = h.height;
    let mut b = Batch::default();
    b.put(Cf::Headers, height_key(height).to_vec(), block.header_bytes().to_vec());
    b.put(Cf::Certificates, height_key(height).to_vec(), wire::encode_certificate(certificate));
    // The parent's certificate that counts is the one its child carries (its time derives from
    // it): the stored one is replaced by it, so that block h + 1 always finds, as certificate h,
    // the very bytes its header binds.
    if let Some(parent) = block.last_commit() {
        b.put(Cf::Certificates, height_key(height - 1).to_vec(), wire::encode_certificate(parent));
    }
    b.put(Cf::BlockHashes, block.hash().0.to_vec(), height_key(height).to_vec());
    b.put(Cf::ByTime, h.time.0.to_be_bytes().to_vec(), height_key(height).to_vec());
    let mut here = BTreeMap::new();
    for (i, (envelope, id)) in block.events().iter().zip(ids).enumerate() {
        let at = position_of(height, i);
        b.put(Cf::Events, at.to_bytes().to_vec(), envelope.clone());
        b.put(Cf::EventIds, id.0.to_vec(), at.to_bytes().to_vec());
        here.insert(*id, at);
    }
    for (key, value) in changes {
        let Some(v) = value else {
            b.delete(Cf::State, key.clone());
            continue;
        };
        // A changed certificate record is the ledger's record of that certificate now (its
        // bytes are `v`): the ledger's copy spares decoding them.
        let record = match kp_rules::certificate_number_of_record_key(key) {
            Some(n) => Some(ledger.certificate(&n).ok_or_else(|| {
                integrity(height, format!("the ledger changed the record of {n} but does not hold it"))
            })?),
            None => None,
        };
        match record {
            Some(r) => {
                let amended =
                    r.history.iter().any(|s| s.kind == EventKind::CertificateAmended && here.contains_key(&s.event));
                let before = match amended {
                    true => previous_state(key)?.map(|old| decode_compact(height, key, &old)).transpose()?,
                    false => None,
                };
                b.put(Cf::State, key.clone(), compact_certificate(height, r)?);
                certificate_writes(r, before.as_ref(), &here, &mut b);
            }
            None => {
                if kp_rules::is_act_record_key(key) {
                    b.put(Cf::Acts, height_key(height).to_vec(), Vec::new());
                }
                b.put(Cf::State, key.clone(), v.clone());
            }
        }
    }
    if let Some(voters) = voters_changed {
        b.put(Cf::Voters, height_key(height + 1).to_vec(), encode_voters(voters));
    }
    b.delete_range(Cf::Consensus, Vec::new(), height_key(height + 1).to_vec());
    b.put(Cf::Meta, META_HEAD.to_vec(), head.to_bytes());
    Ok(b)
}

/// The index entries a block changes for one certificate record: the custody steps of the
/// block's events; the review index when the certificate is issued, or amended to another
/// importer (`before`: its compact record before the block); the pending-receipt entry when
/// the shipment is sealed, and its removal once it is received or voided.
fn certificate_writes(
    r: &CertificateRecord,
    before: Option<&CompactCertificate>,
    here: &BTreeMap<EventId, Position>,
    b: &mut Batch,
) {
    let c = &r.certificate;
    for step in &r.history {
        if let Some(at) = here.get(&step.event) {
            b.put(Cf::Custody, custody_key(&c.number, *at), step.block_time.0.to_be_bytes().to_vec());
        }
    }
    if let Some(first) = r.history.first() {
        let parties = [(c.exporter, TradeRole::Exporter), (c.importer, TradeRole::Importer)];
        if here.contains_key(&first.event) {
            for (who, role) in parties {
                b.put(Cf::ByParticipant, participant_key(who, role, first.block_time, &c.number), Vec::new());
            }
        } else if let Some(old) = before.filter(|old| old.importer != c.importer) {
            b.delete(
                Cf::ByParticipant,
                participant_key(old.importer, TradeRole::Importer, first.block_time, &c.number),
            );
            b.put(
                Cf::ByParticipant,
                participant_key(c.importer, TradeRole::Importer, first.block_time, &c.number),
                Vec::new(),
            );
        }
    }
    let key = pending_receipt_key(c.importer, &c.number);
    match (&r.state, &r.sealed) {
        (CertificateState::Sealed, Some(s)) => b.put(Cf::PendingReceipts, key, s.sealed_at.0.to_be_bytes().to_vec()),
        // An amendment comes before the seal, so the importer has not changed since.
        (_, Some(_)) => b.delete(Cf::PendingReceipts, key),
        (_, None) => {}
    }
}

/// How the state family keeps a certificate record: what the log already holds — the
/// certificate's content, seal, receipt, void reason, each step's event id, signer and block
/// time — is left to the events and the custody index. [`Store::open`] expands the record
/// back to the exact bytes the state root commits (and checks the root). The importer is kept
/// so that an amendment that changes it can move the review index entry without a lookup of
/// the events.
#[derive(Debug, bincode::Encode, bincode::Decode)]
struct CompactCertificate {
    revision: u32,
    state: CertificateState,
    incidents: Vec<kp_rules::Incident>,
    importer: ParticipantId,
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

fn compact_certificate(height: u64, r: &CertificateRecord) -> Result<Vec<u8>, StoreError> {
    let c = CompactCertificate {
        revision: r.revision,
        state: r.state,
        incidents: r.incidents.clone(),
        importer: r.certificate.importer,
    };
    bincode::encode_to_vec(&c, bincode_config())
        .map_err(|e| integrity(height, format!("encoding a certificate record: {e}")))
}

fn decode_compact(height: u64, key: &[u8], compact: &[u8]) -> Result<CompactCertificate, StoreError> {
    let bad = |why: String| integrity(height, format!("state record {}: {why}", printable(key)));
    let (c, used): (CompactCertificate, usize) =
        bincode::decode_from_slice(compact, bincode_config()).map_err(|e| bad(format!("does not decode: {e}")))?;
    if used != compact.len() {
        return Err(bad("trailing bytes".to_owned()));
    }
    Ok(c)
}

/// A block's header and commit certificate exactly as stored ([`Store::raw_commit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCommit {
    pub header: Vec<u8>,
    pub certificate: Vec<u8>,
}

/// The read side of the committed state that review queries use: over the store's own
/// backend ([`Store::reader`]), or over a [`Snapshot`] that a reader keeps outside the node's
/// core lock.
#[derive(Clone, Copy)]
pub struct StateReader<'a> {
    view: &'a dyn ReadView,
    /// The head height the view is at (named in integrity errors).
    height: u64,
}

impl std::fmt::Debug for StateReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateReader").field("height", &self.height).finish_non_exhaustive()
    }
}

/// A consistent view of the committed state at one head, owned: no block committed after it
/// is seen through it, and holding it blocks no writer.
pub struct Snapshot {
    view: Box<dyn ReadView>,
    head: Head,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("head", &self.head).finish_non_exhaustive()
    }
}

impl Snapshot {
    /// The head the snapshot was taken at.
    pub fn head(&self) -> Head {
        self.head
    }

    pub fn reader(&self) -> StateReader<'_> {
        StateReader { view: self.view.as_ref(), height: self.head.height }
    }
}

impl StateReader<'_> {
    /// The full certificate record from its compact form and the certificate's custody index:
    /// every step's event is read back and decoded (structure only: signatures were checked
    /// when the block was committed).
    pub(crate) fn expand_certificate(&self, key: &[u8], compact: &[u8]) -> Result<CertificateRecord, StoreError> {
        let height = self.height;
        let bad = |why: String| integrity(height, format!("state record {}: {why}", printable(key)));
        let c = decode_compact(height, key, compact)?;
        let number = kp_rules::certificate_number_of_record_key(key)
            .ok_or_else(|| bad("the key names no certificate".to_owned()))?;
        let mut certificate = None;
        let mut sealed = None;
        let mut receipt = None;
        let mut void_reason = None;
        let steps = self.custody(&number)?;
        let mut history = Vec::with_capacity(steps.len());
        for step in steps {
            let (h, i) = (step.at.height, step.at.index);
            let e = kp_proto::decode_event(&step.envelope)
                .map_err(|e| bad(format!("its event at height {h} index {i}: {e}")))?;
            match e.payload() {
                EventPayload::CertificateIssued(x) => certificate = Some(x.clone()),
                EventPayload::CertificateAmended(a) => certificate = Some(a.certificate.clone()),
                EventPayload::ShipmentSealed(s) => sealed = Some(s.clone()),
                EventPayload::ReceiptConfirmed(r) => receipt = Some(r.clone()),
                EventPayload::CertificateVoided(v) => void_reason = Some(v.reason.clone()),
                EventPayload::ProductionReported(_)
                | EventPayload::Governance(_)
                | EventPayload::WrittenProcedure(_)
                | EventPayload::ProcedureResponse(_)
                | EventPayload::ProcedureConclusion(_) => {
                    return Err(bad(format!("its event at height {h} index {i} is not a custody event")));
                }
            }
            history.push(kp_rules::CustodyStep {
                event: e.id(),
                kind: e.payload().kind(),
                block_time: step.block_time,
                signer: e.signer(),
            });
        }
        let certificate = certificate.ok_or_else(|| bad("no issuing event".to_owned()))?;
        if certificate.importer != c.importer {
            return Err(bad(format!(
                "names importer {} but its last issuing event names {}",
                c.importer, certificate.importer
            )));
        }
        Ok(CertificateRecord {
            certificate,
            revision: c.revision,
            state: c.state,
            sealed,
            receipt,
            void_reason,
            incidents: c.incidents,
            history,
        })
    }

    /// A certificate's custody history, in ledger order.
    pub fn custody(&self, number: &CertificateNumber) -> Result<Vec<CustodyEntry>, StoreError> {
        let prefix = custody_prefix(number);
        // Issue, seal, receipt or void, and the amendments: a longer history is damage.
        let most = kp_rules::MAX_AMENDMENTS as usize + 4;
        let mut steps = Vec::new();
        self.view.scan_prefix(Cf::Custody, &prefix, &prefix, &mut |k, v| {
            if steps.len() > most {
                return false;
            }
            steps.push((k[prefix.len()..].to_vec(), v.to_vec()));
            true
        })?;
        if steps.len() > most {
            return Err(integrity(self.height, format!("the custody index of {number} holds more than {most} steps")));
        }
        steps
            .into_iter()
            .map(|(at, time)| {
                let at = Position::from_bytes(&at)
                    .ok_or_else(|| integrity(0, format!("custody entry of {number} is damaged")))?;
                let block_time =
                    Timestamp(u64_at(&time, 0).ok_or_else(|| integrity(at.height, "custody entry time is damaged"))?);
                let envelope = self.view.get(Cf::Events, &at.to_bytes())?.ok_or_else(|| {
                    integrity(at.height, format!("event {} in the custody of {number} is missing", at.index))
                })?;
                Ok(CustodyEntry { at, block_time, envelope })
            })
            .collect()
    }

    /// The certificate's current record in the state.
    pub fn certificate(&self, number: &CertificateNumber) -> Result<Option<CertificateRecord>, StoreError> {
        let key = kp_rules::certificate_record_key(number);
        let Some(v) = self.view.get(Cf::State, &key)? else { return Ok(None) };
        self.expand_certificate(&key, &v).map(Some)
    }

    /// Certificates where `participant` has `role`, issued in `[from, to)`, in issue order,
    /// starting after `after` (the last (time, number) of the previous page), at most `limit`
    /// (capped at [`MAX_PAGE`]).
    pub fn certificates_of(
        &self,
        participant: ParticipantId,
        role: TradeRole,
        from: Timestamp,
        to: Timestamp,
        after: Option<(Timestamp, &CertificateNumber)>,
        limit: usize,
    ) -> Result<Vec<(Timestamp, CertificateNumber)>, StoreError> {
        let prefix = participant_prefix(participant, role);
        let start = match after {
            Some((t, n)) => {
                let mut k = participant_key(participant, role, t, n);
                k.push(0);
                k
            }
            None => {
                let mut k = prefix.clone();
                k.extend_from_slice(&from.0.to_be_bytes());
                k
            }
        };
        let limit = limit.min(MAX_PAGE);
        let mut out = Vec::new();
        let mut damaged = None;
        self.view.scan_prefix(Cf::ByParticipant, &prefix, &start, &mut |k, _| {
            if out.len() >= limit {
                return false;
            }
            let rest = &k[prefix.len()..];
            let parsed = u64_at(rest, 0)
                .zip(std::str::from_utf8(&rest[8.min(rest.len())..]).ok().and_then(|n| CertificateNumber::new(n).ok()));
            match parsed {
                Some((t, _)) if t >= to.0 => false,
                Some((t, n)) => {
                    out.push((Timestamp(t), n));
                    true
                }
                None => {
                    damaged = Some(hex(k));
                    false
                }
            }
        })?;
        match damaged {
            Some(k) => Err(integrity(self.height, format!("review index entry {k} is damaged"))),
            None => Ok(out),
        }
    }
}

impl<B: Backend> Store<B> {
    /// Opens the store on `backend` for `genesis`, creating it if the backend is empty, and
    /// checks it: format version, chain and genesis; the hash chain of every header; the last
    /// block in full (events, root, event index, custody index, certificate against the voter
    /// set); the state records against the last block's state root; the stored voter set.
    /// Returns the store and the ledger application at the stored head.
    pub fn open(backend: B, genesis: &Genesis) -> Result<(Store<B>, LedgerApp), StoreError> {
        let genesis_hash = kp_proto::genesis_hash(genesis);
        let mut genesis_ledger = Ledger::from_genesis(genesis).map_err(|e| StoreError::Genesis(e.to_string()))?;
        if backend.get(Cf::Meta, META_FORMAT)?.is_none() {
            for cf in Cf::ALL {
                if let Some((k, _)) = backend.last(cf)? {
                    return Err(StoreError::NotAStore(format!(
                        "no format record, but column family {} holds key {}",
                        cf.name(),
                        hex(&k)
                    )));
                }
            }
            let mut b = Batch::default();
            b.put(Cf::Meta, META_FORMAT.to_vec(), STORE_FORMAT_VERSION.to_be_bytes().to_vec());
            b.put(Cf::Meta, META_CHAIN.to_vec(), genesis.chain_id.as_str().as_bytes().to_vec());
            b.put(Cf::Meta, META_GENESIS.to_vec(), genesis_hash.0.to_vec());
            let head = Head { height: 0, hash: genesis_hash, time: genesis.genesis_time, events: 0 };
            b.put(Cf::Meta, META_HEAD.to_vec(), head.to_bytes());
            for (k, v) in genesis_ledger.records() {
                b.put(Cf::State, k, v);
            }
            b.put(Cf::Voters, height_key(1).to_vec(), encode_voters(&genesis_ledger.voters()));
            backend.write(b, true)?;
        }
        let mut store = Store::unchecked(backend, genesis)?;
        let head = store.head;
        let last_header = store.check_chain(genesis)?;
        let mut records = Vec::new();
        store.backend.scan(Cf::State, &[], &mut |k, v| {
            records.push((k.to_vec(), v.to_vec()));
            true
        })?;
        for (k, v) in &mut records {
            if kp_rules::is_certificate_record_key(k) {
                let full = store.reader().expand_certificate(k, v)?;
                *v = kp_rules::encode_certificate_record(&full);
            }
        }
        let mut ledger =
            Ledger::from_records(records, head.events).map_err(|e| integrity(head.height, e.to_string()))?;
        let expected_root = match &last_header {
            Some(h) => h.state_root,
            None => genesis_ledger.state_root(),
        };
        let root = ledger.state_root();
        if root != expected_root {
            return Err(integrity(
                head.height,
                format!(
                    "state root {} of the stored state differs from the block's {}",
                    root.short(),
                    expected_root.short()
                ),
            ));
        }
        let last_commit = match &last_header {
            Some(h) => Some(store.check_block(h.height)?),
            None => None,
        };
        store.voters = store.voters_at(head.height + 1)?;
        if store.voters != ledger.voters() {
            return Err(integrity(head.height, "the stored voter set of the next height differs from the state's"));
        }
        store.load_counters()?;
        ledger.track_changes();
        let app = LedgerApp::restore(ledger, head.height, (head.hash, head.time), last_commit);
        Ok((store, app))
    }

    /// The store with its meta records checked (format version, chain, genesis, head), nothing
    /// else: for `open` to check further and for `verify` to replay.
    fn unchecked(backend: B, genesis: &Genesis) -> Result<Store<B>, StoreError> {
        let genesis_hash = kp_proto::genesis_hash(genesis);
        let Some(format) = backend.get(Cf::Meta, META_FORMAT)? else {
            return Err(StoreError::NotAStore("no format record".to_owned()));
        };
        let found = <[u8; 4]>::try_from(format.as_slice())
            .map(u32::from_be_bytes)
            .map_err(|_| integrity(0, "the format record is damaged"))?;
        if found != STORE_FORMAT_VERSION {
            return Err(StoreError::FormatVersion { found, supported: STORE_FORMAT_VERSION });
        }
        let chain = backend.get(Cf::Meta, META_CHAIN)?.unwrap_or_default();
        if chain != genesis.chain_id.as_str().as_bytes() {
            return Err(StoreError::WrongChain {
                found: String::from_utf8_lossy(&chain).into_owned(),
                expected: genesis.chain_id.to_string(),
            });
        }
        let stored_genesis = backend.get(Cf::Meta, META_GENESIS)?.unwrap_or_default();
        if stored_genesis != genesis_hash.0 {
            return Err(StoreError::WrongGenesis { found: hex(&stored_genesis), expected: genesis_hash.short() });
        }
        let head = backend
            .get(Cf::Meta, META_HEAD)?
            .as_deref()
            .and_then(Head::from_bytes)
            .ok_or_else(|| integrity(0, "the head record is missing or damaged"))?;
        Ok(Store {
            backend,
            chain_id: genesis.chain_id.clone(),
            rule: genesis.params.signature_rule,
            genesis_hash,
            head,
            voters: Vec::new(),
            pending: HashMap::new(),
            pending_limit: MAX_PENDING,
            next_pending_seq: 0,
            record_rounds: [None; 4],
        })
    }

    /// Walks every header from genesis: heights without gaps, each linked to the previous by
    /// hash, the last one the head. Returns the head's header.
    fn check_chain(&self, genesis: &Genesis) -> Result<Option<BlockHeader>, StoreError> {
        let mut expected = 1u64;
        let mut prev = self.genesis_hash;
        let mut prev_time = genesis.genesis_time;
        let mut last = None;
        let mut failure = None;
        let mut broken_link = None;
        self.backend.scan(Cf::Headers, &[], &mut |k, v| {
            let mut step = || -> Result<BlockHeader, StoreError> {
                let height = u64_at(k, 0)
                    .filter(|_| k.len() == 8)
                    .ok_or_else(|| integrity(expected, format!("header key {} is not a height", hex(k))))?;
                if height != expected {
                    return Err(integrity(
                        expected,
                        format!("block {expected} is missing (the next stored block is {height})"),
                    ));
                }
                if height > self.head.height {
                    return Err(integrity(
                        height,
                        format!("a block is stored above the head (height {})", self.head.height),
                    ));
                }
                let h = decode_header(height, v)?;
                if h.height != height || h.chain_id != self.chain_id {
                    return Err(integrity(height, format!("header is for chain {} height {}", h.chain_id, h.height)));
                }
                if h.prev_hash != prev {
                    broken_link = Some((height, prev));
                    return Err(integrity(
                        height,
                        format!(
                            "prev_hash {} is not the hash {} of the block below",
                            h.prev_hash.short(),
                            prev.short()
                        ),
                    ));
                }
                if h.time <= prev_time {
                    return Err(integrity(height, "block time does not increase"));
                }
                Ok(h)
            };
            match step() {
                Ok(h) => {
                    prev = block_hash(v);
                    prev_time = h.time;
                    expected += 1;
                    last = Some(h);
                    true
                }
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })?;
        if let Some((height, below)) = broken_link
            && height > 1
            && self.backend.get(Cf::BlockHashes, &below.0)?.is_none()
        {
            // The header below hashes to nothing the index knows: it is the damaged one.
            return Err(integrity(
                height - 1,
                format!("the stored header does not hash to block {height}'s prev_hash nor to any indexed block"),
            ));
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if expected - 1 != self.head.height {
            return Err(integrity(
                expected,
                format!("blocks {expected} to {} (the head) are missing", self.head.height),
            ));
        }
        if prev != self.head.hash || prev_time != self.head.time {
            // The head's own header, or the head record, is damaged.
            return Err(integrity(self.head.height, "the head record does not match the last block"));
        }
        Ok(last)
    }

    /// Checks one stored block in full: its events against the header, each event's signature
    /// and index entries, the custody entries, its hash and time indexes and its commit
    /// certificate against the voter set of its height. Returns the certificate and the voters
    /// it needs.
    fn check_block(&self, height: u64) -> Result<(Certificate, Vec<(ParticipantId, PublicKey)>), StoreError> {
        let stored = self.block_checked(height)?;
        let block = &stored.block;
        let voters = self.voters_at(height)?;
        let mut events = Vec::with_capacity(block.events().len());
        for (i, envelope) in block.events().iter().enumerate() {
            let e = kp_proto::open_event(&self.chain_id, self.rule, envelope)
                .map_err(|e| integrity(height, format!("event {i}: {e}")))?;
            let at = position_of(height, i);
            if self.backend.get(Cf::EventIds, &e.id.0)?.as_deref() != Some(&at.to_bytes()[..]) {
                return Err(integrity(height, format!("event {i} ({}) is missing from the event index", e.id)));
            }
            if let Some(number) = e.payload.certificate()
                && self.backend.get(Cf::Custody, &custody_key(number, at))?.is_none()
            {
                return Err(integrity(height, format!("event {i} is missing from the custody index of {number}")));
            }
            events.push(e);
        }
        let h = block.header();
        if self.backend.get(Cf::BlockHashes, &block.hash().0)?.as_deref() != Some(&height_key(height)[..]) {
            return Err(integrity(height, "the block is missing from the block-hash index"));
        }
        if self.backend.get(Cf::ByTime, &h.time.0.to_be_bytes())?.as_deref() != Some(&height_key(height)[..]) {
            return Err(integrity(height, "the block is missing from the time index"));
        }
        let required = kp_chain::required_voters(&voters, &events);
        if voters_hash(&required) != h.voters_hash {
            return Err(integrity(height, "voters_hash does not match the stored voter set"));
        }
        stored
            .certificate
            .verify_commit(&self.chain_id, self.rule, height, &block.hash(), &required)
            .map_err(|e| integrity(height, format!("commit certificate: {e}")))?;
        Ok((stored.certificate, required))
    }

    /// The stored commit certificate of block `height`, decoded.
    fn certificate_at(&self, height: u64) -> Result<Certificate, StoreError> {
        let cert = self
            .backend
            .get(Cf::Certificates, &height_key(height))?
            .ok_or_else(|| integrity(height, "commit certificate is missing"))?;
        wire::decode_certificate(&cert).map_err(|e| integrity(height, format!("certificate does not decode: {e}")))
    }

    /// The block at `height` with its certificate, each part decoded, the events checked
    /// against the header's root and count, and the parent's stored certificate against the
    /// one the header binds.
    fn block_checked(&self, height: u64) -> Result<StoredBlock, StoreError> {
        let header = self
            .backend
            .get(Cf::Headers, &height_key(height))?
            .ok_or_else(|| integrity(height, "header is missing"))?;
        let certificate = self.certificate_at(height)?;
        let last_commit = match height {
            1 => None,
            h => Some(self.certificate_at(h - 1)?),
        };
        let mut events = Vec::new();
        let mut gap = None;
        let prefix = height_key(height);
        self.backend.scan(Cf::Events, &prefix, &mut |k, v| {
            if !k.starts_with(&prefix) {
                return false;
            }
            match Position::from_bytes(k) {
                Some(p) if p.index as usize == events.len() => {
                    events.push(v.to_vec());
                    true
                }
                _ => {
                    gap = Some(events.len());
                    false
                }
            }
        })?;
        if let Some(i) = gap {
            return Err(integrity(height, format!("event {i} is missing")));
        }
        let block =
            Block::from_parts(header, events, last_commit).map_err(|e| integrity(height, format!("block: {e}")))?;
        Ok(StoredBlock { block, certificate })
    }

    /// The voter set in force at `height` (the last one stored from `height` or below).
    /// The heights up to `up_to` of the blocks that applied a governance act, ascending.
    pub fn act_heights(&self, up_to: u64) -> Result<Vec<u64>, StoreError> {
        let mut heights = Vec::new();
        let mut damaged = None;
        self.backend.scan(Cf::Acts, &[], &mut |k, _| match u64_at(k, 0).filter(|_| k.len() == 8) {
            Some(h) if h <= up_to => {
                heights.push(h);
                true
            }
            Some(_) => false,
            None => {
                damaged = Some(hex(k));
                false
            }
        })?;
        match damaged {
            Some(k) => Err(integrity(self.head.height, format!("acts entry {k} is damaged"))),
            None => Ok(heights),
        }
    }

    pub fn voters_at(&self, height: u64) -> Result<Vec<(ParticipantId, PublicKey)>, StoreError> {
        let mut found = None;
        self.backend.scan(Cf::Voters, &[], &mut |k, v| {
            if u64_at(k, 0).is_some_and(|from| from <= height) {
                found = Some(v.to_vec());
                true
            } else {
                false
            }
        })?;
        let bytes = found.ok_or_else(|| integrity(height, "no voter set is stored for this height"))?;
        decode_voters(&bytes).ok_or_else(|| integrity(height, "the stored voter set is damaged"))
    }

    fn load_counters(&mut self) -> Result<(), StoreError> {
        let mut pending = HashMap::new();
        let mut damaged = None;
        self.backend.scan(Cf::Pending, &[], &mut |k, v| match u64_at(k, 0).filter(|_| k.len() == 8) {
            Some(seq) => {
                pending.insert(kp_crypto::event_id(v), seq);
                true
            }
            None => {
                damaged = Some(hex(k));
                false
            }
        })?;
        if let Some(k) = damaged {
            return Err(integrity(self.head.height, format!("pending pool entry {k} is damaged")));
        }
        self.pending = pending;
        self.next_pending_seq = self.backend.last(Cf::Pending)?.and_then(|(k, _)| u64_at(&k, 0)).map_or(0, |s| s + 1);
        self.load_records()
    }

    /// Reads the open height's consensus records into their slots. A store written before the
    /// records were kept in slots (one key per record, in order) is compacted to the slots here,
    /// in one synced batch, keeping in each slot the record of the highest round.
    fn load_records(&mut self) -> Result<(), StoreError> {
        let height = self.head.height + 1;
        let prefix = height_key(height);
        let mut stored = Vec::new();
        let mut damaged = None;
        self.backend.scan(Cf::Consensus, &prefix, &mut |k, v| {
            if !k.starts_with(&prefix) {
                return false;
            }
            match wire::decode_record(v) {
                Ok(r) => stored.push((k.to_vec(), r)),
                Err(e) => damaged = Some(format!("consensus record {}: {e}", hex(k))),
            }
            damaged.is_none()
        })?;
        if let Some(why) = damaged {
            return Err(integrity(height, why));
        }
        let mut best: [Option<(u32, &Record)>; 4] = [None; 4];
        for (_, r) in &stored {
            let (h, slot, round) = RecordSlot::of(r);
            if h != height {
                return Err(integrity(
                    height,
                    format!("a consensus record of height {h} is kept under height {height}"),
                ));
            }
            let kept = &mut best[slot as usize];
            if kept.is_none_or(|(r, _)| r < round) {
                *kept = Some((round, r));
            }
        }
        let in_slots = stored.iter().all(|(k, r)| *k == seq_key(height, RecordSlot::of(r).1 as u32));
        if !in_slots {
            let mut batch = Batch::default();
            batch.delete_range(Cf::Consensus, prefix.to_vec(), height_key(height + 1).to_vec());
            for (slot, kept) in best.iter().enumerate() {
                if let Some((_, r)) = kept {
                    batch.put(Cf::Consensus, seq_key(height, RecordSlot::ALL[slot] as u32), wire::encode_record(r));
                }
            }
            self.backend.write(batch, true)?;
        }
        self.record_rounds = best.map(|b| b.map(|(round, _)| round));
        Ok(())
    }

    pub fn head(&self) -> Head {
        self.head
    }

    pub fn chain_id(&self) -> &ChainId {
        &self.chain_id
    }

    pub fn genesis_hash(&self) -> Hash32 {
        self.genesis_hash
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Commits `block` with its certificate, durably, in one batch: the block, its indexes, the
    /// ledger's state changes since the last commit and the indexes derived from them, the next
    /// voter set, the removal of its events from the pending pool and of the height's consensus
    /// records. `app` has applied exactly this block since the last commit. When this returns,
    /// the commit may be reported.
    pub fn commit(&mut self, block: &Block, certificate: &Certificate, app: &mut LedgerApp) -> Result<(), StoreError> {
        let h = block.header();
        if h.height != self.head.height + 1 || h.prev_hash != self.head.hash {
            return Err(StoreError::NotNext { got: h.height, head: self.head.height });
        }
        let count = u64::try_from(block.events().len()).unwrap_or(u64::MAX);
        let events = self.head.events + count;
        if app.height() != h.height || app.last_block().0 != block.hash() || app.ledger().events_applied() != events {
            return Err(StoreError::LedgerMismatch(format!(
                "ledger at height {} with {} events, block {} brings the total to {events}",
                app.height(),
                app.ledger().events_applied(),
                h.height
            )));
        }
        let ids: Vec<EventId> = block.events().iter().map(|e| kp_crypto::event_id(e)).collect();
        let changes = app.ledger_mut().take_changes();
        let voters = app.ledger().voters();
        let changed = (voters != self.voters).then_some(voters.as_slice());
        let head = Head { height: h.height, hash: block.hash(), time: h.time, events };
        let previous = |key: &[u8]| Ok(self.backend.get(Cf::State, key)?);
        let mut batch = block_writes(block, certificate, &ids, &changes, changed, head, app.ledger(), &previous)?;
        for id in &ids {
            if let Some(seq) = self.pending.get(id) {
                batch.delete(Cf::Pending, seq.to_be_bytes().to_vec());
            }
        }
        self.backend.write(batch, true)?;
        self.head = head;
        self.voters = voters;
        for id in &ids {
            self.pending.remove(id);
        }
        self.record_rounds = [None; 4];
        Ok(())
    }

    /// The committed block at `height`, checked against its header.
    pub fn block(&self, height: u64) -> Result<Option<StoredBlock>, StoreError> {
        if height == 0 || height > self.head.height {
            return Ok(None);
        }
        self.block_checked(height).map(Some)
    }

    /// The header of the committed block at `height` (without reading the block's events).
    pub fn header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        if height == 0 || height > self.head.height {
            return Ok(None);
        }
        match self.backend.get(Cf::Headers, &height_key(height))? {
            Some(bytes) => decode_header(height, &bytes).map(Some),
            None => Err(integrity(height, "the header of a committed block is missing")),
        }
    }

    /// Consecutive committed blocks from `from`, at most `max` and at most `max_bytes` of
    /// events (at least one block), for a peer catching up.
    pub fn blocks(&self, from: u64, max: usize, max_bytes: usize) -> Result<Vec<StoredBlock>, StoreError> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut h = from.max(1);
        while h <= self.head.height && out.len() < max && (out.is_empty() || bytes < max_bytes) {
            let b = self.block_checked(h)?;
            bytes += b.block.events().iter().map(Vec::len).sum::<usize>();
            out.push(b);
            h += 1;
        }
        Ok(out)
    }

    /// Where a committed event is.
    pub fn position(&self, id: &EventId) -> Result<Option<Position>, StoreError> {
        match self.backend.get(Cf::EventIds, &id.0)? {
            None => Ok(None),
            Some(v) => Position::from_bytes(&v)
                .map(Some)
                .ok_or_else(|| integrity(self.head.height, format!("event index entry of {id} is damaged"))),
        }
    }

    pub fn height_of(&self, hash: &Hash32) -> Result<Option<u64>, StoreError> {
        Ok(self.backend.get(Cf::BlockHashes, &hash.0)?.and_then(|v| u64_at(&v, 0)))
    }

    /// A committed event: where it is, and its envelope as received.
    pub fn event(&self, id: &EventId) -> Result<Option<(Position, Vec<u8>)>, StoreError> {
        let Some(at) = self.backend.get(Cf::EventIds, &id.0)? else { return Ok(None) };
        let at =
            Position::from_bytes(&at).ok_or_else(|| integrity(0, format!("event index entry of {id} is damaged")))?;
        let envelope = self
            .backend
            .get(Cf::Events, &at.to_bytes())?
            .ok_or_else(|| integrity(at.height, format!("event {} indexed for {id} is missing", at.index)))?;
        Ok(Some((at, envelope)))
    }

    /// The review queries' reader over this store's backend at its head.
    pub fn reader(&self) -> StateReader<'_> {
        StateReader { view: &self.backend, height: self.head.height }
    }

    /// A consistent snapshot of the committed state at the current head, for reads served
    /// outside the core's lock.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        Ok(Snapshot { view: self.backend.snapshot()?, head: self.head })
    }

    /// A certificate's custody history, in ledger order.
    pub fn custody(&self, number: &CertificateNumber) -> Result<Vec<CustodyEntry>, StoreError> {
        self.reader().custody(number)
    }

    /// The certificate's current record in the state.
    pub fn certificate(&self, number: &CertificateNumber) -> Result<Option<CertificateRecord>, StoreError> {
        self.reader().certificate(number)
    }

    /// See [`StateReader::certificates_of`].
    pub fn certificates_of(
        &self,
        participant: ParticipantId,
        role: TradeRole,
        from: Timestamp,
        to: Timestamp,
        after: Option<(Timestamp, &CertificateNumber)>,
        limit: usize,
    ) -> Result<Vec<(Timestamp, CertificateNumber)>, StoreError> {
        self.reader().certificates_of(participant, role, from, to, after, limit)
    }

    /// Shipments sealed to `importer` and not yet confirmed: (certificate, sealed at).
    pub fn awaiting_receipt(&self, importer: ParticipantId) -> Result<Vec<(CertificateNumber, Timestamp)>, StoreError> {
        let prefix = importer.as_str().as_bytes().to_vec();
        let mut out = Vec::new();
        self.backend.scan_prefix(Cf::PendingReceipts, &prefix, &prefix, &mut |k, v| {
            if let (Some(n), Some(t)) =
                (std::str::from_utf8(&k[2..]).ok().and_then(|n| CertificateNumber::new(n).ok()), u64_at(v, 0))
            {
                out.push((n, Timestamp(t)));
            }
            true
        })?;
        Ok(out)
    }

    /// The heights of the blocks whose time is in `[from, to)`.
    pub fn heights_between(&self, from: Timestamp, to: Timestamp) -> Result<Option<(u64, u64)>, StoreError> {
        let mut range: Option<(u64, u64)> = None;
        self.backend.scan(Cf::ByTime, &from.0.to_be_bytes(), &mut |k, v| {
            if u64_at(k, 0).is_none_or(|t| t >= to.0) {
                return false;
            }
            if let Some(h) = u64_at(v, 0) {
                range = Some(range.map_or((h, h), |(a, _)| (a, h)));
            }
            true
        })?;
        Ok(range)
    }

    // ----- pending pool -----

    /// Adds submitted envelopes (signature and rules already checked by the caller) to the
    /// pending pool, durably: a client's submission survives a crash once this returns.
    pub fn add_pending(&mut self, envelopes: &[Vec<u8>]) -> Result<Vec<Submitted>, StoreError> {
        let mut batch = Batch::default();
        let mut out = Vec::with_capacity(envelopes.len());
        let mut seen = HashMap::new();
        let mut seq = self.next_pending_seq;
        if let Some(e) = envelopes.iter().find(|e| e.len() > kp_domain::MAX_EVENT_BYTES) {
            return Err(StoreError::TooLarge(e.len()));
        }
        for e in envelopes {
            let id = kp_crypto::event_id(e);
            if let Some(at) = self.backend.get(Cf::EventIds, &id.0)?.as_deref().and_then(Position::from_bytes) {
                out.push(Submitted::AlreadyCommitted(at));
            } else if self.pending.contains_key(&id) || seen.contains_key(&id) {
                out.push(Submitted::AlreadyPending);
            } else {
                if self.pending.len() + seen.len() >= self.pending_limit {
                    return Err(StoreError::PoolFull(self.pending_limit));
                }
                batch.put(Cf::Pending, seq.to_be_bytes().to_vec(), e.clone());
                seen.insert(id, seq);
                seq += 1;
                out.push(Submitted::Added);
            }
        }
        if !batch.is_empty() {
            self.backend.write(batch, true)?;
            self.pending.extend(seen);
            self.next_pending_seq = seq;
        }
        Ok(out)
    }

    /// Drops events from the pool (ones the node found inadmissible).
    pub fn remove_pending(&mut self, ids: &[EventId]) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        for id in ids {
            if let Some(seq) = self.pending.get(id) {
                batch.delete(Cf::Pending, seq.to_be_bytes().to_vec());
            }
        }
        if !batch.is_empty() {
            self.backend.write(batch, true)?;
            for id in ids {
                self.pending.remove(id);
            }
        }
        Ok(())
    }

    /// The pending pool in submission order.
    pub fn pending(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::with_capacity(self.pending.len());
        self.backend.scan(Cf::Pending, &[], &mut |_, v| {
            out.push(v.to_vec());
            true
        })?;
        Ok(out)
    }

    /// Whether the event is in the pending pool.
    pub fn is_pending(&self, id: &EventId) -> bool {
        self.pending.contains_key(id)
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The most events the pending pool holds.
    pub fn pending_limit(&self) -> usize {
        self.pending_limit
    }

    /// Caps the pending pool at `limit` events (at most [`MAX_PENDING`]).
    pub fn set_pending_limit(&mut self, limit: usize) {
        self.pending_limit = limit.min(MAX_PENDING);
    }

    // ----- consensus records -----

    /// Persists the engine's records of the open height, durably, before the host sends the
    /// messages that follow them: each into its [`RecordSlot`], replacing a record of a lower
    /// round (one of a lower or equal round than the slot holds is already covered, and not
    /// written). A record of another height than the open one is refused as an integrity error
    /// (the engine persists only for the height after the store's head).
    pub fn persist_records(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let height = self.head.height + 1;
        let mut rounds = self.record_rounds;
        let mut batch = Batch::default();
        for r in records {
            let (h, slot, round) = RecordSlot::of(r);
            if h != height {
                return Err(integrity(
                    height,
                    format!("a consensus record of height {h} while height {height} is open"),
                ));
            }
            if rounds[slot as usize].is_none_or(|kept| kept < round) {
                rounds[slot as usize] = Some(round);
                batch.put(Cf::Consensus, seq_key(height, slot as u32), wire::encode_record(r));
            }
        }
        if !batch.is_empty() {
            self.backend.write(batch, true)?;
            self.record_rounds = rounds;
        }
        Ok(())
    }

    /// The values stored under keys beginning with `height`, in key order.
    fn values_at_height(&self, cf: Cf, height: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let prefix = height_key(height);
        let mut raw = Vec::new();
        self.backend.scan(cf, &prefix, &mut |k, v| {
            if k.starts_with(&prefix) {
                raw.push(v.to_vec());
            }
            k.starts_with(&prefix)
        })?;
        Ok(raw)
    }

    /// The records of the open height, in the order they were written.
    pub fn records(&self) -> Result<Vec<Record>, StoreError> {
        let height = self.head.height + 1;
        self.values_at_height(Cf::Consensus, height)?
            .iter()
            .map(|v| wire::decode_record(v).map_err(|e| integrity(height, format!("consensus record: {e}"))))
            .collect()
    }

    /// Keeps equivocation evidence of `height` (at most [`MAX_EVIDENCE_PER_HEIGHT`] pieces;
    /// returns whether it was kept).
    pub fn add_evidence(&mut self, height: u64, evidence: &Evidence) -> Result<bool, StoreError> {
        let n = u32::try_from(self.values_at_height(Cf::Evidence, height)?.len()).unwrap_or(u32::MAX);
        if n >= MAX_EVIDENCE_PER_HEIGHT {
            return Ok(false);
        }
        let mut batch = Batch::default();
        batch.put(Cf::Evidence, seq_key(height, n), wire::encode_evidence(evidence));
        self.backend.write(batch, true)?;
        Ok(true)
    }

    pub fn evidence(&self, height: u64) -> Result<Vec<Evidence>, StoreError> {
        self.values_at_height(Cf::Evidence, height)?
            .iter()
            .map(|v| wire::decode_evidence(v).map_err(|e| integrity(height, format!("evidence: {e}"))))
            .collect()
    }

    // ----- full verification -----

    /// The store for an auditor: only its meta records are checked (format, chain, genesis,
    /// head), so that a damaged store can still be read block by block with
    /// [`Store::raw_block`] and its damage located by a replay.
    pub fn open_for_audit(backend: B, genesis: &Genesis) -> Result<Store<B>, StoreError> {
        Store::unchecked(backend, genesis)
    }

    /// The header and certificate bytes of block `height` exactly as stored, unchecked; `None`
    /// past the head.
    pub fn raw_commit(&self, height: u64) -> Result<Option<RawCommit>, StoreError> {
        if height == 0 || height > self.head.height {
            return Ok(None);
        }
        let key = height_key(height);
        let header = self.backend.get(Cf::Headers, &key)?.unwrap_or_default();
        let certificate = self.backend.get(Cf::Certificates, &key)?.unwrap_or_default();
        Ok(Some(RawCommit { header, certificate }))
    }

    /// Block `height` exactly as stored — header bytes, event envelopes, certificate bytes —
    /// without any check; `None` past the head. Events are read up to the first gap in their
    /// indexes.
    pub fn raw_block(&self, height: u64) -> Result<Option<RawBlock>, StoreError> {
        if height == 0 || height > self.head.height {
            return Ok(None);
        }
        let key = height_key(height);
        let header = self.backend.get(Cf::Headers, &key)?.unwrap_or_default();
        let certificate = self.backend.get(Cf::Certificates, &key)?.unwrap_or_default();
        let mut events = Vec::new();
        self.backend.scan(Cf::Events, &key, &mut |k, v| match Position::from_bytes(k) {
            Some(p) if k.starts_with(&key) && p.index as usize == events.len() => {
                events.push(v.to_vec());
                true
            }
            _ => false,
        })?;
        Ok(Some(RawBlock { header, events, certificate }))
    }

    /// Checks the whole store: replays every block from genesis through the consensus
    /// engine's own check of committed blocks (chain, parent, time, every event's signature and
    /// rules, state root, certificate against the voter set the replay derives), checks each
    /// block's stored indexes, recomputes the state and the derived indexes and compares them
    /// with what is stored, entry by entry. The first discrepancy is returned with its height.
    ///
    /// It needs only the meta records to be sound, so it locates damage that makes
    /// [`Store::open`] refuse the store.
    pub fn verify(backend: B, genesis: &Genesis) -> Result<VerifyReport, StoreError> {
        Store::unchecked(backend, genesis)?.verify_all(genesis)
    }

    fn verify_all(&self, genesis: &Genesis) -> Result<VerifyReport, StoreError> {
        let mut app = LedgerApp::new(genesis).map_err(|e| StoreError::Genesis(e.to_string()))?;
        let mut voters = app.ledger().voters();
        app.ledger_mut().track_changes();
        let mut model: BTreeMap<Cf, BTreeMap<Vec<u8>, Vec<u8>>> = BTreeMap::new();
        for (k, v) in app.ledger().records() {
            model.entry(Cf::State).or_default().insert(k, v);
        }
        model.entry(Cf::Voters).or_default().insert(height_key(1).to_vec(), encode_voters(&voters));
        app.ledger_mut().take_changes();
        let mut head = Head { height: 0, hash: self.genesis_hash, time: genesis.genesis_time, events: 0 };
        for height in 1..=self.head.height {
            let stored = self.block_checked(height)?;
            apply_committed(&self.chain_id, self.rule, &mut app, &stored.block, &stored.certificate)
                .map_err(|e| integrity(height, e.to_string()))?;
            let count = u64::try_from(stored.block.events().len()).unwrap_or(u64::MAX);
            head = Head {
                height,
                hash: stored.block.hash(),
                time: stored.block.header().time,
                events: head.events + count,
            };
            let ids: Vec<EventId> = stored.block.events().iter().map(|e| kp_crypto::event_id(e)).collect();
            let changes = app.ledger_mut().take_changes();
            let next = app.ledger().voters();
            let changed = (next != voters).then_some(next.as_slice());
            let state = model.get(&Cf::State);
            let previous = |key: &[u8]| Ok(state.and_then(|t| t.get(key)).cloned());
            let batch = block_writes(
                &stored.block,
                &stored.certificate,
                &ids,
                &changes,
                changed,
                head,
                app.ledger(),
                &previous,
            )?;
            voters = next;
            for op in batch.ops {
                match op {
                    Op::Put(
                        cf
                        @ (Cf::Headers | Cf::Certificates | Cf::BlockHashes | Cf::ByTime | Cf::Events | Cf::EventIds),
                        k,
                        v,
                    ) => {
                        if self.backend.get(cf, &k)?.as_deref() != Some(&v[..]) {
                            return Err(integrity(
                                height,
                                format!("{} entry {} is missing or differs", cf.name(), hex(&k)),
                            ));
                        }
                    }
                    Op::Put(Cf::Meta, ..) | Op::DeleteRange(Cf::Consensus, ..) => {}
                    Op::Put(cf, k, v) => {
                        model.entry(cf).or_default().insert(k, v);
                    }
                    Op::Delete(cf, k) => {
                        model.entry(cf).or_default().remove(&k);
                    }
                    Op::DeleteRange(cf, from, to) => {
                        if let Some(t) = model.get_mut(&cf) {
                            t.retain(|k, _| k < &from || k >= &to);
                        }
                    }
                }
            }
        }
        if head != self.head {
            return Err(integrity(self.head.height, "the head record differs from the replayed head"));
        }
        // Families checked block by block hold nothing else.
        for (cf, expected) in [
            (Cf::Headers, self.head.height),
            (Cf::Certificates, self.head.height),
            (Cf::BlockHashes, self.head.height),
            (Cf::ByTime, self.head.height),
            (Cf::Events, self.head.events),
            (Cf::EventIds, self.head.events),
        ] {
            let n = self.count(cf)?;
            if n != expected {
                return Err(integrity(
                    self.head.height,
                    format!("{} holds {n} entries, the ledger has {expected}", cf.name()),
                ));
            }
        }
        // Families derived from the state: equal to the replay's, entry for entry.
        let mut custody_entries = 0;
        for cf in [Cf::State, Cf::Custody, Cf::ByParticipant, Cf::PendingReceipts, Cf::Voters, Cf::Acts] {
            let expected = model.remove(&cf).unwrap_or_default();
            let mut stored = BTreeMap::new();
            self.backend.scan(cf, &[], &mut |k, v| {
                stored.insert(k.to_vec(), v.to_vec());
                true
            })?;
            if cf == Cf::Custody {
                custody_entries = u64::try_from(stored.len()).unwrap_or(u64::MAX);
            }
            if let Some((k, why)) = first_difference(&expected, &stored) {
                let height = match cf {
                    Cf::Custody => k
                        .len()
                        .checked_sub(12)
                        .and_then(|i| Position::from_bytes(&k[i..]))
                        .map_or(self.head.height, |p| p.height),
                    _ => self.head.height,
                };
                return Err(integrity(height, format!("{} entry {}: {why}", cf.name(), printable(&k))));
            }
        }
        Ok(VerifyReport {
            blocks: self.head.height,
            events: self.head.events,
            state_records: u64::try_from(app.ledger().records().len()).unwrap_or(u64::MAX),
            custody_entries,
            head_hash: self.head.hash,
        })
    }

    fn count(&self, cf: Cf) -> Result<u64, StoreError> {
        let mut n = 0u64;
        self.backend.scan(cf, &[], &mut |_, _| {
            n += 1;
            true
        })?;
        Ok(n)
    }
}

fn first_difference(
    expected: &BTreeMap<Vec<u8>, Vec<u8>>,
    stored: &BTreeMap<Vec<u8>, Vec<u8>>,
) -> Option<(Vec<u8>, &'static str)> {
    let mut a = expected.iter().peekable();
    let mut b = stored.iter().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => return None,
            (Some((k, _)), None) => return Some(((*k).clone(), "is missing")),
            (None, Some((k, _))) => return Some(((*k).clone(), "is stored but the ledger has no such entry")),
            (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => return Some(((*ka).clone(), "is missing")),
                std::cmp::Ordering::Greater => {
                    return Some(((*kb).clone(), "is stored but the ledger has no such entry"));
                }
                std::cmp::Ordering::Equal if va != vb => return Some(((*ka).clone(), "holds a different value")),
                std::cmp::Ordering::Equal => {
                    a.next();
                    b.next();
                }
            },
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A key for an error message: text where it is text, hex otherwise.
fn printable(key: &[u8]) -> String {
    if key.iter().all(|b| b.is_ascii_graphic()) { String::from_utf8_lossy(key).into_owned() } else { hex(key) }
}
