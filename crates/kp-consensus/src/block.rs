//! The block format (format version 1).
//!
//! A header is encoded with bincode 2 (big-endian, fixed-width integers: one byte string per
//! header) and its hash is `SHA-256("kp-ledger/v1/block" || 0x00 || header bytes)`. Headers
//! travel as those exact bytes; a decoder refuses any other encoding of the same header.
//! A block's events are the signed envelopes exactly as stored; `events_root` is their RFC 6962
//! Merkle root (leaf = envelope bytes), so a later proof shows the very bytes that were signed.

use bincode::{Decode, Encode};
use kp_crypto::{BatchItem, CryptoError, Signature, Tag};
use kp_domain::{ChainId, Hash32, ParticipantId, PublicKey, Timestamp};

/// Largest encoded header accepted.
pub const MAX_HEADER_BYTES: usize = 512;

/// The encoding of every consensus structure: bincode 2, big-endian, fixed-width integers.
pub(crate) fn config() -> bincode::config::Configuration<bincode::config::BigEndian, bincode::config::Fixint> {
    bincode::config::standard().with_big_endian().with_fixed_int_encoding()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block header is {0} bytes, more than {MAX_HEADER_BYTES}")]
    HeaderTooLarge(usize),
    #[error("block header does not decode: {0}")]
    Malformed(String),
    #[error("block header is not in canonical encoding")]
    NonCanonical,
    #[error("events_root {claimed} does not match the block's {count} events (root {actual})")]
    EventsRootMismatch { claimed: Hash32, actual: Hash32, count: usize },
    #[error("event_count {claimed} does not match the {actual} events carried")]
    EventCountMismatch { claimed: u32, actual: usize },
}

/// The header of a block. Its hash identifies the block and is what voters sign.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct BlockHeader {
    pub chain_id: ChainId,
    pub height: u64,
    pub round: u32,
    /// Hash of the previous block's header; the genesis hash for height 1.
    pub prev_hash: Hash32,
    pub proposer: ParticipantId,
    /// Strictly after the previous block's time.
    pub time: Timestamp,
    /// RFC 6962 Merkle root of the events (leaves: the signed envelopes).
    pub events_root: Hash32,
    pub event_count: u32,
    /// The rules engine's state root after applying the events.
    pub state_root: Hash32,
    /// [`voters_hash`] of the voters required to commit this block.
    pub voters_hash: Hash32,
}

impl BlockHeader {
    /// The exact bytes that are hashed and stored.
    pub fn encode(&self) -> Vec<u8> {
        // Encoding plain data into a Vec cannot fail.
        bincode::encode_to_vec(self, config()).unwrap_or_default()
    }

    /// Decodes header bytes from outside, refusing oversized or non-canonical bytes.
    pub fn decode(bytes: &[u8]) -> Result<BlockHeader, BlockError> {
        if bytes.len() > MAX_HEADER_BYTES {
            return Err(BlockError::HeaderTooLarge(bytes.len()));
        }
        // The limit bounds what a length prefix inside the bytes can make the decoder allocate.
        let (header, used): (BlockHeader, usize) =
            bincode::decode_from_slice(bytes, config().with_limit::<MAX_HEADER_BYTES>())
                .map_err(|e| BlockError::Malformed(e.to_string()))?;
        // Domain types validate on construction only through serde/constructors; re-check here.
        ChainId::new(header.chain_id.as_str()).map_err(|e| BlockError::Malformed(e.to_string()))?;
        ParticipantId::new(header.proposer.as_str()).map_err(|e| BlockError::Malformed(e.to_string()))?;
        if used != bytes.len() || header.encode() != bytes {
            return Err(BlockError::NonCanonical);
        }
        Ok(header)
    }
}

/// The hash of header bytes: what identifies a block.
pub fn block_hash(header_bytes: &[u8]) -> Hash32 {
    kp_crypto::sha256_parts(&[b"kp-ledger/v1/block", &[0], header_bytes])
}

