//! The full audit: a replay of a ledger from its genesis that checks everything a node checked
//! when it committed each block, trusting no node and no stored index.
//!
//! For each block, in this order (the first failure is the report's discrepancy):
//! 1. the header decodes in its canonical form;
//! 2. every event decodes (canonical protobuf, structure) and every signature in it — the
//!    authority's and each governance approval's — verifies over the exact stored bytes;
//! 3. the events are the ones the header commits to (count and RFC 6962 root);
//! 4. chain id, height (one more than the last), parent hash, the parent's commit certificate
//!    the header binds (the one stored beside the parent), and the block time: the consensus
//!    time of that certificate (`consensus_time`; block 1's is the genesis time + 1 ms);
//! 5. the rules engine admits every event at the block's time;
//! 6. the state root after the block is the header's;
//! 7. the voters the header names (`voters_hash`) are those the replay derives from the
//!    genesis and the governance acts applied so far;
//! 8. the certificate is a precommit certificate for this block, signed by exactly those voters.
//!
//! Steps 1–3, and 8's signatures, need no ledger state: they run in parallel on every core, a
//! chunk of blocks ahead of the sequential steps. Step 8 is checked there against the voter set
//! known when the chunk was read, and again in sequence only if the replay finds that the
//! voters changed in between (after a governance act).

use kp_chain::required_voters;
use kp_consensus::block::{
    BlockHeader, Certificate, SignedItem, VoteKind, block_hash, certificate_hash, consensus_time, events_root,
    voters_hash,
};
use kp_consensus::wire;
use kp_crypto::BatchItem;
use kp_domain::{ChainId, Event, EventId, Genesis, Hash32, ParticipantId, PublicKey, SignatureRule, Timestamp};
use kp_proto::UnverifiedEvent;
use kp_rules::Ledger;
use kp_store::RawBlock;
use rayon::prelude::*;
use serde::Serialize;
use std::sync::{Arc, Mutex, PoisonError, mpsc};

/// Blocks verified together in parallel, ahead of the sequential replay.
const CHUNK_BLOCKS: usize = 128;
/// Events per chunk at most (a chunk holds at most this much decoded work in memory).
const CHUNK_EVENTS: usize = 16_384;

type Voters = Vec<(ParticipantId, PublicKey)>;

/// The first thing found wrong, where it was found and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discrepancy {
    /// The height of the block where the replay stopped (its position in the ledger).
    pub height: u64,
    /// The event concerned, if one is.
    pub event: Option<EventRef>,
    /// A stable code: `source`, `header`, `event_encoding`, `event_signature`, `events_root`,
    /// `chain`, `height`, `hash_chain`, `time`, `governance_shares_block`, `rule`, `state_root`, `voter_set`,
    /// `certificate_encoding`, `certificate`.
    pub kind: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRef {
    pub index: usize,
    /// Hex event id: SHA-256 of the envelope as stored.
    pub id: String,
}

