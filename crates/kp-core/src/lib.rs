//! The node's core: the consensus engine, the rules engine (`LedgerApp`) and the store, wired
//! together synchronously. No tokio, no network, no clock: the host (the node's runtime, or the
//! deterministic simulator in `kp-sim`) hands it submissions, peer messages and the time, and
//! carries out the [`Effect`]s it returns. Every engine record is persisted (synced) before the
//! messages that follow it are returned, and every committed block is in the store before
//! anything else happens. [`Core`] is generic over the store's [`Backend`]: RocksDB in the
//! node, memory in the simulator, so that the code that ships is the code simulated.

pub mod clock;
pub mod metrics;

use crate::metrics::Metrics;
use kp_chain::{LedgerApp, PendingEvent};
use kp_consensus::wire::CommittedBlock;
use kp_consensus::{Engine, Height, Input, Message, Output, Round};
use kp_crypto::SecretKey;
use kp_domain::{ChainId, EventId, Genesis, ParticipantId, SignatureRule, Timestamp};
use kp_proto::EdgeError;
use kp_store::{Backend, RocksBackend, Store, StoreError, Submitted};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Events whose refusal at proposal time is remembered for clients who ask (oldest forgotten).
const REMEMBERED_REFUSALS: usize = 10_000;

/// What the runtime must do for the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Send(ParticipantId, Message),
    Broadcast(Message),
    /// A block was committed at this height (subscribers may be told).
    Committed(Height),
    /// Events this node's clients submitted, for the node of a participant about to propose.
    Forward(ParticipantId, Vec<Vec<u8>>),
    /// A message showed that the network has committed up to at least this height: fetch the
    /// blocks this node lacks.
    Behind(Height),
    /// A voter's node sent a consensus message with a bad signature or another voter's name.
    Misbehaved(ParticipantId, String),
    /// A client's approval of a governance act: every other voter's node should hold it too.
    GossipApproval(ApprovalBytes),
}

/// An approval as it travels: the act's exact bytes, the authority key and its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalBytes {
    pub act: Vec<u8>,
    pub key: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Governance acts collecting approvals at once on one node (approvals per act are bounded by
/// the number of authority keys the rules accept, [`kp_domain::MAX_APPROVALS`]).
pub const MAX_DRAFTS: usize = 64;
/// Acts awaiting approval that one participant may have opened (its authority approved first).
pub const MAX_DRAFTS_PER_PARTICIPANT: usize = 4;

/// A governance act whose approvals this node collects.
#[derive(Debug, Clone)]
pub struct Draft {
    pub act_bytes: Vec<u8>,
    pub act: kp_domain::GovernanceAct,
    pub digest: kp_domain::Hash32,
    pub approvals: Vec<(ParticipantId, kp_proto::Approval)>,
    /// The height of the block that applied it.
    pub committed: Option<Height>,
}

impl Draft {
    /// The governance event its approvals so far would make (without the proposer's signature).
    fn event(&self) -> kp_domain::GovernanceEvent {
        kp_domain::GovernanceEvent {
            act: self.act.clone(),
            act_digest: self.digest,
            approvers: self.approvals.iter().map(|(_, a)| a.key).collect(),
        }
    }
}

/// A draft with what the rules say of it now.
#[derive(Debug, Clone)]
pub struct DraftStatus {
    pub draft: Draft,
    /// Participants whose approval is still needed.
    pub missing: Vec<ParticipantId>,
    /// Why the act cannot apply whoever approves it.
    pub refused: Option<String>,
}

/// Why an approval is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("malformed approval: {0}")]
    Malformed(String),
    #[error("the approval's signature does not verify over the act: {0}")]
    BadSignature(String),
    #[error("{0} is not a current authority key of any participant")]
    UnknownKey(String),
    #[error("this node already collects approvals for {MAX_DRAFTS} acts")]
    Full,
    #[error("{0} already has {MAX_DRAFTS_PER_PARTICIPANT} acts awaiting approval")]
    TooMany(ParticipantId),
}

/// Events at most in one block proposal, in bytes, so that it stays well within
/// [`kp_consensus::wire::MAX_MESSAGE_BYTES`].
pub const MAX_PROPOSAL_EVENT_BYTES: usize = 12 * 1024 * 1024;
/// Most bytes of events in one catch-up batch served to a peer (at least one block is sent).
const SYNC_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// What a batch of events passed on by a peer held.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Received {
    pub added: usize,
    /// Events that did not decode or whose signature fails: the peer's fault.
    pub bad: usize,
    /// The first such event's reason.
    pub first_bad: Option<String>,
}

/// What catching up on a batch of blocks from a peer did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub applied: usize,
    /// Why the first refused block was refused (the rest of the batch is ignored).
    pub refused: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    Malformed,
    BadSignature,
    /// The rules engine refused it; its stable code (`Rejection::code`, docs/rules.md).
    Rules(&'static str),
    PoolFull,
}

/// The answer to a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submission {
    Added(EventId),
    /// Already pending (`None`) or committed at a height.
    Duplicate(EventId, Option<Height>),
    Rejected(EventId, RejectKind, String),
}

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the node key {0} is not the node key of any participant or observer in the genesis or the ledger \
         (the node of a participant being admitted through governance sets `joining = true`)"
    )]
    UnknownNodeKey(kp_domain::PublicKey),
    #[error("consensus configuration: {0}")]
    Config(String),
}

/// The application as the engine sees it from a running node: the pool's tentative block is
/// undone only when the engine executes or commits a block — not for the many messages (votes,
/// certificates, new rounds) that do neither. The voters are those of the committed state.
struct Driven<'a> {
    app: &'a mut LedgerApp,
    overlay: &'a mut bool,
    /// The pool's events, opened when they entered: a proposal's events found here are not
    /// verified a second time.
    pool: &'a [Pooled],
}

impl Driven<'_> {
    fn committed_state(&mut self) {
        if *self.overlay {
            self.app.ledger_mut().rollback_block();
            *self.overlay = false;
        }
    }
}

impl kp_consensus::Application for Driven<'_> {
    fn height(&self) -> Height {
        self.app.height()
    }
    fn last_block(&self) -> (kp_domain::Hash32, Timestamp) {
        self.app.last_block()
    }
    fn voters(&self) -> Vec<(ParticipantId, kp_domain::PublicKey)> {
        // The committed state's, whatever tentative blocks are open.
        self.app.voters()
    }
    fn last_commit(&self) -> Option<(kp_consensus::block::Certificate, Vec<(ParticipantId, kp_domain::PublicKey)>)> {
        self.app.last_commit()
    }
    fn execute(
        &mut self,
        time: Timestamp,
        events: &[Vec<u8>],
    ) -> Result<kp_consensus::Execution, kp_consensus::ExecutionError> {
        let started = std::time::Instant::now();
        self.committed_state();
        // The pool's index is built only if the proposal's events are opened here (not when
        // the block was executed already or its events were opened before).
        let pool = self.pool;
        let known: std::cell::OnceCell<HashMap<EventId, &kp_domain::Event>> = std::cell::OnceCell::new();
        let lookup = |id: &EventId| {
            known.get_or_init(|| pool.iter().map(|p| (p.pending.id, &p.event)).collect()).get(id).map(|e| (*e).clone())
        };
        let x = self.app.execute_known(time, events, &lookup);
        tracing::debug!(events = events.len(), took = ?started.elapsed(), "executed a proposal");
        x
    }
    fn commit(&mut self, block: &kp_consensus::block::Block, certificate: &kp_consensus::block::Certificate) {
        self.committed_state();
        self.app.commit(block, certificate);
    }
}