/// A block: its header (as bytes and decoded) and its events, exactly as signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    header_bytes: Vec<u8>,
    header: BlockHeader,
    events: Vec<Vec<u8>>,
    hash: Hash32,
}

impl Block {
    /// Builds a block from a header whose `events_root` and `event_count` the caller filled
    /// with [`events_root`] (the proposer's path).
    pub fn new(header: BlockHeader, events: Vec<Vec<u8>>) -> Result<Block, BlockError> {
        let header_bytes = header.encode();
        Self::from_parts(header_bytes, events)
    }

    /// Checks received parts: canonical header, events matching its root and count.
    pub fn from_parts(header_bytes: Vec<u8>, events: Vec<Vec<u8>>) -> Result<Block, BlockError> {
        let header = BlockHeader::decode(&header_bytes)?;
        if usize::try_from(header.event_count).ok() != Some(events.len()) {
            return Err(BlockError::EventCountMismatch { claimed: header.event_count, actual: events.len() });
        }
        let actual = events_root(&events);
        if actual != header.events_root {
            return Err(BlockError::EventsRootMismatch { claimed: header.events_root, actual, count: events.len() });
        }
        let hash = block_hash(&header_bytes);
        Ok(Block { header_bytes, header, events, hash })
    }

    pub fn header(&self) -> &BlockHeader {
        &self.header
    }
    pub fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }
    pub fn events(&self) -> &[Vec<u8>] {
        &self.events
    }
    pub fn hash(&self) -> Hash32 {
        self.hash
    }
}

/// The RFC 6962 root of a block's events (leaves: the signed envelopes).
pub fn events_root(events: &[Vec<u8>]) -> Hash32 {
    kp_crypto::merkle_root(events)
}

/// Identifies a voter set: SHA-256 over the tag and each voter's id and node key, in id order.
/// The caller passes the voters sorted by id (as `Ledger::voters` returns them).
pub fn voters_hash(voters: &[(ParticipantId, PublicKey)]) -> Hash32 {
    debug_assert!(voters.windows(2).all(|w| w[0].0 < w[1].0), "voters must be sorted by id and distinct");
    let mut bytes = Vec::with_capacity(voters.len() * 34);
    for (id, key) in voters {
        bytes.extend_from_slice(id.as_str().as_bytes());
        bytes.extend_from_slice(&key.0);
    }
    kp_crypto::sha256_parts(&[b"kp-ledger/v1/voters", &[0], &bytes])
}

/// The two voting phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Encode, Decode)]
pub enum VoteKind {
    Prevote,
    Precommit,
}

/// What a voter signs: the phase, the height, the round and the block hash (the chain id is
/// bound by the signature itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct VoteBody {
    pub kind: VoteKind,
    pub height: u64,
    pub round: u32,
    pub block_hash: Hash32,
}

impl VoteBody {
    pub fn signing_bytes(&self) -> Vec<u8> {
        bincode::encode_to_vec(self, config()).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("signature {index} is by {voter}, which is not a required voter (or out of id order)")]
    UnexpectedVoter { index: usize, voter: ParticipantId },
    #[error("missing the signatures of {0:?}")]
    MissingVoters(Vec<ParticipantId>),
    #[error("the signatures of {voters:?} do not verify")]
    BadSignatures { voters: Vec<ParticipantId> },
    #[error("a key of the voter set is invalid: {0}")]
    BadKey(CryptoError),
}

/// Signatures of every required voter over one [`VoteBody`]: a prevote certificate, or with
/// precommits, the commit certificate of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub body: VoteBody,
    /// One per required voter, in voter id order.
    pub signatures: Vec<(ParticipantId, Signature)>,
}

