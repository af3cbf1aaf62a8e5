//! Offline proof bundles (`proto/kp/v1/ledger.proto`, `ProofBundle`): the custody events of one
//! certificate, each with its Merkle inclusion proof under its block's events root, the headers
//! and commit certificates of those blocks, and every block that applied a governance event (an
//! act, or a written procedure's opening, response or conclusion) up to the last of them — so that a verifier holding nothing but the genesis derives the voter
//! set at each height itself and checks every certificate against it.
//!
//! What a verified bundle proves: each event shown, with exactly these bytes and signer, was
//! committed at the height shown, by every voter the rules required then. It does not prove
//! that the ledger holds no other event about the certificate (a bundle can leave one out);
//! the node's custody index, or a full audit, answers that.

use crate::replay::Discrepancy;
use kp_chain::required_voters;
use kp_consensus::block::{BlockHeader, block_hash, certificate_hash, consensus_time, voters_hash};
use kp_consensus::wire;
use kp_crypto::InclusionProof;
use kp_domain::{CertificateNumber, EventPayload, Genesis, Hash32};
use kp_proto::pb;
use kp_rules::Ledger;
use kp_store::{Backend, Store, StoreError};
use prost::Message;
use serde::Serialize;
use std::collections::BTreeMap;

/// The bundle format this build writes and reads.
pub const PROOF_FORMAT_VERSION: u32 = 2;
/// Largest bundle accepted.
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the ledger holds no event about certificate {0}")]
    NotFound(CertificateNumber),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("block {height} is not in the store")]
    MissingBlock { height: u64 },
    #[error("block {height}: {reason}")]
    Merkle { height: u64, reason: String },
    #[error("the bundle of {0} would exceed {MAX_BUNDLE_BYTES} bytes, more than a verifier reads")]
    TooLarge(CertificateNumber),
}

/// Builds the bundle for certificate `number` from a node's store.
pub fn build<B: Backend>(store: &Store<B>, number: &CertificateNumber) -> Result<Vec<u8>, BuildError> {
    let custody = store.custody(number)?;
    let Some(last) = custody.iter().map(|c| c.at.height).max() else {
        return Err(BuildError::NotFound(number.clone()));
    };
    // height → indexes of the events shown.
    let mut shown: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for c in &custody {
        shown.entry(c.at.height).or_default().push(c.at.index);
    }
    for h in store.act_heights(last)? {
        shown.entry(h).or_default().push(0);
    }
    let mut blocks = Vec::with_capacity(shown.len());
    // A certificate amended without end would otherwise make the node build (holding its
    // store) a bundle no verifier accepts.
    let mut size = 0usize;
    for (height, mut indexes) in shown {
        indexes.sort_unstable();
        indexes.dedup();
        let raw = store.raw_block(height)?.ok_or(BuildError::MissingBlock { height })?;
        let mut events = Vec::with_capacity(indexes.len());
        for index in indexes {
            let i = usize::try_from(index).unwrap_or(usize::MAX);
            let proof = InclusionProof::build(&raw.events, i)
                .map_err(|e| BuildError::Merkle { height, reason: e.to_string() })?;
            events.push(pb::ProvenEvent {
                envelope: raw.events[i].clone(),
                index,
                path: proof.path.iter().map(|h| h.0.to_vec()).collect(),
            });
        }
        let (parent_header, last_commit) = match height {
            1 => (Vec::new(), Vec::new()),
            h => {
                let parent = store.raw_commit(h - 1)?.ok_or(BuildError::MissingBlock { height: h - 1 })?;
                (parent.header, parent.certificate)
            }
        };
        let block =
            pb::ProvenBlock { header: raw.header, certificate: raw.certificate, events, parent_header, last_commit };
        size += block.encoded_len();
        if size > MAX_BUNDLE_BYTES {
            return Err(BuildError::TooLarge(number.clone()));
        }
        blocks.push(block);
    }
    let bundle = pb::ProofBundle {
        format_version: PROOF_FORMAT_VERSION,
        genesis_hash: store.genesis_hash().0.to_vec(),
        certificate: number.to_string(),
        blocks,
    };
    Ok(bundle.encode_to_vec())
}

/// One custody event the bundle proves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvenStep {
    pub height: u64,
    pub block_time_ms: u64,
    pub index: u32,
    pub kind: String,
    pub event_id: String,
    /// The signing authority: participant and role, as the ledger knew the key.
    pub signer: String,
    pub signer_key: String,
}

/// A governance act the verifier applied to derive the voter set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvenAct {
    pub height: u64,
    pub reference: String,
    pub action: String,
    pub subject: String,
}

