//! The WAN relay: a test network on one machine whose links behave, in delay, as links between
//! the participants' capitals.
//!
//! `kpledger testnet init --wan` makes node k dial node m at [`relay_address`]`(k, m)` (127.77.k.m,
//! on one port after the network's last; not m's own port, which m's dialling socket binds on
//! every address) instead of at m itself. `kpledger testnet relay` listens on every such address
//! and forwards each connection to m, holding what passes in each direction for the one-way
//! delay between the two nodes' places ([`one_way_delay`], from `node-config/capitals.toml`),
//! with jitter, in order, as a TCP path does. The kernel of this machine has no `netem` qdisc
//! (nor `fq`), so the delay cannot be put on the packets themselves: the relay does it above
//! TCP, and what it costs in CPU is the relay process's own, measured apart from the nodes'.
//!
//! What it models and what it does not:
//! - each direction of a link has its own delay (a node's traffic to another, and the answers,
//!   cross the same relayed connection, each way with its own delay);
//! - jitter never reorders bytes: a chunk leaves no earlier than the one before it;
//! - packet loss on a lossy node's links ([`RelayOptions::lossy`]) is modelled as what a lost
//!   segment costs a TCP stream: the chunk that held it, and everything behind it, waits one
//!   more round trip of the link plus 200 ms (Linux's minimum retransmission timeout);
//! - bandwidth is not limited, beyond a bound on what each direction holds in flight
//!   ([`IN_FLIGHT_CHUNKS`] chunks of at most [`CHUNK`] bytes): a full queue stops reading, and
//!   TCP's flow control pushes back on the sender.
//!
//! [`latency_bound`] computes what the protocol's message delays alone impose on an event's
//! commit latency over these links, for the benchmark to print beside what it measures.

#![allow(clippy::float_arithmetic)] // Distances, delays and their jitter: geography, not ledger values.

use anyhow::{Context, Result, bail, ensure};
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// node-config/capitals.toml as shipped: where each participant's node is placed.
pub const CAPITALS: &str = include_str!("../../../node-config/capitals.toml");

/// The most nodes a WAN network numbers (127.77.k.m with k and m from 1 to 254).
pub const MAX_NODES: usize = 254;

/// The bytes the relay reads at once from one side of a connection.
pub const CHUNK: usize = 16 * 1024;

/// The chunks one direction of a relayed connection holds while their delay runs (with
/// [`CHUNK`], 1 MiB): at a 100 ms delay, 10 MiB/s per direction before flow control pushes
/// back.
pub const IN_FLIGHT_CHUNKS: usize = 64;

/// Light's speed in optical fibre, km per millisecond.
const FIBRE_KM_PER_MS: f64 = 200.0;
/// How much longer than the great circle terrestrial and submarine routes run.
const ROUTE_STRETCH: f64 = 1.5;
/// The access networks at both ends, in ms.
const ACCESS_MS: f64 = 2.0;
/// Linux's minimum TCP retransmission timeout.
const MIN_RTO: Duration = Duration::from_millis(200);

/// The address node `from` dials to reach node `to` through the relay (nodes numbered from 1 to
/// [`MAX_NODES`]; 0 and 255 are not node numbers).
#[must_use]
pub fn relay_address(from: u8, to: u8) -> Ipv4Addr {
    debug_assert!((1..=254).contains(&from) && (1..=254).contains(&to));
    Ipv4Addr::new(127, 77, from, to)
}

/// A node's place.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub id: String,
    pub place: String,
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Capitals {
    location: Vec<Location>,
}

/// The places of a capitals table (TOML, as `node-config/capitals.toml`), by node name.
pub fn locations(text: &str) -> Result<BTreeMap<String, Location>> {
    let table: Capitals = toml::from_str(text).context("the capitals table is not valid")?;
    let mut out = BTreeMap::new();
    for l in table.location {
        ensure!(
            (-90.0..=90.0).contains(&l.lat) && (-180.0..=180.0).contains(&l.lon),
            "capitals table: {} ({}) has coordinates out of range: {}, {}",
            l.id,
            l.place,
            l.lat,
            l.lon
        );
        let id = l.id.clone();
        ensure!(out.insert(id.clone(), l).is_none(), "capitals table: {id} is listed twice");
    }
    Ok(out)
}

