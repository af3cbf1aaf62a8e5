//! The bytes consensus messages and committed blocks travel as between nodes (format version 2:
//! votes carry their signer's time, blocks their parent's commit certificate, certificates a
//! withheld voter's prevote; see [`crate::block`]).
//!
//! bincode 2, big-endian fixed-width integers, decoded under a hard size limit so that a length
//! prefix cannot make the decoder allocate more than the message itself could hold. Everything
//! decoded is checked before the engine sees it: participant ids, the block header (canonical),
//! the events against the header's root and count, per-event and per-list limits. A decoder
//! never panics on any input; it returns a [`WireError`] that names what is wrong.
//!
//! Signatures are not checked here (the engine does it against the voter set of the height);
//! they cover the header bytes and the vote bytes exactly as carried, never a re-encoding.

use crate::block::{Block, BlockError, Certificate, VoteBody, VoteKind, VoteSignature};
use crate::messages::{Evidence, Message, NewRound, Proposal, Record, Vote};
use bincode::{Decode, Encode};
use kp_crypto::Signature;
use kp_domain::{MAX_EVENT_BYTES, MAX_PARTICIPANTS};
use kp_domain::{ParticipantId, Timestamp};

/// Largest encoded consensus message or catch-up batch accepted from a peer.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Most events in one block.
pub const MAX_BLOCK_EVENTS: usize = 4_096;
/// Most committed blocks in one catch-up batch.
pub const MAX_SYNC_BLOCKS: usize = 256;

/// The first byte of every encoding: the wire format version.
pub const WIRE_VERSION: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message is {0} bytes, more than {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    #[error("empty message")]
    Empty,
    #[error("unknown wire format version {0}")]
    UnknownVersion(u8),
    #[error("message does not decode: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("block: {0}")]
    Block(#[from] BlockError),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> WireError {
    WireError::Invalid { field, reason: reason.into() }
}

#[derive(Debug, Encode, Decode)]
struct WireBlock {
    header: Vec<u8>,
    events: Vec<Vec<u8>>,
    last_commit: Option<WireCertificate>,
}

/// A voter, the time it signed and its signature.
type WireSignature = (ParticipantId, u64, [u8; 64]);

#[derive(Debug, Encode, Decode)]
struct WireCertificate {
    body: VoteBody,
    signatures: Vec<WireSignature>,
    withheld: Option<WireSignature>,
}

#[derive(Debug, Encode, Decode)]
enum WireMessage {
    Proposal {
        height: u64,
        round: u32,
        block: WireBlock,
        justify: Option<WireCertificate>,
        proposer: ParticipantId,
        signature: [u8; 64],
    },
    Vote {
        body: VoteBody,
        voter: ParticipantId,
        time: u64,
        signature: [u8; 64],
    },
    Certificate(WireCertificate),
    NewRound {
        height: u64,
        round: u32,
        lock: Option<(WireBlock, WireCertificate)>,
        precommit: Option<(VoteBody, WireSignature)>,
        missing: Vec<ParticipantId>,
    },
}

fn block_to_wire(b: &Block) -> WireBlock {
    WireBlock {
        header: b.header_bytes().to_vec(),
        events: b.events().to_vec(),
        last_commit: b.last_commit().map(certificate_to_wire),
    }
}

fn signature_to_wire(s: &VoteSignature) -> WireSignature {
    (s.voter, s.time.0, s.signature.0)
}

fn signature_from_wire(
    field: &'static str,
    (voter, time, signature): WireSignature,
) -> Result<VoteSignature, WireError> {
    Ok(VoteSignature { voter: check_id(field, &voter)?, time: Timestamp(time), signature: Signature(signature) })
}

fn certificate_to_wire(c: &Certificate) -> WireCertificate {
    WireCertificate {
        body: c.body,
        signatures: c.signatures.iter().map(signature_to_wire).collect(),
        withheld: c.withheld.as_ref().map(signature_to_wire),
    }
}

fn check_id(field: &'static str, id: &ParticipantId) -> Result<ParticipantId, WireError> {
    // Decoding fills the two bytes without the constructor's check: run it now (bytes that are
    // not UTF-8 show as "??", which the constructor refuses too).
    ParticipantId::new(id.as_str()).map_err(|e| invalid(field, e.to_string()))
}

fn block_from_wire(w: WireBlock) -> Result<Block, WireError> {
    if w.events.len() > MAX_BLOCK_EVENTS {
        return Err(invalid("block.events", format!("{} events, at most {MAX_BLOCK_EVENTS}", w.events.len())));
    }
    if let Some((i, e)) = w.events.iter().enumerate().find(|(_, e)| e.len() > MAX_EVENT_BYTES) {
        return Err(invalid("block.events", format!("event {i} is {} bytes, at most {MAX_EVENT_BYTES}", e.len())));
    }
    let last_commit = w.last_commit.map(certificate_from_wire).transpose()?;
    Ok(Block::from_parts(w.header, w.events, last_commit)?)
}

fn certificate_from_wire(w: WireCertificate) -> Result<Certificate, WireError> {
    if w.signatures.len() > MAX_PARTICIPANTS {
        return Err(invalid("certificate.signatures", format!("{} signatures", w.signatures.len())));
    }
    let signatures = w
        .signatures
        .into_iter()
        .map(|s| signature_from_wire("certificate.signatures.voter", s))
        .collect::<Result<Vec<_>, WireError>>()?;
    let withheld = w.withheld.map(|s| signature_from_wire("certificate.withheld.voter", s)).transpose()?;
    Ok(Certificate { body: w.body, signatures, withheld })
}

fn encode_versioned<T: Encode>(value: &T) -> Vec<u8> {
    // A tuple encodes as its parts in order: the version byte, then the value, in one pass.
    // Encoding plain data into a Vec cannot fail; a value over the limit is refused by peers.
    bincode::encode_to_vec((WIRE_VERSION, value), crate::block::config()).unwrap_or_default()
}

fn decode_versioned<T: Decode<()>>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge(bytes.len()));
    }
    let (&version, rest) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != WIRE_VERSION {
        return Err(WireError::UnknownVersion(version));
    }
    let (value, used): (T, usize) =
        bincode::decode_from_slice(rest, crate::block::config().with_limit::<MAX_MESSAGE_BYTES>())
            .map_err(|e| WireError::Malformed(e.to_string()))?;
    if used != rest.len() {
        return Err(WireError::TrailingBytes(rest.len() - used));
    }
    Ok(value)
}

