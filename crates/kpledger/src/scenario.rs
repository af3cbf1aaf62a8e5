//! `kpledger scenario run FILE --dir TESTNET`: one of the KP's own decision cases
//! (node-config/scenarios/), replayed on a running test network of real node processes, through
//! the same client paths authorities use — governance acts and written procedures, custody
//! events, production reports — with the outcome the KP reached checked step by step, then the
//! anomaly report, an audit of the whole resulting ledger and a proof bundle checked offline.
//!
//! A scenario is TOML: its name, the sources of its facts, the participants of the network it
//! needs (the compressed set that keeps the case's roles; `scripts/scenarios.sh` makes that
//! network), and `[[step]]`s, each an action (`do = "issue"`, ...) or an expectation
//! (`do = "expect-status"`, ...). An action that the ledger must refuse says so with
//! `expect = "<rejection code>"` (docs/rules.md); otherwise it must be committed.

use crate::cert::{Refused, Submitted};
use crate::governance::{self, ActSpec};
use crate::node::{ExpectedGenesis, block_on, connect};
use anyhow::{Context, Result, anyhow, bail, ensure};
use kp_domain::*;
use kp_node::pb;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// What the KP decided, in a sentence.
    pub outcome: String,
    /// Where the facts come from.
    pub sources: Vec<String>,
    /// The participants of the network the scenario runs on (`testnet init --codes`).
    pub participants: Vec<String>,
    /// Participants admitted during the scenario (`testnet init --newcomer`).
    #[serde(default)]
    pub newcomers: Vec<String>,
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
}

/// One step. Quantities are decimal strings (carats and US dollars, two decimals at most).
#[derive(Debug, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Step {
    /// Printed, nothing else.
    Note {
        text: String,
    },
    /// A production report of `by` for the current half-year (HS 7102.10, optional zones).
    Production {
        by: String,
        carats: String,
        value: String,
        #[serde(default)]
        zones: Vec<String>,
        expect: Option<String>,
    },
    /// A certificate from `by` to `to`, issued today, valid 30 days, one HS 7102.10 line.
    Issue {
        by: String,
        to: String,
        number: String,
        carats: String,
        value: String,
        /// The origin zone (a restricted exporter must state one of its listed zones).
        zone: Option<String>,
        expect: Option<String>,
    },
    Seal {
        by: String,
        number: String,
        expect: Option<String>,
    },
    Receive {
        by: String,
        number: String,
        expect: Option<String>,
    },
    /// An ordinary governance act, drafted and approved by `by`.
    Propose {
        by: String,
        #[serde(flatten)]
        act: ActArgs,
        expect: Option<String>,
    },
    /// An act put to written procedure by `by`, closing `deadline` from now ("45s", "2m"; with
    /// `--full`, 3 s more per participant beyond the scenario's own).
    Written {
        by: String,
        #[serde(flatten)]
        act: ActArgs,
        deadline: String,
        expect: Option<String>,
    },
    /// Each of `by` approves the act (an ordinary act's draft, or a written procedure).
    Approve {
        by: Vec<String>,
        reference: String,
        expect: Option<String>,
    },
    /// `by` objects to a written procedure.
    Object {
        by: String,
        reference: String,
        reason: String,
        expect: Option<String>,
    },
    /// Waits for the procedure's deadline, then `by` concludes it; the ledger must state `outcome`.
    Conclude {
        by: String,
        reference: String,
        outcome: String,
    },
    /// The participant's status on the ledger becomes `status` (active, restricted, suspended,
    /// withdrawn), with `zones` when restricted (polled for up to a minute).
    ExpectStatus {
        participant: String,
        status: String,
        #[serde(default)]
        zones: Vec<String>,
    },
    /// The act's outcome in the governance history (applied, adopted, objected, lapsed,
    /// awaiting approval, ...), and who has still not approved.
    ExpectAct {
        reference: String,
        outcome: String,
        missing: Option<Vec<String>>,
    },
    /// The anomaly report flags (or, with `present = false`, does not flag) `kind` for `participant`.
    ExpectAnomaly {
        kind: String,
        participant: String,
        #[serde(default = "yes")]
        present: bool,
    },
    /// Starts a newcomer's node (admitted, or about to be) and waits for it to answer.
    StartNode {
        participant: String,
    },
    /// The participant's node takes part in consensus: it is a voter, its node reports it, and a
    /// block committed after this step carries its signature.
    ExpectVoter {
        participant: String,
    },
}

