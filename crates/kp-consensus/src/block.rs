//! The block format (format version 2).
//!
//! A header is encoded with bincode 2 (big-endian, fixed-width integers: one byte string per
//! header) and its hash is `SHA-256("kp-ledger/v2/block" || 0x00 || header bytes)`. Headers
//! travel as those exact bytes; a decoder refuses any other encoding of the same header.
//! A block's events are the signed envelopes exactly as stored; `events_root` is their RFC 6962
//! Merkle root (leaf = envelope bytes), so a later proof shows the very bytes that were signed.
//!
//! Format 2 (one change, docs/consensus.md): every vote carries its signer's clock reading;
//! a block carries the commit certificate of its parent (`last_commit`, bound by the header's
//! `last_commit_hash`), and its time is [`consensus_time`] of that certificate, so that no
//! single clock decides it; a commit certificate may stand in for one withheld precommit with
//! that voter's own prevote (`Certificate::withheld`).

use bincode::{Decode, Encode};
use kp_crypto::{BatchItem, CryptoError, Signature, Tag};
use kp_domain::{ChainId, Hash32, ParticipantId, PublicKey, SignatureRule, Timestamp};

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
    #[error("last commit: {0}")]
    LastCommit(String),
}

/// The header of a block. Its hash identifies the block and is what voters sign.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Hash)]
pub struct BlockHeader {
    pub chain_id: ChainId,
    pub height: u64,
    pub round: u32,
    /// Hash of the previous block's header; the genesis hash for height 1.
    pub prev_hash: Hash32,
    /// [`certificate_hash`] of the previous block's commit certificate that this block carries
    /// (all zero at height 1, which has none).
    pub last_commit_hash: Hash32,
    pub proposer: ParticipantId,
    /// [`consensus_time`] of the previous block's commit certificate: strictly after the
    /// previous block's time.
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
    kp_crypto::sha256_parts(&[b"kp-ledger/v2/block", &[0], header_bytes])
}

/// The hash of a commit certificate's bytes ([`crate::wire::encode_certificate`], a canonical
/// encoding): what a block's header binds of its parent's certificate.
pub fn certificate_hash(certificate_bytes: &[u8]) -> Hash32 {
    kp_crypto::sha256_parts(&[b"kp-ledger/v2/certificate", &[0], certificate_bytes])
}

/// The time of the block after the one `last_commit` commits: the median of the clock readings
/// its signers signed (the lower median of an even count), and at least 1 ms after `previous`,
/// that block's time. Block 1 has no last commit: its time is the genesis time + 1 ms (an event
/// dated later than the rules allow at that time waits in the pools for block 2).
///
/// With fewer than half of the readings from faulty or skewed clocks, the median lies between
/// two correct readings: no minority moves block time outside the correct clocks' range.
pub fn consensus_time(last_commit: Option<&Certificate>, previous: Timestamp) -> Timestamp {
    let floor = previous.saturating_add_ms(1);
    let Some(c) = last_commit else { return floor };
    let mut times: Vec<u64> = c.times().map(|t| t.0).collect();
    times.sort_unstable();
    match times.get(times.len().saturating_sub(1) / 2) {
        Some(&median) => Timestamp(median.max(floor.0)),
        None => floor,
    }
}

/// A block: its header (as bytes and decoded) and its events, exactly as signed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Block {
    header_bytes: Vec<u8>,
    header: BlockHeader,
    events: Vec<Vec<u8>>,
    hash: Hash32,
    /// The parent's commit certificate (none at height 1), as the header binds it. Its
    /// signatures are checked by whoever knows the parent's voters (the engine, catch-up).
    last_commit: Option<Certificate>,
}

impl Block {
    /// Builds a block from a header whose `events_root`, `event_count` and `last_commit_hash`
    /// the caller filled with [`events_root`] and [`certificate_hash`] (the proposer's path).
    pub fn new(
        header: BlockHeader,
        events: Vec<Vec<u8>>,
        last_commit: Option<Certificate>,
    ) -> Result<Block, BlockError> {
        let header_bytes = header.encode();
        Self::from_parts(header_bytes, events, last_commit)
    }

