//! KP participants (governments; the EU counts as one) and observers.

use crate::{
    CountryCode, FieldError, Label, MAX_AUTHORITY_KEYS, MAX_MEMBERS, MAX_ZONES, ObserverId, ParticipantId, PublicKey,
    Text,
};
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which national authority a key belongs to.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Issues, seals, amends and voids certificates; reports production.
    Exporting,
    /// Confirms receipt of shipments.
    Importing,
}
impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Exporting => "exporting",
            Role::Importing => "importing",
        })
    }
}

/// A key of one of a participant's authorities. Keys sign events; they are rotated by governance
/// acts (added, revoked), never edited.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct AuthorityKey {
    pub key: PublicKey,
    pub role: Role,
}

/// Where a participant stands in the scheme.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Status {
    /// Trades, votes.
    Active,
    /// May export only diamonds from the listed zones (the CAR "compliant zones" of 2015);
    /// imports and votes as an active participant.
    Restricted { zones: Vec<Label> },
    /// Neither exports nor imports; does not vote (Venezuela 2008, CAR 2013).
    Suspended,
    /// No longer a participant (the Republic of the Congo, removed in 2004); may be readmitted.
    Withdrawn,
}

impl Status {
    /// Whether the participant's node signs blocks (see the consensus crate).
    pub fn votes(&self) -> bool {
        matches!(self, Status::Active | Status::Restricted { .. })
    }
    /// Whether the participant may be named exporter or importer on a new certificate.
    pub fn trades(&self) -> bool {
        self.votes()
    }
    pub fn name(&self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Restricted { .. } => "restricted",
            Status::Suspended => "suspended",
            Status::Withdrawn => "withdrawn",
        }
    }
}
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A KP participant as the ledger knows it.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct Participant {
    pub id: ParticipantId,
    pub name: Text,
    /// Member countries (the EU: its 27 member states; a state: itself).
    pub members: Vec<CountryCode>,
    pub status: Status,
    /// Signs blocks (votes) for this participant.
    pub node_key: PublicKey,
    /// Signs custody events for this participant's authorities.
    pub authorities: Vec<AuthorityKey>,
    /// Longest validity of a certificate this participant issues, in days (its own choice,
    /// KPCS Annex I element 5).
    pub max_certificate_validity_days: u16,
}

impl Participant {
    /// The structural checks that do not depend on other participants.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.name.is_empty() {
            return Err(FieldError::new("name", "must not be empty"));
        }
        if self.members.is_empty() || self.members.len() > MAX_MEMBERS {
            return Err(FieldError::new("members", format!("must list 1 to {MAX_MEMBERS} countries")));
        }
        let mut members = self.members.clone();
        members.sort();
        members.dedup();
        if members.len() != self.members.len() {
            return Err(FieldError::new("members", "a country is listed twice"));
        }
        if self.authorities.is_empty() || self.authorities.len() > MAX_AUTHORITY_KEYS {
            return Err(FieldError::new("authorities", format!("must hold 1 to {MAX_AUTHORITY_KEYS} keys")));
        }
        if self.max_certificate_validity_days == 0 {
            return Err(FieldError::new("max_certificate_validity_days", "must be at least 1"));
        }
        if let Status::Restricted { zones } = &self.status {
            check_zones(zones)?;
        }
        Ok(())
    }
}

/// A restriction must name 1 to [`MAX_ZONES`] distinct zones.
pub fn check_zones(zones: &[Label]) -> Result<(), FieldError> {
    if zones.is_empty() || zones.len() > MAX_ZONES {
        return Err(FieldError::new("zones", format!("must list 1 to {MAX_ZONES} zones")));
    }
    let mut sorted: Vec<_> = zones.iter().collect();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != zones.len() {
        return Err(FieldError::new("zones", "a zone is listed twice"));
    }
    Ok(())
}

/// An observer (World Diamond Council, KP Civil Society Coalition): runs a read-only node,
/// never signs blocks or events.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct Observer {
    pub id: ObserverId,
    pub name: Text,
    pub node_key: PublicKey,
}