fn yes() -> bool {
    true
}

/// What a governance act does, as in `kpledger governance propose`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActArgs {
    pub action: String,
    pub participant: Option<String>,
    #[serde(default)]
    pub zones: Vec<String>,
    /// admit: the newcomer, whose entry `testnet init --newcomer` wrote.
    pub newcomer: Option<String>,
    pub reference: String,
    pub rationale: String,
}

impl ActArgs {
    /// "suspend CF (KP-2013-CF)", for the step's line.
    fn describe(&self) -> String {
        let who = self.participant.as_deref().or(self.newcomer.as_deref()).unwrap_or("");
        format!("{} {who} ({})", self.action, self.reference)
    }

    /// The act as `kpledger governance propose` takes it.
    fn spec(&self, net: &Net) -> ActSpec {
        ActSpec {
            action: self.action.clone(),
            participant: self.participant.clone(),
            zones: self.zones.clone(),
            participant_file: self.newcomer.as_ref().map(|n| net.dir.join(n).join("participant.json")),
            ..ActSpec::default()
        }
    }
}

/// What a run did.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub scenario: String,
    pub outcome: String,
    pub steps: Vec<String>,
    pub audit: String,
    pub proof: Option<String>,
    pub passed: bool,
}

impl Scenario {
    pub fn load(file: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let s: Scenario = toml::from_str(&text).with_context(|| format!("{} is not a scenario", file.display()))?;
        ensure!(!s.steps.is_empty(), "{}: no step", file.display());
        ensure!(!s.participants.is_empty(), "{}: no participant", file.display());
        Ok(s)
    }
}

/// The test network the scenario runs on.
struct Net {
    dir: PathBuf,
    /// The scenario's first participant: whose node the ledger is read from.
    reader: String,
    /// The scenario's participants (roles).
    roles: Vec<String>,
    /// Participants beyond the scenario's roles (`--full`): "extras" in an approval.
    extras: Vec<String>,
    expected: ExpectedGenesis,
    apis: BTreeMap<String, String>,
    /// Production report revisions so far, per participant (current half-year).
    revisions: BTreeMap<String, u32>,
    /// Nodes this run started (newcomers): stopped at the end.
    started: Vec<std::process::Child>,
    /// A certificate committed in the run, for the proof check.
    certificate: Option<String>,
    /// Carats of the certificates issued in the run (what a receipt confirms).
    issued: BTreeMap<String, String>,
}

const POLL: Duration = Duration::from_millis(250);
const WAIT: Duration = Duration::from_secs(90);

impl Net {
    fn open(dir: &Path, scenario: &Scenario, extras: &[ParticipantId]) -> Result<Net> {
        let expected = ExpectedGenesis::of_file(&dir.join("genesis.json"))?;
        let mut apis = BTreeMap::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            let config = path.join("node.toml");
            if config.is_file() {
                let code = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
                let c = kp_node::NodeConfig::load(&config)?;
                apis.insert(code, c.api.to_string());
            }
        }
        Ok(Net {
            dir: dir.to_path_buf(),
            expected,
            apis,
            reader: scenario.participants[0].clone(),
            roles: scenario.participants.clone(),
            extras: extras.iter().map(ToString::to_string).collect(),
            revisions: BTreeMap::new(),
            started: Vec::new(),
            certificate: None,
            issued: BTreeMap::new(),
        })
    }

    fn api(&self, code: &str) -> Result<&str> {
        self.apis.get(code).map(String::as_str).ok_or_else(|| anyhow!("the test network has no node for {code}"))
    }

    fn key(&self, code: &str, role: &str) -> PathBuf {
        self.dir.join(code).join(format!("{role}.key"))
    }

    /// The node the ledger is read from.
    fn reader(&self) -> Result<&str> {
        self.api(&self.reader)
    }

    /// Waits until every named participant's node has committed as far as the highest of them,
    /// so that a step submitted anywhere is checked against what the previous steps committed.
    fn settle(&self) -> Result<()> {
        let nodes: Vec<&str> = self.roles.iter().map(|r| self.api(r)).collect::<Result<_>>()?;
        let heights = || -> Result<Vec<u64>> { nodes.iter().map(|n| Ok(crate::node::status(n)?.height)).collect() };
        let top = heights()?.into_iter().max().unwrap_or(0);
        poll("every node to reach the same height", WAIT, || Ok(heights()?.iter().all(|h| *h >= top).then_some(())))
    }

    fn submit(&mut self, by: &str, role: &str, payload: &EventPayload, expect: Option<&str>) -> Result<String> {
        let node = self.api(by)?.to_owned();
        let result = crate::cert::submit(&node, &self.key(by, role), &self.expected, payload, Some(WAIT));
        judge(result, expect)
    }
}

