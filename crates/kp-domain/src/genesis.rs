//! The genesis of a network: who takes part at the start, and the protocol parameters.

use crate::{ChainId, FieldError, MAX_OBSERVERS, MAX_PARTICIPANTS, Observer, Participant, PublicKey, Timestamp};
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The current version of the ledger's formats (events, blocks, state commitment). A store,
/// a genesis or an event of another version is refused with a clear error.
pub const FORMAT_VERSION: u32 = 1;

/// Parameters every node must agree on; part of the genesis and so of its hash (over its
/// protobuf encoding). The ledger's state keeps them in an encoding of its own (kp-rules), so
/// that a field added here does not change an existing ledger's state root.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolParams {
    /// How far (ms) an event's own time (sealed at, received at) may be ahead of the block time.
    pub max_event_time_ahead_ms: u64,
    /// How many days before the block's date a certificate's issue date may lie.
    pub max_issue_backdate_days: u16,
    /// Most events in one block (the consensus crate enforces it).
    pub max_events_per_block: u32,
    /// Largest encoded block, in bytes (the consensus crate enforces it).
    pub max_block_bytes: u32,
    /// The equation every signature on this ledger must satisfy. A genesis that does not name
    /// one (every genesis made before the field existed) is [`SignatureRule::Strict`], and a
    /// strict genesis is written without it (in protobuf as in JSON), as it always was.
    #[serde(default, skip_serializing_if = "SignatureRule::is_strict")]
    pub signature_rule: SignatureRule,
}

/// The Ed25519 verification equation a ledger's signatures satisfy, fixed by its genesis so that
/// every node and every auditor's replay accepts exactly the same signatures.
///
/// Both rules refuse non-canonical encodings (`S ≥ ℓ`, a coordinate `≥ p`), keys of small order
/// or with a small-order component, and an `R` of small order. They differ only on a signature
/// whose `R` has a small-order component, which no honest signer makes (RFC 8032 signing gives
/// `R = [r]B`): [`Strict`](SignatureRule::Strict) refuses it, [`Cofactored`](SignatureRule::Cofactored)
/// accepts it when the rest of the equation holds. So a ledger valid under the strict rule is
/// valid under the cofactored one, not the other way round.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureRule {
    /// RFC 8032's cofactorless equation `R = [s]B − [h]A`, with `R` in the prime-order
    /// subgroup. Batch verification must then check every `R`'s subgroup membership (a
    /// variable-base scalar multiplication each, as costly as verifying the signature alone).
    #[default]
    Strict,
    /// The cofactored equation `[8]([s]B − [h]A − R) = 0` (as ZIP 215, but with canonical
    /// encodings only): batch and single verification agree without a subgroup check of `R`, so
    /// a batch costs about a third of what the strict rule's does. New networks use it.
    Cofactored,
}

impl SignatureRule {
    pub fn is_strict(&self) -> bool {
        *self == SignatureRule::Strict
    }
    /// The rule's name, as in JSON and on the command line: `strict` or `cofactored`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureRule::Strict => "strict",
            SignatureRule::Cofactored => "cofactored",
        }
    }
}

impl std::fmt::Display for SignatureRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SignatureRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [SignatureRule::Strict, SignatureRule::Cofactored]
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a signature rule (strict or cofactored)"))
    }
}

/// The parameters of a new network, the cofactored signature rule among them. (Not
/// [`SignatureRule::default`], strict: what a genesis that names no rule means.)
impl Default for ProtocolParams {
    fn default() -> Self {
        Self {
            max_event_time_ahead_ms: 5 * 60 * 1000,
            max_issue_backdate_days: 30,
            max_events_per_block: 2_000,
            max_block_bytes: 8 * 1024 * 1024,
            signature_rule: SignatureRule::Cofactored,
        }
    }
}

/// The genesis document. Its hash (computed by the protobuf crate over its canonical encoding)
/// identifies the network.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub format_version: u32,
    pub chain_id: ChainId,
    pub genesis_time: Timestamp,
    /// Sorted by id.
    pub participants: Vec<Participant>,
    /// Sorted by id.
    pub observers: Vec<Observer>,
    pub params: ProtocolParams,
}

impl Genesis {
    /// Every check that can be made on the genesis alone: versions, sizes, ordering (which makes
    /// the encoding canonical), unique ids and keys, at least one voting participant.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.format_version != FORMAT_VERSION {
            return Err(FieldError::new(
                "format_version",
                format!(
                    "this software reads format version {FORMAT_VERSION}, the genesis is version {}",
                    self.format_version
                ),
            ));
        }
        if self.participants.is_empty() || self.participants.len() > MAX_PARTICIPANTS {
            return Err(FieldError::new("participants", format!("must list 1 to {MAX_PARTICIPANTS} participants")));
        }
        if self.observers.len() > MAX_OBSERVERS {
            return Err(FieldError::new("observers", format!("at most {MAX_OBSERVERS} observers")));
        }
        let mut keys = BTreeSet::<PublicKey>::new();
        let mut claim = |key: PublicKey, field: String| {
            if keys.insert(key) {
                Ok(())
            } else {
                Err(FieldError::new(field, format!("key {} is used twice in the genesis", key.short())))
            }
        };
        for (i, p) in self.participants.iter().enumerate() {
            let at = format!("participants[{i}]");
            p.validate().map_err(|e| e.within(&at))?;
            if i > 0 && self.participants[i - 1].id >= p.id {
                return Err(FieldError::new(
                    format!("{at}.id"),
                    format!("{} is repeated or out of order (participants are sorted by id)", p.id),
                ));
            }
            claim(p.node_key, format!("{at}.node_key"))?;
            for (k, a) in p.authorities.iter().enumerate() {
                claim(a.key, format!("{at}.authorities[{k}]"))?;
            }
        }
        for (i, o) in self.observers.iter().enumerate() {
            let at = format!("observers[{i}]");
            if i > 0 && self.observers[i - 1].id >= o.id {
                return Err(FieldError::new(
                    format!("{at}.id"),
                    format!("{} is repeated or out of order (observers are sorted by id)", o.id),
                ));
            }
            claim(o.node_key, format!("{at}.node_key"))?;
        }
        if !self.participants.iter().any(|p| p.status.votes()) {
            return Err(FieldError::new("participants", "at least one participant must be active"));
        }
        if self.params.max_events_per_block == 0 || self.params.max_block_bytes == 0 {
            return Err(FieldError::new("params", "block limits must be greater than zero"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::SignatureRule;

    #[test]
    fn signature_rules_read_back_their_names_and_nothing_else() {
        for rule in [SignatureRule::Strict, SignatureRule::Cofactored] {
            assert_eq!(rule.to_string().parse::<SignatureRule>(), Ok(rule));
        }
        assert_eq!(
            "Strict".parse::<SignatureRule>(),
            Err("\"Strict\" is not a signature rule (strict or cofactored)".to_owned())
        );
    }
}
