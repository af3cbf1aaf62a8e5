//! The node's core: the consensus engine, the rules engine (`LedgerApp`) and the store, wired
//! together synchronously. No tokio, no network: the runtime hands it submissions, peer
//! messages and the time, and carries out the [`Effect`]s it returns. Every engine record is
//! persisted (synced) before the messages that follow it are returned, and every committed
//! block is in the store before anything else happens.

use crate::metrics::Metrics;
use kp_chain::{LedgerApp, PendingEvent};
use kp_consensus::{Engine, Height, Input, Message, Output, Round};
use kp_crypto::SecretKey;
use kp_domain::{ChainId, EventId, Genesis, ParticipantId, Timestamp};
use kp_proto::EdgeError;
use kp_store::{RocksBackend, Store, StoreError, Submitted};
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    Malformed,
    BadSignature,
    Rules,
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
    #[error("the node key {0} is not the node key of any participant or observer in the genesis")]
    UnknownNodeKey(kp_domain::PublicKey),
    #[error("consensus configuration: {0}")]
    Config(String),
}

/// A pending event, opened.
#[derive(Debug, Clone)]
struct Pooled {
    pending: PendingEvent,
    event: kp_domain::Event,
    /// When this node accepted it (unknown for events reloaded after a restart).
    submitted: Option<Timestamp>,
}

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
    }
}

fn reject_code(k: RejectKind) -> &'static str {
    match k {
        RejectKind::Malformed => "submit_malformed",
        RejectKind::BadSignature => "submit_bad_signature",
        RejectKind::Rules => "submit_rules",
        RejectKind::PoolFull => "submit_pool_full",
    }
}

/// The state of one node.
#[derive(Debug)]
pub struct Core {
    store: Store<RocksBackend>,
    app: LedgerApp,
    /// `None` on an observer's node (no vote).
    engine: Option<Engine>,
    chain_id: ChainId,
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
}

impl Core {
    /// Opens (or creates) the store in `data_dir` and starts the engine at the stored head.
    pub fn open(
        genesis: &Genesis,
        key: SecretKey,
        data_dir: &Path,
        config: kp_consensus::Config,
        max_block_events: usize,
        now: Timestamp,
    ) -> Result<(Core, Vec<Effect>), CoreError> {
        let public = key.public();
        if !genesis.participants.iter().any(|p| p.node_key == public)
            && !genesis.observers.iter().any(|o| o.node_key == public)
        {
            return Err(CoreError::UnknownNodeKey(public));
        }
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Backend(kp_store::BackendError::Io(format!("{}: {e}", data_dir.display()))))?;
        let backend = RocksBackend::open(data_dir).map_err(StoreError::Backend)?;
        let (mut store, mut app) = Store::open(backend, genesis)?;
        let me = genesis.participants.iter().find(|p| p.node_key == public).map(|p| p.id);
        let (engine, out) = match me {
            Some(me) => {
                let records = store.records()?;
                let (engine, out) = Engine::new(config, genesis.chain_id.clone(), me, key, records, now, &mut app)
                    .map_err(|e| CoreError::Config(e.to_string()))?;
                (Some(engine), out)
            }
            None => (None, Vec::new()),
        };
        let mut pool = Vec::new();
        let mut unreadable = Vec::new();
        for envelope in store.pending()? {
            match kp_proto::open_event(&genesis.chain_id, &envelope) {
                Ok(event) => {
                    pool.push(Pooled { pending: PendingEvent::opened(envelope, &event), event, submitted: None })
                }
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
            me,
            timer: None,
            wants_events: None,
            missing: Vec::new(),
            max_block_events,
            refused: HashMap::new(),
            refused_order: VecDeque::new(),
            metrics: Arc::new(Metrics::new()),
        };
        core.metrics.height.set(i64::try_from(core.store.head().height).unwrap_or(i64::MAX));
        // Kept once but no longer opening (a later build reads the format differently): the
        // event cannot be proposed; it leaves the pool and a client asking is told why.
        for (id, why) in unreadable {
            core.remember_refusal(id, format!("no longer opens after a restart: {why}"));
        }
        let effects = core.carry_out(out, now)?;
        Ok((core, effects))
    }

