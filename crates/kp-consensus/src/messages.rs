//! What consensus nodes say to each other, and what the engine asks its host to do.

use crate::block::{Block, Certificate, VoteBody, VoteKind, VoteSignature};
use kp_crypto::Signature;
use kp_domain::{Hash32, ParticipantId, Timestamp};

pub type Height = u64;
pub type Round = u32;

/// A leader's proposal for (height, round). Signed by the leader's node key over
/// [`proposal_signing_bytes`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Proposal {
    pub height: Height,
    pub round: Round,
    pub block: Block,
    /// The prevote certificate of `block` from an earlier round, when it is re-proposed.
    pub justify: Option<Certificate>,
    pub proposer: ParticipantId,
    pub signature: Signature,
}

/// The bytes a proposer signs: height, round, block hash and the justify round (or none).
pub fn proposal_signing_bytes(
    height: Height,
    round: Round,
    block_hash: &Hash32,
    justify_round: Option<Round>,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + 4 + 32 + 5);
    b.extend_from_slice(&height.to_be_bytes());
    b.extend_from_slice(&round.to_be_bytes());
    b.extend_from_slice(&block_hash.0);
    match justify_round {
        Some(r) => {
            b.push(1);
            b.extend_from_slice(&r.to_be_bytes());
        }
        None => b.push(0),
    }
    b
}

/// One voter's signed vote, with the time its clock showed when it signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vote {
    pub body: VoteBody,
    pub voter: ParticipantId,
    pub time: Timestamp,
    pub signature: Signature,
}

impl Vote {
    pub fn signature(&self) -> VoteSignature {
        VoteSignature { voter: self.voter, time: self.time, signature: self.signature }
    }
}

/// A node's report on entering a new round: its lock, so that the next leader re-proposes the
/// highest locked block, with its precommit of that block in the lock's round (signed again
/// now), so that a commit whose precommits one voter withholds is assembled from the reports
/// (docs/consensus.md, "Withheld precommit"); and (from the previous round's leader) who did
/// not vote.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NewRound {
    pub height: Height,
    pub round: Round,
    pub lock: Option<Box<(Block, Certificate)>>,
    /// The sender's precommit of its lock (same block and round), when it precommitted it.
    pub precommit: Option<Vote>,
    /// Voters the sender, as leader of `round - 1`, did not hear a vote from.
    pub missing: Vec<ParticipantId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    Proposal(Box<Proposal>),
    Vote(Vote),
    /// A prevote certificate (the leader asks for precommits) or a commit certificate.
    Certificate(Box<Certificate>),
    NewRound(NewRound),
}

impl Message {
    /// The height the message is about.
    pub fn height(&self) -> Height {
        match self {
            Message::Proposal(p) => p.height,
            Message::Vote(v) => v.body.height,
            Message::Certificate(c) => c.body.height,
            Message::NewRound(n) => n.height,
        }
    }
}

/// What the engine must be able to recover after a crash. The host writes each record
/// durably **before** sending any message that follows it in the same output batch.
// Records and evidence are rare (a few per round): their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Record {
    /// This node signed this vote; it never signs another for the same (height, round, kind).
    Voted(VoteBody),
    /// This node locked on `block` at the certificate's round.
    Locked { block: Block, certificate: Certificate },
    /// This node proposed this (as leader); it never proposes another for the same round.
    Proposed(Box<Proposal>),
}

/// Signed proof that a signer equivocated.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Evidence {
    DoubleProposal { first: Box<Proposal>, second: Box<Proposal> },
    DoubleVote { first: Vote, second: Vote },
}

/// Why a peer's message was refused (the host counts them per peer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Hash)]
pub enum Refusal {
    #[error("{0} is not a voter at this height")]
    NotAVoter(ParticipantId),
    #[error("message claims to come from {claimed} but was sent by {sender}")]
    WrongSender { claimed: ParticipantId, sender: ParticipantId },
    #[error("{0} is not the leader of this round")]
    NotLeader(ParticipantId),
    #[error("signature of {0} does not verify")]
    BadSignature(ParticipantId),
    #[error("invalid block: {0}")]
    InvalidBlock(String),
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    #[error("vote for a block this node does not know")]
    UnknownBlock,
    /// A `NewRound`'s reported lock that is no prevote certificate of its block by the voters
    /// it requires: an honest voter only reports a lock it verified itself at the same height.
    #[error("reported lock refused: {0}")]
    BadLock(String),
}

/// What the engine asks its host to do, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Output {
    /// Write durably before sending anything that follows.
    Persist(Record),
    Send {
        to: ParticipantId,
        message: Message,
    },
    Broadcast(Message),
    /// Call back with [`crate::Input::Timeout`] at `at` (replaces any earlier timer).
    SetTimer {
        height: Height,
        round: Round,
        at: Timestamp,
    },
    /// Call back with [`crate::Input::EventsReady`]: pending events for a new block, as soon as
    /// there are some, and at `deadline` at the latest (then possibly none).
    RequestEvents {
        height: Height,
        round: Round,
        deadline: Timestamp,
    },
    /// The block is committed with its certificate; the engine has moved to the next height.
    Committed {
        block: Block,
        certificate: Certificate,
    },
    Evidence(Evidence),
    /// The voters that held up `round` (a halted chain shows who is missing).
    Missing {
        height: Height,
        round: Round,
        voters: Vec<ParticipantId>,
    },
    Refused {
        from: ParticipantId,
        reason: Refusal,
    },
    /// A message for a later height arrived: this node is behind and must catch up.
    Behind {
        height: Height,
    },
}

impl VoteKind {
    pub fn name(self) -> &'static str {
        match self {
            VoteKind::Prevote => "prevote",
            VoteKind::Precommit => "precommit",
        }
    }
}