    /// Checks received parts: canonical header, events matching its root and count, and a last
    /// commit that is a commit certificate of the parent, as the header binds it (none at
    /// height 1).
    pub fn from_parts(
        header_bytes: Vec<u8>,
        events: Vec<Vec<u8>>,
        last_commit: Option<Certificate>,
    ) -> Result<Block, BlockError> {
        let header = BlockHeader::decode(&header_bytes)?;
        if usize::try_from(header.event_count).ok() != Some(events.len()) {
            return Err(BlockError::EventCountMismatch { claimed: header.event_count, actual: events.len() });
        }
        let actual = events_root(&events);
        if actual != header.events_root {
            return Err(BlockError::EventsRootMismatch { claimed: header.events_root, actual, count: events.len() });
        }
        match (&last_commit, header.height) {
            (None, 1) if header.last_commit_hash == Hash32::default() => {}
            (None, 1) => return Err(BlockError::LastCommit("block 1 names a last commit".into())),
            (None, h) => return Err(BlockError::LastCommit(format!("block {h} carries none"))),
            (Some(_), 1) => return Err(BlockError::LastCommit("block 1 carries one".into())),
            (Some(c), h) => {
                let b = c.body;
                if b.kind != VoteKind::Precommit
                    || b.height.checked_add(1) != Some(h)
                    || b.block_hash != header.prev_hash
                {
                    return Err(BlockError::LastCommit("it is not the commit certificate of the parent".into()));
                }
                if certificate_hash(&crate::wire::encode_certificate(c)) != header.last_commit_hash {
                    return Err(BlockError::LastCommit("it is not the one the header names".into()));
                }
            }
        }
        let hash = block_hash(&header_bytes);
        Ok(Block { header_bytes, header, events, hash, last_commit })
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
    pub fn last_commit(&self) -> Option<&Certificate> {
        self.last_commit.as_ref()
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Encode, Decode, Hash)]
pub enum VoteKind {
    Prevote,
    Precommit,
}

/// What voters agree on: the phase, the height, the round and the block hash. A voter signs it
/// followed by its clock's reading ([`VoteBody::signing_bytes`]); the chain id is bound by the
/// signature itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Hash)]
pub struct VoteBody {
    pub kind: VoteKind,
    pub height: u64,
    pub round: u32,
    pub block_hash: Hash32,
}

impl VoteBody {
    /// The bytes a voter signs: the body, then the time its clock shows, big-endian.
    pub fn signing_bytes(&self, time: Timestamp) -> Vec<u8> {
        let mut b = bincode::encode_to_vec(self, config()).unwrap_or_default();
        b.extend_from_slice(&time.0.to_be_bytes());
        b
    }
}

/// One voter's signature of a [`VoteBody`], with the clock reading it signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VoteSignature {
    pub voter: ParticipantId,
    pub time: Timestamp,
    pub signature: Signature,
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
    #[error("a prevote certificate cannot stand in for a withheld vote")]
    WithheldInPrevote,
    #[error("the withheld voter {0} is not a required voter, or precommitted too")]
    BadWithheld(ParticipantId),
    #[error("not a commit certificate of this block at height {0}")]
    NotACommit(u64),
}

/// A signature to check: the key, the exact bytes signed, the signature, and its signer.
pub type SignedItem = (PublicKey, Vec<u8>, Signature, ParticipantId);

/// Signatures of every required voter over one [`VoteBody`]: a prevote certificate, or with
/// precommits, the commit certificate of a block.
///
/// A commit certificate may lack the precommit of exactly one required voter X when it
/// carries X's own prevote for the same block in the same round (`withheld`): every other
/// voter locked on the block, and X voted for it (docs/consensus.md, "Withheld precommit").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Certificate {
    pub body: VoteBody,
    /// One per required voter but the withheld one, in voter id order.
    pub signatures: Vec<VoteSignature>,
    /// The withheld voter's prevote for `body`'s block and round (commit certificates only).
    pub withheld: Option<VoteSignature>,
}