/// A submission decoded and its signatures checked (or why not), before the core sees it.
#[derive(Debug)]
pub struct Opened {
    id: EventId,
    envelope: Vec<u8>,
    event: Result<kp_domain::Event, EdgeError>,
}

/// Opens clients' submissions together: decoded, and their signatures checked in one batch
/// (each alone only if the batch fails). Needs nothing of the core but the chain id, so the
/// runtime does it before taking the core's lock.
pub fn open_submissions(chain_id: &ChainId, rule: SignatureRule, envelopes: Vec<Vec<u8>>) -> Vec<Opened> {
    let events = kp_proto::open_events(chain_id, rule, envelopes.iter().map(Vec::as_slice));
    envelopes
        .into_iter()
        .zip(events)
        .map(|(envelope, event)| {
            let id = event.as_ref().map_or_else(|_| kp_crypto::event_id(&envelope), |e| e.id);
            Opened { id, envelope, event }
        })
        .collect()
}

/// An event that passed the checks of a submission, applied to the pool's tentative block.
#[derive(Debug)]
struct Checked {
    id: EventId,
    envelope: Vec<u8>,
    event: kp_domain::Event,
}

/// A pending event, opened.
#[derive(Debug, Clone)]
struct Pooled {
    pending: PendingEvent,
    event: kp_domain::Event,
    /// When this node accepted it (unknown for events reloaded after a restart).
    submitted: Option<Timestamp>,
    /// Submitted to this node (by a client, or kept here before a restart): the node passes it
    /// on to every upcoming proposer until it is committed or refused. An event another node
    /// passed on is held in memory only, until it is committed or this node refuses it.
    own: bool,
    /// The participants' nodes it has been passed on to (each at most once, until that node
    /// reconnects).
    forwarded: Vec<ParticipantId>,
}

/// How often, at most, a node passes its clients' new events on to the upcoming proposers
/// (in one batch each).
pub const FORWARD_EVERY_MS: u64 = 20;
/// The proposers a node's clients' events are passed on to: the leader of the current round
/// and the leader of the next height's first round.
const UPCOMING: usize = 2;

fn refusal_code(r: &kp_consensus::Refusal) -> &'static str {
    use kp_consensus::Refusal::*;
    match r {
        NotAVoter(_) => "consensus_not_a_voter",
        WrongSender { .. } => "consensus_wrong_sender",
        NotLeader(_) => "consensus_not_leader",
        BadSignature(_) => "consensus_bad_signature",
        InvalidBlock(_) => "consensus_invalid_block",
        InvalidCertificate(_) => "consensus_invalid_certificate",
        UnknownBlock => "consensus_unknown_block",
        BadLock(_) => "consensus_bad_lock",
    }
}

fn reject_code(k: RejectKind) -> &'static str {
    match k {
        RejectKind::Malformed => "submit_malformed",
        RejectKind::BadSignature => "submit_bad_signature",
        RejectKind::Rules(_) => "submit_rules",
        RejectKind::PoolFull => "submit_pool_full",
    }
}

/// The state of one node, over the store's backend `B`.
#[derive(Debug)]
pub struct Core<B: Backend = RocksBackend> {
    store: Store<B>,
    app: LedgerApp,
    /// `None` on an observer's node (no vote).
    engine: Option<Engine>,
    chain_id: ChainId,
    /// The ledger's signature rule, from its genesis.
    rule: SignatureRule,
    genesis_bytes: Vec<u8>,
    me: Option<ParticipantId>,
    timer: Option<(Height, Round, Timestamp)>,
    wants_events: Option<(Height, Round, Timestamp)>,
    /// Who held up the current round, as the engine last reported.
    missing: Vec<ParticipantId>,
    max_block_events: usize,
    /// The pending pool as stored, opened once (signature checked) when it entered: submission
    /// order, at most the store's pool cap.
    pool: Vec<Pooled>,
    /// Events dropped from the pool at proposal time, with the rules engine's reason.
    refused: HashMap<EventId, String>,
    refused_order: VecDeque<EventId>,
    metrics: Arc<Metrics>,
    /// The pool's events are applied to the ledger as a tentative block (so that a new event is
    /// checked against the pool in time proportional to itself, not to the pool). Undone
    /// before the ledger is used for anything else.
    overlay: bool,
    /// The latest time an event was applied at in the tentative block (later events are applied
    /// no earlier: API calls reach the core in any order of their clocks).
    overlay_time: Timestamp,
    /// A submission group's scratch block is open on top of the pool's (see
    /// [`Core::begin_group`]).
    group_open: bool,
    /// Governance acts collecting approvals, oldest first.
    drafts: Vec<Draft>,
    /// What rebuilding the engine after a catch-up needs.
    engine_config: kp_consensus::Config,
    key: SecretKey,
    /// The upcoming proposers other than this node, as last computed (see [`Core::forward`]).
    proposers: Vec<ParticipantId>,
    /// Own events are waiting to be passed on (new ones, or new proposers).
    to_forward: bool,
    /// The ids of the pool's events that peers passed on (held in memory only).
    held: std::collections::HashSet<EventId>,
    last_forward: Option<Timestamp>,
    /// This node's clock against the voters' consensus time.
    clock: clock::ClockWatch,
}

impl Core<RocksBackend> {
    /// Opens (or creates) the RocksDB store in `data_dir` and starts the engine at the stored head.
    pub fn open(
        genesis: &Genesis,
        key: SecretKey,
        data_dir: &Path,
        config: kp_consensus::Config,
        max_block_events: usize,
        now: Timestamp,
        joining: bool,
    ) -> Result<(Core<RocksBackend>, Vec<Effect>), CoreError> {
        let public = key.public();
        let observer = genesis.observers.iter().any(|o| o.node_key == public);
        let in_genesis = observer || genesis.participants.iter().any(|p| p.node_key == public);
        // A key the genesis does not know may be an admitted participant's: its store says so
        // (checked below), or the operator says it is joining. Nothing is created otherwise.
        if !in_genesis && !joining && !data_dir.join("CURRENT").is_file() {
            return Err(CoreError::UnknownNodeKey(public));
        }
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Backend(kp_store::BackendError::Io(format!("{}: {e}", data_dir.display()))))?;
        let backend = RocksBackend::open(data_dir).map_err(StoreError::Backend)?;
        Core::open_with(backend, genesis, key, config, max_block_events, now, joining)
    }
}

