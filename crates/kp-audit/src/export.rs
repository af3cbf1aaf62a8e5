//! The portable export of a ledger (`proto/kp/v1/ledger.proto`): a stream of length-delimited
//! protobuf messages — a header with the genesis, one item per block with its bytes exactly as
//! signed and stored, and an end mark with the block count, so that a transfer cut short is
//! told apart from a complete export.
//!
//! The reader trusts nothing: each message is bounded before it is read, decoded strictly, and
//! a stream that ends without its mark, or whose mark disagrees with the blocks read, is an
//! error. What the blocks say is for the audit to check.

use kp_domain::Genesis;
use kp_proto::pb;
use kp_store::RawBlock;
use prost::Message;
use std::io::{self, BufRead, Write};

/// The export format this build writes and reads.
pub const EXPORT_FORMAT_VERSION: u32 = 1;

/// Largest message accepted in an export (a block of 16 MiB of events fits with room).
pub const MAX_EXPORT_MESSAGE_BYTES: u64 = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("reading the export: {0}")]
    Io(#[from] io::Error),
    #[error("the export is empty")]
    Empty,
    #[error("message {index} of the export declares {size} bytes, more than {MAX_EXPORT_MESSAGE_BYTES}")]
    TooLarge { index: u64, size: u64 },
    #[error("message {index} of the export has a malformed length prefix")]
    BadLength { index: u64 },
    #[error("message {index} of the export is cut short")]
    Truncated { index: u64 },
    #[error("message {index} of the export does not decode: {reason}")]
    Malformed { index: u64, reason: String },
    #[error("the export is format version {found}; this build reads version {EXPORT_FORMAT_VERSION}")]
    FormatVersion { found: u32 },
    #[error("the export's genesis does not decode: {0}")]
    Genesis(kp_proto::EdgeError),
    #[error("the export ends after {blocks} blocks without its end mark: it is incomplete")]
    NoEnd { blocks: u64 },
    #[error("the export's end mark counts {claimed} blocks, the stream holds {actual}")]
    EndMismatch { claimed: u64, actual: u64 },
    #[error("the export has data after its end mark")]
    TrailingData,
}

/// Writes an export: [`ExportWriter::new`] (header), [`ExportWriter::block`] for each block
/// from height 1 in order, then [`ExportWriter::finish`] (end mark, flush).
#[derive(Debug)]
pub struct ExportWriter<W: Write> {
    out: W,
    blocks: u64,
    buf: Vec<u8>,
}

impl<W: Write> ExportWriter<W> {
    /// Starts an export of the ledger of `genesis_bytes` (its canonical encoding).
    pub fn new(mut out: W, genesis_bytes: &[u8]) -> io::Result<ExportWriter<W>> {
        let header = pb::LedgerExportHeader { format_version: EXPORT_FORMAT_VERSION, genesis: genesis_bytes.to_vec() };
        out.write_all(&header.encode_length_delimited_to_vec())?;
        Ok(ExportWriter { out, blocks: 0, buf: Vec::new() })
    }

    /// The next block's parts, exactly as signed and stored (taken, not copied: an export
    /// passes every byte of the ledger through here).
    pub fn block(&mut self, header: Vec<u8>, events: Vec<Vec<u8>>, certificate: Vec<u8>) -> io::Result<()> {
        let item = pb::ExportItem {
            item: Some(pb::export_item::Item::Block(pb::ExportedBlock { header, events, certificate })),
        };
        self.buf.clear();
        item.encode_length_delimited(&mut self.buf).map_err(io::Error::other)?;
        self.out.write_all(&self.buf)?;
        self.blocks += 1;
        Ok(())
    }

    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Writes the end mark and flushes; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let end =
            pb::ExportItem { item: Some(pb::export_item::Item::End(pb::LedgerExportEnd { blocks: self.blocks })) };
        self.out.write_all(&end.encode_length_delimited_to_vec())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads an export: the genesis first, then the blocks as an iterator of [`RawBlock`]s.
#[derive(Debug)]
pub struct ExportReader<R: BufRead> {
    input: R,
    genesis: Genesis,
    genesis_bytes: Vec<u8>,
    /// Messages read so far (the header is message 0).
    index: u64,
    blocks: u64,
    done: bool,
}

impl<R: BufRead> ExportReader<R> {
    pub fn new(mut input: R) -> Result<ExportReader<R>, ExportError> {
        let bytes = read_message(&mut input, 0)?.ok_or(ExportError::Empty)?;
        let header: pb::LedgerExportHeader = decode(&bytes, 0)?;
        if header.format_version != EXPORT_FORMAT_VERSION {
            return Err(ExportError::FormatVersion { found: header.format_version });
        }
        let genesis = kp_proto::decode_genesis(&header.genesis).map_err(ExportError::Genesis)?;
        Ok(ExportReader { input, genesis, genesis_bytes: header.genesis, index: 1, blocks: 0, done: false })
    }

    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The genesis exactly as the export carries it.
    pub fn genesis_bytes(&self) -> &[u8] {
        &self.genesis_bytes
    }

