//! `kpledger audit | export | proof | verify-proof`: what auditors and review teams run, trusting
//! no node — a ledger is replayed from its genesis, a proof checked against the genesis alone.

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kp_audit::proof::{self, ProofReport};
use kp_audit::replay::Source;
use kp_audit::{AuditReport, Discrepancy, ExportReader, ExportWriter};
use kp_domain::{CertificateNumber, Genesis};
use kp_node::pb;
use kp_store::{RocksBackend, Store};
use serde::Serialize;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::time::{Duration, Instant};

/// An audit's report with how long it took.
#[derive(Debug, Serialize)]
pub struct AuditRun {
    #[serde(flatten)]
    pub report: AuditReport,
    /// What was audited: a data directory or an export file.
    pub source: String,
    pub elapsed_s: f64,
    pub events_per_s: f64,
    pub signatures_per_s: f64,
}

impl std::fmt::Display for AuditRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "audit of {}", self.source)?;
        writeln!(f, "{}", self.report)?;
        write!(
            f,
            "time        {:.1} s ({:.0} events/s, {:.0} signatures/s)",
            self.elapsed_s, self.events_per_s, self.signatures_per_s
        )
    }
}

fn bar(total: Option<u64>) -> ProgressBar {
    // Drawn only on a terminal (indicatif hides itself otherwise).
    let (bar, template) = match total {
        Some(n) => (ProgressBar::new(n), "{elapsed_precise} [{bar:40}] {pos}/{len} blocks {msg}"),
        None => (ProgressBar::new_spinner(), "{elapsed_precise} {spinner} {pos} blocks {msg}"),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[allow(clippy::float_arithmetic, clippy::cast_precision_loss)] // rates for people to read
fn run_audit(genesis: &Genesis, source: Source<'_>, total: Option<u64>, what: String) -> AuditRun {
    let bar = bar(total);
    let started = Instant::now();
    let report = kp_audit::audit(genesis, source, &mut |blocks, events| {
        bar.set_position(blocks);
        bar.set_message(format!("{events} events"));
    });
    bar.finish_and_clear();
    let elapsed_s = started.elapsed().as_secs_f64();
    let rate = |n: u64| if elapsed_s > 0.0 { n as f64 / elapsed_s } else { 0.0 };
    AuditRun {
        events_per_s: rate(report.events),
        signatures_per_s: rate(report.signatures.total()),
        report,
        source: what,
        elapsed_s,
    }
}

/// Audits a node's store in `data_dir` (the node must be stopped: the store is opened for
/// reading its blocks as stored, nothing else).
pub fn audit_data_dir(data_dir: &Path, genesis: &Genesis) -> Result<AuditRun> {
    if !data_dir.join("CURRENT").is_file() {
        bail!("{} holds no ledger store", data_dir.display());
    }
    let backend = RocksBackend::open(data_dir)
        .with_context(|| format!("opening the store in {} (is its node still running?)", data_dir.display()))?;
    let store = Store::open_for_audit(backend, genesis).context("the store cannot be read")?;
    let head = store.head().height;
    let source: Source<'_> = Box::new((1..=head).map(|h| match store.raw_block(h) {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(format!("block {h} is not in the store")),
        Err(e) => Err(e.to_string()),
    }));
    Ok(run_audit(genesis, source, Some(head), data_dir.display().to_string()))
}

/// Audits an export file. With `expected`, its genesis must be that genesis.
pub fn audit_file(file: &Path, expected: Option<&Genesis>) -> Result<AuditRun> {
    let input = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let reader = ExportReader::new(BufReader::with_capacity(1 << 20, input))
        .with_context(|| format!("{} is not a ledger export", file.display()))?;
    let genesis = reader.genesis().clone();
    if let Some(g) = expected {
        let (found, wanted) = (kp_proto::genesis_hash(&genesis), kp_proto::genesis_hash(g));
        if found != wanted {
            bail!("the export is of the ledger of genesis {found}, not of the genesis given ({wanted})");
        }
    }
    let source: Source<'_> = Box::new(reader.map(|b| b.map_err(|e| e.to_string())));
    Ok(run_audit(&genesis, source, None, file.display().to_string()))
}

#[derive(Debug, Serialize)]
pub struct ExportSummary {
    pub file: String,
    pub chain_id: String,
    pub genesis_hash: String,
    pub blocks: u64,
    pub events: u64,
    pub bytes: u64,
}

/// Exports a node's ledger, genesis and blocks up to its head when the export starts, into
/// `out` (written beside it first, then renamed: a failed export leaves no file behind).
pub fn export(addr: &str, out: &Path) -> Result<ExportSummary> {
    let partial = out.with_extension("partial");
    let result = crate::node::block_on(async {
        let mut client = crate::node::connect(addr).await?;
        let crate::node::LedgerStart { genesis_bytes, genesis, head } = crate::node::ledger_start(&mut client).await?;
        let file = std::fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
        let mut writer = ExportWriter::new(BufWriter::with_capacity(1 << 20, file), &genesis_bytes)?;
        let bar = bar(Some(head));
        let mut events = 0u64;
        crate::node::each_block(&mut client, head, false, |b| {
            events += b.events.len() as u64;
            bar.set_position(b.height);
            writer.block(b.header, b.events, b.certificate)?;
            Ok(())
        })
        .await?;
        bar.finish_and_clear();
        let file = writer.finish()?.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(ExportSummary {
            file: out.display().to_string(),
            chain_id: genesis.chain_id.to_string(),
            genesis_hash: kp_proto::genesis_hash(&genesis).to_string(),
            blocks: head,
            events,
            bytes: file.metadata()?.len(),
        })
    });
    match result {
        Ok(summary) => {
            std::fs::rename(&partial, out).with_context(|| format!("moving the export to {}", out.display()))?;
            Ok(summary)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ProofSummary {
    pub file: String,
    pub certificate: String,
    pub bytes: usize,
}

/// Fetches the proof bundle of `certificate` from a node into `out`.
pub fn fetch_proof(addr: &str, certificate: &str, out: &Path) -> Result<ProofSummary> {
    let number = CertificateNumber::new(certificate)
        .map_err(|e| anyhow::anyhow!("{certificate:?} is not a certificate number: {e}"))?;
    let bundle = crate::node::block_on(async {
        let mut client = crate::node::connect(addr).await?;
        let r = client
            .get_proof(pb::GetProofRequest { certificate: number.to_string() })
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        Ok(r.into_inner().bundle)
    })?;
    std::fs::write(out, &bundle).with_context(|| format!("writing {}", out.display()))?;
    Ok(ProofSummary { file: out.display().to_string(), certificate: number.to_string(), bytes: bundle.len() })
}

/// Checks a proof bundle file against a genesis: what it proves, or why it fails.
pub fn verify_proof(bundle: &Path, genesis: &Genesis) -> Result<Result<ProofReport, Discrepancy>> {
    let len = std::fs::metadata(bundle).with_context(|| format!("reading {}", bundle.display()))?.len();
    if len > proof::MAX_BUNDLE_BYTES as u64 {
        bail!("{} is {len} bytes, more than a bundle's {} at most", bundle.display(), proof::MAX_BUNDLE_BYTES);
    }
    let bytes = std::fs::read(bundle).with_context(|| format!("reading {}", bundle.display()))?;
    Ok(proof::verify(&bytes, genesis))
}