/// The bytes of a consensus message.
pub fn encode_message(m: &Message) -> Vec<u8> {
    let w = match m {
        Message::Proposal(p) => WireMessage::Proposal {
            height: p.height,
            round: p.round,
            block: block_to_wire(&p.block),
            justify: p.justify.as_ref().map(certificate_to_wire),
            proposer: p.proposer,
            signature: p.signature.0,
        },
        Message::Vote(v) => {
            WireMessage::Vote { body: v.body, voter: v.voter, time: v.time.0, signature: v.signature.0 }
        }
        Message::Certificate(c) => WireMessage::Certificate(certificate_to_wire(c)),
        Message::NewRound(n) => WireMessage::NewRound {
            height: n.height,
            round: n.round,
            lock: n.lock.as_ref().map(|l| (block_to_wire(&l.0), certificate_to_wire(&l.1))),
            precommit: n.precommit.as_ref().map(|v| (v.body, signature_to_wire(&v.signature()))),
            missing: n.missing.clone(),
        },
    };
    encode_versioned(&w)
}

/// Decodes and checks a consensus message from a peer.
pub fn decode_message(bytes: &[u8]) -> Result<Message, WireError> {
    Ok(match decode_versioned::<WireMessage>(bytes)? {
        WireMessage::Proposal { height, round, block, justify, proposer, signature } => {
            Message::Proposal(Box::new(Proposal {
                height,
                round,
                block: block_from_wire(block)?,
                justify: justify.map(certificate_from_wire).transpose()?,
                proposer: check_id("proposal.proposer", &proposer)?,
                signature: Signature(signature),
            }))
        }
        WireMessage::Vote { body, voter, time, signature } => Message::Vote(Vote {
            body,
            voter: check_id("vote.voter", &voter)?,
            time: Timestamp(time),
            signature: Signature(signature),
        }),
        WireMessage::Certificate(c) => Message::Certificate(Box::new(certificate_from_wire(c)?)),
        WireMessage::NewRound { height, round, lock, precommit, missing } => {
            if missing.len() > MAX_PARTICIPANTS {
                return Err(invalid("new_round.missing", format!("{} voters", missing.len())));
            }
            let missing = missing.iter().map(|id| check_id("new_round.missing", id)).collect::<Result<Vec<_>, _>>()?;
            let lock = match lock {
                Some((b, c)) => Some(Box::new((block_from_wire(b)?, certificate_from_wire(c)?))),
                None => None,
            };
            let precommit = match precommit {
                Some((body, s)) => {
                    let s = signature_from_wire("new_round.precommit.voter", s)?;
                    Some(Vote { body, voter: s.voter, time: s.time, signature: s.signature })
                }
                None => None,
            };
            Message::NewRound(NewRound { height, round, lock, precommit, missing })
        }
    })
}