/// A change of the voter set, as the replay derived it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoterChange {
    /// The first height the set votes on (1: the genesis's set).
    pub from_height: u64,
    pub time_ms: u64,
    pub voters: usize,
    pub joined: Vec<String>,
    pub left: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditReport {
    pub chain_id: String,
    pub genesis_hash: String,
    /// Blocks and events fully verified (before the discrepancy, if any).
    pub blocks: u64,
    pub events: u64,
    pub signatures: Signatures,
    /// The genesis's signature rule, under which every signature was verified.
    pub signature_rule: SignatureRule,
    pub head_hash: String,
    pub head_time_ms: u64,
    /// The voter set over time: the genesis's, then each change.
    pub participants: Vec<VoterChange>,
    /// "verified", or "failed" with the discrepancy.
    pub result: &'static str,
    pub discrepancy: Option<Discrepancy>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Signatures {
    pub events: u64,
    pub approvals: u64,
    pub votes: u64,
}

impl Signatures {
    pub fn total(&self) -> u64 {
        self.events + self.approvals + self.votes
    }
}

impl AuditReport {
    pub fn verified(&self) -> bool {
        self.discrepancy.is_none()
    }
}

impl std::fmt::Display for AuditReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "ledger      {} (genesis {})", self.chain_id, self.genesis_hash)?;
        writeln!(f, "blocks      {} verified, head {}", self.blocks, self.head_hash)?;
        writeln!(f, "events      {}", self.events)?;
        writeln!(
            f,
            "signatures  {} ({} events, {} approvals, {} votes; {} rule)",
            self.signatures.total(),
            self.signatures.events,
            self.signatures.approvals,
            self.signatures.votes,
            self.signature_rule
        )?;
        writeln!(f, "voter set   {} change(s) after genesis:", self.participants.len().saturating_sub(1))?;
        for c in &self.participants {
            write!(f, "  from height {:>8}: {:>2} voters", c.from_height, c.voters)?;
            if !c.joined.is_empty() && c.from_height > 1 {
                write!(f, ", joined {}", c.joined.join(" "))?;
            }
            if !c.left.is_empty() {
                write!(f, ", left {}", c.left.join(" "))?;
            }
            writeln!(f)?;
        }
        match &self.discrepancy {
            None => write!(f, "result      verified"),
            Some(d) => {
                write!(f, "result      FAILED at height {} [{}]", d.height, d.kind)?;
                if let Some(e) = &d.event {
                    write!(f, " event {} ({})", e.index, e.id)?;
                }
                write!(f, ": {}", d.reason)
            }
        }
    }
}

/// A block whose stateless checks passed, ready for the sequential replay.
struct Prepared {
    header_bytes: Vec<u8>,
    header: BlockHeader,
    ids: Vec<EventId>,
    events: Vec<Event>,
    approvals: u64,
    certificate: Certificate,
    /// The certificate as stored: the next block's header binds these bytes.
    certificate_bytes: Vec<u8>,
    /// The voters the certificate was checked against ahead of time, and the outcome.
    checked: Option<(Voters, Result<(), String>)>,
}

fn discrepancy(height: u64, kind: &'static str, reason: impl Into<String>) -> Discrepancy {
    Discrepancy { height, event: None, kind, reason: reason.into() }
}

fn event_discrepancy(height: u64, index: usize, id: String, kind: &'static str, reason: String) -> Discrepancy {
    Discrepancy { height, event: Some(EventRef { index, id }), kind, reason }
}

/// The events as `required_voters` reads them (only a lone governance act matters to it).
fn decoded_events(decoded: &[UnverifiedEvent]) -> Vec<Event> {
    match decoded {
        [only] => vec![only.clone().assume_verified()],
        _ => Vec::new(),
    }
}

