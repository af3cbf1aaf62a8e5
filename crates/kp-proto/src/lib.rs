//! The edge between the outside world's bytes and the ledger's domain types.
//!
//! Every byte string that arrives from a client, a peer or a file goes through here before
//! anything else looks at it: size limit first, then strict protobuf decoding (canonical form,
//! no unknown fields), then signature checks over the exact bytes received, then conversion to
//! validated domain types. Prost types never leave this crate's public functions except as the
//! [`pb`] module for the API layer; the rules engine sees only `kp_domain` types.
//!
//! Architecture invariant: conversion happens once, here. A domain value produced by this
//! crate satisfies its `validate` method; an `Event` produced by [`open_event`] carries a
//! verified signature.

mod convert;

pub use convert::{
    act_from_proto, act_to_proto, genesis_from_proto, genesis_to_proto, payload_from_proto, payload_to_proto,
};

use kp_crypto::{BatchItem, CryptoError, SecretKey, Signature, Tag};
use kp_domain::{
    ChainId, Event, EventId, EventPayload, FORMAT_VERSION, FieldError, Genesis, GovernanceAct, Hash32, MAX_APPROVALS,
    MAX_EVENT_BYTES, PublicKey, SignatureRule,
};
use prost::Message;

/// The generated kp.v1 protobuf types.
#[allow(missing_docs, missing_debug_implementations, clippy::all, clippy::pedantic)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/kp.v1.rs"));
}

/// Why bytes from outside were refused. Each variant names what it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EdgeError {
    #[error("{what} is {size} bytes, more than the limit of {max}")]
    TooLarge { what: &'static str, size: usize, max: usize },
    #[error("{what} is not valid protobuf: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("{what} is not in canonical encoding (fields out of order, defaults present or unknown fields)")]
    NonCanonical { what: &'static str },
    #[error("format version {found} is not supported (this software reads version {FORMAT_VERSION})")]
    UnsupportedVersion { found: u32 },
    #[error("invalid field {0}")]
    Field(#[from] FieldError),
    #[error("signature of {what}: {source}")]
    Signature { what: String, source: CryptoError },
}

impl EdgeError {
    /// A stable, machine-readable code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            EdgeError::TooLarge { .. } => "too_large",
            EdgeError::Malformed { .. } => "malformed",
            EdgeError::NonCanonical { .. } => "non_canonical",
            EdgeError::UnsupportedVersion { .. } => "unsupported_version",
            EdgeError::Field(_) => "invalid_field",
            EdgeError::Signature { .. } => "bad_signature",
        }
    }
}

/// Decodes `bytes` as `M` and insists that they are exactly what encoding the result gives back:
/// this refuses unknown fields (which prost would silently drop), duplicated or reordered fields
/// and explicit defaults, so that one message has one encoding.
pub fn decode_canonical<M: Message + Default>(what: &'static str, bytes: &[u8]) -> Result<M, EdgeError> {
    let message = M::decode(bytes).map_err(|e| EdgeError::Malformed { what, reason: e.to_string() })?;
    if message.encoded_len() != bytes.len() || message.encode_to_vec() != bytes {
        return Err(EdgeError::NonCanonical { what });
    }
    Ok(message)
}

fn public_key(field: &str, bytes: &[u8]) -> Result<PublicKey, EdgeError> {
    PublicKey::from_slice(bytes).map_err(|e| EdgeError::Field(e.within(field)))
}

fn parse_signature(what: &str, bytes: &[u8]) -> Result<Signature, EdgeError> {
    Signature::from_slice(bytes).map_err(|source| EdgeError::Signature { what: what.to_owned(), source })
}

/// The encoding of a payload, ready to be signed. Governance payloads are built with
/// [`encode_governance_payload`], as they carry the approvers' signatures.
pub fn encode_payload(payload: &EventPayload) -> Result<Vec<u8>, EdgeError> {
    Ok(payload_to_proto(payload)?.encode_to_vec())
}

/// The protobuf encoding of any kp.v1 message.
pub fn encode_message<M: Message>(message: &M) -> Vec<u8> {
    message.encode_to_vec()
}

/// The exact bytes approvers sign for a governance act.
pub fn encode_act(act: &GovernanceAct) -> Vec<u8> {
    act_to_proto(act).encode_to_vec()
}