/// A committed block with its commit certificate, as a catch-up batch carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedBlock {
    pub block: Block,
    pub certificate: Certificate,
}

/// The bytes of a catch-up batch (consecutive committed blocks).
pub fn encode_blocks(blocks: &[CommittedBlock]) -> Vec<u8> {
    let w: Vec<(WireBlock, WireCertificate)> =
        blocks.iter().map(|b| (block_to_wire(&b.block), certificate_to_wire(&b.certificate))).collect();
    encode_versioned(&w)
}

/// Decodes a catch-up batch from a peer: at most [`MAX_SYNC_BLOCKS`] blocks, each well formed
/// and carrying a commit (precommit) certificate for its own hash. The certificates' signatures
/// are checked by [`crate::apply_committed`] against the voter set the receiver derives itself.
pub fn decode_blocks(bytes: &[u8]) -> Result<Vec<CommittedBlock>, WireError> {
    let w: Vec<(WireBlock, WireCertificate)> = decode_versioned(bytes)?;
    if w.len() > MAX_SYNC_BLOCKS {
        return Err(invalid("blocks", format!("{} blocks, at most {MAX_SYNC_BLOCKS}", w.len())));
    }
    w.into_iter()
        .map(|(b, c)| {
            let block = block_from_wire(b)?;
            let certificate = certificate_from_wire(c)?;
            if certificate.body.kind != VoteKind::Precommit || certificate.body.block_hash != block.hash() {
                return Err(invalid("blocks.certificate", "not a commit certificate for this block"));
            }
            Ok(CommittedBlock { block, certificate })
        })
        .collect()
}

/// The bytes of a commit certificate, as a store keeps it beside its block.
pub fn encode_certificate(c: &Certificate) -> Vec<u8> {
    encode_versioned(&certificate_to_wire(c))
}

/// Decodes a stored or received certificate (signatures unchecked).
pub fn decode_certificate(bytes: &[u8]) -> Result<Certificate, WireError> {
    certificate_from_wire(decode_versioned(bytes)?)
}

// Records are written a few times a round: the size of the value does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Encode, Decode)]
enum WireRecord {
    Voted(VoteBody),
    Locked(WireBlock, WireCertificate),
    /// The proposal as the message that carried it.
    Proposed(Vec<u8>),
}

/// The bytes of an engine record (what a node persists before the messages it protects).
pub fn encode_record(r: &Record) -> Vec<u8> {
    let w = match r {
        Record::Voted(body) => WireRecord::Voted(*body),
        Record::Locked { block, certificate } => {
            WireRecord::Locked(block_to_wire(block), certificate_to_wire(certificate))
        }
        Record::Proposed(p) => WireRecord::Proposed(encode_message(&Message::Proposal(p.clone()))),
    };
    encode_versioned(&w)
}