/// What a verified bundle proves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProofReport {
    pub chain_id: String,
    pub genesis_hash: String,
    pub certificate: String,
    pub steps: Vec<ProvenStep>,
    pub governance_acts: Vec<ProvenAct>,
    /// Per block shown: height and the voters whose signatures committed it.
    pub committed_by: Vec<(u64, Vec<String>)>,
}

impl std::fmt::Display for ProofReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "VERIFIED against genesis {} (chain {})", self.genesis_hash, self.chain_id)?;
        writeln!(f, "certificate {}: {} custody event(s) proven committed:", self.certificate, self.steps.len())?;
        for s in &self.steps {
            writeln!(
                f,
                "  height {:>8} event {:>4}  {:<20} signed by {} ({})  id {}",
                s.height, s.index, s.kind, s.signer, s.signer_key, s.event_id
            )?;
        }
        let voters = |h: u64| self.committed_by.iter().find(|(x, _)| *x == h).map_or(0, |(_, v)| v.len());
        for s in &self.steps {
            writeln!(f, "  block {} committed by all {} required voters", s.height, voters(s.height))?;
        }
        writeln!(f, "voter set derived from the genesis and {} governance act(s):", self.governance_acts.len())?;
        for a in &self.governance_acts {
            writeln!(f, "  height {:>8}  {} {} ({})", a.height, a.action, a.subject, a.reference)?;
        }
        write!(f, "not proven: that no other event about {} exists (a bundle can omit one)", self.certificate)
    }
}

/// The block's time is the consensus time of the parent's commit certificate that its header
/// binds, recomputed from the parent's header and that certificate as the bundle carries them
/// (`kp_consensus::block::consensus_time`, the function the engine and the audit use). The
/// certificate's signatures are not checked again here: every voter of the block, whose
/// certificate is checked, checked them before voting for a header that binds them.
fn check_time(genesis: &Genesis, header: &BlockHeader, block: &pb::ProvenBlock) -> Result<(), String> {
    let (last_commit, previous) = if header.height == 1 {
        if !block.parent_header.is_empty() || !block.last_commit.is_empty() {
            return Err("block 1 has no parent, but the bundle gives it one".into());
        }
        (None, genesis.genesis_time)
    } else {
        let parent = BlockHeader::decode(&block.parent_header).map_err(|e| format!("the parent's header: {e}"))?;
        if block_hash(&block.parent_header) != header.prev_hash || parent.height.checked_add(1) != Some(header.height) {
            return Err("the parent's header given is not this block's parent".into());
        }
        if certificate_hash(&block.last_commit) != header.last_commit_hash {
            return Err("the parent's commit certificate given is not the one the header binds".into());
        }
        let c = wire::decode_certificate(&block.last_commit).map_err(|e| format!("the parent's certificate: {e}"))?;
        (Some(c), parent.time)
    };
    let expected = consensus_time(last_commit.as_ref(), previous);
    if header.time != expected {
        return Err(format!(
            "block time {} is not {expected}, the consensus time of the parent's commit certificate",
            header.time
        ));
    }
    Ok(())
}