impl<B: Backend> Core<B> {
    /// Opens (or creates) the store on `backend` and starts the engine at the stored head.
    pub fn open_with(
        backend: B,
        genesis: &Genesis,
        key: SecretKey,
        config: kp_consensus::Config,
        max_block_events: usize,
        now: Timestamp,
        joining: bool,
    ) -> Result<(Core<B>, Vec<Effect>), CoreError> {
        let public = key.public();
        let observer = genesis.observers.iter().any(|o| o.node_key == public);
        let (mut store, mut app) = Store::open(backend, genesis)?;
        // The participant this node serves, as the committed ledger has it (admissions included).
        let me = participant_of(app.ledger(), &public);
        if me.is_none() && !observer && !joining {
            return Err(CoreError::UnknownNodeKey(public));
        }
        let (engine, out) = match me {
            Some(me) => {
                let records = store.records()?;
                let (engine, out) = Engine::new(
                    config.clone(),
                    genesis.chain_id.clone(),
                    genesis.params.signature_rule,
                    me,
                    SecretKey::from_seed(&key.to_seed()),
                    records,
                    now,
                    &mut app,
                )
                .map_err(|e| CoreError::Config(e.to_string()))?;
                (Some(engine), out)
            }
            None => (None, Vec::new()),
        };
        let engine_config = config;
        let mut pool = Vec::new();
        let mut unreadable = Vec::new();
        for envelope in store.pending()? {
            match kp_proto::open_event(&genesis.chain_id, genesis.params.signature_rule, &envelope) {
                Ok(event) => pool.push(Pooled {
                    pending: PendingEvent::opened(envelope, &event),
                    event,
                    submitted: None,
                    own: true,
                    forwarded: Vec::new(),
                }),
                Err(e) => unreadable.push((kp_crypto::event_id(&envelope), e.to_string())),
            }
        }
        let ids: Vec<EventId> = unreadable.iter().map(|u| u.0).collect();
        store.remove_pending(&ids)?;
        let mut core = Core {
            store,
            app,
            engine,
            pool,
            chain_id: genesis.chain_id.clone(),
            rule: genesis.params.signature_rule,
            genesis_bytes: kp_proto::encode_genesis(genesis),
            me,
            timer: None,
            wants_events: None,
            missing: Vec::new(),
            max_block_events,
            refused: HashMap::new(),
            refused_order: VecDeque::new(),
            metrics: Arc::new(Metrics::new()),
            overlay: false,
            overlay_time: Timestamp(0),
            group_open: false,
            drafts: Vec::new(),
            engine_config,
            key,
            proposers: Vec::new(),
            to_forward: false,
            held: std::collections::HashSet::new(),
            last_forward: None,
            clock: clock::ClockWatch::new(clock::DEFAULT_WARNING_MS),
        };
        core.metrics.height.set(i64::try_from(core.store.head().height).unwrap_or(i64::MAX));
        if let Some(notice) = core.clock.at_start(core.store.head().time, now) {
            core.tell_clock(notice);
        }
        // Kept once but no longer opening (a later build reads the format differently): the
        // event cannot be proposed; it leaves the pool and a client asking is told why.
        for (id, why) in unreadable {
            core.remember_refusal(id, format!("no longer opens after a restart: {why}"));
        }
        let effects = core.carry_out(out, now)?;
        Ok((core, effects))
    }

    pub fn store(&self) -> &Store<B> {
        &self.store
    }

    /// How far this node's clock may be from consensus time before it warns (its log, the
    /// `kp_clock_offset_seconds` metric and `kpledger status` always show the offset).
    pub fn set_clock_warning_ms(&mut self, ms: u64) {
        self.clock.set_threshold_ms(ms);
    }

    /// This node's clock against consensus time, as measured at the last commit.
    pub fn clock_offset(&self) -> Option<clock::ClockOffset> {
        self.clock.last()
    }

    pub fn clock_warning_ms(&self) -> u64 {
        self.clock.threshold_ms()
    }

    /// Measures this node's clock at a commit against the readings its certificate's signers
    /// signed (consensus time is their median) and tells the operator if it is off.
    fn measure_clock(&mut self, now: Timestamp) {
        let Some(c) = self.app.last_certificate() else { return };
        for (voter, ms) in clock::signer_offsets(c) {
            let label = metrics::ParticipantLabel { participant: voter.to_string() };
            self.metrics.peer_clock_offset.get_or_create(&label).set(clock::seconds(ms));
        }
        let Some(offset) = clock::ClockWatch::offset_from(c, self.me, now) else { return };
        self.metrics.clock_offset.set(clock::seconds(offset));
        if let Some(notice) = self.clock.record(offset, now) {
            self.tell_clock(notice);
        }
    }

    fn tell_clock(&self, notice: clock::ClockNotice) {
        let threshold_ms = self.clock.threshold_ms();
        match notice {
            clock::ClockNotice::Off { offset_ms, since, first } => tracing::warn!(
                offset_ms,
                since_ms = since.0,
                threshold_ms,
                first,
                "this node's clock is {} the voters' consensus time (since {since}); consensus does not \
                 depend on it and this node goes on voting, but its operator should fix its time service",
                clock::describe(offset_ms),
            ),
            clock::ClockNotice::Back { offset_ms } => tracing::info!(
                offset_ms,
                threshold_ms,
                "this node's clock is back within {threshold_ms} ms of consensus time ({})",
                clock::describe(offset_ms)
            ),
        }
    }
    /// The committed state (the pool's tentative block, and a proposal executed but not yet
    /// committed, are undone first).
    pub fn ledger(&mut self) -> &kp_rules::Ledger {
        self.end_overlay();
        self.app.committed()
    }
    /// Whose authority key `key` is (or was), as the ledger this node has applied knows it
    /// (nothing is undone: the API asks it of every submission).
    pub fn key_owner(&self, key: &kp_domain::PublicKey) -> Option<kp_rules::KeyOwner> {
        self.app.ledger().key_owner(key)
    }
    /// Every participant's node key, as the committed state has them (nothing is undone).
    pub fn node_keys(&self) -> &[(ParticipantId, kp_domain::PublicKey)] {
        self.app.node_keys()
    }
    /// The height of the last committed block.
    pub fn height(&self) -> Height {
        self.store.head().height
    }
    pub fn me(&self) -> Option<ParticipantId> {
        self.me
    }
    pub fn round(&self) -> Round {
        self.engine.as_ref().map_or(0, Engine::round)
    }
    pub fn missing(&self) -> &[ParticipantId] {
        &self.missing
    }
    pub fn chain_id(&self) -> &ChainId {
        &self.chain_id
    }
    /// The ledger's signature rule (from its genesis).
    pub fn signature_rule(&self) -> SignatureRule {
        self.rule
    }
    /// The genesis in its canonical encoding.
    pub fn genesis_bytes(&self) -> &[u8] {
        &self.genesis_bytes
    }
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Events in the pending pool (the own and those peers passed on).
    pub fn pool_len(&self) -> usize {
        self.pool.len()
    }