/// A governance act from the exact bytes approvers sign (size-limited, canonical, validated).
pub fn decode_act(bytes: &[u8]) -> Result<GovernanceAct, EdgeError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(EdgeError::TooLarge { what: "governance act", size: bytes.len(), max: MAX_EVENT_BYTES });
    }
    let act_pb: pb::GovernanceAct = decode_canonical("governance act", bytes)?;
    let act = act_from_proto(act_pb).map_err(|e| e.within("act"))?;
    act.validate().map_err(|e| EdgeError::Field(e.within("act")))?;
    Ok(act)
}

/// An approval of a governance act: an authority's key and its signature over the act bytes.
#[derive(Debug, Clone)]
pub struct Approval {
    pub key: PublicKey,
    pub signature: Signature,
}

impl Approval {
    pub fn sign(key: &SecretKey, chain_id: &ChainId, act_bytes: &[u8]) -> Approval {
        Approval { key: key.public(), signature: key.sign(Tag::Approval, chain_id, act_bytes) }
    }
}

/// The encoding of a governance payload carrying `act_bytes` and its approvals.
pub fn encode_governance_payload(act_bytes: Vec<u8>, approvals: &[Approval]) -> Vec<u8> {
    pb::EventPayload {
        format_version: FORMAT_VERSION,
        kind: Some(pb::event_payload::Kind::Governance(pb::Governance {
            act: act_bytes,
            approvals: approvals
                .iter()
                .map(|a| pb::Approval { key: a.key.0.to_vec(), signature: a.signature.0.to_vec() })
                .collect(),
        })),
    }
    .encode_to_vec()
}

/// Signs `payload_bytes` and wraps them in the envelope that is submitted and stored.
pub fn sign_event(key: &SecretKey, chain_id: &ChainId, payload_bytes: Vec<u8>) -> Vec<u8> {
    let signature = key.sign(Tag::Event, chain_id, &payload_bytes);
    pb::SignedEvent { payload: payload_bytes, signer: key.public().0.to_vec(), signature: signature.0.to_vec() }
        .encode_to_vec()
}

/// An event decoded and converted, whose signatures are not yet checked. Built by
/// [`decode_event`]; becomes an [`Event`] through [`UnverifiedEvent::verify`], or through
/// [`UnverifiedEvent::assume_verified`] after a batch check of [`UnverifiedEvent::batch_items`].
#[derive(Debug, Clone)]
pub struct UnverifiedEvent {
    envelope: pb::SignedEvent,
    signer: PublicKey,
    signature: Signature,
    approvals: Vec<(PublicKey, Signature)>,
    act_bytes: Vec<u8>,
    id: EventId,
    payload: EventPayload,
}

/// Decodes a signed event without checking signatures: size limit, canonical envelope and
/// payload, format version, field conversion and structural validation.
pub fn decode_event(bytes: &[u8]) -> Result<UnverifiedEvent, EdgeError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(EdgeError::TooLarge { what: "signed event", size: bytes.len(), max: MAX_EVENT_BYTES });
    }
    let envelope: pb::SignedEvent = decode_canonical("signed event", bytes)?;
    let signer = public_key("signer", &envelope.signer)?;
    let signature = parse_signature("event", &envelope.signature)?;
    let payload_pb: pb::EventPayload = decode_canonical("event payload", &envelope.payload)?;
    if payload_pb.format_version != FORMAT_VERSION {
        return Err(EdgeError::UnsupportedVersion { found: payload_pb.format_version });
    }
    let mut approvals = Vec::new();
    let mut act_bytes = Vec::new();
    let payload = match payload_pb.kind {
        Some(pb::event_payload::Kind::Governance(g)) => {
            if g.approvals.len() > MAX_APPROVALS {
                return Err(EdgeError::Field(FieldError::new(
                    "governance.approvals",
                    format!("{} approvals, at most {MAX_APPROVALS}", g.approvals.len()),
                )));
            }
            let act_pb: pb::GovernanceAct = decode_canonical("governance act", &g.act)?;
            let act = act_from_proto(act_pb).map_err(|e| e.within("governance.act"))?;
            for (i, a) in g.approvals.iter().enumerate() {
                approvals.push((
                    public_key(&format!("governance.approvals[{i}].key"), &a.key)?,
                    parse_signature(&format!("approval {i}"), &a.signature)?,
                ));
            }
            act_bytes = g.act;
            EventPayload::Governance(kp_domain::GovernanceEvent {
                act,
                act_digest: kp_crypto::sha256(&act_bytes),
                approvers: approvals.iter().map(|(k, _)| *k).collect(),
            })
        }
        kind => payload_from_proto(kind)?,
    };
    payload.validate()?;
    Ok(UnverifiedEvent { id: kp_crypto::event_id(bytes), envelope, signer, signature, approvals, act_bytes, payload })
}