/// The stateless checks of one block (steps 1–3 and the signatures of step 8).
fn prepare(
    chain_id: &ChainId,
    rule: SignatureRule,
    height: u64,
    raw: RawBlock,
    voters: &Voters,
) -> Result<Prepared, Discrepancy> {
    let header = BlockHeader::decode(&raw.header).map_err(|e| discrepancy(height, "header", e.to_string()))?;
    let mut decoded: Vec<UnverifiedEvent> = Vec::with_capacity(raw.events.len());
    for (i, bytes) in raw.events.iter().enumerate() {
        let e = kp_proto::decode_event(bytes).map_err(|e| {
            event_discrepancy(height, i, kp_crypto::event_id(bytes).to_string(), "event_encoding", e.to_string())
        })?;
        decoded.push(e);
    }
    let ids: Vec<EventId> = decoded.iter().map(UnverifiedEvent::id).collect();
    let certificate = wire::decode_certificate(&raw.certificate);
    let mut items: Vec<BatchItem<'_>> = decoded.iter().flat_map(UnverifiedEvent::batch_items).collect();
    let event_items = items.len();
    // With the voters known, the certificate's signatures join the events' in one batch (one
    // batch of a block's signatures verifies faster than two); apart only if it fails.
    // (The voters it requires, and their keys in the certificate's order if it has exactly
    // one signature from each.)
    let ahead: Option<(Voters, Option<Vec<SignedItem>>)> = match &certificate {
        Ok(c) if !voters.is_empty() => {
            let required = required_voters(voters, &decoded_events(&decoded));
            let signed = c.signed_items(&required).ok();
            Some((required, signed))
        }
        _ => None,
    };
    let joint = match &ahead {
        Some((_, Some(signed))) => {
            items.extend(signed.iter().map(|(key, bytes, signature, _)| BatchItem {
                key,
                tag: kp_crypto::Tag::Vote,
                bytes,
                signature,
            }));
            true
        }
        _ => false,
    };
    let together = kp_crypto::verify_batch(chain_id, rule, &items).is_ok();
    if !together && kp_crypto::verify_batch(chain_id, rule, &items[..event_items]).is_err() {
        // Name the first event at fault.
        for (i, e) in decoded.iter().enumerate() {
            if let Err(e) = e.clone().verify(chain_id, rule) {
                return Err(event_discrepancy(height, i, ids[i].to_string(), "event_signature", e.to_string()));
            }
        }
        return Err(discrepancy(height, "event_signature", "the block's signatures fail as a batch"));
    }
    let count = raw.events.len();
    if usize::try_from(header.event_count).ok() != Some(count) {
        return Err(discrepancy(
            height,
            "events_root",
            format!("the header counts {} events, the block carries {count}", header.event_count),
        ));
    }
    let root = events_root(&raw.events);
    if root != header.events_root {
        return Err(discrepancy(
            height,
            "events_root",
            format!("the events' root is {}, the header commits to {}", root.short(), header.events_root.short()),
        ));
    }
    let approvals: u64 = event_items.saturating_sub(count) as u64;
    let events: Vec<Event> = decoded.into_iter().map(UnverifiedEvent::assume_verified).collect();
    let certificate = certificate.map_err(|e| discrepancy(height, "certificate_encoding", e.to_string()))?;
    // The certificate against the voters known ahead: already proven by the joint batch, or
    // checked alone now (which names the voters at fault).
    let checked = ahead.map(|(required, _)| {
        let outcome = match together && joint {
            true => Ok(()),
            false => certificate.verify(chain_id, rule, &required).map_err(|e| e.to_string()),
        };
        (required, outcome)
    });
    Ok(Prepared {
        header_bytes: raw.header,
        header,
        ids,
        events,
        approvals,
        certificate,
        certificate_bytes: raw.certificate,
        checked,
    })
}

/// The sequential replay's state.
struct Replay {
    chain_id: ChainId,
    rule: SignatureRule,
    ledger: Ledger,
    voters: Voters,
    height: u64,
    last: (Hash32, Timestamp),
    /// The last block's commit certificate, decoded and as stored (none at height 0).
    last_commit: Option<(Certificate, Vec<u8>)>,
    events: u64,
    signatures: Signatures,
    participants: Vec<VoterChange>,
}