/// The great-circle distance between two places, in km (haversine, on a 6,371 km sphere).
#[must_use]
pub fn great_circle_km(a: &Location, b: &Location) -> f64 {
    let (la1, lo1, la2, lo2) = (a.lat.to_radians(), a.lon.to_radians(), b.lat.to_radians(), b.lon.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6_371.0 * h.sqrt().min(1.0).asin()
}

/// The modelled one-way delay between two places: the access networks at both ends, and the
/// route (half as long again as the great circle) at light's speed in fibre.
#[must_use]
pub fn one_way_delay(a: &Location, b: &Location) -> Duration {
    Duration::from_secs_f64((ACCESS_MS + ROUTE_STRETCH * great_circle_km(a, b) / FIBRE_KM_PER_MS) / 1_000.0)
}

/// One direction of dialling: node `from` reaches node `to` at `listen`, which the relay
/// forwards to `to`'s own address.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Link {
    pub from: String,
    pub to: String,
    pub listen: SocketAddrV4,
    pub target: SocketAddrV4,
    /// One way, `from` → `to` (the way back takes [`Link::back`]).
    pub delay: Duration,
    pub back: Duration,
}

/// `/ip4/A/tcp/P` (with anything after it) as an address.
fn tcp_address(multiaddr: &str) -> Option<SocketAddrV4> {
    let mut parts = multiaddr.split('/').skip(1);
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("ip4"), Some(ip), Some("tcp"), Some(port)) => {
            Some(SocketAddrV4::new(ip.parse().ok()?, port.parse().ok()?))
        }
        _ => None,
    }
}

/// Every relayed link of the test network in `dir`, from its nodes' configurations (those of
/// its participants, newcomers and observers), with the delays of `places`.
pub fn links(dir: &Path, places: &BTreeMap<String, Location>) -> Result<Vec<Link>> {
    let mut configs = Vec::new();
    for sub in [dir.to_path_buf(), dir.join("observers")] {
        let Ok(entries) = std::fs::read_dir(&sub) else { continue };
        for e in entries.flatten() {
            let file = e.path().join("node.toml");
            if file.is_file() {
                let name = e.file_name().to_string_lossy().into_owned();
                configs.push((name, kp_node::NodeConfig::load(&file)?));
            }
        }
    }
    ensure!(!configs.is_empty(), "{} holds no node configuration (DIR/<node>/node.toml)", dir.display());
    configs.sort_by(|a, b| a.0.cmp(&b.0));
    // `testnet init` numbers the nodes from 1 in port order, three ports each.
    let mut listening = Vec::new();
    for (name, c) in &configs {
        let listen =
            tcp_address(&c.listen).with_context(|| format!("{name}: listen {} is not /ip4/…/tcp/…", c.listen))?;
        listening.push((listen, name.clone()));
    }
    let base = listening.iter().map(|(a, _)| a.port()).min().unwrap_or(0);
    let mut by_number = BTreeMap::new();
    for (listen, name) in &listening {
        let offset = listen.port() - base;
        ensure!(offset % 3 == 0, "{name} listens on port {}, out of `testnet init`'s layout", listen.port());
        by_number.insert(usize::from(offset / 3 + 1), (name.clone(), *listen));
    }
    let place =
        |name: &str| places.get(name).with_context(|| format!("the capitals table does not place node {name}: add it"));
    let mut out = Vec::new();
    for (name, c) in &configs {
        for b in &c.bootstrap {
            let Some(addr) = tcp_address(b) else { continue };
            let [a, b2, k, m] = addr.ip().octets();
            if (a, b2) != (127, 77) {
                bail!(
                    "{name} dials {b} directly: this network was not made with `kpledger testnet init --wan`, \
                     and the relay would delay nothing"
                );
            }
            let from = by_number.get(&usize::from(k)).map(|(n, _)| n);
            ensure!(
                from == Some(name),
                "{name} dials {b}, the address of another node's link (out of `testnet init --wan`'s layout)"
            );
            let (to, target) = by_number
                .get(&usize::from(m))
                .with_context(|| format!("{name} dials {b}: {} holds no node number {m}", dir.display()))?;
            let (here, there) = (place(name)?, place(to)?);
            out.push(Link {
                from: name.clone(),
                to: to.clone(),
                listen: addr,
                target: *target,
                delay: one_way_delay(here, there),
                back: one_way_delay(there, here),
            });
        }
    }
    ensure!(!out.is_empty(), "no node of {} dials another: nothing to relay", dir.display());
    Ok(out)
}

