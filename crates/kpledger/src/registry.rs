//! The participant registry: node-config/participants.toml, data not code. The file is built
//! into the binary as its default; `--registry FILE` reads another.

use kp_domain::{CountryCode, FieldError, ObserverId, ParticipantId, Text};
use serde::Deserialize;

/// node-config/participants.toml as shipped.
pub const DEFAULT_REGISTRY: &str = include_str!("../../../node-config/participants.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    pub participant: Vec<RegistryParticipant>,
    #[serde(default)]
    pub observer: Vec<RegistryObserver>,
    /// Participants admitted after the others (Uzbekistan, 2024): never in a test network's
    /// genesis unless named; `testnet init --newcomer` prepares their node for admission.
    #[serde(default)]
    pub newcomer: Vec<RegistryParticipant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryParticipant {
    pub id: ParticipantId,
    pub name: Text,
    pub members: Vec<CountryCode>,
    pub max_certificate_validity_days: u16,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryObserver {
    pub id: ObserverId,
    pub name: Text,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("participant registry: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("participant registry: {0}")]
    Field(#[from] FieldError),
}

impl Registry {
    pub fn parse(text: &str) -> Result<Registry, RegistryError> {
        let registry: Registry = toml::from_str(text)?;
        let mut ids: Vec<_> = registry.participant.iter().chain(&registry.newcomer).map(|p| p.id).collect();
        ids.sort();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(FieldError::new("participant.id", format!("{} is listed twice", w[0])).into());
        }
        Ok(registry)
    }

    pub fn default_registry() -> Result<Registry, RegistryError> {
        Self::parse(DEFAULT_REGISTRY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_registry_lists_the_59_participants() {
        let r = Registry::default_registry().unwrap();
        assert_eq!(r.participant.len(), 59);
        let eu = r.participant.iter().find(|p| p.id.as_str() == "EU").unwrap();
        assert_eq!(eu.members.len(), 27);
        assert_eq!(r.participant[0].id.as_str(), "BW");
        assert_eq!(r.observer.len(), 2);
    }

    #[test]
    fn bad_registries_are_refused_with_the_reason() {
        let dup =
            "[[participant]]\nid = \"BW\"\nname = \"B\"\nmembers = [\"BW\"]\nmax_certificate_validity_days = 60\n";
        assert!(Registry::parse(&format!("{dup}{dup}")).unwrap_err().to_string().contains("BW is listed twice"));
        let bad = dup.replace("\"BW\"\nname", "\"bw\"\nname");
        assert!(Registry::parse(&bad).unwrap_err().to_string().contains("two upper-case"));
    }
}
