//! The ledger as the consensus engine sees it: [`LedgerApp`] implements
//! [`kp_consensus::Application`] with the real edge (`kp-proto`) and rules engine (`kp-rules`).
//! It decides which voters a block needs: every voter of the height, except for a block that
//! carries a single governance act (or the conclusion of a written procedure on one)
//! suspending, restricting or withdrawing participant X, which
//! needs every voter but X (consensus minus the party concerned).
//!
//! Architecture invariant: pure (no I/O); the node and the simulator wrap it.

use kp_consensus::block::{Block, Certificate};
use kp_consensus::{Application, Execution, ExecutionError, Height};
use kp_domain::{
    ChainId, Event, EventId, EventPayload, Genesis, GovernanceAction, Hash32, ParticipantId, PublicKey, Timestamp,
};
use kp_rules::Ledger;

/// The voters whose signatures commit a block of `events` (decoded), given the height's voters.
pub fn required_voters(voters: &[(ParticipantId, PublicKey)], events: &[Event]) -> Vec<(ParticipantId, PublicKey)> {
    let act = match events {
        [only] => match &only.payload {
            EventPayload::Governance(g) => Some(&g.act),
            // A written procedure's conclusion decides the act it carries, like the act itself.
            EventPayload::ProcedureConclusion(c) => Some(&c.act),
            _ => None,
        },
        _ => None,
    };
    let subject = act.and_then(|a| match &a.action {
        GovernanceAction::Suspend { participant }
        | GovernanceAction::Restrict { participant, .. }
        | GovernanceAction::Withdraw { participant } => Some(*participant),
        _ => None,
    });
    voters.iter().copied().filter(|(id, _)| Some(*id) != subject).collect()
}

/// Whether `events` may make one block: a governance event (an act, or a written procedure's
/// opening, response or conclusion) is alone in its block, so that every change of the voter
/// set has a block of its own and a proof bundle, which carries governance blocks whole, can
/// show it. Voters refuse any other block (`execute`), and so does the audit; the proposer's
/// choice (`select_events`) never makes one. `Err`: the governance event's index, and why.
pub fn check_block_events(events: &[Event]) -> Result<(), (usize, String)> {
    if events.len() < 2 {
        return Ok(());
    }
    match events.iter().position(|e| e.payload.kind().is_governance()) {
        Some(i) => Err((
            i,
            format!(
                "event {i} is a governance event ({}) and shares its block with {} other event(s); a governance \
                 event has a block of its own",
                events[i].payload.kind(),
                events.len() - 1
            ),
        )),
        None => Ok(()),
    }
}

/// The committed ledger of one node, as the consensus engine's application.
#[derive(Debug, Clone)]
pub struct LedgerApp {
    ledger: Ledger,
    chain_id: ChainId,
    height: Height,
    last: (Hash32, Timestamp),
    /// Events opened (signatures verified) by `execute` since the last commit, by events root:
    /// committing an executed block does not verify its signatures a second time.
    opened: Vec<(Hash32, Vec<Event>)>,
    /// The block `execute` ran last, left applied as the ledger's outermost tentative block:
    /// committing it applies nothing again, executing it again costs nothing. Undone by
    /// [`LedgerApp::settle`], or by executing or committing another block.
    executed: Option<Executed>,
    /// The voters of the next height, as the committed state has them.
    voters: Vec<(ParticipantId, PublicKey)>,
    /// Every participant's node key, as the committed state has them.
    node_keys: Vec<(ParticipantId, PublicKey)>,
    /// The last block's commit certificate and the voters it was checked against.
    last_commit: Option<(Certificate, Vec<(ParticipantId, PublicKey)>)>,
}

fn node_keys(ledger: &Ledger) -> Vec<(ParticipantId, PublicKey)> {
    ledger.participants().map(|p| (p.id, p.node_key)).collect()
}

/// A block executed and left applied (see [`LedgerApp::settle`]).
#[derive(Debug, Clone)]
struct Executed {
    events_root: Hash32,
    time: Timestamp,
    events: u64,
    execution: Execution,
}

/// Executed blocks whose opened events are kept until the next commit (a height sees one
/// proposal per round; the oldest is dropped first).
const OPENED_KEPT: usize = 4;

impl LedgerApp {
    pub fn new(genesis: &Genesis) -> Result<LedgerApp, kp_domain::FieldError> {
        let ledger = Ledger::from_genesis(genesis)?;
        Ok(LedgerApp {
            voters: ledger.voters(),
            node_keys: node_keys(&ledger),
            ledger,
            chain_id: genesis.chain_id.clone(),
            height: 0,
            last: (kp_proto::genesis_hash(genesis), genesis.genesis_time),
            opened: Vec::new(),
            executed: None,
            last_commit: None,
        })
    }

