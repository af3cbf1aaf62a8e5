//! `kpledger report | anomalies | stats`: what review-visit teams and statisticians ask of the
//! ledger. The committed events come from a node (its blocks, streamed from height 1 to its
//! head) or from an export file; `kp_review` does the rest.
//!
//! Reading from a node trusts that node for what it serves; an export file can be audited first
//! (`kpledger audit --file`), and every finding names the event ids that prove it, so that each
//! can be checked with `kpledger proof`.

use anyhow::{Context, Result, bail};
use kp_audit::ExportReader;
use kp_domain::{Date, ParticipantId};
use kp_review::{Committed, Review};
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Where the committed ledger is read from.
#[derive(Debug, Clone)]
pub enum LedgerSource {
    Node(String),
    File(PathBuf),
}

/// Feeds one block's events to the review.
fn add_block(review: &mut Review, height: u64, header: &[u8], events: &[Vec<u8>]) -> Result<()> {
    let h = kp_consensus::block::BlockHeader::decode(header).with_context(|| format!("block {height}'s header"))?;
    review.note_block(h.time);
    for (i, bytes) in events.iter().enumerate() {
        let e = kp_proto::decode_event(bytes).with_context(|| format!("event {i} of block {height}"))?;
        review.add(Committed { height, time: h.time, id: e.id(), payload: e.payload() });
    }
    Ok(())
}

/// The review model of the whole committed ledger of `source`. With `only`, a node may withhold
/// from this caller events that do not concern that participant (what a report on it needs
/// is all there; anything else would be incomplete, so it is refused).
pub fn load(source: &LedgerSource, only: Option<ParticipantId>) -> Result<Review> {
    match source {
        LedgerSource::File(path) => {
            let input = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let reader = ExportReader::new(BufReader::with_capacity(1 << 20, input))
                .with_context(|| format!("{} is not a ledger export", path.display()))?;
            let mut review = Review::new(reader.genesis());
            for (height, block) in (1u64..).zip(reader) {
                let b = block.with_context(|| format!("reading {}", path.display()))?;
                add_block(&mut review, height, &b.header, &b.events)?;
            }
            Ok(review)
        }
        LedgerSource::Node(addr) => crate::node::block_on(async {
            let mut client = crate::node::connect(addr).await?;
            let start = crate::node::ledger_start(&mut client).await?;
            let mut review = Review::new(&start.genesis);
            crate::node::each_block(&mut client, start.head, only.is_some(), |b| {
                if let Some(p) = only {
                    let p = p.as_str();
                    if let Some(r) = b.redacted.iter().find(|r| r.exporter == p || r.importer == p) {
                        bail!(
                            "the node withholds event {} of block {} (certificate {}), which concerns {p}, from this \
                             caller: a report on {p} needs an identity entitled to it",
                            r.event_id,
                            b.height,
                            r.certificate
                        );
                    }
                }
                let events: Vec<Vec<u8>> = b.events.into_iter().filter(|e| !e.is_empty()).collect();
                add_block(&mut review, b.height, &b.header, &events)
            })
            .await?;
            Ok(review)
        }),
    }
}

pub fn source(node: Option<String>, file: Option<PathBuf>) -> Result<LedgerSource> {
    match (node, file) {
        (Some(n), None) => Ok(LedgerSource::Node(n)),
        (None, Some(f)) => Ok(LedgerSource::File(f)),
        _ => bail!("give either --node ADDR or --file LEDGER"),
    }
}

pub fn parse_date(what: &str, s: &str) -> Result<Date> {
    Date::parse(s).map_err(|e| anyhow::anyhow!("--{what} {s:?}: {e} (expected YYYY-MM-DD)"))
}

pub fn parse_participant(s: &str) -> Result<ParticipantId> {
    ParticipantId::new(&s.to_ascii_uppercase()).map_err(|e| anyhow::anyhow!("{s:?} is not a participant code: {e}"))
}

/// Writes `text` to `path`.
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