    /// Caps the pending pool at `limit` events (at most [`kp_store::MAX_PENDING`]).
    pub fn set_pending_limit(&mut self, limit: usize) {
        self.store.set_pending_limit(limit);
    }

    /// Whether the pool is applied as a tentative block now (reads never undo it; the engine's
    /// executing or committing a block does).
    pub fn pool_block_applied(&self) -> bool {
        self.overlay
    }

    /// Executes `events` at `time` on the committed state as a proposal's execution would (the
    /// block executed last is replaced): for the simulator's Byzantine proposers, which sign
    /// blocks the honest engine would not. The engine copes with any block executed last.
    pub fn execute_on_committed(
        &mut self,
        time: Timestamp,
        events: &[Vec<u8>],
    ) -> Result<kp_consensus::Execution, kp_consensus::ExecutionError> {
        self.end_overlay();
        kp_consensus::Application::execute(&mut self.app, time, events)
    }

    /// A pending event's envelope.
    pub fn pending(&self, id: &EventId) -> Option<&[u8]> {
        self.pool.iter().find(|p| p.pending.id == *id).map(|p| p.pending.envelope.as_slice())
    }

    /// Why an event was dropped from the pool at proposal time, if it was (recently).
    pub fn refusal(&self, id: &EventId) -> Option<&str> {
        self.refused.get(id).map(String::as_str)
    }

    /// Clients' submissions, each checked (size, encoding, signature, and the rules against the
    /// committed state followed by the pending pool), the admissible ones kept durably in the
    /// pool with one synced write (group commit); answers in order.
    pub fn submit_batch(
        &mut self,
        envelopes: Vec<Vec<u8>>,
        now: Timestamp,
    ) -> Result<(Vec<Submission>, Vec<Effect>), CoreError> {
        let opened = open_submissions(&self.chain_id, self.rule, envelopes);
        self.submit_opened(opened, now)
    }

    /// [`Core::submit_batch`] for submissions already opened by [`open_submissions`] (which
    /// needs no lock on the core: the runtime opens a group before taking it).
    ///
    /// The pool's room is counted before any rule runs: beyond it a submission is refused as
    /// [`RejectKind::PoolFull`] at the cost of a duplicate check, and the pool's tentative block
    /// is not touched (a full pool never costs a re-application). The group's events are checked
    /// in a scratch block of their own on top of the pool's, kept there only once they are
    /// durably in the pool; if the store fails, that block alone is undone and nothing of the
    /// group remains, so the same events can be submitted again.
    pub fn submit_opened(
        &mut self,
        opened: Vec<Opened>,
        now: Timestamp,
    ) -> Result<(Vec<Submission>, Vec<Effect>), CoreError> {
        let mut answers: Vec<Option<Submission>> = (0..opened.len()).map(|_| None).collect();
        let mut checked = Vec::new();
        let mut slots = Vec::new();
        let mut room = self.store.pending_limit().saturating_sub(self.store.pending_len());
        let mut group = std::collections::HashSet::new();
        let mut fresh = Vec::new();
        for (i, o) in opened.into_iter().enumerate() {
            if let Some(duplicate) = self.already_here(&o.id)? {
                answers[i] = Some(duplicate);
            } else if !group.insert(o.id) {
                // The same bytes twice in one group: the second is the first's duplicate.
                answers[i] = Some(Submission::Duplicate(o.id, None));
            } else if o.event.is_ok() && room == 0 {
                let why = format!("the pending pool is full ({} events)", self.store.pending_limit());
                answers[i] = Some(Submission::Rejected(o.id, RejectKind::PoolFull, why));
            } else {
                room = room.saturating_sub(usize::from(o.event.is_ok()));
                fresh.push((i, o));
            }
        }
        if fresh.iter().any(|(_, o)| o.event.is_ok()) {
            self.begin_group(now);
        }
        let grouped = self.group_open;
        for (i, o) in fresh {
            match self.admit(o.id, o.envelope, o.event, now) {
                Ok(c) => {
                    slots.push(i);
                    checked.push(c);
                }
                Err(refused) => answers[i] = Some(refused),
            }
        }
        let kept = self.keep(checked, now, true);
        if grouped && self.group_open {
            self.end_group(kept.is_ok());
        }
        let (kept, effects) = kept?;
        for (i, answer) in slots.into_iter().zip(kept) {
            answers[i] = Some(answer);
        }
        let answers: Vec<Submission> = answers.into_iter().flatten().collect();
        for a in &answers {
            if let Submission::Rejected(_, kind, _) = a {
                self.metrics.reject(reject_code(*kind));
            }
        }
        self.metrics.pending_events.set(i64::try_from(self.pool.len()).unwrap_or(i64::MAX));
        Ok((answers, effects))
    }

    /// Events another node's client submitted, as that node passed them on. Those already here
    /// or no longer admissible are dropped quietly; those that do not decode or whose signature
    /// fails are counted against the peer. The admissible ones are kept with one synced write.
    pub fn receive_events(
        &mut self,
        envelopes: Vec<Vec<u8>>,
        now: Timestamp,
    ) -> Result<(Received, Vec<Effect>), CoreError> {
        let mut received = Received::default();
        let mut checked = Vec::new();
        // Those not already here are opened together: one batch check of their signatures
        // (about half the cost of checking each), each checked alone only if the batch fails.
        // Beyond the pool's room (which a peer's events share with the own), and second copies,
        // are dropped before anything is checked: their origin passes them on again.
        let mut room = self.store.pending_limit().saturating_sub(self.pool.len());
        let mut fresh = Vec::new();
        let mut batch = std::collections::HashSet::new();
        for envelope in envelopes {
            let id = kp_crypto::event_id(&envelope);
            if room > 0 && self.already_here(&id)?.is_none() && batch.insert(id) {
                room -= 1;
                fresh.push((id, envelope));
            }
        }
        let opened = kp_proto::open_events(&self.chain_id, self.rule, fresh.iter().map(|(_, e)| e.as_slice()));
        if opened.iter().any(Result::is_ok) {
            self.begin_group(now);
        }
        let grouped = self.group_open;
        for ((id, envelope), opened) in fresh.into_iter().zip(opened) {
            match self.admit(id, envelope, opened, now) {
                Ok(c) => checked.push(c),
                Err(Submission::Rejected(id, RejectKind::Malformed | RejectKind::BadSignature, why)) => {
                    received.bad += 1;
                    received.first_bad.get_or_insert(format!("event {id}: {why}"));
                }
                Err(_) => {}
            }
        }
        let kept = self.keep(checked, now, false);
        if grouped && self.group_open {
            self.end_group(kept.is_ok());
        }
        let (answers, mut effects) = kept?;
        // A leader waiting for events is answered now that the group is closed (a client's call
        // never carries consensus messages: the runtime's next tick, which the API wakes,
        // answers it then).
        effects.extend(self.answer_events(now, false)?);
        received.added = answers.iter().filter(|a| matches!(a, Submission::Added(_))).count();
        self.metrics.pending_events.set(i64::try_from(self.pool.len()).unwrap_or(i64::MAX));
        Ok((received, effects))
    }

