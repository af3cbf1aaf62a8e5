//! Identifiers and bounded strings. Each has a validating constructor; none can hold a value
//! outside its format.

use crate::{FieldError, MAX_CERTIFICATE_NUMBER_BYTES, MAX_LABEL_BYTES, MAX_TEXT_BYTES};
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A KP participant: an ISO 3166-1 alpha-2 code, or `EU` for the European Union.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ParticipantId([u8; 2]);

/// A country (of origin, or a member of a participant): ISO 3166-1 alpha-2.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryCode([u8; 2]);

fn two_upper_letters(s: &str, what: &str) -> Result<[u8; 2], FieldError> {
    match s.as_bytes() {
        [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Ok([*a, *b]),
        _ => Err(FieldError::new(
            "",
            format!("{what} must be two upper-case ASCII letters (ISO 3166-1 alpha-2), got {s:?}"),
        )),
    }
}

macro_rules! two_letter_code {
    ($ty:ident, $what:literal) => {
        impl $ty {
            pub fn new(s: &str) -> Result<Self, FieldError> {
                two_upper_letters(s, $what).map(Self)
            }
            pub fn as_str(&self) -> &str {
                // Invariant: constructed from two ASCII upper-case letters only.
                std::str::from_utf8(&self.0).unwrap_or("??")
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl TryFrom<String> for $ty {
            type Error = FieldError;
            fn try_from(s: String) -> Result<Self, FieldError> {
                Self::new(&s)
            }
        }
        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.as_str().to_owned()
            }
        }
    };
}
two_letter_code!(ParticipantId, "a participant id");
two_letter_code!(CountryCode, "a country code");

/// A KP certificate number: unique, beginning with the issuing participant's code
/// (checked by the rules engine), then 1 to 30 characters of `A-Z 0-9 - /`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CertificateNumber(String);

impl CertificateNumber {
    pub fn new(s: &str) -> Result<Self, FieldError> {
        if s.len() < 3 || s.len() > MAX_CERTIFICATE_NUMBER_BYTES {
            return Err(FieldError::new(
                "",
                format!("must be 3 to {MAX_CERTIFICATE_NUMBER_BYTES} characters, got {}", s.len()),
            ));
        }
        if let Some(c) = s.chars().find(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '-' || *c == '/')) {
            return Err(FieldError::new("", format!("character {c:?} is not allowed (A-Z, 0-9, '-', '/')")));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The first two characters, which must name the issuing participant.
    pub fn prefix(&self) -> &str {
        &self.0[..2]
    }
}
impl fmt::Display for CertificateNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for CertificateNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
impl TryFrom<String> for CertificateNumber {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        Self::new(&s)
    }
}
impl From<CertificateNumber> for String {
    fn from(v: CertificateNumber) -> String {
        v.0
    }
}

/// Free text of at most [`MAX_TEXT_BYTES`] bytes, no control characters. May be empty only
/// where a field says so.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Text(String);

/// A short identifier (seal id, zone, port) of 1 to [`MAX_LABEL_BYTES`] bytes, no control characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Label(String);

fn check_text(s: &str, max: usize) -> Result<(), FieldError> {
    if s.len() > max {
        return Err(FieldError::new("", format!("is {} bytes long, at most {max} allowed", s.len())));
    }
    if s.chars().any(char::is_control) {
        return Err(FieldError::new("", "contains a control character"));
    }
    Ok(())
}

impl Text {
    pub fn new(s: &str) -> Result<Self, FieldError> {
        check_text(s, MAX_TEXT_BYTES).map(|()| Self(s.to_owned()))
    }
    /// Like [`Text::new`], but an empty string is refused.
    pub fn non_empty(s: &str) -> Result<Self, FieldError> {
        if s.trim().is_empty() {
            return Err(FieldError::new("", "must not be empty"));
        }
        Self::new(s)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
impl Label {
    pub fn new(s: &str) -> Result<Self, FieldError> {
        if s.trim().is_empty() {
            return Err(FieldError::new("", "must not be empty"));
        }
        check_text(s, MAX_LABEL_BYTES).map(|()| Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
macro_rules! string_newtype_traits {
    ($ty:ident, $ctor:ident) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
        impl TryFrom<String> for $ty {
            type Error = FieldError;
            fn try_from(s: String) -> Result<Self, FieldError> {
                Self::$ctor(&s)
            }
        }
        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }
    };
}
string_newtype_traits!(Text, new);
string_newtype_traits!(Label, new);

macro_rules! bytes32 {
    ($(#[$m:meta])* $ty:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(pub [u8; 32]);

        impl $ty {
            pub fn from_slice(bytes: &[u8]) -> Result<Self, FieldError> {
                <[u8; 32]>::try_from(bytes)
                    .map(Self)
                    .map_err(|_| FieldError::new("", format!("must be 32 bytes, got {}", bytes.len())))
            }
            pub fn from_hex(s: &str) -> Result<Self, FieldError> {
                let bytes = hex::decode(s).map_err(|e| FieldError::new("", format!("not hex: {e}")))?;
                Self::from_slice(&bytes)
            }
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// The first 8 hex digits, for logs and tables.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($ty), self.short())
            }
        }
        impl TryFrom<String> for $ty {
            type Error = FieldError;
            fn try_from(s: String) -> Result<Self, FieldError> {
                Self::from_hex(&s)
            }
        }
        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.to_hex()
            }
        }
    };
}
bytes32!(
    /// An Ed25519 public key (compressed Edwards point), as it appears in genesis and events.
    /// Whether it is a valid point is checked by the crypto crate when it verifies.
    PublicKey
);
bytes32!(
    /// A SHA-256 digest.
    Hash32
);
bytes32!(
    /// The id of an event: SHA-256 of its signed envelope, exactly as stored.
    EventId
);

/// The chain id: names one network. Bound into every signature, so that an event signed for
/// one network cannot be replayed on another. 1 to 64 characters of `a-z 0-9 - . _`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChainId(String);

impl ChainId {
    pub const MAX_BYTES: usize = 64;
    pub fn new(s: &str) -> Result<Self, FieldError> {
        if s.is_empty() || s.len() > Self::MAX_BYTES {
            return Err(FieldError::new("chain_id", format!("must be 1 to {} characters", Self::MAX_BYTES)));
        }
        if let Some(c) =
            s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_')))
        {
            return Err(FieldError::new(
                "chain_id",
                format!("character {c:?} is not allowed (a-z, 0-9, '-', '.', '_')"),
            ));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_newtype_traits!(ChainId, new);

/// An observer organisation's short id (`WDC`, `CSC`, ...): 2 to 16 upper-case letters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObserverId(String);

impl ObserverId {
    pub fn new(s: &str) -> Result<Self, FieldError> {
        if !(2..=16).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(FieldError::new("", format!("an observer id is 2 to 16 upper-case letters, got {s:?}")));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_newtype_traits!(ObserverId, new);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(ParticipantId::new("BW").unwrap().as_str(), "BW");
        assert!(ParticipantId::new("bw").is_err());
        assert!(ParticipantId::new("BWA").is_err());
        assert!(ParticipantId::new("").is_err());
        assert!(ParticipantId::new("É").is_err());
    }

    #[test]
    fn certificate_numbers() {
        assert_eq!(CertificateNumber::new("BW-2026-000001").unwrap().prefix(), "BW");
        assert!(CertificateNumber::new("BW").is_err());
        assert!(CertificateNumber::new("bw-1").is_err());
        assert!(CertificateNumber::new(&"A".repeat(33)).is_err());
        assert!(CertificateNumber::new("BW 1").is_err());
    }

    #[test]
    fn texts() {
        assert!(Text::new(&"x".repeat(MAX_TEXT_BYTES)).is_ok());
        assert!(Text::new(&"x".repeat(MAX_TEXT_BYTES + 1)).is_err());
        assert!(Text::new("a\nb").is_err());
        assert!(Text::non_empty("  ").is_err());
        assert!(Label::new("").is_err());
        assert!(ChainId::new("kp-main.1").is_ok());
        assert!(ChainId::new("KP").is_err());
    }

    #[test]
    fn hex_keys_round_trip() {
        let k = PublicKey([7; 32]);
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), k);
        assert!(PublicKey::from_hex("abcd").is_err());
    }
}