    fn next_block(&mut self) -> Result<Option<RawBlock>, ExportError> {
        let index = self.index;
        let Some(bytes) = read_message(&mut self.input, index)? else {
            return Err(ExportError::NoEnd { blocks: self.blocks });
        };
        self.index += 1;
        let item: pb::ExportItem = decode(&bytes, index)?;
        match item.item {
            Some(pb::export_item::Item::Block(b)) => {
                self.blocks += 1;
                Ok(Some(RawBlock { header: b.header, events: b.events, certificate: b.certificate }))
            }
            Some(pb::export_item::Item::End(end)) => {
                if end.blocks != self.blocks {
                    return Err(ExportError::EndMismatch { claimed: end.blocks, actual: self.blocks });
                }
                if !self.input.fill_buf()?.is_empty() {
                    return Err(ExportError::TrailingData);
                }
                Ok(None)
            }
            None => Err(ExportError::Malformed { index, reason: "an item holding neither a block nor the end".into() }),
        }
    }
}

impl<R: BufRead> Iterator for ExportReader<R> {
    type Item = Result<RawBlock, ExportError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.next_block();
        if !matches!(r, Ok(Some(_))) {
            self.done = true;
        }
        r.transpose()
    }
}

/// Decodes one message strictly (canonical protobuf, no unknown fields).
fn decode<M: Message + Default>(bytes: &[u8], index: u64) -> Result<M, ExportError> {
    kp_proto::decode_canonical("export message", bytes)
        .map_err(|e| ExportError::Malformed { index, reason: e.to_string() })
}