    /// One authority's approval of a governance act (from a client, or passed on by a peer):
    /// checked (the act decodes, the signature verifies over the act's exact bytes, the key is a
    /// current authority key) and kept with the act's other approvals.
    pub fn approve(
        &mut self,
        approval: ApprovalBytes,
        gossip: bool,
    ) -> Result<(Result<DraftStatus, ApprovalError>, Vec<Effect>), CoreError> {
        let checked = (|| {
            let act = kp_proto::decode_act(&approval.act).map_err(|e| ApprovalError::Malformed(e.to_string()))?;
            let key = kp_domain::PublicKey::from_slice(&approval.key)
                .map_err(|e| ApprovalError::Malformed(format!("key: {e}")))?;
            let signature = kp_crypto::Signature::from_slice(&approval.signature)
                .map_err(|e| ApprovalError::Malformed(format!("signature: {e}")))?;
            kp_crypto::verify(&key, kp_crypto::Tag::Approval, &self.chain_id, self.rule, &approval.act, &signature)
                .map_err(|e| ApprovalError::BadSignature(e.to_string()))?;
            Ok((act, key, signature))
        })();
        let (act, key, signature) = match checked {
            Ok(c) => c,
            Err(e) => return Ok((Err(e), Vec::new())),
        };
        // Read on the ledger as it stands, tentative blocks included: a read never undoes the
        // pool's tentative block (re-applying it costs the whole pool, under the core's lock).
        let owner = match self.app.ledger().key_owner(&key) {
            Some(o) if !o.revoked => o.participant,
            _ => return Ok((Err(ApprovalError::UnknownKey(key.to_string())), Vec::new())),
        };
        let digest = kp_crypto::sha256(&approval.act);
        let at = match self.drafts.iter().position(|d| d.digest == digest) {
            Some(i) => i,
            None => {
                let opened_by = self
                    .drafts
                    .iter()
                    .filter(|d| d.committed.is_none() && d.approvals.first().is_some_and(|(p, _)| *p == owner))
                    .count();
                if opened_by >= MAX_DRAFTS_PER_PARTICIPANT {
                    return Ok((Err(ApprovalError::TooMany(owner)), Vec::new()));
                }
                if self.drafts.len() >= MAX_DRAFTS {
                    // Room is made by forgetting the oldest act already applied, or one that can
                    // no longer apply whoever approves it.
                    let ledger = self.app.ledger();
                    let decided = self.drafts.iter().position(|d| d.committed.is_some());
                    let dead = || self.drafts.iter().position(|d| ledger.missing_approvals(&d.event()).is_err());
                    match decided.or_else(dead) {
                        Some(i) => {
                            self.drafts.remove(i);
                        }
                        None => return Ok((Err(ApprovalError::Full), Vec::new())),
                    }
                }
                self.drafts.push(Draft {
                    act_bytes: approval.act.clone(),
                    act,
                    digest,
                    approvals: Vec::new(),
                    committed: None,
                });
                self.drafts.len() - 1
            }
        };
        let draft = &mut self.drafts[at];
        let mut effects = Vec::new();
        if !draft.approvals.iter().any(|(_, a)| a.key == key) && draft.approvals.len() < kp_domain::MAX_APPROVALS {
            draft.approvals.push((owner, kp_proto::Approval { key, signature }));
            if gossip {
                effects.push(Effect::GossipApproval(approval));
            }
        }
        let status = self.draft_status(at);
        Ok((Ok(status), effects))
    }

    /// The voters of the next height.
    pub fn voters(&self) -> &[(ParticipantId, kp_domain::PublicKey)] {
        self.app.next_voters()
    }

    /// Every approval of every act not yet applied, as it travels (for a peer that was away).
    pub fn open_approvals(&self) -> Vec<ApprovalBytes> {
        self.drafts
            .iter()
            .filter(|d| d.committed.is_none())
            .flat_map(|d| {
                d.approvals.iter().map(|(_, a)| ApprovalBytes {
                    act: d.act_bytes.clone(),
                    key: a.key.0.to_vec(),
                    signature: a.signature.0.to_vec(),
                })
            })
            .collect()
    }

    /// The acts this node collects approvals for (one by reference, or all).
    pub fn drafts(&self, reference: Option<&str>) -> Vec<DraftStatus> {
        let chosen: Vec<usize> = (0..self.drafts.len())
            .filter(|i| reference.is_none_or(|r| self.drafts[*i].act.reference.as_str() == r))
            .collect();
        chosen.into_iter().map(|i| self.draft_status(i)).collect()
    }

    /// What the rules say of a draft, on the ledger as it stands (the committed state followed
    /// by the proposal executed last and the pending pool, which a read never undoes): an act
    /// applied there but not committed yet is pending, and needs no one.
    fn draft_status(&self, i: usize) -> DraftStatus {
        let draft = self.drafts[i].clone();
        let ledger = self.app.ledger();
        let (missing, refused) =
            if draft.committed.is_some() || ledger.applied_act(&draft.act.reference) == Some(draft.digest) {
                (Vec::new(), None)
            } else {
                match ledger.missing_approvals(&draft.event()) {
                    Ok(m) => (m, None),
                    Err(r) => (Vec::new(), Some(r.to_string())),
                }
            };
        DraftStatus { draft, missing, refused }
    }

    /// The time a tentative block is executed at: the next block's, which the last block's
    /// commit certificate decides (`consensus_time`), whatever this node's clock says; never
    /// before a proposal executed but not yet committed, which the pool's tentative block follows.
    fn block_time(&self) -> Timestamp {
        let next = kp_consensus::block::consensus_time(self.app.last_certificate(), self.store.head().time);
        next.max(self.app.ledger().last_block_time())
    }

    /// The time a submission is checked at: the next block's ([`Core::block_time`]), or this
    /// node's clock if that is later — the next block's time trails the clocks after a halt and
    /// at block 1 (it derives from the last commit), and an event dated after it is still
    /// taken, to wait in the pool for a block whose time reaches it. Blocks are executed at
    /// their consensus time only.
    fn admission_time(&self, now: Timestamp) -> Timestamp {
        self.block_time().max(now)
    }

    /// Applies the pool to the ledger as a tentative block, if it is not already: on the
    /// committed state, followed by the proposal executed last if it is still applied (its
    /// events then stay in the pool until committed, and are refused again here harmlessly).
    fn begin_overlay(&mut self, now: Timestamp) {
        if self.overlay {
            return;
        }
        let now = self.admission_time(now);
        self.overlay_time = now;
        self.metrics.pool_reapplied.inc();
        let ledger = self.app.ledger_mut();
        ledger.begin_scratch();
        for p in &self.pool {
            let _ = ledger.apply(&p.event, now);
        }
        self.overlay = true;
    }

    /// Undoes the pool's tentative block: the ledger is the committed state again.
    fn end_overlay(&mut self) {
        if self.overlay {
            self.app.ledger_mut().rollback_block();
            self.overlay = false;
        }
    }

