//! The domain model of the Kimberley Process custody ledger.
//!
//! Architecture invariant: this crate knows nothing of encodings on the wire (protobuf), of
//! signatures, of storage, of the network or of the clock. Every other crate points inward to
//! it. Every type that crosses a trust boundary has a validating constructor; a value of these
//! types is well-formed by construction (lengths bounded, codes in range, quantities non-zero
//! where the KPCS requires a quantity).
//!
//! Quantities are integers: carats in hundredths ([`Carats`]), values in US cents
//! ([`UsdCents`]). There is no floating point anywhere in the ledger.

mod event;
mod genesis;
mod ids;
mod limits;
mod participant;
mod quantity;
mod time_types;

pub use event::*;
pub use genesis::*;
pub use ids::*;
pub use limits::*;
pub use participant::*;
pub use quantity::*;
pub use time_types::*;

/// An error in a value that came from outside: the field it concerns and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    /// Dotted path of the offending field, e.g. `certificate.lines[1].hs_code`.
    pub field: String,
    /// What is wrong with it, in words a national authority can act on.
    pub problem: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into() }
    }

    /// The same error, with `prefix.` put before the field path.
    #[must_use]
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() { prefix.to_owned() } else { format!("{prefix}.{}", self.field) };
        self
    }
}