    /// The application at `height`, whose last block is `last` with its commit certificate and
    /// the voters that certificate needed (none at height 0), over a ledger restored from a store
    /// (the caller has checked the ledger's root against that block's header, and the
    /// certificate against those voters).
    pub fn restore(
        ledger: Ledger,
        height: Height,
        last: (Hash32, Timestamp),
        last_commit: Option<(Certificate, Vec<(ParticipantId, PublicKey)>)>,
    ) -> LedgerApp {
        LedgerApp {
            chain_id: ledger.chain_id().clone(),
            voters: ledger.voters(),
            node_keys: node_keys(&ledger),
            ledger,
            height,
            last,
            opened: Vec::new(),
            executed: None,
            last_commit,
        }
    }

    /// The ledger: the committed state, followed by the block executed last if it is neither
    /// committed nor settled yet (and by whatever tentative block the caller opened on top).
    /// [`LedgerApp::committed`] gives the committed state alone.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The committed state (a block executed but not committed is undone first).
    pub fn committed(&mut self) -> &Ledger {
        self.settle();
        &self.ledger
    }

    /// The voters of the next height, as the committed state has them ([`Application::voters`]
    /// without the copy).
    pub fn next_voters(&self) -> &[(ParticipantId, PublicKey)] {
        &self.voters
    }

    /// The last block's commit certificate (none at height 0): what the next block's time
    /// derives from.
    pub fn last_certificate(&self) -> Option<&Certificate> {
        self.last_commit.as_ref().map(|(c, _)| c)
    }

    /// Every participant's node key (whatever its status), as the committed state has them.
    pub fn node_keys(&self) -> &[(ParticipantId, PublicKey)] {
        &self.node_keys
    }

    /// Events the committed state holds (a block executed but not committed is not counted).
    pub fn events_committed(&self) -> u64 {
        self.ledger.events_applied() - self.executed.as_ref().map_or(0, |x| x.events)
    }

    /// Whether the block executed last is still applied (see [`LedgerApp::settle`]).
    pub fn has_executed(&self) -> bool {
        self.executed.is_some()
    }

    /// Undoes the block executed last, if it is still applied: the ledger is the committed
    /// state. A caller that opened a tentative block of its own on top undoes that first.
    pub fn settle(&mut self) {
        if self.executed.take().is_some() {
            assert_eq!(self.ledger.tentative_depth(), 1, "internal invariant: the executed block is the only one open");
            self.ledger.rollback_block();
        }
    }

    /// The ledger, for a store to take its changes after a commit, and for a node to open a
    /// tentative block of its own on top (undone before the next execute or commit). Changing
    /// the state for good other than through [`Application::commit`] breaks the application.
    pub fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    fn open_all(
        &self,
        events: &[Vec<u8>],
        known: &dyn Fn(&EventId) -> Option<Event>,
    ) -> Result<Vec<Event>, ExecutionError> {
        // The known events as they are; the others opened together (one batch check of their
        // signatures).
        let given: Vec<Option<Event>> = events.iter().map(|bytes| known(&kp_crypto::event_id(bytes))).collect();
        let unknown = events.iter().zip(&given).filter(|(_, k)| k.is_none()).map(|(bytes, _)| bytes.as_slice());
        let mut opened =
            kp_proto::open_events(&self.chain_id, self.ledger.params().signature_rule, unknown).into_iter();
        // Sized up front (collecting into a Result would grow it by doubling, copying every
        // event again).
        let mut all = Vec::with_capacity(events.len());
        for (i, k) in given.into_iter().enumerate() {
            let event = match k {
                Some(e) => e,
                None => match opened.next() {
                    Some(o) => {
                        o.map_err(|e| ExecutionError { event_index: Some(i), reason: format!("event {i}: {e}") })?
                    }
                    // open_events answers once per envelope: an internal invariant.
                    None => {
                        return Err(ExecutionError {
                            event_index: Some(i),
                            reason: format!("event {i} was not opened"),
                        });
                    }
                },
            };
            all.push(event);
        }
        Ok(all)
    }