/// How the relay disturbs what it carries.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Each chunk's delay varies uniformly within ± this fraction (0 to 0.5).
    pub jitter: f64,
    /// Nodes whose links lose this fraction of packets, both ways.
    pub lossy: BTreeMap<String, f64>,
    pub seed: u64,
}

/// `--lossy` arguments (NODE:PERCENT, like ZA:5) as loss fractions by node.
pub fn parse_lossy(args: &[String]) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for l in args {
        let (node, percent) =
            l.split_once(':').with_context(|| format!("--lossy {l}: give NODE:PERCENT, like ZA:5"))?;
        let percent: f64 = percent.parse().with_context(|| format!("--lossy {l}: {percent} is not a percentage"))?;
        ensure!((0.0..100.0).contains(&percent), "--lossy {l}: the percentage must be from 0 to 100 (exclusive)");
        ensure!(out.insert(node.to_owned(), percent / 100.0).is_none(), "--lossy names {node} twice");
    }
    Ok(out)
}

/// What the relay carried, for its report at the end.
#[derive(Debug, Default)]
pub struct RelayCounters {
    pub connections: AtomicU64,
    pub bytes: AtomicU64,
    pub chunks: AtomicU64,
    /// Chunks held back a retransmission time for a modelled loss.
    pub lost: AtomicU64,
}

/// One direction's disturbance.
#[derive(Debug, Clone, Copy)]
struct Shape {
    delay: Duration,
    jitter: f64,
    /// Probability that a packet (1,448 bytes of payload) is lost.
    loss: f64,
    /// What a loss costs: a round trip of the link and the minimum retransmission timeout.
    penalty: Duration,
}

/// Serves every link until `shutdown` completes. Binds every address first: an address that
/// cannot be bound fails the whole relay, naming it.
pub async fn serve(
    links: Vec<Link>,
    options: RelayOptions,
    counters: Arc<RelayCounters>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let (bound, _) = tokio::sync::oneshot::channel();
    serve_announcing(links, options, counters, bound, shutdown).await
}