/// Checks a submission's result against the refusal expected (none: it must be committed).
fn judge(result: Result<Submitted>, expect: Option<&str>) -> Result<String> {
    match (result, expect) {
        (Ok(s), None) => Ok(format!("committed at height {}", s.height.unwrap_or_default())),
        (Ok(s), Some(code)) => bail!("expected a refusal ({code}), but event {} was {}", s.event_id, s.outcome),
        (Err(e), Some(code)) => match e.downcast_ref::<Refused>() {
            Some(r) if r.code == code => Ok(format!("refused as expected ({code}): {}", r.reason)),
            _ => bail!("expected a refusal ({code}), got: {e:#}"),
        },
        (Err(e), None) => Err(e),
    }
}

/// Like [`judge`], for a governance call that fails with the rules' message rather than a code.
fn judge_act(result: Result<String>, expect: Option<&str>) -> Result<String> {
    match (result, expect) {
        (Ok(s), None) => Ok(s),
        (Ok(s), Some(code)) => bail!("expected a refusal ({code}), got: {s}"),
        (Err(e), Some(code)) => match e.downcast_ref::<Refused>() {
            Some(r) if r.code == code => Ok(format!("refused as expected ({code}): {}", r.reason)),
            Some(_) => bail!("expected a refusal ({code}), got: {e:#}"),
            None => Ok(format!("refused as expected ({code}): {e:#}")),
        },
        (Err(e), None) => Err(e),
    }
}

fn hundredths(field: &str, s: &str) -> Result<u64> {
    crate::cert::parse_hundredths(field, s)
}

fn code(s: &str) -> Result<ParticipantId> {
    crate::review::parse_participant(s)
}

fn trader(name: &str) -> Result<Trader> {
    Ok(Trader { name: Text::new(name)?, identification: Text::new("scenario")? })
}

fn certificate(by: &str, to: &str, number: &str, carats: &str, value: &str, zone: Option<&str>) -> Result<Certificate> {
    let (exporter, importer) = (code(by)?, code(to)?);
    let today = kp_node::now().date();
    let carats = Carats(hundredths("carats", carats)?);
    let value = UsdCents(hundredths("value", value)?);
    Ok(Certificate {
        number: CertificateNumber::new(number).map_err(|e| anyhow!("number {number:?}: {e}"))?,
        exporter,
        importer,
        origin: Origin::Country(CountryCode::new(exporter.as_str())?),
        origin_zone: zone.map(Label::new).transpose()?,
        issued_on: today,
        expires_on: today.add_days(30),
        issuing_authority: Text::new(&format!("{by} exporting authority"))?,
        exporter_party: trader(&format!("{by} exporter"))?,
        importer_party: trader(&format!("{to} importer"))?,
        carats,
        value,
        parcels: 1,
        lines: vec![HsLine { hs_code: HsCode::Unsorted, carats, value }],
    })
}

/// Waits until `check` gives `Some`, polling, at most `limit`.
fn poll<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let started = Instant::now();
    let mut last_error = None;
    loop {
        match check() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if started.elapsed() > limit {
            return Err(match last_error {
                Some(e) => e.context(format!("timed out after {limit:?} waiting for {what}")),
                None => anyhow!("timed out after {limit:?} waiting for {what}"),
            });
        }
        std::thread::sleep(POLL);
    }
}

fn status_of(s: &Status) -> (&'static str, Vec<String>) {
    match s {
        Status::Restricted { zones } => ("restricted", zones.iter().map(ToString::to_string).collect()),
        other => (other.name(), Vec::new()),
    }
}