impl UnverifiedEvent {
    pub fn id(&self) -> EventId {
        self.id
    }
    pub fn signer(&self) -> PublicKey {
        self.signer
    }
    pub fn payload(&self) -> &EventPayload {
        &self.payload
    }
    /// The payload bytes exactly as signed.
    pub fn payload_bytes(&self) -> &[u8] {
        &self.envelope.payload
    }

    /// The signatures to check: the event's, then each approval's.
    pub fn batch_items(&self) -> Vec<BatchItem<'_>> {
        let mut items = vec![BatchItem {
            key: &self.signer,
            tag: Tag::Event,
            bytes: &self.envelope.payload,
            signature: &self.signature,
        }];
        items.extend(self.approvals.iter().map(|(k, s)| BatchItem {
            key: k,
            tag: Tag::Approval,
            bytes: &self.act_bytes,
            signature: s,
        }));
        items
    }

    /// Checks every signature one by one under `rule`, naming the first that fails.
    pub fn verify(self, chain_id: &ChainId, rule: SignatureRule) -> Result<Event, EdgeError> {
        kp_crypto::verify(&self.signer, Tag::Event, chain_id, rule, &self.envelope.payload, &self.signature)
            .map_err(|source| EdgeError::Signature { what: "event".to_owned(), source })?;
        for (i, (key, sig)) in self.approvals.iter().enumerate() {
            kp_crypto::verify(key, Tag::Approval, chain_id, rule, &self.act_bytes, sig)
                .map_err(|source| EdgeError::Signature { what: format!("governance.approvals[{i}]"), source })?;
        }
        Ok(self.assume_verified())
    }

    /// The event, for a caller that has checked [`Self::batch_items`] itself (batch verification).
    pub fn assume_verified(self) -> Event {
        Event { id: self.id, signer: self.signer, payload: self.payload }
    }
}

/// Decodes and fully checks one signed event from outside, its signatures under `rule`.
pub fn open_event(chain_id: &ChainId, rule: SignatureRule, bytes: &[u8]) -> Result<Event, EdgeError> {
    decode_event(bytes)?.verify(chain_id, rule)
}

/// Decodes and fully checks many signed events from outside, as [`open_event`] each: their
/// signatures are checked in one batch (about half the cost of checking each), and one by one
/// only if the batch fails, so that each bad event gets its own error. Answers in order.
pub fn open_events<'a>(
    chain_id: &ChainId,
    rule: SignatureRule,
    envelopes: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<Result<Event, EdgeError>> {
    // Every vector is sized up front: a block's events are hundreds of large values, and a
    // vector grown by doubling copies them into fresh memory (page faults) again and again.
    let envelopes: Vec<&[u8]> = envelopes.into_iter().collect();
    let decoded: Vec<Result<UnverifiedEvent, EdgeError>> = envelopes.iter().map(|e| decode_event(e)).collect();
    let mut items: Vec<BatchItem<'_>> = Vec::with_capacity(decoded.len());
    items.extend(decoded.iter().flatten().flat_map(UnverifiedEvent::batch_items));
    let together = items.is_empty() || kp_crypto::verify_batch(chain_id, rule, &items).is_ok();
    drop(items);
    decoded
        .into_iter()
        .map(|d| d.and_then(|u| if together { Ok(u.assume_verified()) } else { u.verify(chain_id, rule) }))
        .collect()
}

/// The canonical encoding of a genesis.
pub fn encode_genesis(genesis: &Genesis) -> Vec<u8> {
    genesis_to_proto(genesis).encode_to_vec()
}

/// The hash that identifies a network: SHA-256 over a tag and the genesis's canonical encoding.
pub fn genesis_hash(genesis: &Genesis) -> Hash32 {
    kp_crypto::sha256_parts(&[b"kp-ledger/v1/genesis", &[0], &encode_genesis(genesis)])
}

/// Decodes and validates a genesis in its canonical encoding.
pub fn decode_genesis(bytes: &[u8]) -> Result<Genesis, EdgeError> {
    let g: pb::Genesis = decode_canonical("genesis", bytes)?;
    let genesis = genesis_from_proto(g)?;
    genesis.validate()?;
    Ok(genesis)
}