/// [`serve`], telling `bound` once every address is bound.
async fn serve_announcing(
    links: Vec<Link>,
    options: RelayOptions,
    counters: Arc<RelayCounters>,
    bound: tokio::sync::oneshot::Sender<()>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    ensure!((0.0..=0.5).contains(&options.jitter), "--jitter must be from 0 to 0.5, got {}", options.jitter);
    for (node, loss) in &options.lossy {
        ensure!((0.0..1.0).contains(loss), "--lossy {node}: the loss must be from 0 to 1 (exclusive), got {loss}");
    }
    let mut listeners = Vec::new();
    for link in links {
        let listener = TcpListener::bind(link.listen)
            .await
            .with_context(|| format!("binding {} (the link {} → {})", link.listen, link.from, link.to))?;
        listeners.push((listener, link));
    }
    let _ = bound.send(());
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (listener, link)) in listeners.into_iter().enumerate() {
        let loss = |n: &str| options.lossy.get(n).copied().unwrap_or(0.0);
        let link_loss = 1.0 - (1.0 - loss(&link.from)) * (1.0 - loss(&link.to));
        let penalty = link.delay + link.back + MIN_RTO;
        let there = Shape { delay: link.delay, jitter: options.jitter, loss: link_loss, penalty };
        let back = Shape { delay: link.back, jitter: options.jitter, loss: link_loss, penalty };
        let seed = options.seed ^ (u64::try_from(i).unwrap_or(u64::MAX).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let counters = counters.clone();
        tasks.spawn(accept_loop(listener, link, there, back, seed, counters));
    }
    shutdown.await;
    tasks.abort_all();
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    link: Link,
    there: Shape,
    back: Shape,
    seed: u64,
    counters: Arc<RelayCounters>,
) {
    let mut n: u64 = 0;
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((inbound, _)) = accepted else {
                    // Out of file descriptors, say: wait rather than spin; the node dials again.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                n = n.wrapping_add(1);
                let target = link.target;
                let counters = counters.clone();
                let seed = seed.wrapping_add(n.wrapping_mul(2));
                connections.spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else { return };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    // Both directions end together: one side closing ends the connection.
                    tokio::select! {
                        () = pump(in_read, out_write, there, seed, counters.clone()) => {}
                        () = pump(out_read, in_write, back, seed.wrapping_add(1), counters.clone()) => {}
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Carries one direction: reads chunks as they come, and writes each once its delay has run.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shape: Shape,
    seed: u64,
    counters: Arc<RelayCounters>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT_CHUNKS);
    let reader = async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut last = Instant::now();
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.truncate(n);
            let factor = if shape.jitter > 0.0 { 1.0 + rng.random_range(-shape.jitter..=shape.jitter) } else { 1.0 };
            let mut release = Instant::now() + shape.delay.mul_f64(factor);
            if shape.loss > 0.0 {
                let packets = i32::try_from(n.div_ceil(1_448)).unwrap_or(i32::MAX);
                if rng.random::<f64>() < 1.0 - (1.0 - shape.loss).powi(packets) {
                    release += shape.penalty;
                    counters.lost.fetch_add(1, Ordering::Relaxed);
                }
            }
            // In order: never before the chunk ahead of it.
            release = release.max(last);
            last = release;
            counters.bytes.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
            counters.chunks.fetch_add(1, Ordering::Relaxed);
            if tx.send((release, buf)).await.is_err() {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((release, buf)) = rx.recv().await {
            tokio::time::sleep_until(release).await;
            if to.write_all(&buf).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    // The writer drains what the reader queued before the reader's end closes the channel.
    tokio::join!(reader, writer);
}

/// What the protocol's message delays alone impose on an event's commit latency over `links`
/// (no CPU, no disk, no queueing), by the rounds of `docs/consensus.md`: the event reaches the
/// leader; the leader's proposal, the voters' prevotes, the prevote certificate and the
/// precommits each wait for the slowest voter; the commit certificate comes back to the
/// submitter's node. The leader of height h is `voters[h mod n]`, blocks follow each other as
/// soon as the next leader holds the commit certificate (the load keeps events waiting), and an
/// event arrives at a uniformly random time at a uniformly chosen voter's node.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencyBound {
    /// The bound's median and 99th percentile over sampled events, seconds.
    pub p50_s: f64,
    pub p99_s: f64,
    /// The mean time from one proposal to the next, seconds.
    pub block_interval_s: f64,
    /// The largest one-way delay between two voters, seconds.
    pub max_one_way_s: f64,
}

/// See [`LatencyBound`]; `voters` are node names (sorted as the genesis sorts participants).
pub fn latency_bound(links: &[Link], voters: &[String], seed: u64) -> Result<LatencyBound> {
    let n = voters.len();
    ensure!(n >= 1, "no voters");
    let index: BTreeMap<&str, usize> = voters.iter().enumerate().map(|(i, v)| (v.as_str(), i)).collect();
    let mut d = vec![vec![0.0f64; n]; n];
    let mut known = vec![vec![false; n]; n];
    for l in links {
        if let (Some(&a), Some(&b)) = (index.get(l.from.as_str()), index.get(l.to.as_str())) {
            d[a][b] = l.delay.as_secs_f64();
            d[b][a] = l.back.as_secs_f64();
            known[a][b] = true;
            known[b][a] = true;
        }
    }
    for (a, row) in known.iter().enumerate() {
        for (b, k) in row.iter().enumerate() {
            ensure!(a == b || *k, "no link between voters {} and {}", voters[a], voters[b]);
        }
    }
    let max_out: Vec<f64> = (0..n).map(|l| (0..n).map(|j| d[l][j]).fold(0.0, f64::max)).collect();
    let max_in: Vec<f64> = (0..n).map(|l| (0..n).map(|j| d[j][l]).fold(0.0, f64::max)).collect();
    // From a leader's proposal to the moment its commit certificate leaves it.
    let rounds = |l: usize| 2.0 * max_out[l] + 2.0 * max_in[l];
    // Proposal times over a few rotations of the leaders.
    let heights = n * 8;
    let mut proposals = Vec::with_capacity(heights + 1);
    let mut t = 0.0;
    for h in 0..heights {
        proposals.push(t);
        let (l, next) = (h % n, (h + 1) % n);
        t += rounds(l) + d[l][next];
    }
    let span = t;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut samples = Vec::new();
    for _ in 0..20_000 {
        // Arrivals during the first rotations only, so that a later block always takes them.
        let arrival = rng.random_range(0.0..span / 2.0);
        let s = rng.random_range(0..n);
        let Some(h) = (0..heights).find(|&h| proposals[h] >= arrival + d[s][h % n]) else { continue };
        let l = h % n;
        samples.push(proposals[h] + rounds(l) + d[l][s] - arrival);
    }
    ensure!(!samples.is_empty(), "no sample");
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let i = ((samples.len() - 1) as f64 * q).round() as usize;
        samples[i]
    };
    #[allow(clippy::cast_precision_loss)]
    let block_interval_s = span / heights as f64;
    let max_one_way_s = max_out.iter().copied().fold(0.0, f64::max);
    Ok(LatencyBound { p50_s: at(0.5), p99_s: at(0.99), block_interval_s, max_one_way_s })
}

/// What `kpledger testnet relay` writes to DIR/wan.json when it starts, and prints when it stops.
#[derive(Debug, serde::Serialize)]
pub struct RelayReport {
    pub links: usize,
    /// One-way delays between voters, milliseconds: least, mean, most.
    pub voter_delay_ms: [f64; 3],
    pub bound: LatencyBound,
    pub jitter: f64,
    pub lossy: BTreeMap<String, f64>,
    pub connections: u64,
    pub bytes: u64,
    pub chunks: u64,
    pub lost_chunks: u64,
}

/// Relays the links of the WAN test network in `dir` until SIGINT or SIGTERM: writes
/// DIR/wan.json (the links, their delays and the latency bound) once every address is bound,
/// and returns what it carried.
pub fn run(dir: &Path, options: RelayOptions) -> Result<RelayReport> {
    let places = locations(CAPITALS)?;
    let links = links(dir, &places)?;
    for node in options.lossy.keys() {
        ensure!(
            links.iter().any(|l| l.from == *node || l.to == *node),
            "--lossy {node}: no node of {} is {node}",
            dir.display()
        );
    }
    let net = crate::testnet::Testnet::load(dir)?;
    let voters: Vec<String> = net.genesis.participants.iter().map(|p| p.id.to_string()).collect();
    let bound = latency_bound(&links, &voters, options.seed)?;
    let between: Vec<f64> = links
        .iter()
        .filter(|l| voters.contains(&l.from) && voters.contains(&l.to))
        .map(|l| l.delay.as_secs_f64() * 1e3)
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let mean = if between.is_empty() { 0.0 } else { between.iter().sum::<f64>() / between.len() as f64 };
    let spread = [
        between.iter().copied().fold(f64::INFINITY, f64::min).min(mean),
        mean,
        between.iter().copied().fold(0.0, f64::max),
    ];
    let mut report = RelayReport {
        links: links.len(),
        voter_delay_ms: spread,
        bound,
        jitter: options.jitter,
        lossy: options.lossy.clone(),
        connections: 0,
        bytes: 0,
        chunks: 0,
        lost_chunks: 0,
    };
    let counters = Arc::new(RelayCounters::default());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let file = dir.join("wan.json");
    let written = serde_json::to_string_pretty(&serde_json::json!({ "relay": &report, "links": &links }))?;
    let served = runtime.block_on(async {
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = serve_announcing(links, options, counters.clone(), bound_tx, async {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return,
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        let announce = async {
            if bound_rx.await.is_ok() {
                if let Err(e) = std::fs::write(&file, written + "\n") {
                    tracing::error!(file = %file.display(), error = %e, "writing the relay's table");
                }
            }
        };
        let (served, ()) = tokio::join!(serving, announce);
        served
    });
    served?;
    report.connections = counters.connections.load(Ordering::Relaxed);
    report.bytes = counters.bytes.load(Ordering::Relaxed);
    report.chunks = counters.chunks.load(Ordering::Relaxed);
    report.lost_chunks = counters.lost.load(Ordering::Relaxed);
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_shipped_table_places_every_registry_node_with_plausible_delays() {
        let places = locations(CAPITALS).unwrap();
        let registry = crate::registry::Registry::default_registry().unwrap();
        for id in registry.participant.iter().chain(&registry.newcomer).map(|p| p.id.to_string()) {
            assert!(places.contains_key(&id), "{id}");
        }
        for o in &registry.observer {
            assert!(places.contains_key(&o.id.to_string()), "{}", o.id);
        }
        let ms = |a: &str, b: &str| one_way_delay(&places[a], &places[b]).as_secs_f64() * 1e3;
        // Symmetric, the access networks' 2 ms between two nodes of one city, and the far ends.
        assert!((ms("GB", "US") - ms("US", "GB")).abs() < 1e-9);
        assert!((ms("CD", "CD") - 2.0).abs() < 1e-9);
        assert!((40.0..50.0).contains(&ms("GB", "US")), "{}", ms("GB", "US"));
        assert!((120.0..140.0).contains(&ms("NZ", "NO")), "{}", ms("NZ", "NO"));
        // Kinshasa and Brazzaville face each other across the Congo river.
        assert!(ms("CD", "CG") < 2.5);
    }

    #[test]
    fn bad_tables_are_refused_naming_the_entry() {
        let e = locations("location = [{ id = \"BW\", place = \"x\", lat = 95.0, lon = 0.0 }]").unwrap_err();
        assert!(e.to_string().contains("BW"), "{e}");
        let twice = "location = [{ id = \"BW\", place = \"x\", lat = 1.0, lon = 0.0 }, \
                     { id = \"BW\", place = \"y\", lat = 2.0, lon = 0.0 }]";
        assert!(locations(twice).unwrap_err().to_string().contains("twice"));
        assert!(locations("location = [{ id = \"BW\" }]").is_err());
    }

    fn link(from: &str, to: &str, ms: u64) -> Link {
        let any = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1);
        let delay = Duration::from_millis(ms);
        Link { from: from.into(), to: to.into(), listen: any, target: any, delay, back: delay }
    }

    #[test]
    fn the_latency_bound_follows_the_rounds() {
        // Two voters 100 ms apart: a block takes 4 × 100 ms of rounds, then 100 ms to the next
        // leader; an event waits on average half an interval, then reaches the leader and
        // comes back with the commit.
        let voters = vec!["A".to_owned(), "B".to_owned()];
        let b = latency_bound(&[link("A", "B", 100), link("B", "A", 100)], &voters, 7).unwrap();
        assert!((b.block_interval_s - 0.5).abs() < 1e-9, "{b:?}");
        assert!((b.max_one_way_s - 0.1).abs() < 1e-9);
        assert!(b.p50_s > 0.5 && b.p50_s < 1.2, "{b:?}");
        assert!(b.p99_s >= b.p50_s && b.p99_s <= 1.1 + 1e-9, "{b:?}");
        // Far voters make it longer.
        let far = latency_bound(&[link("A", "B", 200), link("B", "A", 200)], &voters, 7).unwrap();
        assert!(far.p50_s > b.p50_s * 1.8, "{far:?} {b:?}");
        assert!(latency_bound(&[], &voters, 7).unwrap_err().to_string().contains("no link"));
    }

    #[tokio::test]
    async fn the_relay_delays_each_direction_in_order_and_bounds_what_it_holds() {
        // An echo server behind a relayed link of 80 ms there and 40 ms back.
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = match server.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            std::net::SocketAddr::V6(_) => unreachable!(),
        };
        tokio::spawn(async move {
            let (mut s, _) = server.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
        });
        let probe = std::net::TcpListener::bind("127.77.1.2:0").unwrap();
        let listen = match probe.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            std::net::SocketAddr::V6(_) => unreachable!(),
        };
        drop(probe);
        let l = Link {
            from: "A".into(),
            to: "B".into(),
            listen,
            target,
            delay: Duration::from_millis(80),
            back: Duration::from_millis(40),
        };
        let counters = Arc::new(RelayCounters::default());
        let options = RelayOptions { jitter: 0.1, lossy: BTreeMap::new(), seed: 1 };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let relay = tokio::spawn(serve(vec![l], options, counters.clone(), async {
            let _ = stopped.await;
        }));
        let mut c = loop {
            if let Ok(c) = TcpStream::connect(listen).await {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let mut echoed = Vec::new();
        let started = std::time::Instant::now();
        for i in 0..20u8 {
            c.write_all(&[i; 100]).await.unwrap();
        }
        while echoed.len() < 2_000 {
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).await.unwrap();
            assert!(n > 0);
            echoed.extend_from_slice(&buf[..n]);
        }
        let rtt = started.elapsed();
        // 120 ms each way ± 10% jitter, and nothing reordered.
        assert!(rtt >= Duration::from_millis(108), "{rtt:?}");
        let expected: Vec<u8> = (0..20u8).flat_map(|i| [i; 100]).collect();
        assert_eq!(echoed, expected);
        assert!(counters.connections.load(Ordering::Relaxed) == 1);
        stop.send(()).unwrap();
        relay.await.unwrap().unwrap();
    }

    #[test]
    fn a_network_made_without_wan_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let registry = crate::registry::Registry::default_registry().unwrap();
        crate::testnet::init(&registry, 2, dir.path(), 20_500, kp_node::now()).unwrap();
        let e = links(dir.path(), &locations(CAPITALS).unwrap()).unwrap_err().to_string();
        assert!(e.contains("--wan"), "{e}");
        let wan = tempfile::tempdir().unwrap();
        crate::testnet::init_with(
            &registry,
            &crate::testnet::Selection::First(2),
            &[],
            wan.path(),
            20_600,
            kp_node::now(),
            crate::testnet::Layout { wan: true, ..Default::default() },
        )
        .unwrap();
        let links = links(wan.path(), &locations(CAPITALS).unwrap()).unwrap();
        // BW and EU dial each other; each observer dials both.
        assert_eq!(links.len(), 6, "{links:?}");
        let bw_eu = links.iter().find(|l| l.from == "BW" && l.to == "EU").unwrap();
        assert_eq!(bw_eu.listen.ip(), &Ipv4Addr::new(127, 77, 1, 2));
        assert!((60..75).contains(&bw_eu.delay.as_millis()), "{bw_eu:?}");
    }
}