pub fn decode_record(bytes: &[u8]) -> Result<Record, WireError> {
    Ok(match decode_versioned::<WireRecord>(bytes)? {
        WireRecord::Voted(body) => Record::Voted(body),
        WireRecord::Locked(b, c) => {
            Record::Locked { block: block_from_wire(b)?, certificate: certificate_from_wire(c)? }
        }
        WireRecord::Proposed(m) => match decode_message(&m)? {
            Message::Proposal(p) => Record::Proposed(p),
            _ => return Err(invalid("record.proposed", "not a proposal")),
        },
    })
}

/// The bytes of equivocation evidence: the two signed messages, as messages.
pub fn encode_evidence(e: &Evidence) -> Vec<u8> {
    let pair = match e {
        Evidence::DoubleProposal { first, second } => {
            (encode_message(&Message::Proposal(first.clone())), encode_message(&Message::Proposal(second.clone())))
        }
        Evidence::DoubleVote { first, second } => {
            (encode_message(&Message::Vote(*first)), encode_message(&Message::Vote(*second)))
        }
    };
    encode_versioned(&pair)
}

pub fn decode_evidence(bytes: &[u8]) -> Result<Evidence, WireError> {
    let (a, b): (Vec<u8>, Vec<u8>) = decode_versioned(bytes)?;
    match (decode_message(&a)?, decode_message(&b)?) {
        (Message::Proposal(first), Message::Proposal(second)) => Ok(Evidence::DoubleProposal { first, second }),
        (Message::Vote(first), Message::Vote(second)) => Ok(Evidence::DoubleVote { first, second }),
        _ => Err(invalid("evidence", "not two proposals or two votes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{BlockHeader, events_root};
    use kp_crypto::{SecretKey, Tag};
    use kp_domain::{ChainId, Hash32, Timestamp};
    use proptest::prelude::*;

    fn id(s: &str) -> ParticipantId {
        ParticipantId::new(s).unwrap()
    }

    fn block() -> Block {
        let events = vec![b"first envelope".to_vec(), b"second".to_vec()];
        let parent = Hash32([1; 32]);
        let last_commit = signed(VoteBody { kind: VoteKind::Precommit, height: 2, round: 0, block_hash: parent });
        let header = BlockHeader {
            chain_id: ChainId::new("kp-test").unwrap(),
            height: 3,
            round: 1,
            prev_hash: parent,
            last_commit_hash: crate::block::certificate_hash(&encode_certificate(&last_commit)),
            proposer: id("BW"),
            time: Timestamp(1_768_003_200_000),
            events_root: events_root(&events),
            event_count: 2,
            state_root: Hash32([2; 32]),
            voters_hash: Hash32([3; 32]),
        };
        Block::new(header, events, Some(last_commit)).unwrap()
    }

    fn signed(body: VoteBody) -> Certificate {
        let key = SecretKey::from_seed(&[7; 32]);
        let chain = ChainId::new("kp-test").unwrap();
        let time = Timestamp(1_768_003_199_000);
        let signature = key.sign(Tag::Vote, &chain, &body.signing_bytes(time));
        Certificate { body, signatures: vec![VoteSignature { voter: id("BW"), time, signature }], withheld: None }
    }

    fn certificate(kind: VoteKind, b: &Block) -> Certificate {
        signed(VoteBody { kind, height: 3, round: 1, block_hash: b.hash() })
    }

    fn messages() -> Vec<Message> {
        let b = block();
        let prevotes = certificate(VoteKind::Prevote, &b);
        vec![
            Message::Proposal(Box::new(Proposal {
                height: 3,
                round: 2,
                block: b.clone(),
                justify: Some(prevotes.clone()),
                proposer: id("EU"),
                signature: Signature([9; 64]),
            })),
            Message::Vote(Vote {
                body: prevotes.body,
                voter: id("CA"),
                time: Timestamp(1_768_003_201_000),
                signature: Signature([4; 64]),
            }),
            Message::Certificate(Box::new(prevotes.clone())),
            Message::NewRound(NewRound {
                height: 3,
                round: 4,
                lock: Some(Box::new((b, prevotes.clone()))),
                precommit: Some(Vote {
                    body: VoteBody { kind: VoteKind::Precommit, ..prevotes.body },
                    voter: id("EU"),
                    time: Timestamp(1_768_003_202_000),
                    signature: Signature([5; 64]),
                }),
                missing: vec![id("AE"), id("ZA")],
            }),
        ]
    }

    #[test]
    fn messages_and_blocks_round_trip() {
        for m in messages() {
            assert_eq!(decode_message(&encode_message(&m)).unwrap(), m);
        }
        let b = block();
        let batch = vec![CommittedBlock { certificate: certificate(VoteKind::Precommit, &b), block: b.clone() }];
        assert_eq!(decode_blocks(&encode_blocks(&batch)).unwrap(), batch);
        let mut c = certificate(VoteKind::Precommit, &b);
        assert_eq!(decode_certificate(&encode_certificate(&c)).unwrap(), c);
        c.withheld = Some(VoteSignature { voter: id("CA"), time: Timestamp(5), signature: Signature([6; 64]) });
        assert_eq!(decode_certificate(&encode_certificate(&c)).unwrap(), c);
        let Message::Proposal(p) = messages()[0].clone() else { unreachable!() };
        let Message::Vote(v) = messages()[1].clone() else { unreachable!() };
        for r in [
            Record::Voted(c.body),
            Record::Locked { block: b.clone(), certificate: c.clone() },
            Record::Proposed(p.clone()),
        ] {
            assert_eq!(decode_record(&encode_record(&r)).unwrap(), r);
        }
        let mut other = v;
        other.body.block_hash = Hash32([8; 32]);
        for e in
            [Evidence::DoubleProposal { first: p.clone(), second: p }, Evidence::DoubleVote { first: v, second: other }]
        {
            assert_eq!(decode_evidence(&encode_evidence(&e)).unwrap(), e);
        }
    }

    #[test]
    fn bad_bytes_are_refused_with_their_reason() {
        let bytes = encode_message(&messages()[0]);
        assert_eq!(decode_message(&[]), Err(WireError::Empty));
        let mut other_version = bytes.clone();
        other_version[0] = 1;
        assert_eq!(decode_message(&other_version), Err(WireError::UnknownVersion(1)), "format 1 is refused by name");
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_message(&longer), Err(WireError::TrailingBytes(1)));
        assert!(matches!(decode_message(&bytes[..bytes.len() - 1]), Err(WireError::Malformed(_))));
        assert_eq!(decode_message(&vec![1; MAX_MESSAGE_BYTES + 1]), Err(WireError::TooLarge(MAX_MESSAGE_BYTES + 1)));
        // An event changed in flight no longer matches the header's root.
        let mut tampered = bytes.clone();
        let at = bytes.windows(6).position(|w| w == b"second").unwrap();
        tampered[at] ^= 1;
        assert!(matches!(decode_message(&tampered), Err(WireError::Block(BlockError::EventsRootMismatch { .. }))));
        // A voter id that is not two upper-case letters.
        let vote = encode_message(&messages()[1]);
        let at = vote.windows(2).position(|w| w == b"CA").unwrap();
        let mut bad = vote.clone();
        bad[at] = b'c';
        assert!(matches!(decode_message(&bad), Err(WireError::Invalid { field: "vote.voter", .. })));
        // A catch-up batch whose certificate is a prevote certificate.
        let b = block();
        let wrong = encode_blocks(&[CommittedBlock { certificate: certificate(VoteKind::Prevote, &b), block: b }]);
        assert!(matches!(decode_blocks(&wrong), Err(WireError::Invalid { field: "blocks.certificate", .. })));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode_message(&bytes);
            let _ = decode_blocks(&bytes);
        }

        #[test]
        fn any_flipped_byte_of_a_message_is_refused_or_decodes_to_something_else(
            which in 0usize..4, at in any::<prop::sample::Index>(), bit in 0u8..8,
        ) {
            let m = &messages()[which];
            let mut bytes = encode_message(m);
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            let decoded = decode_message(&bytes).ok();
            prop_assert_ne!(decoded.as_ref(), Some(m));
        }
    }
}