impl Certificate {
    /// Checks that the certificate holds exactly one valid signature from each of `required`
    /// (sorted by id) — or, for a commit certificate, from each but one whose prevote it
    /// carries — with batch verification; on failure, names the voters at fault. The one rule
    /// the engine, catch-up, the store, the audit and proof verification all apply.
    pub fn verify(
        &self,
        chain_id: &ChainId,
        rule: SignatureRule,
        required: &[(ParticipantId, PublicKey)],
    ) -> Result<(), CertificateError> {
        let signed = self.signed_items(required)?;
        let items: Vec<BatchItem<'_>> = signed
            .iter()
            .map(|(key, bytes, signature, _)| BatchItem { key, tag: Tag::Vote, bytes, signature })
            .collect();
        match kp_crypto::verify_batch(chain_id, rule, &items) {
            Ok(()) => Ok(()),
            Err(e @ CryptoError::BadPublicKey(_)) => Err(CertificateError::BadKey(e)),
            // A signature that fails, or whose R is refused before the batch is tried: the
            // signers at fault are named one by one.
            Err(e) => {
                let voters: Vec<ParticipantId> = signed
                    .iter()
                    .filter(|(key, bytes, signature, _)| {
                        kp_crypto::verify(key, Tag::Vote, chain_id, rule, bytes, signature).is_err()
                    })
                    .map(|(_, _, _, voter)| *voter)
                    .collect();
                match voters.is_empty() {
                    true => Err(CertificateError::BadKey(e)),
                    false => Err(CertificateError::BadSignatures { voters }),
                }
            }
        }
    }

    /// [`Certificate::verify`] for the commit certificate of the block `block_hash` at
    /// `height`: a precommit certificate of that block and height, verified.
    pub fn verify_commit(
        &self,
        chain_id: &ChainId,
        rule: SignatureRule,
        height: u64,
        block_hash: &Hash32,
        required: &[(ParticipantId, PublicKey)],
    ) -> Result<(), CertificateError> {
        let b = self.body;
        if b.kind != VoteKind::Precommit || b.height != height || b.block_hash != *block_hash {
            return Err(CertificateError::NotACommit(height));
        }
        self.verify(chain_id, rule, required)
    }

    /// Every signature to check, with its key and the exact bytes it signs, when the certificate
    /// has the form `required` (sorted by id) asks for — the structural half of
    /// [`Certificate::verify`], for a caller that checks the signatures in a larger batch (an
    /// auditor: a block's events and its certificate at once).
    pub fn signed_items(&self, required: &[(ParticipantId, PublicKey)]) -> Result<Vec<SignedItem>, CertificateError> {
        let withheld = match &self.withheld {
            None => None,
            Some(_) if self.body.kind == VoteKind::Prevote => return Err(CertificateError::WithheldInPrevote),
            Some(w) => {
                let present = self.signatures.iter().any(|s| s.voter == w.voter);
                match required.iter().find(|(id, _)| *id == w.voter) {
                    Some((_, key)) if !present => Some((w, *key)),
                    _ => return Err(CertificateError::BadWithheld(w.voter)),
                }
            }
        };
        let expected: Vec<(ParticipantId, PublicKey)> =
            required.iter().copied().filter(|(id, _)| withheld.is_none_or(|(w, _)| w.voter != *id)).collect();
        let keys = self.keys_for(&expected)?;
        let mut items: Vec<SignedItem> = keys
            .into_iter()
            .zip(&self.signatures)
            .map(|(key, s)| (key, self.body.signing_bytes(s.time), s.signature, s.voter))
            .collect();
        if let Some((w, key)) = withheld {
            let prevote = VoteBody { kind: VoteKind::Prevote, ..self.body };
            items.push((key, prevote.signing_bytes(w.time), w.signature, w.voter));
        }
        Ok(items)
    }

    /// The key of each signature, in order, when the certificate holds exactly one signature
    /// from each of `required` (sorted by id).
    fn keys_for(&self, required: &[(ParticipantId, PublicKey)]) -> Result<Vec<PublicKey>, CertificateError> {
        let mut keys = Vec::with_capacity(self.signatures.len());
        let mut next = 0;
        for (index, s) in self.signatures.iter().enumerate() {
            // Both lists are in id order: walk them together.
            while next < required.len() && required[next].0 < s.voter {
                next += 1;
            }
            match required.get(next) {
                Some((id, key)) if *id == s.voter => {
                    keys.push(*key);
                    next += 1;
                }
                _ => return Err(CertificateError::UnexpectedVoter { index, voter: s.voter }),
            }
        }
        if keys.len() != required.len() {
            let missing = required
                .iter()
                .map(|(id, _)| *id)
                .filter(|id| !self.signatures.iter().any(|s| s.voter == *id))
                .collect();
            return Err(CertificateError::MissingVoters(missing));
        }
        Ok(keys)
    }

