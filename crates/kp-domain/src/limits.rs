//! Hard limits on everything an outsider can make grow. They are part of the protocol: a node
//! rejects anything beyond them before doing any other work.

/// Largest encoded signed event (envelope) accepted from a client or a peer.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// Longest free-text field (names, reasons, addresses), in bytes of UTF-8.
pub const MAX_TEXT_BYTES: usize = 256;
/// Longest certificate number, in bytes (ASCII).
pub const MAX_CERTIFICATE_NUMBER_BYTES: usize = 32;
/// Longest seal identifier or zone name, in bytes.
pub const MAX_LABEL_BYTES: usize = 64;
/// Most tamper-evident seals on one shipment.
pub const MAX_SEALS: usize = 64;
/// Most production zones in one report or one restriction.
pub const MAX_ZONES: usize = 64;
/// Most member countries of one participant (the EU has 27).
pub const MAX_MEMBERS: usize = 64;
/// Most authority keys of one participant.
pub const MAX_AUTHORITY_KEYS: usize = 16;
/// Most approvals carried by one governance act (one per participant, with room to grow).
pub const MAX_APPROVALS: usize = 256;
/// Most participants and observers in a genesis.
pub const MAX_PARTICIPANTS: usize = 256;
pub const MAX_OBSERVERS: usize = 32;
/// Largest parcel count on one certificate.
pub const MAX_PARCELS: u32 = 1_000_000;