    /// [`Application::execute`], taking the events `known` already opened (signatures verified
    /// over these exact bytes, as a node's pending pool holds them) instead of opening them
    /// again. An event's id is the hash of its exact bytes, so a known event is the same event.
    pub fn execute_known(
        &mut self,
        time: Timestamp,
        events: &[Vec<u8>],
        known: &dyn Fn(&EventId) -> Option<Event>,
    ) -> Result<Execution, ExecutionError> {
        let root = kp_consensus::block::events_root(events);
        if let Some(x) = &self.executed
            && x.events_root == root
            && x.time == time
        {
            return Ok(x.execution.clone());
        }
        self.settle();
        assert_eq!(self.ledger.tentative_depth(), 0, "internal invariant: a block is executed on the committed state");
        let decoded = match self.opened.iter().position(|(r, _)| *r == root) {
            Some(k) => self.opened[k].1.clone(),
            None => self.open_all(events, known)?,
        };
        check_block_events(&decoded).map_err(|(i, reason)| ExecutionError { event_index: Some(i), reason })?;
        let required = required_voters(&self.voters, &decoded);
        self.ledger.begin_block();
        for (i, event) in decoded.iter().enumerate() {
            if let Err(r) = self.ledger.apply(event, time) {
                self.ledger.rollback_block();
                return Err(ExecutionError { event_index: Some(i), reason: format!("event {i}: {r}") });
            }
        }
        let execution = Execution { state_root: self.ledger.state_root(), required };
        // Left applied: the commit that normally follows applies nothing again.
        let events = u64::try_from(decoded.len()).unwrap_or(u64::MAX);
        self.executed = Some(Executed { events_root: root, time, events, execution: execution.clone() });
        if !self.opened.iter().any(|(r, _)| *r == root) {
            if self.opened.len() >= OPENED_KEPT {
                self.opened.remove(0);
            }
            self.opened.push((root, decoded));
        }
        Ok(execution)
    }
}

impl Application for LedgerApp {
    fn height(&self) -> Height {
        self.height
    }

    fn last_block(&self) -> (Hash32, Timestamp) {
        self.last
    }

    fn voters(&self) -> Vec<(ParticipantId, PublicKey)> {
        self.voters.clone()
    }

    fn last_commit(&self) -> Option<(Certificate, Vec<(ParticipantId, PublicKey)>)> {
        self.last_commit.clone()
    }

    fn execute(&mut self, time: Timestamp, events: &[Vec<u8>]) -> Result<Execution, ExecutionError> {
        self.execute_known(time, events, &|_| None)
    }

    fn commit(&mut self, block: &Block, certificate: &Certificate) {
        // The engine commits only a block it executed successfully against this very state:
        // normally that block is still applied and is kept as it is. Otherwise it is applied
        // again, from its opened events if they were kept.
        let header = block.header();
        let root = header.events_root;
        let required = if let Some(x) = self.executed.take_if(|x| x.events_root == root && x.time == header.time) {
            assert_eq!(self.ledger.tentative_depth(), 1, "internal invariant: the executed block is the only one open");
            self.ledger.commit_block();
            x.execution.required
        } else {
            self.settle();
            let decoded = match self.opened.iter().position(|(r, _)| *r == root) {
                Some(k) => self.opened.swap_remove(k).1,
                None => self.open_all(block.events(), &|_| None).unwrap_or_default(),
            };
            for event in &decoded {
                let applied = self.ledger.apply(event, header.time);
                debug_assert!(applied.is_ok(), "internal invariant: a committed block's event was refused");
            }
            required_voters(&self.voters, &decoded)
        };
        self.last_commit = Some((certificate.clone(), required));
        self.opened.clear();
        self.voters = self.ledger.voters();
        self.node_keys = node_keys(&self.ledger);
        self.height = header.height;
        self.last = (block.hash(), header.time);
    }
}

/// A submitted event waiting in a node's pool, classified once on arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    pub envelope: Vec<u8>,
    pub id: kp_domain::EventId,
    /// A governance event (an act, or a written procedure's opening, response or conclusion):
    /// proposed in a block of its own.
    pub governance: bool,
}

impl PendingEvent {
    /// Classifies a submitted envelope (structure only; the proposer's execution checks the rest).
    pub fn new(envelope: Vec<u8>) -> PendingEvent {
        let governance = kp_proto::decode_event(&envelope).is_ok_and(|e| e.payload().kind().is_governance());
        PendingEvent { id: kp_crypto::event_id(&envelope), envelope, governance }
    }

    /// Classifies an envelope its holder has already opened as `event`.
    pub fn opened(envelope: Vec<u8>, event: &Event) -> PendingEvent {
        PendingEvent { id: event.id, governance: event.payload.kind().is_governance(), envelope }
    }
}

/// What a leader proposes from its pool (in submission order): the first pending governance act
/// alone, if there is one — so that an act suspending a participant that holds the chain can be
/// committed without that participant, and every change of the voter set has a block of its
/// own — otherwise up to `max` custody events.
pub fn select_events<'a, I>(pool: I, max: usize) -> Vec<Vec<u8>>
where
    I: IntoIterator<Item = &'a PendingEvent>,
    I::IntoIter: Clone,
{
    let pool = pool.into_iter();
    if let Some(act) = pool.clone().find(|p| p.governance) {
        return vec![act.envelope.clone()];
    }
    pool.take(max).map(|p| p.envelope.clone()).collect()
}