    /// The same bytes as an event already here are the same event (its id is their hash):
    /// answered before the signature is checked again.
    fn already_here(&self, id: &EventId) -> Result<Option<Submission>, CoreError> {
        if let Some(at) = self.store.position(id)? {
            return Ok(Some(Submission::Duplicate(*id, Some(at.height))));
        }
        let pending = self.store.is_pending(id) || self.held.contains(id);
        Ok(pending.then_some(Submission::Duplicate(*id, None)))
    }

    /// The rules' check of an event once opened (see [`Core::submit_opened`]), inside the
    /// group's scratch block ([`Core::begin_group`]): an admitted event stays applied there.
    fn admit(
        &mut self,
        id: EventId,
        envelope: Vec<u8>,
        opened: Result<kp_domain::Event, EdgeError>,
        now: Timestamp,
    ) -> Result<Checked, Submission> {
        let event = match opened {
            Ok(e) => e,
            Err(e @ EdgeError::Signature { .. }) => {
                return Err(Submission::Rejected(id, RejectKind::BadSignature, e.to_string()));
            }
            Err(e) => return Err(Submission::Rejected(id, RejectKind::Malformed, e.to_string())),
        };
        debug_assert!(self.group_open, "internal invariant: events are checked inside a group");
        let at = self.admission_time(now).max(self.overlay_time);
        self.overlay_time = at;
        // A rejected event changes nothing (the rules' own invariant).
        if let Err(r) = self.app.ledger_mut().apply(&event, at) {
            return Err(Submission::Rejected(id, RejectKind::Rules(r.code()), r.to_string()));
        }
        Ok(Checked { id, envelope, event })
    }

    /// Opens a group's scratch block on top of the pool's tentative block (applying the pool
    /// first if it is not applied).
    fn begin_group(&mut self, now: Timestamp) {
        debug_assert!(!self.group_open, "internal invariant: one group at a time");
        if !self.overlay {
            self.begin_overlay(now);
        }
        self.app.ledger_mut().begin_scratch();
        self.group_open = true;
    }

    /// Closes the group's scratch block: its events join the pool's tentative block if they were
    /// kept, and are undone — alone, the pool's block staying applied — if they were not.
    fn end_group(&mut self, kept: bool) {
        debug_assert!(self.group_open && self.overlay, "internal invariant: a group is open on the pool's block");
        let ledger = self.app.ledger_mut();
        if kept {
            ledger.commit_block();
        } else {
            ledger.rollback_block();
        }
        self.group_open = false;
    }

    /// Keeps checked events durably in the pool (one write, synced for `own` events: those
    /// this node's clients submitted), in order.
    fn keep(
        &mut self,
        checked: Vec<Checked>,
        now: Timestamp,
        own: bool,
    ) -> Result<(Vec<Submission>, Vec<Effect>), CoreError> {
        if checked.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let kept = if own {
            // A client's events are synced before it is answered. The room was counted and the
            // duplicates answered before the rules ran, so the store adds every one of them.
            let envelopes: Vec<Vec<u8>> = checked.iter().map(|c| c.envelope.clone()).collect();
            let kept = self.store.add_pending(&envelopes)?;
            debug_assert!(kept.iter().all(|k| matches!(k, Submitted::Added)), "internal invariant: {kept:?}");
            kept
        } else {
            // A peer's events are held in memory only: their origin keeps them durably and
            // passes them on again to a node that restarted (the room and the copies were
            // counted in `receive_events`).
            vec![Submitted::Added; checked.len()]
        };
        if kept.iter().any(|k| !matches!(k, Submitted::Added)) {
            // Never expected (see above); were it to happen, what the group applied but did not
            // keep is undone, and the pool is applied afresh next time.
            self.end_group(false);
            self.end_overlay();
        }
        let mut answers = Vec::with_capacity(checked.len());
        let effects = Vec::new();
        for (c, k) in checked.into_iter().zip(kept) {
            match k {
                Submitted::AlreadyCommitted(at) => answers.push(Submission::Duplicate(c.id, Some(at.height))),
                Submitted::AlreadyPending => answers.push(Submission::Duplicate(c.id, None)),
                Submitted::Added => {
                    answers.push(Submission::Added(c.id));
                    self.to_forward |= own;
                    if !own {
                        self.held.insert(c.id);
                    }
                    self.pool.push(Pooled {
                        pending: PendingEvent::opened(c.envelope, &c.event),
                        event: c.event,
                        submitted: Some(now),
                        own,
                        forwarded: Vec::new(),
                    });
                }
            }
        }
        Ok((answers, effects))
    }

    /// A consensus message from a peer voter.
    pub fn on_message(
        &mut self,
        from: ParticipantId,
        message: Message,
        now: Timestamp,
    ) -> Result<Vec<Effect>, CoreError> {
        self.step(Input::Message { from, message }, now)
    }

    /// Fires a due round timer, answers a due request for events, and passes own events on to
    /// the upcoming proposers.
    pub fn tick(&mut self, now: Timestamp) -> Result<Vec<Effect>, CoreError> {
        let mut effects = Vec::new();
        if let Some((height, round, at)) = self.timer
            && at <= now
        {
            self.timer = None;
            effects.extend(self.step(Input::Timeout { height, round }, now)?);
        }
        effects.extend(self.answer_events(now, true)?);
        effects.extend(self.forward(now)?);
        Ok(effects)
    }