/// Reads one length-delimited message; `None` at a clean end of the stream.
fn read_message<R: BufRead>(input: &mut R, index: u64) -> Result<Option<Vec<u8>>, ExportError> {
    // A varint of at most 10 bytes; the stream may end only before its first byte. Only its
    // shortest form is read (as the writer writes it), so that one ledger has one export: a
    // last byte of 0 after the first adds nothing, and a tenth byte may hold only bit 63.
    let mut size: u64 = 0;
    for i in 0..10u32 {
        let byte = match input.fill_buf()?.first() {
            Some(b) => *b,
            None if i == 0 => return Ok(None),
            None => return Err(ExportError::Truncated { index }),
        };
        input.consume(1);
        if (i > 0 && byte == 0) || (i == 9 && byte > 1) {
            return Err(ExportError::BadLength { index });
        }
        size |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if size > MAX_EXPORT_MESSAGE_BYTES {
                return Err(ExportError::TooLarge { index, size });
            }
            let mut bytes = vec![0; usize::try_from(size).map_err(|_| ExportError::TooLarge { index, size })?];
            input.read_exact(&mut bytes).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => ExportError::Truncated { index },
                _ => ExportError::Io(e),
            })?;
            return Ok(Some(bytes));
        }
    }
    Err(ExportError::BadLength { index })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn genesis_bytes() -> Vec<u8> {
        let net = kp_testkit::TestNet::new(&["BW", "EU"], 1);
        kp_proto::encode_genesis(&net.genesis)
    }

    fn export(blocks: u8) -> Vec<u8> {
        let mut w = ExportWriter::new(Vec::new(), &genesis_bytes()).unwrap();
        for i in 0..blocks {
            w.block(vec![i; 3], vec![vec![1, 2], vec![3]], b"cert".to_vec()).unwrap();
        }
        w.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<RawBlock>, ExportError> {
        ExportReader::new(bytes)?.collect()
    }

    #[test]
    fn an_export_reads_back_exactly() {
        let blocks = read_all(&export(3)).unwrap();
        assert_eq!(blocks.len(), 3);
        assert_eq!(
            blocks[2],
            RawBlock { header: vec![2; 3], events: vec![vec![1, 2], vec![3]], certificate: b"cert".to_vec() }
        );
        assert!(read_all(&export(0)).unwrap().is_empty());
    }

    #[test]
    fn damaged_exports_are_refused_with_their_reason() {
        let full = export(3);
        assert!(matches!(ExportReader::new(&[][..]), Err(ExportError::Empty)));
        // Cut at every length: an error, never a shorter ledger taken for the whole.
        for cut in 1..full.len() {
            let r = read_all(&full[..cut]);
            assert!(r.is_err(), "cut at {cut} of {} was accepted", full.len());
        }
        let mut trailing = full.clone();
        trailing.push(0);
        assert!(matches!(read_all(&trailing), Err(ExportError::TrailingData)));
        // A length prefix past the limit is refused before any allocation.
        let header = pb::LedgerExportHeader { format_version: EXPORT_FORMAT_VERSION, genesis: genesis_bytes() };
        let mut huge = header.encode_length_delimited_to_vec();
        huge.extend([0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(read_all(&huge), Err(ExportError::TooLarge { index: 1, .. })));
    }

    /// `bytes` with the length prefix at `at` in a form `extra` bytes longer than its shortest,
    /// and with a tenth byte carrying bit 64 (lost in a `u64`) when `wrap`.
    fn longer_prefix(bytes: &[u8], at: usize, extra: usize, wrap: bool) -> Vec<u8> {
        let len = prost::decode_length_delimiter(&bytes[at..]).unwrap();
        let mut prefix = Vec::new();
        prost::encode_length_delimiter(len, &mut prefix).unwrap();
        let short = prefix.len();
        *prefix.last_mut().unwrap() |= 0x80;
        if wrap {
            prefix.resize(9, 0x80);
            prefix.push(0x02);
        } else {
            prefix.extend(std::iter::repeat_n(0x80, extra - 1));
            prefix.push(0x00);
        }
        [&bytes[..at], &prefix, &bytes[at + short..]].concat()
    }

    /// Found by the `export_reader` fuzz target (tests/fuzz): a length prefix in a longer form
    /// than its shortest (0x85 0x00 for 5) was read, so that two files held one export.
    #[test]
    fn a_length_prefix_not_in_its_shortest_form_is_refused() {
        let full = export(1);
        let header = prost::decode_length_delimiter(full.as_slice()).unwrap();
        let block_at = prost::length_delimiter_len(header) + header;
        for (at, index) in [(0, 0), (block_at, 1)] {
            for extra in [1, 2] {
                let r = read_all(&longer_prefix(&full, at, extra, false));
                assert!(matches!(r, Err(ExportError::BadLength { index: i }) if i == index), "{at} {extra}: {r:?}");
            }
            let r = read_all(&longer_prefix(&full, at, 0, true));
            assert!(matches!(r, Err(ExportError::BadLength { index: i }) if i == index), "{at} wrapped: {r:?}");
        }
        assert_eq!(read_all(&full).unwrap().len(), 1);
    }

    #[test]
    fn an_export_of_another_format_is_refused() {
        let header = pb::LedgerExportHeader { format_version: 2, genesis: genesis_bytes() };
        let bytes = header.encode_length_delimited_to_vec();
        assert!(matches!(ExportReader::new(bytes.as_slice()), Err(ExportError::FormatVersion { found: 2 })));
    }
}