impl Replay {
    /// Steps 4–8 of one block, then the block is part of the replayed ledger.
    fn apply(&mut self, p: Prepared) -> Result<(), Discrepancy> {
        let h = &p.header;
        let height = self.height + 1;
        if h.chain_id != self.chain_id {
            return Err(discrepancy(
                height,
                "chain",
                format!("the block is for chain {}, not {}", h.chain_id, self.chain_id),
            ));
        }
        if h.height != height {
            return Err(discrepancy(
                height,
                "height",
                format!("the block here is height {}: blocks are missing or out of order", h.height),
            ));
        }
        if h.prev_hash != self.last.0 {
            return Err(discrepancy(
                height,
                "hash_chain",
                format!(
                    "prev_hash {} is not the hash of block {} ({})",
                    h.prev_hash.short(),
                    self.height,
                    self.last.0.short()
                ),
            ));
        }
        // The parent's certificate that the header binds is the one stored beside the parent,
        // and the block's time is the consensus time of its signed clock readings.
        let bound = self.last_commit.as_ref().map_or(Hash32::default(), |(_, bytes)| certificate_hash(bytes));
        if h.last_commit_hash != bound {
            return Err(discrepancy(
                height,
                "last_commit",
                format!(
                    "the header binds certificate {} of block {}, but the one stored beside it is {}",
                    h.last_commit_hash.short(),
                    self.height,
                    bound.short()
                ),
            ));
        }
        let expected = consensus_time(self.last_commit.as_ref().map(|(c, _)| c), self.last.1);
        if h.time != expected {
            return Err(discrepancy(
                height,
                "time",
                format!(
                    "block time {} is not {expected}, the consensus time of block {}'s commit certificate",
                    h.time, self.height
                ),
            ));
        }
        if let Err((i, reason)) = kp_chain::check_block_events(&p.events) {
            return Err(event_discrepancy(height, i, p.ids[i].to_string(), "governance_shares_block", reason));
        }
        for (i, event) in p.events.iter().enumerate() {
            if let Err(r) = self.ledger.apply(event, h.time) {
                return Err(event_discrepancy(height, i, p.ids[i].to_string(), "rule", format!("{r} [{}]", r.code())));
            }
        }
        let root = self.ledger.state_root();
        if root != h.state_root {
            return Err(discrepancy(
                height,
                "state_root",
                format!("the header's state root is {}, the replay computes {}", h.state_root.short(), root.short()),
            ));
        }
        let required = required_voters(&self.voters, &p.events);
        if voters_hash(&required) != h.voters_hash {
            return Err(discrepancy(
                height,
                "voter_set",
                "the header names another voter set than the one derived from the genesis and governance acts",
            ));
        }
        let body = p.certificate.body;
        let hash = block_hash(&p.header_bytes);
        if body.kind != VoteKind::Precommit || body.height != height || body.block_hash != hash {
            // (What `Certificate::verify_commit` refuses, named in full.)
            return Err(discrepancy(
                height,
                "certificate",
                format!(
                    "the certificate is a {:?} for height {} block {}, not a commit certificate for this block {}",
                    body.kind,
                    body.height,
                    body.block_hash.short(),
                    hash.short()
                ),
            ));
        }
        let outcome = match p.checked {
            Some((used, outcome)) if used == required => outcome,
            _ => p
                .certificate
                .verify_commit(&self.chain_id, self.rule, height, &hash, &required)
                .map_err(|e| e.to_string()),
        };
        outcome.map_err(|reason| discrepancy(height, "certificate", reason))?;

        self.signatures.events += p.events.len() as u64;
        self.signatures.approvals += p.approvals;
        self.signatures.votes += p.certificate.times().count() as u64;
        self.events += p.events.len() as u64;
        self.height = height;
        self.last = (hash, h.time);
        self.last_commit = Some((p.certificate, p.certificate_bytes));
        let next = self.ledger.voters();
        if next != self.voters {
            self.participants.push(change(&self.voters, &next, height + 1, h.time));
            self.voters = next;
        }
        Ok(())
    }
}

fn change(before: &Voters, after: &Voters, from_height: u64, time: Timestamp) -> VoterChange {
    let ids = |v: &Voters| v.iter().map(|(id, _)| *id).collect::<std::collections::BTreeSet<_>>();
    let (b, a) = (ids(before), ids(after));
    VoterChange {
        from_height,
        time_ms: time.0,
        voters: after.len(),
        joined: a.difference(&b).map(ToString::to_string).collect(),
        left: b.difference(&a).map(ToString::to_string).collect(),
    }
}

/// Where the blocks come from: a store, an export, or anything yielding them in height order.
pub type Source<'a> = Box<dyn Iterator<Item = Result<RawBlock, String>> + Send + 'a>;

