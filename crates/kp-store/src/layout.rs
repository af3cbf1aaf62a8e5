//! Key and value encodings of every column family (store format version 4). Integers are
//! big-endian so that byte order is numeric order; variable-length parts that are followed by
//! more key are length-prefixed so that one prefix never matches another.

use kp_domain::{CertificateNumber, Hash32, ParticipantId, PublicKey, Timestamp};

/// The store format this build writes and reads.
pub const STORE_FORMAT_VERSION: u32 = 4;

pub const META_FORMAT: &[u8] = b"format";
pub const META_CHAIN: &[u8] = b"chain";
pub const META_GENESIS: &[u8] = b"genesis";
pub const META_HEAD: &[u8] = b"head";

/// Where an event sits in the ledger: block height and index in the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub height: u64,
    pub index: u32,
}

impl Position {
    pub fn to_bytes(self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..8].copy_from_slice(&self.height.to_be_bytes());
        b[8..].copy_from_slice(&self.index.to_be_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Option<Position> {
        let b: &[u8; 12] = b.try_into().ok()?;
        let (h, i) = b.split_at(8);
        Some(Position { height: u64::from_be_bytes(h.try_into().ok()?), index: u32::from_be_bytes(i.try_into().ok()?) })
    }
}

/// The last committed block: what the store's other contents must agree with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// 0: only the genesis.
    pub height: u64,
    /// The block hash (the genesis hash at height 0).
    pub hash: Hash32,
    pub time: Timestamp,
    /// Events committed from genesis through this block.
    pub events: u64,
}

impl Head {
    pub fn to_bytes(self) -> Vec<u8> {
        let mut b = Vec::with_capacity(56);
        b.extend_from_slice(&self.height.to_be_bytes());
        b.extend_from_slice(&self.hash.0);
        b.extend_from_slice(&self.time.0.to_be_bytes());
        b.extend_from_slice(&self.events.to_be_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Option<Head> {
        if b.len() != 56 {
            return None;
        }
        Some(Head {
            height: u64_at(b, 0)?,
            hash: Hash32(b[8..40].try_into().ok()?),
            time: Timestamp(u64_at(b, 40)?),
            events: u64_at(b, 48)?,
        })
    }
}

pub fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

pub fn height_key(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

/// Custody prefix of a certificate: `len(number) || number`.
pub fn custody_prefix(number: &CertificateNumber) -> Vec<u8> {
    let n = number.as_str().as_bytes();
    let mut k = Vec::with_capacity(1 + n.len() + 12);
    // Certificate numbers are at most 64 bytes (checked at the edge).
    k.push(u8::try_from(n.len()).unwrap_or(u8::MAX));
    k.extend_from_slice(n);
    k
}

pub fn custody_key(number: &CertificateNumber, at: Position) -> Vec<u8> {
    let mut k = custody_prefix(number);
    k.extend_from_slice(&at.to_bytes());
    k
}

/// The participant's role in a certificate, as the review index keys it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TradeRole {
    /// The exporting participant (which also issues the certificate).
    Exporter,
    Importer,
}

impl TradeRole {
    pub fn byte(self) -> u8 {
        match self {
            TradeRole::Exporter => b'E',
            TradeRole::Importer => b'I',
        }
    }
}

pub fn participant_prefix(participant: ParticipantId, role: TradeRole) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + 8 + 64);
    k.extend_from_slice(participant.as_str().as_bytes());
    k.push(role.byte());
    k
}

pub fn participant_key(
    participant: ParticipantId,
    role: TradeRole,
    issued: Timestamp,
    number: &CertificateNumber,
) -> Vec<u8> {
    let mut k = participant_prefix(participant, role);
    k.extend_from_slice(&issued.0.to_be_bytes());
    k.extend_from_slice(number.as_str().as_bytes());
    k
}

pub fn pending_receipt_key(importer: ParticipantId, number: &CertificateNumber) -> Vec<u8> {
    let mut k = importer.as_str().as_bytes().to_vec();
    k.extend_from_slice(number.as_str().as_bytes());
    k
}

/// (height, seq) keys of the consensus and evidence families.
pub fn seq_key(height: u64, seq: u32) -> Vec<u8> {
    let mut k = height.to_be_bytes().to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Voter sets: `count:u16 || (id:2 || key:32)*`.
pub fn encode_voters(voters: &[(ParticipantId, PublicKey)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(2 + voters.len() * 34);
    b.extend_from_slice(&u16::try_from(voters.len()).unwrap_or(u16::MAX).to_be_bytes());
    for (id, key) in voters {
        b.extend_from_slice(id.as_str().as_bytes());
        b.extend_from_slice(&key.0);
    }
    b
}

pub fn decode_voters(b: &[u8]) -> Option<Vec<(ParticipantId, PublicKey)>> {
    let n = usize::from(u16::from_be_bytes(b.get(..2)?.try_into().ok()?));
    let rest = &b[2..];
    if rest.len() != n * 34 {
        return None;
    }
    rest.chunks_exact(34)
        .map(|c| {
            let id = ParticipantId::new(std::str::from_utf8(&c[..2]).ok()?).ok()?;
            Some((id, PublicKey(c[2..].try_into().ok()?)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn encodings_round_trip_and_sort_numerically() {
        let p = Position { height: 7, index: 3 };
        assert_eq!(Position::from_bytes(&p.to_bytes()), Some(p));
        assert!(Position { height: 1, index: 9 }.to_bytes() < Position { height: 2, index: 0 }.to_bytes());
        let head = Head { height: 9, hash: Hash32([4; 32]), time: Timestamp(77), events: 1_000 };
        assert_eq!(Head::from_bytes(&head.to_bytes()), Some(head));
        assert_eq!(Head::from_bytes(&head.to_bytes()[1..]), None);
        let voters = vec![(ParticipantId::new("BW").unwrap(), PublicKey([1; 32]))];
        assert_eq!(decode_voters(&encode_voters(&voters)), Some(voters));
        // A short number is never a prefix of a longer one's custody keys.
        let a = CertificateNumber::new("BW-1").unwrap();
        let b = CertificateNumber::new("BW-10").unwrap();
        assert!(!custody_key(&b, p).starts_with(&custody_prefix(&a)));
    }
}
