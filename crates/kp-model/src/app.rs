//! The ledger behind the engine in the model: the smallest application that has what the
//! consensus rules depend on — a state root, ordinary events that every voter must sign, and
//! the act suspending a voter, which its subject does not sign and which removes it from the
//! voters of the heights after it (docs/consensus.md, "What must hold"). The rules engine
//! itself is exercised by the simulator and the tests; here it would only multiply states.

use kp_consensus::block::{Block, Certificate, events_root};
use kp_consensus::{Application, Execution, ExecutionError, Height};
use kp_domain::{Hash32, ParticipantId, PublicKey, Timestamp};

pub type Voters = Vec<(ParticipantId, PublicKey)>;

/// First byte of an ordinary event (one more byte tells events apart).
pub const TX: u8 = b't';
/// First byte of the act suspending a voter; the voter's id follows.
pub const SUSPEND: u8 = b's';

/// An ordinary event.
pub fn tx(tag: u8) -> Vec<u8> {
    vec![TX, tag]
}

/// The act suspending `voter`.
pub fn suspend(voter: ParticipantId) -> Vec<u8> {
    let mut e = vec![SUSPEND];
    e.extend_from_slice(voter.as_str().as_bytes());
    e
}

/// The subject of `event` if it is an act suspending a voter.
pub fn suspension_of(event: &[u8], voters: &[(ParticipantId, PublicKey)]) -> Option<ParticipantId> {
    match event.split_first() {
        Some((&SUSPEND, id)) => voters.iter().map(|(p, _)| *p).find(|p| p.as_str().as_bytes() == id),
        _ => None,
    }
}

#[derive(Debug, Clone, Hash)]
pub struct ModelApp {
    height: Height,
    last: (Hash32, Timestamp),
    voters: Voters,
    last_commit: Option<(Certificate, Voters)>,
    root: Hash32,
    /// The voter a committed act suspended.
    suspended: Option<ParticipantId>,
}

impl ModelApp {
    pub fn new(genesis: Hash32, genesis_time: Timestamp, voters: Voters) -> ModelApp {
        ModelApp { height: 0, last: (genesis, genesis_time), voters, last_commit: None, root: genesis, suspended: None }
    }

    pub fn suspended(&self) -> Option<ParticipantId> {
        self.suspended
    }

    /// The voters `events` require: every voter, or every voter but the subject of a
    /// suspension, which must be the block's only event.
    fn required(&self, events: &[Vec<u8>]) -> Result<Voters, ExecutionError> {
        let mut required = self.voters.clone();
        for (i, e) in events.iter().enumerate() {
            let refuse = |reason: &str| ExecutionError { event_index: Some(i), reason: reason.to_owned() };
            match e.as_slice() {
                [TX, _] => {}
                [SUSPEND, ..] => {
                    let subject = suspension_of(e, &self.voters).ok_or_else(|| refuse("suspends no voter"))?;
                    if events.len() != 1 {
                        return Err(refuse("a suspension goes alone in its block"));
                    }
                    required.retain(|(p, _)| *p != subject);
                }
                _ => return Err(refuse("not an event of the model")),
            }
        }
        Ok(required)
    }
}

impl Application for ModelApp {
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
        let required = self.required(events)?;
        let state_root =
            kp_crypto::sha256_parts(&[b"kp-model/state", &self.root.0, &time.0.to_be_bytes(), &events_root(events).0]);
        Ok(Execution { state_root, required })
    }
    fn commit(&mut self, block: &Block, certificate: &Certificate) {
        // The engine commits only blocks it executed: `required` cannot fail here.
        let required = self.required(block.events()).unwrap_or_default();
        if let Some(subject) = block.events().first().and_then(|e| suspension_of(e, &self.voters)) {
            self.voters.retain(|(p, _)| *p != subject);
            self.suspended = Some(subject);
        }
        let h = block.header();
        self.height = h.height;
        self.last = (block.hash(), h.time);
        self.last_commit = Some((certificate.clone(), required));
        self.root = h.state_root;
    }
}