/// Checks a bundle offline against `genesis` and says what it proves, or the first reason it
/// fails (as a [`Discrepancy`]: height, event, kind, reason).
pub fn verify(bundle: &[u8], genesis: &Genesis) -> Result<ProofReport, Discrepancy> {
    let fail = |height: u64, kind: &'static str, reason: String| Discrepancy { height, event: None, kind, reason };
    if bundle.len() > MAX_BUNDLE_BYTES {
        return Err(fail(0, "bundle", format!("{} bytes, more than {MAX_BUNDLE_BYTES}", bundle.len())));
    }
    // Canonical only: a changed tag would otherwise turn a shown event into an ignored field.
    let b: pb::ProofBundle =
        kp_proto::decode_canonical("proof bundle", bundle).map_err(|e| fail(0, "bundle", e.to_string()))?;
    if b.format_version != PROOF_FORMAT_VERSION {
        return Err(fail(
            0,
            "bundle",
            format!("format version {}, this build reads {PROOF_FORMAT_VERSION}", b.format_version),
        ));
    }
    let genesis_hash = kp_proto::genesis_hash(genesis);
    if b.genesis_hash != genesis_hash.0 {
        return Err(fail(
            0,
            "genesis",
            format!(
                "the bundle is from the ledger of genesis {}, not of this genesis {}",
                hex::encode(&b.genesis_hash),
                genesis_hash
            ),
        ));
    }
    let number = CertificateNumber::new(&b.certificate)
        .map_err(|e| fail(0, "bundle", format!("certificate number {:?}: {e}", b.certificate)))?;
    let (chain_id, rule) = (&genesis.chain_id, genesis.params.signature_rule);
    let mut ledger = Ledger::from_genesis(genesis).map_err(|e| fail(0, "genesis", e.to_string()))?;
    let mut report = ProofReport {
        chain_id: chain_id.to_string(),
        genesis_hash: genesis_hash.to_string(),
        certificate: number.to_string(),
        steps: Vec::new(),
        governance_acts: Vec::new(),
        committed_by: Vec::new(),
    };
    let mut last_height: u64 = 0;
    for block in &b.blocks {
        let header = BlockHeader::decode(&block.header)
            .map_err(|e| fail(last_height.saturating_add(1), "header", e.to_string()))?;
        let height = header.height;
        if height <= last_height {
            return Err(fail(height, "order", format!("block {height} follows block {last_height}")));
        }
        last_height = height;
        if header.chain_id != *chain_id {
            return Err(fail(height, "chain", format!("the block is for chain {}", header.chain_id)));
        }
        check_time(genesis, &header, block).map_err(|reason| fail(height, "time", reason))?;
        let mut events = Vec::with_capacity(block.events.len());
        for e in &block.events {
            let event_fail = |reason: String| Discrepancy {
                height,
                event: Some(crate::replay::EventRef {
                    index: usize::try_from(e.index).unwrap_or(usize::MAX),
                    id: kp_crypto::event_id(&e.envelope).to_string(),
                }),
                kind: "event",
                reason,
            };
            let path = e
                .path
                .iter()
                .map(|h| <[u8; 32]>::try_from(h.as_slice()).map(Hash32))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| event_fail("a hash of its inclusion proof is not 32 bytes".into()))?;
            InclusionProof { index: u64::from(e.index), size: u64::from(header.event_count), path }
                .verify(&e.envelope, &header.events_root)
                .map_err(|m| event_fail(format!("not in the block's events root: {m}")))?;
            let event = kp_proto::open_event(chain_id, rule, &e.envelope).map_err(|x| event_fail(x.to_string()))?;
            events.push((e.index, event));
        }
        // A block of one event shows it whole; a block of several needs every voter.
        let voters = ledger.voters();
        let required = if header.event_count == 1 && events.len() == 1 {
            required_voters(&voters, &[events[0].1.clone()])
        } else {
            voters
        };
        if voters_hash(&required) != header.voters_hash {
            return Err(fail(
                height,
                "voter_set",
                "the header names another voter set than the one derived from the genesis and the bundle's \
                 governance acts: the bundle lacks a governance block, or is forged"
                    .into(),
            ));
        }
        let certificate =
            wire::decode_certificate(&block.certificate).map_err(|e| fail(height, "certificate", e.to_string()))?;
        certificate
            .verify_commit(chain_id, rule, height, &block_hash(&block.header), &required)
            .map_err(|e| fail(height, "certificate", e.to_string()))?;
        report.committed_by.push((height, required.iter().map(|(p, _)| p.to_string()).collect()));
        for (index, event) in events {
            let signer = match ledger.key_owner(&event.signer) {
                Some(o) => format!("{} {}", o.participant, format!("{:?}", o.role).to_lowercase()),
                None => "an unknown key".to_owned(),
            };
            match &event.payload {
                payload if payload.kind().is_governance() => {
                    if header.event_count != 1 {
                        return Err(fail(height, "governance", "a governance event shares its block".into()));
                    }
                    ledger.apply(&event, header.time).map_err(|r| fail(height, "governance", r.to_string()))?;
                    let (act, action) = match payload {
                        EventPayload::Governance(g) => (Some(&g.act), g.act.action.name().to_owned()),
                        EventPayload::WrittenProcedure(w) => {
                            (Some(&w.act), format!("written procedure opened: {}", w.act.action.name()))
                        }
                        EventPayload::ProcedureConclusion(c) => (
                            Some(&c.act),
                            format!(
                                "written procedure {}: {}",
                                if c.adopted { "adopted" } else { "lapsed" },
                                c.act.action.name()
                            ),
                        ),
                        _ => (None, String::new()),
                    };
                    // Responses to a written procedure change no voter set: replayed, not listed.
                    if let Some(act) = act {
                        report.governance_acts.push(ProvenAct {
                            height,
                            reference: act.reference.to_string(),
                            action,
                            subject: act.action.subject().to_string(),
                        });
                    }
                }
                payload => {
                    if payload.certificate() != Some(&number) {
                        return Err(fail(height, "event", format!("event {index} is not about certificate {number}")));
                    }
                    report.steps.push(ProvenStep {
                        height,
                        block_time_ms: header.time.0,
                        index,
                        kind: format!("{:?}", payload.kind()),
                        event_id: event.id.to_string(),
                        signer,
                        signer_key: event.signer.to_string(),
                    });
                }
            }
        }
    }
    if report.steps.is_empty() {
        return Err(fail(last_height, "bundle", format!("the bundle shows no custody event of {number}")));
    }
    Ok(report)
}