impl Certificate {
    /// Checks that the certificate holds exactly one valid signature from each of `required`
    /// (sorted by id), with batch verification; on failure, names the voters at fault.
    pub fn verify(&self, chain_id: &ChainId, required: &[(ParticipantId, PublicKey)]) -> Result<(), CertificateError> {
        let keys = self.keys_for(required)?;
        let bytes = self.body.signing_bytes();
        let items: Vec<BatchItem<'_>> = keys
            .iter()
            .zip(&self.signatures)
            .map(|(key, (_, signature))| BatchItem { key, tag: Tag::Vote, bytes: &bytes, signature })
            .collect();
        match kp_crypto::verify_batch(chain_id, &items) {
            Ok(()) => Ok(()),
            Err(CryptoError::BatchFailed(_)) => {
                let voters = items
                    .iter()
                    .zip(&self.signatures)
                    .filter(|(item, _)| {
                        kp_crypto::verify(item.key, Tag::Vote, chain_id, &bytes, item.signature).is_err()
                    })
                    .map(|(_, (voter, _))| *voter)
                    .collect();
                Err(CertificateError::BadSignatures { voters })
            }
            Err(e) => Err(CertificateError::BadKey(e)),
        }
    }

    /// The key of each signature, in order, when the certificate holds exactly one signature
    /// from each of `required` (sorted by id) — the structural half of [`Certificate::verify`],
    /// for a caller that checks the signatures in a larger batch (an auditor: a block's events
    /// and its certificate at once).
    pub fn keys_for(&self, required: &[(ParticipantId, PublicKey)]) -> Result<Vec<PublicKey>, CertificateError> {
        let mut keys = Vec::with_capacity(self.signatures.len());
        let mut next = 0;
        for (index, (voter, _)) in self.signatures.iter().enumerate() {
            // Both lists are in id order: walk them together.
            while next < required.len() && required[next].0 < *voter {
                next += 1;
            }
            match required.get(next) {
                Some((id, key)) if id == voter => {
                    keys.push(*key);
                    next += 1;
                }
                _ => return Err(CertificateError::UnexpectedVoter { index, voter: *voter }),
            }
        }
        if keys.len() != required.len() {
            let present: Vec<ParticipantId> = self.signatures.iter().map(|(v, _)| *v).collect();
            let missing = required.iter().map(|(id, _)| *id).filter(|id| !present.contains(id)).collect();
            return Err(CertificateError::MissingVoters(missing));
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kp_crypto::SecretKey;

    fn chain() -> ChainId {
        ChainId::new("kp-test").unwrap()
    }

    fn header() -> BlockHeader {
        let events = vec![b"event one".to_vec(), b"event two".to_vec()];
        BlockHeader {
            chain_id: chain(),
            height: 7,
            round: 1,
            prev_hash: Hash32([9; 32]),
            proposer: ParticipantId::new("BW").unwrap(),
            time: Timestamp(1_768_003_200_000),
            events_root: events_root(&events),
            event_count: 2,
            state_root: Hash32([3; 32]),
            voters_hash: Hash32([4; 32]),
        }
    }

    #[test]
    fn header_round_trips_and_refuses_other_encodings() {
        let h = header();
        let bytes = h.encode();
        assert_eq!(BlockHeader::decode(&bytes).unwrap(), h);
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(BlockHeader::decode(&longer), Err(BlockError::NonCanonical));
        assert!(matches!(BlockHeader::decode(&bytes[..bytes.len() - 1]), Err(BlockError::Malformed(_))));
        assert_eq!(
            BlockHeader::decode(&[0; MAX_HEADER_BYTES + 1]),
            Err(BlockError::HeaderTooLarge(MAX_HEADER_BYTES + 1))
        );
        // A length prefix claiming an enormous chain id is refused without allocating it.
        let mut huge = vec![0xff; 8];
        huge.extend_from_slice(&bytes[8..]);
        assert!(matches!(BlockHeader::decode(&huge), Err(BlockError::Malformed(_))));
        // A proposer id that is not two upper-case letters is refused.
        let mut bad = bytes.clone();
        let at = bytes.windows(2).position(|w| w == b"BW").unwrap();
        bad[at] = b'b';
        assert!(matches!(BlockHeader::decode(&bad), Err(BlockError::Malformed(_))));
    }

    #[test]
    fn block_checks_its_events_against_the_header() {
        let events = vec![b"event one".to_vec(), b"event two".to_vec()];
        let block = Block::new(header(), events.clone()).unwrap();
        assert_eq!(block.hash(), block_hash(&header().encode()));
        let mut swapped = events.clone();
        swapped.swap(0, 1);
        assert!(matches!(Block::new(header(), swapped), Err(BlockError::EventsRootMismatch { .. })));
        assert!(matches!(Block::new(header(), events[..1].to_vec()), Err(BlockError::EventCountMismatch { .. })));
    }

    fn voters(n: u8) -> (Vec<SecretKey>, Vec<(ParticipantId, PublicKey)>) {
        let codes = ["AE", "BW", "CA", "EU", "IN", "RU", "ZA"];
        let keys: Vec<SecretKey> = (0..n).map(|i| SecretKey::from_seed(&[i + 1; 32])).collect();
        let set = keys.iter().zip(codes).map(|(k, c)| (ParticipantId::new(c).unwrap(), k.public())).collect();
        (keys, set)
    }

    fn certificate(keys: &[SecretKey], set: &[(ParticipantId, PublicKey)], body: VoteBody) -> Certificate {
        let bytes = body.signing_bytes();
        Certificate {
            body,
            signatures: keys.iter().zip(set).map(|(k, (id, _))| (*id, k.sign(Tag::Vote, &chain(), &bytes))).collect(),
        }
    }

    #[test]
    fn certificates_need_every_required_voter_exactly_once() {
        let (keys, set) = voters(5);
        let body = VoteBody { kind: VoteKind::Precommit, height: 7, round: 1, block_hash: Hash32([5; 32]) };
        let cert = certificate(&keys, &set, body);
        cert.verify(&chain(), &set).unwrap();
        // One missing.
        let mut short = cert.clone();
        short.signatures.remove(2);
        assert_eq!(short.verify(&chain(), &set), Err(CertificateError::MissingVoters(vec![set[2].0])));
        // One twice.
        let mut twice = cert.clone();
        twice.signatures.insert(1, twice.signatures[1]);
        assert!(matches!(twice.verify(&chain(), &set), Err(CertificateError::UnexpectedVoter { index: 2, .. })));
        // A stranger.
        let (_, more) = voters(6);
        let mut extra = certificate(&voters(6).0, &more, body);
        assert!(matches!(extra.verify(&chain(), &set), Err(CertificateError::UnexpectedVoter { .. })));
        // A bad signature is named.
        extra = cert.clone();
        extra.signatures[3].1.0[0] ^= 1;
        assert_eq!(extra.verify(&chain(), &set), Err(CertificateError::BadSignatures { voters: vec![set[3].0] }));
        // Signatures for another phase, round or block do not verify.
        for other in [
            VoteBody { kind: VoteKind::Prevote, ..body },
            VoteBody { round: 2, ..body },
            VoteBody { block_hash: Hash32([6; 32]), ..body },
        ] {
            let forged = Certificate { body: other, signatures: cert.signatures.clone() };
            assert!(matches!(forged.verify(&chain(), &set), Err(CertificateError::BadSignatures { .. })));
        }
        // A consensus-minus-one set: the same votes without the subject verify against it.
        let minus: Vec<_> = set.iter().copied().filter(|(id, _)| id.as_str() != "CA").collect();
        let mut without = cert.clone();
        without.signatures.retain(|(id, _)| id.as_str() != "CA");
        without.verify(&chain(), &minus).unwrap();
        assert_ne!(voters_hash(&minus), voters_hash(&set));
    }
}