    /// When the next tick has something to do.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let forward =
            self.to_forward.then(|| self.last_forward.map_or(Timestamp(0), |t| t.saturating_add_ms(FORWARD_EVERY_MS)));
        [self.timer.map(|t| t.2), self.wants_events.map(|w| w.2), forward].into_iter().flatten().min()
    }

    /// A peer's node (re)connected: it may have restarted and lost the events passed on to it
    /// (held in memory only), so they are passed on again if it proposes.
    pub fn peer_connected(&mut self, participant: ParticipantId) {
        for p in self.pool.iter_mut().filter(|p| p.own) {
            if let Some(i) = p.forwarded.iter().position(|f| *f == participant) {
                p.forwarded.swap_remove(i);
                self.to_forward = true;
            }
        }
    }

    /// The participants who propose next, this node's included: the leader of the round under
    /// way and the leader of the next height's first round (an observer's node, which follows
    /// no round, counts the next two heights' first rounds).
    fn upcoming_proposers(&self) -> Vec<ParticipantId> {
        let (height, round) = match &self.engine {
            Some(e) => (e.height(), e.round()),
            None => (self.height() + 1, 0),
        };
        let mut upcoming = Vec::with_capacity(UPCOMING);
        for (h, r) in [(height, round), (height + 1, 0)] {
            if let Some(leader) = kp_consensus::leader_of(self.app.next_voters(), h, r)
                && !upcoming.contains(&leader)
            {
                upcoming.push(leader);
            }
        }
        upcoming
    }

    /// Passes own events on to the upcoming proposers' nodes, at most every
    /// [`FORWARD_EVERY_MS`]: each proposer gets, in one batch, the own events it was not given
    /// yet. A node keeps the events other nodes gave it until they are committed (or refused
    /// when it proposes), so no event is passed to one node twice — unless that node restarts
    /// ([`Core::peer_connected`]).
    ///
    /// Why not every node to every node: at 59 nodes that is 58 messages per event, and on
    /// shared hardware the number of messages, not their size, is what costs; this way an event
    /// costs a message or two before it is proposed, and reaches every node in the proposal.
    fn forward(&mut self, now: Timestamp) -> Result<Vec<Effect>, CoreError> {
        let upcoming = self.upcoming_proposers();
        let proposers: Vec<ParticipantId> = upcoming.iter().copied().filter(|p| Some(*p) != self.me).collect();
        if proposers != self.proposers {
            // New proposers get the own events they do not hold yet (those already given to a
            // node stay with it until committed: see `held`).
            self.to_forward = self.pool.iter().any(|p| p.own && proposers.iter().any(|to| !p.forwarded.contains(to)));
            self.proposers = proposers;
        }
        let due = self.last_forward.is_none_or(|t| now >= t.saturating_add_ms(FORWARD_EVERY_MS));
        if !self.to_forward || !due {
            return Ok(Vec::new());
        }
        self.to_forward = false;
        self.last_forward = Some(now);
        let mut batches: Vec<(ParticipantId, Vec<Vec<u8>>)> = self.proposers.iter().map(|p| (*p, Vec::new())).collect();
        for p in self.pool.iter_mut().filter(|p| p.own) {
            for (to, batch) in &mut batches {
                if !p.forwarded.contains(to) {
                    p.forwarded.push(*to);
                    batch.push(p.pending.envelope.clone());
                }
            }
        }
        Ok(batches.into_iter().filter(|(_, b)| !b.is_empty()).map(|(to, b)| Effect::Forward(to, b)).collect())
    }

    fn step(&mut self, input: Input, now: Timestamp) -> Result<Vec<Effect>, CoreError> {
        let Some(engine) = self.engine.as_mut() else { return Ok(Vec::new()) };
        let mut driven = Driven { app: &mut self.app, overlay: &mut self.overlay, pool: &self.pool };
        let out = engine.handle(input, now, &mut driven);
        self.carry_out(out, now)
    }

    /// Answers the engine's request for events: at once when the pool holds admissible events,
    /// or at the deadline (`due`) with whatever there is (possibly nothing).
    fn answer_events(&mut self, now: Timestamp, due: bool) -> Result<Vec<Effect>, CoreError> {
        let Some((height, round, deadline)) = self.wants_events else { return Ok(Vec::new()) };
        let events = self.select()?;
        if events.is_empty() && !(due && deadline <= now) {
            return Ok(Vec::new());
        }
        self.wants_events = None;
        self.step(Input::EventsReady { height, round, events }, now)
    }

    /// What the proposer takes: the pool's events that the rules still admit, in order, picked
    /// by `kp_chain::select_events`; the others leave the pool, their reason remembered.
    fn select(&mut self) -> Result<Vec<Vec<u8>>, CoreError> {
        self.end_overlay();
        // A fresh block is proposed on the committed state.
        self.app.settle();
        let mut dropped = Vec::new();
        let now = self.block_time();
        // Only as much of the pool as one block takes is executed (a governance act is proposed
        // alone, from anywhere in the pool, so then the whole pool is).
        let limit = if self.pool.iter().any(|p| p.pending.governance) { usize::MAX } else { self.max_block_events };
        let (mut admitted, mut bytes, mut waiting) = (0, 0, false);
        let ledger = self.app.ledger_mut();
        ledger.begin_scratch();
        for p in &self.pool {
            if admitted >= limit || bytes > MAX_PROPOSAL_EVENT_BYTES {
                break;
            }
            match ledger.apply(&p.event, now) {
                Ok(_) => {
                    admitted += 1;
                    bytes += p.pending.envelope.len();
                }
                // Not yet: it waits for a block whose time reaches it (the proposal leaves it
                // out), and so does everything after it, which may depend on it.
                Err(r) if r.is_early() => waiting = true,
                Err(_) if waiting => {}
                Err(r) => dropped.push((p.pending.id, r.to_string())),
            }
        }
        ledger.rollback_block();
        if !dropped.is_empty() {
            let ids: Vec<EventId> = dropped.iter().map(|d| d.0).collect();
            self.store.remove_pending(&ids)?;
            let gone: std::collections::HashSet<EventId> = ids.iter().copied().collect();
            self.retain_pool(|p| !gone.contains(&p.pending.id));
            for (id, why) in dropped {
                tracing::info!(event = %id, reason = %why, "pending event refused at proposal time");
                self.remember_refusal(id, why);
            }
        }
        let mut events = kp_chain::select_events(self.pool.iter().map(|p| &p.pending), self.max_block_events);
        let mut bytes = 0;
        let fits = events
            .iter()
            .take_while(|e| {
                bytes += e.len();
                bytes <= MAX_PROPOSAL_EVENT_BYTES
            })
            .count();
        events.truncate(fits);
        Ok(events)
    }

    /// Committed blocks from `from` on, for a peer catching up, as wire bytes (at most
    /// [`kp_consensus::wire::MAX_SYNC_BLOCKS`] blocks, within the wire's message limit).
    pub fn serve_blocks(&self, from: Height) -> Result<Vec<u8>, CoreError> {
        let mut max = kp_consensus::wire::MAX_SYNC_BLOCKS;
        loop {
            let blocks: Vec<CommittedBlock> = self
                .store
                .blocks(from, max, SYNC_BATCH_BYTES)?
                .into_iter()
                .map(|b| CommittedBlock { block: b.block, certificate: b.certificate })
                .collect();
            let bytes = kp_consensus::wire::encode_blocks(&blocks);
            if bytes.len() <= kp_consensus::wire::MAX_MESSAGE_BYTES || blocks.len() <= 1 {
                return Ok(bytes);
            }
            max = blocks.len() / 2;
        }
    }

    /// Committed blocks a peer sent (catch-up): each is verified as `apply_committed` does —
    /// parent, time, every event re-executed, state root, and a commit certificate signed by
    /// every voter this node derives itself — then stored. The engine starts again at the new
    /// height.
    pub fn apply_blocks(
        &mut self,
        blocks: Vec<CommittedBlock>,
        now: Timestamp,
    ) -> Result<(Applied, Vec<Effect>), CoreError> {
        self.end_overlay();
        let mut result = Applied::default();
        let mut effects = Vec::new();
        for cb in blocks {
            let height = cb.block.header().height;
            if height <= self.store.head().height {
                continue;
            }
            if let Err(e) =
                kp_consensus::apply_committed(&self.chain_id, self.rule, &mut self.app, &cb.block, &cb.certificate)
            {
                result.refused = Some(format!("block {height}: {e}"));
                break;
            }
            self.store.commit(&cb.block, &cb.certificate, &mut self.app)?;
            self.committed(&cb.block, now, &mut effects);
            result.applied += 1;
        }
        // A joining node's participant may have just been admitted.
        if self.me.is_none() {
            self.me = participant_of(self.app.ledger(), &self.key.public());
            if let Some(me) = self.me {
                tracing::info!(participant = %me, "this node's participant is admitted: it takes part in consensus");
            }
        }
        if result.applied > 0
            && let Some(me) = self.me
        {
            self.timer = None;
            self.wants_events = None;
            let records = self.store.records()?;
            let (engine, out) = Engine::new(
                self.engine_config.clone(),
                self.chain_id.clone(),
                self.rule,
                me,
                SecretKey::from_seed(&self.key.to_seed()),
                records,
                now,
                &mut self.app,
            )
            .map_err(|e| CoreError::Config(e.to_string()))?;
            self.engine = Some(engine);
            effects.extend(self.carry_out(out, now)?);
        }
        Ok((result, effects))
    }

    /// What follows a block being stored: the pool and the metrics catch up with it.
    fn committed(&mut self, block: &kp_consensus::block::Block, now: Timestamp, effects: &mut Vec<Effect>) {
        let height = block.header().height;
        let ids: std::collections::HashSet<EventId> = block.events().iter().map(|e| kp_crypto::event_id(e)).collect();
        for p in self.pool.iter().filter(|p| ids.contains(&p.pending.id)) {
            if let Some(t) = p.submitted {
                let ms = now.0.saturating_sub(t.0);
                self.metrics.commit_latency.observe(Duration::from_millis(ms).as_secs_f64());
            }
        }
        self.retain_pool(|p| !ids.contains(&p.pending.id));
        debug_assert!(!self.overlay, "a block is stored on the committed state");
        let ledger = self.app.ledger();
        for d in self.drafts.iter_mut().filter(|d| d.committed.is_none()) {
            if ledger.applied_act(&d.act.reference) == Some(d.digest) {
                d.committed = Some(height);
            }
        }
        self.metrics.height.set(i64::try_from(height).unwrap_or(i64::MAX));
        self.measure_clock(now);
        self.metrics.missing_now.clear();
        self.missing.clear();
        tracing::info!(height, events = block.events().len(), hash = %block.hash(), "committed");
        effects.push(Effect::Committed(height));
    }

    /// Keeps the pool's events that `keep` says to (the ids held in memory follow).
    fn retain_pool(&mut self, keep: impl Fn(&Pooled) -> bool) {
        let held = &mut self.held;
        self.pool.retain(|p| {
            let kept = keep(p);
            if !kept && !p.own {
                held.remove(&p.pending.id);
            }
            kept
        });
    }

    /// Keeps why an event left the pool (the oldest reasons are forgotten first).
    fn remember_refusal(&mut self, id: EventId, why: String) {
        if self.refused_order.len() >= REMEMBERED_REFUSALS
            && let Some(old) = self.refused_order.pop_front()
        {
            self.refused.remove(&old);
        }
        self.refused_order.push_back(id);
        self.refused.insert(id, why);
    }

    /// Carries out the engine's outputs in order: records are synced before any message that
    /// follows them is handed out; a committed block is stored before anything else.
    fn carry_out(&mut self, outputs: Vec<Output>, now: Timestamp) -> Result<Vec<Effect>, CoreError> {
        let mut effects = Vec::new();
        let mut unsynced = Vec::new();
        let mut events_wanted = false;
        for o in outputs {
            match o {
                Output::Persist(r) => unsynced.push(r),
                Output::Send { to, message } => {
                    self.sync(&mut unsynced)?;
                    effects.push(Effect::Send(to, message));
                }
                Output::Broadcast(message) => {
                    self.sync(&mut unsynced)?;
                    effects.push(Effect::Broadcast(message));
                }
                Output::SetTimer { height, round, at } => self.timer = Some((height, round, at)),
                Output::RequestEvents { height, round, deadline } => {
                    self.wants_events = Some((height, round, deadline));
                    events_wanted = true;
                }
                Output::Committed { block, certificate } => {
                    self.sync(&mut unsynced)?;
                    let height = block.header().height;
                    debug_assert!(!self.overlay, "the engine commits on the committed state");
                    // The engine may have gone on, in the same step, to execute the next
                    // height's proposal (one that arrived before this commit): the store takes
                    // the committed state, so that execution is undone (and done again when
                    // that block commits, its events already opened).
                    self.app.settle();
                    let started = std::time::Instant::now();
                    self.store.commit(&block, &certificate, &mut self.app)?;
                    tracing::debug!(took = ?started.elapsed(), "stored the block");
                    debug_assert_eq!(self.store.head().height, height);
                    self.committed(&block, now, &mut effects);
                }
                Output::Evidence(e) => {
                    let height = match &e {
                        kp_consensus::Evidence::DoubleProposal { first, .. } => first.height,
                        kp_consensus::Evidence::DoubleVote { first, .. } => first.body.height,
                    };
                    self.store.add_evidence(height, &e)?;
                    tracing::warn!(?e, "equivocation evidence");
                }
                Output::Missing { height, round, voters } => {
                    tracing::warn!(height, round, ?voters, "round held up by missing voters");
                    self.metrics.set_missing(&voters);
                    self.missing = voters;
                }
                Output::Refused { from, reason } => {
                    self.metrics.reject(refusal_code(&reason));
                    match &reason {
                        // A block this node will not vote for: its operator is told which check
                        // and why (never silently; no check reads this node's clock).
                        kp_consensus::Refusal::InvalidBlock(why) => {
                            tracing::warn!(%from, reason = %why, "refused a proposed block: this node does not vote for it");
                        }
                        _ => tracing::debug!(%from, %reason, "consensus message refused"),
                    }
                    if matches!(
                        reason,
                        kp_consensus::Refusal::BadSignature(_)
                            | kp_consensus::Refusal::WrongSender { .. }
                            | kp_consensus::Refusal::BadLock(_)
                    ) {
                        effects.push(Effect::Misbehaved(from, reason.to_string()));
                    }
                }
                Output::Behind { height } => {
                    tracing::debug!(height, "behind the network");
                    effects.push(Effect::Behind(height));
                }
            }
        }
        self.sync(&mut unsynced)?;
        self.metrics.round.set(i64::from(self.round()));
        self.metrics.pending_events.set(i64::try_from(self.pool.len()).unwrap_or(i64::MAX));
        if events_wanted {
            effects.extend(self.answer_events(now, false)?);
        }
        Ok(effects)
    }

    fn sync(&mut self, unsynced: &mut Vec<kp_consensus::Record>) -> Result<(), CoreError> {
        if !unsynced.is_empty() {
            self.store.persist_records(unsynced)?;
            unsynced.clear();
        }
        Ok(())
    }
}

/// The participant whose node key `key` is, in `ledger`.
fn participant_of(ledger: &kp_rules::Ledger, key: &kp_domain::PublicKey) -> Option<ParticipantId> {
    ledger.participants().find(|p| p.node_key == *key).map(|p| p.id)
}