/// Replays `blocks` (heights 1, 2, ... in order) from `genesis` and reports. `progress` is
/// called after each chunk with the blocks and events verified so far.
pub fn audit(genesis: &Genesis, blocks: Source<'_>, progress: &mut dyn FnMut(u64, u64)) -> AuditReport {
    let genesis_hash = kp_proto::genesis_hash(genesis);
    let mut report = AuditReport {
        chain_id: genesis.chain_id.to_string(),
        genesis_hash: genesis_hash.to_string(),
        blocks: 0,
        events: 0,
        signatures: Signatures::default(),
        signature_rule: genesis.params.signature_rule,
        head_hash: genesis_hash.to_string(),
        head_time_ms: genesis.genesis_time.0,
        participants: Vec::new(),
        result: "failed",
        discrepancy: None,
    };
    let ledger = match Ledger::from_genesis(genesis) {
        Ok(l) => l,
        Err(e) => {
            report.discrepancy = Some(discrepancy(0, "source", format!("the genesis is invalid: {e}")));
            return report;
        }
    };
    let voters = ledger.voters();
    let mut replay = Replay {
        chain_id: genesis.chain_id.clone(),
        rule: genesis.params.signature_rule,
        participants: vec![change(&Vec::new(), &voters, 1, genesis.genesis_time)],
        ledger,
        voters: voters.clone(),
        height: 0,
        last: (genesis_hash, genesis.genesis_time),
        last_commit: None,
        events: 0,
        signatures: Signatures::default(),
    };
    // The voter set as the sequential replay last knew it, for the parallel checks ahead.
    let known_voters = Arc::new(Mutex::new(voters));
    let found = std::thread::scope(|scope| {
        // Three stages, each on its own thread, so that the cores verifying signatures never
        // wait for the reading: the reader groups blocks into chunks; the verifier runs each
        // chunk's stateless checks on every core; this thread replays them in order.
        let (chunks_tx, chunks_rx) = mpsc::sync_channel::<(Vec<RawBlock>, Option<String>)>(2);
        let (tx, rx) = mpsc::sync_channel::<Vec<Result<Prepared, Discrepancy>>>(2);
        scope.spawn(move || {
            let mut blocks = blocks;
            loop {
                let mut chunk = Vec::new();
                let mut events = 0;
                let mut failure = None;
                while chunk.len() < CHUNK_BLOCKS && events < CHUNK_EVENTS {
                    match blocks.next() {
                        Some(Ok(b)) => {
                            events += b.events.len();
                            chunk.push(b);
                        }
                        Some(Err(e)) => {
                            failure = Some(e);
                            break;
                        }
                        None => break,
                    }
                }
                let last = chunk.len() < CHUNK_BLOCKS && events < CHUNK_EVENTS || failure.is_some();
                if (chunk.is_empty() && failure.is_none()) || chunks_tx.send((chunk, failure)).is_err() || last {
                    return;
                }
            }
        });
        let (chain_id, rule) = (genesis.chain_id.clone(), genesis.params.signature_rule);
        let known = Arc::clone(&known_voters);
        scope.spawn(move || {
            let mut next_height = 1u64;
            for (chunk, failure) in chunks_rx {
                let voters = known.lock().unwrap_or_else(PoisonError::into_inner).clone();
                let first = next_height;
                next_height += chunk.len() as u64;
                let mut prepared: Vec<Result<Prepared, Discrepancy>> = chunk
                    .into_par_iter()
                    .enumerate()
                    .map(|(i, raw)| prepare(&chain_id, rule, first + i as u64, raw, &voters))
                    .collect();
                if let Some(e) = failure {
                    prepared.push(Err(discrepancy(next_height, "source", e)));
                }
                if tx.send(prepared).is_err() {
                    return;
                }
            }
        });
        for chunk in rx {
            for p in chunk {
                if let Err(d) = p.and_then(|p| replay.apply(p)) {
                    // Dropping the receiver stops the verifier, and then the reader.
                    return Some(d);
                }
            }
            *known_voters.lock().unwrap_or_else(PoisonError::into_inner) = replay.voters.clone();
            progress(replay.height, replay.events);
        }
        None
    });
    progress(replay.height, replay.events);
    report.blocks = replay.height;
    report.events = replay.events;
    report.signatures = replay.signatures;
    report.head_hash = replay.last.0.to_string();
    report.head_time_ms = replay.last.1.0;
    report.participants = replay.participants;
    report.result = if found.is_none() { "verified" } else { "failed" };
    report.discrepancy = found;
    report
}