    pub fn store(&self) -> &Store<RocksBackend> {
        &self.store
    }
    pub fn ledger(&self) -> &kp_rules::Ledger {
        self.app.ledger()
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
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// A pending event's envelope.
    pub fn pending(&self, id: &EventId) -> Option<&[u8]> {
        self.pool.iter().find(|p| p.pending.id == *id).map(|p| p.pending.envelope.as_slice())
    }

    /// Why an event was dropped from the pool at proposal time, if it was (recently).
    pub fn refusal(&self, id: &EventId) -> Option<&str> {
        self.refused.get(id).map(String::as_str)
    }

    /// Checks a submitted event (size, encoding, signature, and the rules against the committed
    /// state followed by the pending pool) and keeps it durably in the pool.
    pub fn submit(&mut self, envelope: Vec<u8>, now: Timestamp) -> Result<(Submission, Vec<Effect>), CoreError> {
        let answer = self.check_and_keep(envelope, now)?;
        if let Submission::Rejected(_, kind, _) = &answer.0 {
            self.metrics.reject(reject_code(*kind));
        }
        self.metrics.pending_events.set(i64::try_from(self.pool.len()).unwrap_or(i64::MAX));
        Ok(answer)
    }

    fn check_and_keep(&mut self, envelope: Vec<u8>, now: Timestamp) -> Result<(Submission, Vec<Effect>), CoreError> {
        let id = kp_crypto::event_id(&envelope);
        let event = match kp_proto::open_event(&self.chain_id, &envelope) {
            Ok(e) => e,
            Err(e @ EdgeError::Signature { .. }) => {
                return Ok((Submission::Rejected(id, RejectKind::BadSignature, e.to_string()), Vec::new()));
            }
            Err(e) => return Ok((Submission::Rejected(id, RejectKind::Malformed, e.to_string()), Vec::new())),
        };
        if let Some(at) = self.store.position(&id)? {
            return Ok((Submission::Duplicate(id, Some(at.height)), Vec::new()));
        }
        if self.store.is_pending(&id) {
            return Ok((Submission::Duplicate(id, None), Vec::new()));
        }
        let ledger = self.app.ledger_mut();
        ledger.begin_block();
        for p in &self.pool {
            let _ = ledger.apply(&p.event, now);
        }
        let verdict = ledger.apply(&event, now);
        ledger.rollback_block();
        if let Err(r) = verdict {
            return Ok((Submission::Rejected(id, RejectKind::Rules, r.to_string()), Vec::new()));
        }
        match self.store.add_pending(std::slice::from_ref(&envelope)) {
            Ok(s) => match s.first() {
                Some(Submitted::AlreadyCommitted(at)) => Ok((Submission::Duplicate(id, Some(at.height)), Vec::new())),
                Some(Submitted::AlreadyPending) => Ok((Submission::Duplicate(id, None), Vec::new())),
                _ => {
                    self.pool.push(Pooled {
                        pending: PendingEvent::opened(envelope, &event),
                        event,
                        submitted: Some(now),
                    });
                    let effects = self.answer_events(now, false)?;
                    Ok((Submission::Added(id), effects))
                }
            },
            Err(StoreError::PoolFull(n)) => Ok((
                Submission::Rejected(id, RejectKind::PoolFull, format!("the pending pool is full ({n} events)")),
                Vec::new(),
            )),
            Err(StoreError::TooLarge(n)) => Ok((
                Submission::Rejected(id, RejectKind::Malformed, format!("{n} bytes is over the limit")),
                Vec::new(),
            )),
            Err(e) => Err(e.into()),
        }
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

    /// Fires a due round timer and answers a due request for events.
    pub fn tick(&mut self, now: Timestamp) -> Result<Vec<Effect>, CoreError> {
        let mut effects = Vec::new();
        if let Some((height, round, at)) = self.timer
            && at <= now
        {
            self.timer = None;
            effects.extend(self.step(Input::Timeout { height, round }, now)?);
        }
        effects.extend(self.answer_events(now, true)?);
        Ok(effects)
    }

    /// When the next tick has something to do.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        [self.timer.map(|t| t.2), self.wants_events.map(|w| w.2)].into_iter().flatten().min()
    }

    fn step(&mut self, input: Input, now: Timestamp) -> Result<Vec<Effect>, CoreError> {
        let Some(engine) = self.engine.as_mut() else { return Ok(Vec::new()) };
        let out = engine.handle(input, now, &mut self.app);
        self.carry_out(out, now)
    }

    /// Answers the engine's request for events: at once when the pool holds admissible events,
    /// or at the deadline (`due`) with whatever there is (possibly nothing).
    fn answer_events(&mut self, now: Timestamp, due: bool) -> Result<Vec<Effect>, CoreError> {
        let Some((height, round, deadline)) = self.wants_events else { return Ok(Vec::new()) };
        let events = self.select(now)?;
        if events.is_empty() && !(due && deadline <= now) {
            return Ok(Vec::new());
        }
        self.wants_events = None;
        self.step(Input::EventsReady { height, round, events }, now)
    }

    /// What the proposer takes: the pool's events that the rules still admit, in order, picked
    /// by `kp_chain::select_events`; the others leave the pool, their reason remembered.
    fn select(&mut self, now: Timestamp) -> Result<Vec<Vec<u8>>, CoreError> {
        let mut dropped = Vec::new();
        let ledger = self.app.ledger_mut();
        ledger.begin_block();
        for p in &self.pool {
            if let Err(r) = ledger.apply(&p.event, now) {
                dropped.push((p.pending.id, r.to_string()));
            }
        }
        ledger.rollback_block();
        if !dropped.is_empty() {
            let ids: Vec<EventId> = dropped.iter().map(|d| d.0).collect();
            self.store.remove_pending(&ids)?;
            let gone: std::collections::HashSet<&EventId> = ids.iter().collect();
            self.pool.retain(|p| !gone.contains(&p.pending.id));
            for (id, why) in dropped {
                tracing::info!(event = %id, reason = %why, "pending event refused at proposal time");
                self.remember_refusal(id, why);
            }
        }
        Ok(kp_chain::select_events(self.pool.iter().map(|p| &p.pending), self.max_block_events))
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
                    self.store.commit(&block, &certificate, &mut self.app)?;
                    let ids: std::collections::HashSet<EventId> =
                        block.events().iter().map(|e| kp_crypto::event_id(e)).collect();
                    for p in self.pool.iter().filter(|p| ids.contains(&p.pending.id)) {
                        if let Some(t) = p.submitted {
                            let ms = now.0.saturating_sub(t.0);
                            self.metrics.commit_latency.observe(Duration::from_millis(ms).as_secs_f64());
                        }
                    }
                    self.pool.retain(|p| !ids.contains(&p.pending.id));
                    self.metrics.height.set(i64::try_from(height).unwrap_or(i64::MAX));
                    self.metrics.missing_now.clear();
                    self.missing.clear();
                    tracing::info!(height, events = block.events().len(), hash = %block.hash(), "committed");
                    effects.push(Effect::Committed(height));
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
                    tracing::debug!(%from, %reason, "consensus message refused");
                }
                Output::Behind { height } => tracing::info!(height, "behind the network"),
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