impl Step {
    fn run(&self, net: &mut Net) -> Result<String> {
        match self {
            Step::Note { text } => Ok(text.clone()),
            Step::Production { by, carats, value, zones, expect } => {
                let participant = code(by)?;
                let today = kp_node::now().date();
                let half = if today.month() <= 6 { 1 } else { 2 };
                let period = HalfYear::new(u32::try_from(today.year()).unwrap_or(0), half)?;
                let carats_c = Carats(hundredths("carats", carats)?);
                let value_c = UsdCents(hundredths("value", value)?);
                let revision = net.revisions.get(by.as_str()).copied().unwrap_or(0);
                let zone_count = u64::try_from(zones.len()).unwrap_or(1).max(1);
                let zones = zones
                    .iter()
                    .enumerate()
                    .map(|(i, z)| {
                        // Split evenly, the remainder on the first zone.
                        let share = |total: u64| total / zone_count + if i == 0 { total % zone_count } else { 0 };
                        Ok(ZoneProduction {
                            zone: Label::new(z)?,
                            carats: Carats(share(carats_c.0)),
                            value: UsdCents(share(value_c.0)),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let payload = EventPayload::ProductionReported(ProductionReported {
                    participant,
                    period,
                    revision,
                    lines: vec![HsLine { hs_code: HsCode::Unsorted, carats: carats_c, value: value_c }],
                    zones,
                });
                let r = net.submit(by, "exporting", &payload, expect.as_deref())?;
                if expect.is_none() {
                    net.revisions.insert(by.clone(), revision + 1);
                }
                Ok(format!("{by} reports production of {carats} ct for {period}: {r}"))
            }
            Step::Issue { by, to, number, carats, value, zone, expect } => {
                let c = certificate(by, to, number, carats, value, zone.as_deref())?;
                let r = net.submit(by, "exporting", &EventPayload::CertificateIssued(c), expect.as_deref())?;
                if expect.is_none() {
                    // The last one: its proof carries the governance acts before it.
                    net.certificate = Some(number.clone());
                    net.issued.insert(number.clone(), carats.clone());
                }
                Ok(format!("{by} issues {number} to {to} ({carats} ct): {r}"))
            }
            Step::Seal { by, number, expect } => {
                let p = crate::cert::seal_payload(number, &["S-1".to_owned()], "port", kp_node::now())?;
                Ok(format!("{by} seals {number}: {}", net.submit(by, "exporting", &p, expect.as_deref())?))
            }
            Step::Receive { by, number, expect } => {
                let carats =
                    net.issued.get(number).cloned().ok_or_else(|| anyhow!("{number} was not issued in this run"))?;
                let p = crate::cert::receive_payload(number, 1, &carats, true, "", kp_node::now())?;
                Ok(format!(
                    "{by} confirms receipt of {number}: {}",
                    net.submit(by, "importing", &p, expect.as_deref())?
                ))
            }
            Step::Propose { by, act, expect } => {
                let node = net.api(by)?.to_owned();
                let r = governance::propose(
                    &node,
                    &net.key(by, "exporting"),
                    &net.expected,
                    &act.spec(net),
                    &act.reference,
                    &act.rationale,
                    None,
                )
                .map(|r| {
                    if r.missing.is_empty() {
                        "complete".to_owned()
                    } else {
                        format!("awaiting approval of {}", r.missing.join(" "))
                    }
                });
                let r = judge_act(r, expect.as_deref())?;
                Ok(format!("{by} proposes {}: {r}", act.describe()))
            }
            Step::Written { by, act, deadline, expect } => {
                let node = net.api(by)?.to_owned();
                // Each response is a governance event, a block of its own: with every registry
                // participant answering, the procedure is given 3 s more per extra participant.
                let extra_ms = 3_000 * u64::try_from(net.extras.len()).unwrap_or(0);
                let closes = governance::parse_deadline(deadline, kp_node::now())?.saturating_add_ms(extra_ms);
                let r = governance::propose_written(
                    &node,
                    &net.key(by, "exporting"),
                    &net.expected,
                    &act.spec(net),
                    &act.reference,
                    &act.rationale,
                    closes,
                    Some(WAIT),
                );
                let r = judge(r, expect.as_deref())?;
                Ok(format!("{by} puts {} to written procedure, deadline in {deadline}: {r}", act.describe()))
            }
            Step::Approve { by, reference, expect } => {
                let mut said = Vec::new();
                let who_all: Vec<String> =
                    by.iter().flat_map(|w| if w == "extras" { net.extras.clone() } else { vec![w.clone()] }).collect();
                let extras = by.iter().any(|w| w == "extras") && !net.extras.is_empty();
                for who in &who_all {
                    let node = net.api(who)?.to_owned();
                    let key = net.key(who, "exporting");
                    let r = if governance::is_procedure(&node, reference)? {
                        let p = governance::response_payload(reference, None)?;
                        judge(crate::cert::submit(&node, &key, &net.expected, &p, Some(WAIT)), expect.as_deref())?
                    } else {
                        let r = governance::approve(&node, &key, &net.expected, reference, None).map(|r| {
                            match (r.submitted_event, r.missing.is_empty()) {
                                (Some(e), _) => format!("complete, submitted as event {e}"),
                                (None, true) => "complete".to_owned(),
                                (None, false) => format!("awaiting approval of {}", r.missing.join(" ")),
                            }
                        });
                        judge_act(r, expect.as_deref())?
                    };
                    if !extras || !net.extras.contains(who) {
                        said.push(format!("{who} approves {reference}: {r}"));
                    }
                }
                if extras {
                    said.push(format!("{} more participants approve {reference}", net.extras.len()));
                }
                Ok(said.join("; "))
            }
            Step::Object { by, reference, reason, expect } => {
                let p = governance::response_payload(reference, Some(reason))?;
                Ok(format!("{by} objects to {reference}: {}", net.submit(by, "exporting", &p, expect.as_deref())?))
            }
            Step::Conclude { by, reference, outcome } => {
                let node = net.api(by)?.to_owned();
                let label = Label::new(reference)?;
                // The deadline must have passed on the ledger's clock: the last block's time.
                let deadline = poll("the written procedure's deadline", Duration::from_secs(600), || {
                    let r = governance::replay_node(&node)?;
                    let Some(p) = r.ledger.procedure(&label) else { bail!("no written procedure {reference}") };
                    Ok((r.head_time >= p.deadline).then_some(p.deadline))
                })?;
                let (adopted, s) =
                    governance::conclude(&node, &net.key(by, "exporting"), &net.expected, reference, Some(WAIT))?;
                let stated = if adopted { "adopted" } else { "lapsed" };
                ensure!(stated == outcome, "written procedure {reference} concluded {stated}, expected {outcome}");
                Ok(format!(
                    "{by} concludes {reference} after its deadline {deadline}: {stated}, committed at height {}",
                    s.height.unwrap_or_default()
                ))
            }
            Step::ExpectStatus { participant, status, zones } => {
                let id = code(participant)?;
                // On every named participant's node, so that the next step finds it wherever it goes.
                let nodes: Vec<String> =
                    net.roles.iter().map(|r| net.api(r).map(str::to_owned)).collect::<Result<_>>()?;
                let mut got = (String::new(), Vec::new());
                for node in &nodes {
                    got = poll(&format!("{participant} to be {status} on {node}"), WAIT, || {
                        let r = governance::replay_node(node)?;
                        let p =
                            r.ledger.participant(&id).ok_or_else(|| anyhow!("{participant} is not a participant"))?;
                        let (s, z) = status_of(&p.status);
                        Ok((s == status && (zones.is_empty() || z == *zones)).then(|| (s.to_owned(), z)))
                    })?;
                }
                let (got, got_zones) = got;
                Ok(if got_zones.is_empty() {
                    format!("{participant} is {got}")
                } else {
                    format!("{participant} is {got} to zones {}", got_zones.join(", "))
                })
            }
            Step::ExpectAct { reference, outcome, missing } => {
                let node = net.reader()?.to_owned();
                let entry = poll(&format!("act {reference} to be {outcome}"), WAIT, || {
                    let h = governance::history(&node, None)?;
                    Ok(h.into_iter().find(|e| e.reference == *reference && e.outcome == *outcome))
                })?;
                if let Some(m) = missing {
                    ensure!(
                        entry.missing == *m,
                        "act {reference}: not approved by {:?}, expected {m:?}",
                        entry.missing
                    );
                }
                let mut said = format!("act {reference} ({} {}): {}", entry.action, entry.subject, entry.outcome);
                if !entry.approvals.is_empty() {
                    said += &format!("; approved by {}", entry.approvals.join(" "));
                }
                for o in &entry.objections {
                    said += &format!("; objected by {}: {}", o.participant, o.reason);
                }
                if !entry.missing.is_empty() {
                    said += &format!("; not approved by {}", entry.missing.join(" "));
                }
                if let Some(d) = &entry.detail {
                    said += &format!(" ({d})");
                }
                Ok(said)
            }
            Step::ExpectAnomaly { kind, participant, present } => {
                let node = net.reader()?.to_owned();
                let review = crate::review::load(&crate::review::LedgerSource::Node(node), None)?;
                let params = kp_review::AnomalyParams::new(review.as_of());
                let id = code(participant)?;
                let found: Vec<_> = review
                    .anomalies(&params)
                    .into_iter()
                    .filter(|a| a.kind.name() == kind && a.participant == id)
                    .collect();
                match (found.first(), present) {
                    (Some(a), true) => {
                        Ok(format!("anomaly flagged: {}", a.to_string().lines().next().unwrap_or_default()))
                    }
                    (None, false) => Ok(format!("no {kind} anomaly for {participant}")),
                    (Some(a), false) => bail!("unexpected anomaly: {a}"),
                    (None, true) => bail!("the anomaly report does not flag {kind} for {participant}"),
                }
            }
            Step::StartNode { participant } => {
                let dir = net.dir.join(participant);
                let log = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(dir.join("node.log"))
                    .with_context(|| format!("opening {}", dir.join("node.log").display()))?;
                let exe = std::env::current_exe().context("finding the kpledger executable")?;
                let child = std::process::Command::new(exe)
                    .args(["node", "--config"])
                    .arg(dir.join("node.toml"))
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .spawn()
                    .context("starting the node")?;
                std::fs::write(dir.join("node.pid"), format!("{}\n", child.id()))?;
                net.started.push(child);
                let node = net.api(participant)?.to_owned();
                poll(&format!("{participant}'s node to answer"), WAIT, || Ok(crate::node::status(&node).ok()))?;
                Ok(format!("{participant}'s node started"))
            }
            Step::ExpectVoter { participant } => {
                let node = net.api(participant)?.to_owned();
                let reader = net.reader()?.to_owned();
                let s = poll(&format!("{participant}'s node to vote"), WAIT, || {
                    let s = crate::node::status(&node)?;
                    Ok((s.me == *participant && s.active_participants.iter().any(|p| p == participant)).then_some(s))
                })?;
                // A block committed from now on needs its signature.
                let from = s.height + 1;
                let signed = poll(&format!("a block signed by {participant}"), WAIT, || {
                    block_on(async {
                        let mut client = connect(&reader).await?;
                        let head =
                            client.get_status(pb::GetStatusRequest {}).await.map_err(|e| anyhow!("{}", e.message()))?;
                        let head = head.into_inner().height;
                        if head < from {
                            return Ok(None);
                        }
                        let b = client
                            .get_block(pb::GetBlockRequest { height: head })
                            .await
                            .map_err(|e| anyhow!("{}", e.message()))?;
                        let b = b.into_inner();
                        Ok(b.signers.iter().any(|p| p == participant).then_some(head))
                    })
                })?;
                Ok(format!(
                    "{participant} votes: its node is at height {}, and block {signed} carries its signature",
                    s.height
                ))
            }
        }
    }
}

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where the scenario's test network is made (must not hold one already).
    pub dir: PathBuf,
    pub base_port: u16,
    /// Every registry participant in the network, the scenario's roles among them; the others
    /// stand in for "extras" in the scenario's approvals.
    pub full: bool,
    /// Keep the network's directory (logs, data) after a successful run; a failed run always
    /// keeps it.
    pub keep: bool,
}

/// Runs the scenario of `file` on a test network of its own: made in `opts.dir` (the scenario's
/// participants, or with `full` every registry participant, and its newcomers), started, driven
/// step by step, checked (anomalies, audit, proof), and brought down whatever happens.
pub fn run(file: &Path, opts: &RunOptions, print: &mut dyn FnMut(&str)) -> Result<RunReport> {
    let scenario = Scenario::load(file)?;
    let registry = crate::registry::Registry::default_registry()?;
    let roles = scenario.participants.iter().map(|c| code(c)).collect::<Result<Vec<_>>>()?;
    let newcomers = scenario.newcomers.iter().map(|c| code(c)).collect::<Result<Vec<_>>>()?;
    let extras: Vec<ParticipantId> = if opts.full {
        registry.participant.iter().map(|p| p.id).filter(|p| !roles.contains(p) && !newcomers.contains(p)).collect()
    } else {
        Vec::new()
    };
    let all: Vec<ParticipantId> = roles.iter().chain(&extras).copied().collect();
    let dir = &opts.dir;
    crate::testnet::init_with(
        &registry,
        &crate::testnet::Selection::Codes(all),
        &newcomers,
        dir,
        opts.base_port,
        kp_node::now(),
        crate::testnet::Layout::default(),
    )?;
    // The scenario's steps reach its own network's nodes as their participants' authorities.
    crate::node::set_auth(crate::node::ApiAuth::Testnet { dir: dir.clone(), reader: crate::node::Reader::Reviewer });
    print(&format!(
        "scenario: {} — {} participants ({} named{}), in {}",
        scenario.name,
        roles.len() + extras.len(),
        roles.len(),
        if extras.is_empty() { String::new() } else { format!(", {} more", extras.len()) },
        dir.display()
    ));
    let mut started = Vec::new();
    let result = crate::testnet::up(dir, Duration::from_secs(180)).and_then(|_| {
        let mut net = Net::open(dir, &scenario, &extras)?;
        let r = run_steps(&scenario, &mut net, print);
        started = std::mem::take(&mut net.started);
        r
    });
    for mut child in started {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0)),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = child.wait();
    }
    let down = crate::testnet::down(dir, Duration::from_secs(15));
    let report = result?;
    down?;
    if !opts.keep {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(report)
}

fn run_steps(scenario: &Scenario, net: &mut Net, print: &mut dyn FnMut(&str)) -> Result<RunReport> {
    let genesis = crate::testnet::read_genesis(&net.dir.join("genesis.json"))?;
    let mut steps = Vec::new();
    for (i, step) in scenario.steps.iter().enumerate() {
        let said = step.run(net).with_context(|| format!("step {} ({step:?})", i + 1))?;
        net.settle().with_context(|| format!("after step {}", i + 1))?;
        print(&format!("  {:>2}. {said}", i + 1));
        steps.push(said);
    }
    // The whole resulting ledger, audited from genesis; a proof bundle checked offline.
    let work = net.dir.join("scenario-check");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let export = work.join("ledger.kpx");
    let reader = net.reader()?.to_owned();
    crate::audit::export(&reader, &export)?;
    let audit = crate::audit::audit_file(&export, Some(&genesis))?;
    ensure!(audit.report.verified(), "the audit of the resulting ledger fails:\n{audit}");
    let r = &audit.report;
    let audit_line = format!(
        "{}: {} blocks, {} events, {} signatures, {} voter-set changes, from genesis {}",
        r.result,
        r.blocks,
        r.events,
        r.signatures.total(),
        r.participants.len().saturating_sub(1),
        &r.genesis_hash[..16.min(r.genesis_hash.len())]
    );
    print(&format!("  audit: {audit_line}"));
    let proof = match &net.certificate {
        Some(c) => {
            let bundle = work.join("proof.kpp");
            crate::audit::fetch_proof(&reader, c, &bundle)?;
            let report = crate::audit::verify_proof(&bundle, &genesis)?
                .map_err(|d| anyhow!("the proof bundle of {c} does not verify: {d:?}"))?;
            let line = format!(
                "proof of {c}: {} custody event(s) and {} governance act(s) verified offline",
                report.steps.len(),
                report.governance_acts.len()
            );
            print(&format!("  {line}"));
            Some(line)
        }
        None => None,
    };
    print(&format!("outcome: {}", scenario.outcome));
    Ok(RunReport {
        scenario: scenario.name.clone(),
        outcome: scenario.outcome.clone(),
        steps,
        audit: audit_line,
        proof,
        passed: true,
    })
}