    /// Whether `voter` signed it (a precommit, or the withheld voter's prevote).
    pub fn signed_by(&self, voter: ParticipantId) -> bool {
        self.signatures.iter().chain(&self.withheld).any(|s| s.voter == voter)
    }

    /// The clock readings its signers signed ([`consensus_time`]).
    pub fn times(&self) -> impl Iterator<Item = Timestamp> + '_ {
        self.signatures.iter().chain(&self.withheld).map(|s| s.time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kp_crypto::SecretKey;

    fn chain() -> ChainId {
        ChainId::new("kp-test").unwrap()
    }

    fn pid(s: &str) -> ParticipantId {
        ParticipantId::new(s).unwrap()
    }

    /// A commit certificate of the parent (height 6), signed by one voter at `time`.
    fn parent_commit(time: u64) -> Certificate {
        let (keys, set) = voters(1);
        let body = VoteBody { kind: VoteKind::Precommit, height: 6, round: 0, block_hash: Hash32([9; 32]) };
        certificate(&keys, &set, body, &[time])
    }

    fn header() -> BlockHeader {
        let events = vec![b"event one".to_vec(), b"event two".to_vec()];
        BlockHeader {
            chain_id: chain(),
            height: 7,
            round: 1,
            prev_hash: Hash32([9; 32]),
            last_commit_hash: certificate_hash(&crate::wire::encode_certificate(&parent_commit(5))),
            proposer: pid("BW"),
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
    fn block_checks_its_events_and_last_commit_against_the_header() {
        let events = vec![b"event one".to_vec(), b"event two".to_vec()];
        let last = Some(parent_commit(5));
        let block = Block::new(header(), events.clone(), last.clone()).unwrap();
        assert_eq!(block.hash(), block_hash(&header().encode()));
        assert_eq!(block.last_commit(), last.as_ref());
        let mut swapped = events.clone();
        swapped.swap(0, 1);
        assert!(matches!(Block::new(header(), swapped, last.clone()), Err(BlockError::EventsRootMismatch { .. })));
        assert!(matches!(
            Block::new(header(), events[..1].to_vec(), last.clone()),
            Err(BlockError::EventCountMismatch { .. })
        ));
        // Another certificate of the parent than the header names (another time signed), none,
        // or one of another block.
        for other in [Some(parent_commit(6)), None] {
            assert!(matches!(Block::new(header(), events.clone(), other), Err(BlockError::LastCommit(_))));
        }
        let mut elsewhere = parent_commit(5);
        elsewhere.body.block_hash = Hash32([8; 32]);
        assert!(matches!(Block::new(header(), events.clone(), Some(elsewhere)), Err(BlockError::LastCommit(_))));
        // A last commit claiming the largest height is refused, not an overflow (found by the
        // wire_message and wire_blocks fuzz targets).
        let mut highest = parent_commit(5);
        highest.body.height = u64::MAX;
        assert!(matches!(Block::new(header(), events.clone(), Some(highest)), Err(BlockError::LastCommit(_))));
        // Block 1 carries no last commit.
        let first = BlockHeader { height: 1, last_commit_hash: Hash32::default(), ..header() };
        Block::new(first.clone(), events.clone(), None).unwrap();
        assert!(matches!(Block::new(first, events, last), Err(BlockError::LastCommit(_))));
    }

    #[test]
    fn consensus_time_is_the_median_of_the_signed_times_after_the_previous_block() {
        let (keys, set) = voters(5);
        let body = VoteBody { kind: VoteKind::Precommit, height: 7, round: 0, block_hash: Hash32([5; 32]) };
        let at = |times: &[u64]| certificate(&keys[..times.len()], &set[..times.len()], body, times);
        let prev = Timestamp(1_000);
        // One clock an hour ahead and one a minute behind move nothing: the median is a correct one.
        let c = at(&[65_000, 3_665_000, 65_010, 64_990, 5_000]);
        assert_eq!(consensus_time(Some(&c), prev), Timestamp(65_000));
        // An even count takes the lower median.
        assert_eq!(consensus_time(Some(&at(&[10, 40, 20, 30])), Timestamp(0)), Timestamp(20));
        // Never at or before the previous block.
        assert_eq!(consensus_time(Some(&at(&[900, 900, 900])), prev), Timestamp(1_001));
        // Block 1: the genesis time + 1 ms.
        assert_eq!(consensus_time(None, prev), Timestamp(1_001));
        // A withheld voter's prevote time counts like a precommit's.
        let mut w = at(&[100, 200, 300]);
        w.withheld = Some(VoteSignature { voter: set[4].0, time: Timestamp(400), signature: Signature([0; 64]) });
        assert_eq!(consensus_time(Some(&w), Timestamp(0)), Timestamp(200));
        assert!(w.signed_by(set[4].0) && !w.signed_by(set[3].0));
    }

    fn voters(n: u8) -> (Vec<SecretKey>, Vec<(ParticipantId, PublicKey)>) {
        let codes = ["AE", "BW", "CA", "EU", "IN", "RU", "ZA"];
        let keys: Vec<SecretKey> = (0..n).map(|i| SecretKey::from_seed(&[i + 1; 32])).collect();
        let set = keys.iter().zip(codes).map(|(k, c)| (pid(c), k.public())).collect();
        (keys, set)
    }

    fn sign(key: &SecretKey, voter: ParticipantId, body: VoteBody, time: u64) -> VoteSignature {
        let time = Timestamp(time);
        VoteSignature { voter, time, signature: key.sign(Tag::Vote, &chain(), &body.signing_bytes(time)) }
    }

    fn certificate(
        keys: &[SecretKey],
        set: &[(ParticipantId, PublicKey)],
        body: VoteBody,
        times: &[u64],
    ) -> Certificate {
        let signatures = keys.iter().zip(set).zip(times).map(|((k, (id, _)), t)| sign(k, *id, body, *t)).collect();
        Certificate { body, signatures, withheld: None }
    }

    #[test]
    fn certificates_need_every_required_voter_exactly_once() {
        let (keys, set) = voters(5);
        let body = VoteBody { kind: VoteKind::Precommit, height: 7, round: 1, block_hash: Hash32([5; 32]) };
        let cert = certificate(&keys, &set, body, &[1, 2, 3, 4, 5]);
        cert.verify(&chain(), SignatureRule::Cofactored, &set).unwrap();
        cert.verify_commit(&chain(), SignatureRule::Cofactored, 7, &Hash32([5; 32]), &set).unwrap();
        assert_eq!(
            cert.verify_commit(&chain(), SignatureRule::Cofactored, 8, &Hash32([5; 32]), &set),
            Err(CertificateError::NotACommit(8))
        );
        assert_eq!(
            cert.verify_commit(&chain(), SignatureRule::Cofactored, 7, &Hash32([6; 32]), &set),
            Err(CertificateError::NotACommit(7))
        );
        // One missing.
        let mut short = cert.clone();
        short.signatures.remove(2);
        assert_eq!(
            short.verify(&chain(), SignatureRule::Cofactored, &set),
            Err(CertificateError::MissingVoters(vec![set[2].0]))
        );
        // One twice.
        let mut twice = cert.clone();
        twice.signatures.insert(1, twice.signatures[1]);
        assert!(matches!(
            twice.verify(&chain(), SignatureRule::Cofactored, &set),
            Err(CertificateError::UnexpectedVoter { index: 2, .. })
        ));
        // A stranger.
        let (more_keys, more) = voters(6);
        let mut extra = certificate(&more_keys, &more, body, &[1, 2, 3, 4, 5, 6]);
        assert!(matches!(
            extra.verify(&chain(), SignatureRule::Cofactored, &set),
            Err(CertificateError::UnexpectedVoter { .. })
        ));
        // A bad signature is named; so is a time other than the one signed.
        extra = cert.clone();
        extra.signatures[3].signature.0[0] ^= 1;
        assert_eq!(
            extra.verify(&chain(), SignatureRule::Cofactored, &set),
            Err(CertificateError::BadSignatures { voters: vec![set[3].0] })
        );
        extra = cert.clone();
        extra.signatures[1].time = Timestamp(99);
        assert_eq!(
            extra.verify(&chain(), SignatureRule::Cofactored, &set),
            Err(CertificateError::BadSignatures { voters: vec![set[1].0] })
        );
        // Signatures for another phase, round or block do not verify.
        for other in [
            VoteBody { kind: VoteKind::Prevote, ..body },
            VoteBody { round: 2, ..body },
            VoteBody { block_hash: Hash32([6; 32]), ..body },
        ] {
            let forged = Certificate { body: other, ..cert.clone() };
            assert!(matches!(
                forged.verify(&chain(), SignatureRule::Cofactored, &set),
                Err(CertificateError::BadSignatures { .. })
            ));
        }
        // A consensus-minus-one set: the same votes without the subject verify against it.
        let minus: Vec<_> = set.iter().copied().filter(|(id, _)| id.as_str() != "CA").collect();
        let mut without = cert.clone();
        without.signatures.retain(|s| s.voter.as_str() != "CA");
        without.verify(&chain(), SignatureRule::Cofactored, &minus).unwrap();
        assert_ne!(voters_hash(&minus), voters_hash(&set));
    }

    #[test]
    fn a_withheld_precommit_is_replaced_by_that_voters_prevote_and_nowhere_else() {
        let (keys, set) = voters(5);
        let body = VoteBody { kind: VoteKind::Precommit, height: 7, round: 1, block_hash: Hash32([5; 32]) };
        let prevote = VoteBody { kind: VoteKind::Prevote, ..body };
        let x = set[2].0;
        let mut cert = certificate(&keys, &set, body, &[1, 2, 3, 4, 5]);
        cert.signatures.retain(|s| s.voter != x);
        cert.withheld = Some(sign(&keys[2], x, prevote, 3));
        cert.verify(&chain(), SignatureRule::Cofactored, &set).unwrap();
        assert_eq!(cert.signed_items(&set).unwrap().len(), 5);
        // X's precommit in its place is no prevote: it does not verify as one.
        let mut precommit_instead = cert.clone();
        precommit_instead.withheld = Some(sign(&keys[2], x, body, 3));
        assert_eq!(
            precommit_instead.verify(&chain(), SignatureRule::Cofactored, &set),
            Err(CertificateError::BadSignatures { voters: vec![x] })
        );
        // A prevote of another round or block does not verify either.
        for other in [VoteBody { round: 0, ..prevote }, VoteBody { block_hash: Hash32([6; 32]), ..prevote }] {
            let mut c = cert.clone();
            c.withheld = Some(sign(&keys[2], x, other, 3));
            assert_eq!(
                c.verify(&chain(), SignatureRule::Cofactored, &set),
                Err(CertificateError::BadSignatures { voters: vec![x] })
            );
        }
        // Two voters missing: one prevote does not stand in for both.
        let mut two = cert.clone();
        two.signatures.retain(|s| s.voter != set[3].0);
        assert_eq!(
            two.verify(&chain(), SignatureRule::Cofactored, &set),
            Err(CertificateError::MissingVoters(vec![set[3].0]))
        );
        // The withheld voter precommitted too, or is no required voter.
        let mut both = certificate(&keys, &set, body, &[1, 2, 3, 4, 5]);
        both.withheld = cert.withheld;
        assert_eq!(both.verify(&chain(), SignatureRule::Cofactored, &set), Err(CertificateError::BadWithheld(x)));
        let minus: Vec<_> = set.iter().copied().filter(|(id, _)| *id != x).collect();
        assert_eq!(cert.verify(&chain(), SignatureRule::Cofactored, &minus), Err(CertificateError::BadWithheld(x)));
        // Never in a prevote certificate.
        let mut prevotes = certificate(&keys, &set, prevote, &[1, 2, 3, 4, 5]);
        prevotes.signatures.retain(|s| s.voter != x);
        prevotes.withheld = cert.withheld;
        assert_eq!(
            prevotes.verify(&chain(), SignatureRule::Cofactored, &set),
            Err(CertificateError::WithheldInPrevote)
        );
    }
}
