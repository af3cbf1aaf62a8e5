//! The peer-to-peer network: libp2p over TCP with Noise and Yamux, permissioned by the genesis.
//!
//! Two protocols. Consensus messages, events passed on and approvals travel one way on
//! [`MESSAGE_PROTOCOL`]: one long-lived Yamux stream per peer and direction, opened when the
//! first message goes to that peer and replaced when it breaks. Each message is a length-prefixed
//! [`Frame`] that also carries the sender's height; a task per peer writes what is queued for it
//! in one write (bounded queue: [`SEND_QUEUE_FRAMES`] frames, [`SEND_QUEUE_BYTES`] bytes; beyond,
//! messages are dropped and counted, and consensus recovers them by its round timeouts and
//! catch-up), so a message costs neither a substream, nor a protocol negotiation, nor an answer.
//! Catch-up and height pings stay request-response on [`PROTOCOL`] (rare, and answered).
//!
//! The voters are few and known (at most 59 plus observers), so every node keeps a direct
//! connection to every other and nothing is relayed:
//! - a consensus message to one voter (a vote to the round's leader) is one frame; a broadcast
//!   (proposal, certificate, new round) is encoded once and queued to each voter's node — O(n)
//!   messages per phase, no extra signature per hop as gossipsub would add (a batch retried on a
//!   fresh stream after a partial write may arrive twice: every message is idempotent);
//! - events clients submit are passed on in batches to the nodes of the upcoming proposers
//!   only (the current round's leader and the next height's), which propose them; every node
//!   receives them in the proposal ([`Core`] decides what goes to whom, see `Core::forward`);
//! - a node that lacks committed blocks (it was down, partitioned, or just started) asks a peer
//!   that has them for batches and verifies each block and commit certificate itself
//!   ([`Core::apply_blocks`]); observers' nodes follow the chain that way only.
//!
//! A peer is accepted only if its libp2p identity is the node key of a participant or observer
//! in the ledger (refused at the handshake otherwise, and logged). Every frame is read under a
//! size limit (a larger one closes the stream), a peer has at most
//! [`MAX_INBOUND_STREAMS_PER_PEER`] message streams open, and readers wait when the network task
//! is behind (back-pressure to the sender); a peer that sends messages that do not decode or
//! carry bad signatures collects strikes, and [`MAX_STRIKES`] strikes within [`STRIKE_WINDOW`]
//! disconnect it for [`BAN`].

use crate::core::{Core, CoreError, Effect};
use crate::metrics::Metrics;
use bincode::{Decode, Encode};
use futures::prelude::*;
use kp_consensus::wire;
use kp_domain::{ParticipantId, PublicKey, Timestamp};
use libp2p::allow_block_list::{self, AllowedPeers, BlockedPeers};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, connection_limits, identity, noise, tcp, yamux};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The protocol of catch-up and height requests (request-response, one substream each).
pub const PROTOCOL: &str = "/kp/sync/2";
/// The protocol of the long-lived, one-way message streams (one per peer and direction).
pub const MESSAGE_PROTOCOL: &str = "/kp/msg/2";
/// Largest request, response or message frame read from a peer (a consensus message or a
/// catch-up batch, and a little framing).
pub const MAX_FRAME_BYTES: usize = wire::MAX_MESSAGE_BYTES + 1024;
/// Most events in one batch passed on to a peer, and most bytes of events (well within a frame).
pub const MAX_FORWARD_EVENTS: usize = 1_024;
pub const MAX_FORWARD_BYTES: usize = 8 * 1024 * 1024;
/// Strikes (undecodable messages, bad signatures) that disconnect a peer.
pub const MAX_STRIKES: usize = 16;
pub const STRIKE_WINDOW: Duration = Duration::from_secs(60);
/// How long a peer that struck out is refused.
pub const BAN: Duration = Duration::from_secs(60);
/// Message streams one peer may have open to this node at once (an honest one has one, and
/// another for a moment while it replaces a broken one); more are refused and counted.
pub const MAX_INBOUND_STREAMS_PER_PEER: usize = 4;
/// Frames waiting to be written to one peer, and their bytes; beyond either, messages to it are
/// dropped (consensus recovers lost messages through its round timeouts and catch-up).
pub const SEND_QUEUE_FRAMES: usize = 1_024;
pub const SEND_QUEUE_BYTES: usize = 32 * 1024 * 1024;
/// What one write to a peer's stream carries at most: the frames queued for it, batched.
const MAX_WRITE_BYTES: usize = 256 * 1024;
/// The byte a node writes back on a message stream it accepted: until the opener reads it, the
/// stream may still be dropped unread (libp2p-stream drops inbound streams it cannot hand over
/// at once), so nothing is taken as sent on it before.
pub const STREAM_ACCEPTED: u8 = 0x4b;
/// How long opening a message stream (dialling if need be, and the acceptance byte) may take.
const STREAM_OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts to write a batch (opening or replacing the stream as needed) before it is dropped,
/// with the wait before each retry doubling from [`STREAM_RETRY`].
const WRITE_ATTEMPTS: u32 = 5;
const STREAM_RETRY: Duration = Duration::from_millis(100);
/// How long one write may wait for the peer to take it: a connection whose peer vanished
/// without closing it keeps a write pending until TCP gives up (minutes), while the peer may be
/// back on a new connection; the stream is replaced then.
const WRITE_TIMEOUT: Duration = Duration::from_secs(20);
/// Accepted message streams waiting for the network task.
const ACCEPT_QUEUE: usize = 256;
/// Messages read from peers waiting for the network task, and their bytes (the readers wait
/// when either is reached: back-pressure to the senders' Yamux and TCP windows).
const INBOUND_QUEUE: usize = 1_024;
pub const INBOUND_QUEUE_BYTES: usize = 64 * 1024 * 1024;
// A frame can always be queued once the queue has emptied.
const _: () = assert!(MAX_FRAME_BYTES <= INBOUND_QUEUE_BYTES);
/// Catch-up and height requests waiting for an answer from one peer, beyond which more are not
/// sent.
const MAX_OUTSTANDING_PER_PEER: usize = 64;
/// How often unconnected peers are dialled again.
const REDIAL: Duration = Duration::from_secs(2);
/// How often a peer is asked for its height when nothing else tells it.
const HEAD_PING: Duration = Duration::from_secs(1);
/// How long a peer may be ahead before this node fetches without being told it is behind.
const LAG_GRACE: Duration = Duration::from_millis(1_500);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// The shortest time between two catch-up batches served to one peer.
const MIN_SERVE_INTERVAL: Duration = Duration::from_millis(20);

/// A request to a peer (catch-up and heights), answered with a [`Response`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Request {
    /// Committed blocks from this height on.
    Blocks { from: u64 },
    /// Only the peer's height.
    Head,
    /// Never sent: what a request that does not decode (or is too large) is read as, so that
    /// the peer is held to account (a read error would only close the stream).
    Invalid(String),
}

/// A peer's answer: its height, and the blocks asked for.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Response {
    Ack { height: u64 },
    Blocks { height: u64, blocks: Vec<u8> },
}

impl Response {
    fn height(&self) -> u64 {
        match self {
            Response::Ack { height } | Response::Blocks { height, .. } => *height,
        }
    }
}

/// A one-way message on a peer's message stream.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Message {
    /// A consensus message, as `kp_consensus::wire` encodes it.
    Consensus(Vec<u8>),
    /// Signed events clients submitted to the sender (their exact envelopes).
    Events(Vec<Vec<u8>>),
    /// A participant authority's approval of a governance act (act bytes, key, signature).
    Approval { act: Vec<u8>, key: Vec<u8>, signature: Vec<u8> },
}

/// What a message stream carries: a message and the sender's height when it sent it (so that
/// every message also tells how far its sender is, as the answers to requests do).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Frame {
    pub height: u64,
    pub message: Message,
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_big_endian().with_fixed_int_encoding().with_limit::<MAX_FRAME_BYTES>()
}

/// Encodes a frame's body (without its length prefix).
pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    // Encoding into a Vec cannot fail for these types (no limit on writing).
    bincode::encode_to_vec(value, bincode::config::standard().with_big_endian().with_fixed_int_encoding())
        .unwrap_or_default()
}

/// Decodes a frame's body: every byte must be used.
pub fn decode<T: Decode<()>>(bytes: &[u8]) -> io::Result<T> {
    let (value, used) = bincode::decode_from_slice(bytes, bincode_config())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("message does not decode: {e}")))?;
    if used != bytes.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{} trailing bytes", bytes.len() - used)));
    }
    Ok(value)
}

/// A frame as it travels: a 4-byte big-endian length, then the body.
pub fn framed(body: &[u8]) -> Vec<u8> {
    // Bodies are far below 4 GiB (MAX_FRAME_BYTES): the length always fits.
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// Reads one length-prefixed frame; a length above [`MAX_FRAME_BYTES`] is `InvalidData` (and
/// nothing of the body is read: the stream's framing is lost).
pub async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {len} bytes, more than {MAX_FRAME_BYTES}"),
        ));
    }
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    Ok(body)
}

/// Writes the frame (length prefix and body) in one write, and closes the substream: one Yamux
/// data frame, and as few Noise records as its size allows.
async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, body: &[u8]) -> io::Result<()> {
    if body.len() > MAX_FRAME_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "frame too large"));
    }
    io.write_all(&framed(body)).await?;
    io.close().await
}

/// Length-prefixed bincode frames under [`MAX_FRAME_BYTES`].
#[derive(Debug, Clone, Default)]
pub struct Codec;

#[async_trait::async_trait]
impl request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Request> {
        match read_frame(io).await {
            Ok(body) => Ok(decode(&body).unwrap_or_else(|e| Request::Invalid(e.to_string()))),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(Request::Invalid(e.to_string())),
            Err(e) => Err(e),
        }
    }
    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Response> {
        decode(&read_frame(io).await?)
    }
    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> io::Result<()> {
        write_frame(io, &encode(&req)).await
    }
    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()> {
        write_frame(io, &encode(&res)).await
    }
}

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
pub struct Behaviour {
    allowed: allow_block_list::Behaviour<AllowedPeers>,
    blocked: allow_block_list::Behaviour<BlockedPeers>,
    limits: connection_limits::Behaviour,
    rr: request_response::Behaviour<Codec>,
    streams: libp2p_stream::Behaviour,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behaviour").finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("node key: {0}")]
    Key(String),
    #[error("libp2p transport: {0}")]
    Transport(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("bootstrap address {addr}: {reason}")]
    Bootstrap { addr: String, reason: String },
}

/// Events split into batches of at most [`MAX_FORWARD_EVENTS`] and [`MAX_FORWARD_BYTES`] (an
/// event larger than that alone in its batch; events are far smaller).
fn chunks(envelopes: &[Vec<u8>]) -> Vec<Vec<Vec<u8>>> {
    let mut chunks = Vec::new();
    let mut chunk: Vec<Vec<u8>> = Vec::new();
    let mut bytes = 0;
    for e in envelopes {
        if !chunk.is_empty() && (chunk.len() >= MAX_FORWARD_EVENTS || bytes + e.len() > MAX_FORWARD_BYTES) {
            chunks.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes += e.len();
        chunk.push(e.clone());
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// The libp2p identity of a node key (the same Ed25519 key).
pub fn peer_id_of(key: &PublicKey) -> Result<PeerId, NetworkError> {
    let public = identity::ed25519::PublicKey::try_from_bytes(&key.0).map_err(|e| NetworkError::Key(e.to_string()))?;
    Ok(identity::PublicKey::from(public).to_peer_id())
}

/// The libp2p keypair of a node's secret key.
pub fn keypair_of(key: &kp_crypto::SecretKey) -> Result<identity::Keypair, NetworkError> {
    identity::Keypair::ed25519_from_bytes(key.to_seed()).map_err(|e| NetworkError::Key(e.to_string()))
}

/// The sending side of one peer's message stream: frames queue here (bounded in number and
/// bytes) for the task that writes them.
#[derive(Debug)]
struct Outbox {
    frames: mpsc::Sender<Arc<[u8]>>,
    queued_bytes: Arc<AtomicUsize>,
}

/// Opens a message stream to `peer` and waits for its acceptance byte.
async fn open_stream(control: &mut libp2p_stream::Control, peer: PeerId) -> io::Result<libp2p::Stream> {
    let open = async {
        let mut stream = control
            .open_stream(peer, StreamProtocol::new(MESSAGE_PROTOCOL))
            .await
            .map_err(|e| io::Error::new(io::ErrorKind::NotConnected, e.to_string()))?;
        let mut accepted = [0u8; 1];
        stream.read_exact(&mut accepted).await?;
        if accepted != [STREAM_ACCEPTED] {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "the peer did not accept the stream"));
        }
        Ok(stream)
    };
    tokio::time::timeout(STREAM_OPEN_TIMEOUT, open)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "opening a message stream timed out")))
}

/// Writes the frames queued for `peer` to one long-lived stream: what is queued when the stream
/// can take more goes out in one write (up to [`MAX_WRITE_BYTES`]). A stream that fails is
/// replaced (the connection may have been replaced, or the peer restarted); a batch that cannot
/// be written in [`WRITE_ATTEMPTS`] is dropped, as a lost message is (what queues meanwhile is
/// bounded by the queue).
async fn write_stream(
    peer: PeerId,
    mut control: libp2p_stream::Control,
    mut frames: mpsc::Receiver<Arc<[u8]>>,
    queued_bytes: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
) {
    let mut stream: Option<libp2p::Stream> = None;
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    while let Some(first) = frames.recv().await {
        batch.clear();
        batch.extend_from_slice(&first);
        queued_bytes.fetch_sub(first.len(), Ordering::Relaxed);
        let mut count: u64 = 1;
        while batch.len() < MAX_WRITE_BYTES {
            let Ok(next) = frames.try_recv() else { break };
            batch.extend_from_slice(&next);
            queued_bytes.fetch_sub(next.len(), Ordering::Relaxed);
            count += 1;
        }
        let mut written = false;
        for attempt in 0..WRITE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(STREAM_RETRY * 2u32.pow(attempt - 1)).await;
            }
            let s = match &mut stream {
                Some(s) => s,
                None => match open_stream(&mut control, peer).await {
                    Ok(s) => stream.insert(s),
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "cannot open a message stream");
                        continue;
                    }
                },
            };
            let write = tokio::time::timeout(WRITE_TIMEOUT, async { s.write_all(&batch).await.and(s.flush().await) });
            match write.await.unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"))) {
                Ok(()) => {
                    written = true;
                    break;
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "message stream broke");
                    stream = None;
                }
            }
        }
        if written {
            metrics.net_writes.inc();
            metrics.net_messages_sent.inc_by(count);
        } else {
            metrics.net_messages_dropped.inc_by(count);
        }
        // A large frame (a proposal of a full block) grew the buffer: not kept for every peer.
        if batch.capacity() > 2 * MAX_WRITE_BYTES {
            batch = Vec::with_capacity(64 * 1024);
        }
    }
}

/// What the readers of peers' message streams hand the network task.
#[derive(Debug)]
pub enum Inbound {
    /// A message, and its share of [`INBOUND_QUEUE_BYTES`] (given back when it is handled).
    Frame(PeerId, Frame, tokio::sync::OwnedSemaphorePermit),
    /// A frame that does not decode, or announces more than [`MAX_FRAME_BYTES`] (then the
    /// stream is closed: its framing is lost).
    Invalid(PeerId, String),
    /// A message stream from this peer ended.
    Closed(PeerId),
}

/// Reads one peer's message stream until it ends or its framing is lost. A message waits for
/// its bytes' room in the inbound queue before the next is read.
async fn read_stream(
    peer: PeerId,
    mut stream: libp2p::Stream,
    inbound: mpsc::Sender<Inbound>,
    room: Arc<tokio::sync::Semaphore>,
) {
    if stream.write_all(&[STREAM_ACCEPTED]).await.is_ok() && stream.flush().await.is_ok() {
        read_frames(peer, &mut stream, &inbound, room).await;
    }
    let _ = inbound.send(Inbound::Closed(peer)).await;
}

async fn read_frames(
    peer: PeerId,
    stream: &mut libp2p::Stream,
    inbound: &mpsc::Sender<Inbound>,
    room: Arc<tokio::sync::Semaphore>,
) {
    loop {
        let item = match read_frame(stream).await {
            Ok(body) => match decode::<Frame>(&body) {
                Ok(frame) => {
                    // In KiB: a frame (at most MAX_FRAME_BYTES) never needs more than all of it.
                    let kib = u32::try_from(body.len().div_ceil(1024).max(1)).unwrap_or(u32::MAX);
                    drop(body);
                    let Ok(permit) = Arc::clone(&room).acquire_many_owned(kib).await else { return };
                    Inbound::Frame(peer, frame, permit)
                }
                Err(e) => Inbound::Invalid(peer, e.to_string()),
            },
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let _ = inbound.send(Inbound::Invalid(peer, e.to_string())).await;
                return;
            }
            Err(_) => return,
        };
        if inbound.send(item).await.is_err() {
            return;
        }
    }
}

/// What the network task waits for: the swarm, a peer opening a message stream, a message.
#[derive(Debug)]
pub enum NetEvent {
    Swarm(SwarmEvent<BehaviourEvent>),
    Stream(PeerId, libp2p::Stream),
    Inbound(Inbound),
}

#[derive(Debug, Default)]
struct Peer {
    connections: usize,
    height: u64,
    /// When this peer was first seen ahead of this node (reset when this node catches up).
    ahead_since: Option<Instant>,
    strikes: VecDeque<Instant>,
    /// Catch-up and height requests not answered yet.
    outstanding: usize,
    /// Message streams it has open to this node.
    inbound_streams: usize,
    /// When a catch-up batch was last served to it.
    served: Option<Instant>,
}

/// The network side of a node: the swarm and what it knows of each peer.
pub struct Network {
    swarm: Swarm<Behaviour>,
    me: PeerId,
    /// Node keys of the voters and observers, from the ledger (participants) and the genesis
    /// (observers).
    participants: HashMap<PeerId, ParticipantId>,
    /// The nodes of the current voters (consensus messages, events and approvals go to them).
    voters: HashSet<PeerId>,
    /// The participants' node keys and the voters the directory was last built from.
    directory: (Vec<(ParticipantId, PublicKey)>, Vec<ParticipantId>),
    bootstrap: Vec<(PeerId, Multiaddr)>,
    peers: HashMap<PeerId, Peer>,
    banned: Vec<(PeerId, Instant)>,
    fetching: Option<(PeerId, OutboundRequestId, Instant)>,
    behind: bool,
    last_redial: Option<Instant>,
    last_ping: Option<Instant>,
    ping_next: usize,
    /// An observer's node learns of new blocks only by asking: it fetches as soon as a peer is
    /// ahead, and asks for heights more often.
    observer: bool,
    metrics: Arc<Metrics>,
    control: libp2p_stream::Control,
    /// Message streams peers opened, from the task that accepts them.
    accepted: mpsc::Receiver<(PeerId, libp2p::Stream)>,
    outboxes: HashMap<PeerId, Outbox>,
    inbound_tx: mpsc::Sender<Inbound>,
    inbound_rx: mpsc::Receiver<Inbound>,
    /// Room left in the inbound queue, in KiB of frames.
    inbound_room: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").field("me", &self.me).field("peers", &self.peers.len()).finish_non_exhaustive()
    }
}

impl Network {
    /// Starts listening on `listen` and dialling `bootstrap` (each `/p2p/<peer id>`-terminated).
    pub fn start(
        key: &kp_crypto::SecretKey,
        listen: &str,
        bootstrap: &[String],
        core: &mut Core,
        observers: &[PublicKey],
    ) -> Result<Network, NetworkError> {
        let keypair = keypair_of(key)?;
        let me = keypair.public().to_peer_id();
        let max_peers = u32::try_from(kp_domain::MAX_PARTICIPANTS * 2 + 64).unwrap_or(u32::MAX);
        let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
            .map_err(|e| NetworkError::Transport(e.to_string()))?
            .with_behaviour(|_| Behaviour {
                allowed: allow_block_list::Behaviour::default(),
                blocked: allow_block_list::Behaviour::default(),
                limits: connection_limits::Behaviour::new(
                    connection_limits::ConnectionLimits::default()
                        .with_max_established_per_peer(Some(2))
                        .with_max_established(Some(max_peers))
                        .with_max_pending_incoming(Some(max_peers)),
                ),
                rr: request_response::Behaviour::with_codec(
                    Codec,
                    [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(REQUEST_TIMEOUT)
                        .with_max_concurrent_streams(MAX_OUTSTANDING_PER_PEER * 4),
                ),
                streams: libp2p_stream::Behaviour::new(),
            })
            .map_err(|e| NetworkError::Transport(e.to_string()))?
            // Requests and message streams open substreams; `V1Lazy` sends the protocol's name
            // and the first bytes at once instead of waiting a round trip for the peer to confirm
            // the protocol (all nodes speak both; a peer that does not is refused as before).
            .with_swarm_config(|c| {
                c.with_idle_connection_timeout(Duration::from_secs(3_600))
                    .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
            })
            .build();
        let mut bootstrap_peers = Vec::new();
        for b in bootstrap {
            let addr: Multiaddr =
                b.parse().map_err(|e| NetworkError::Bootstrap { addr: b.clone(), reason: format!("{e}") })?;
            let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
                return Err(NetworkError::Bootstrap {
                    addr: b.clone(),
                    reason: "must end with /p2p/<peer id> (the peer's node key)".into(),
                });
            };
            if peer != me {
                bootstrap_peers.push((peer, addr));
            }
        }
        let mut control = swarm.behaviour().streams.new_control();
        let mut incoming = control
            .accept(StreamProtocol::new(MESSAGE_PROTOCOL))
            .map_err(|e| NetworkError::Transport(format!("message protocol: {e}")))?;
        // libp2p-stream holds one inbound stream at a time and drops the next if it is not taken
        // at once: a task of its own takes them, whatever the network task is doing.
        let (accept_tx, accepted) = mpsc::channel(ACCEPT_QUEUE);
        tokio::spawn(async move {
            while let Some(s) = incoming.next().await {
                if accept_tx.send(s).await.is_err() {
                    return;
                }
            }
        });
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
        let mut net = Network {
            swarm,
            me,
            participants: HashMap::new(),
            voters: HashSet::new(),
            directory: (Vec::new(), Vec::new()),
            bootstrap: bootstrap_peers,
            peers: HashMap::new(),
            banned: Vec::new(),
            fetching: None,
            behind: false,
            last_redial: None,
            last_ping: None,
            ping_next: 0,
            observer: core.me().is_none(),
            metrics: core.metrics(),
            control,
            accepted,
            outboxes: HashMap::new(),
            inbound_tx,
            inbound_rx,
            inbound_room: Arc::new(tokio::sync::Semaphore::new(INBOUND_QUEUE_BYTES / 1024)),
        };
        for o in observers {
            net.swarm.behaviour_mut().allowed.allow_peer(peer_id_of(o)?);
        }
        net.refresh_directory(core)?;
        let addr: Multiaddr =
            listen.parse().map_err(|e| NetworkError::Listen { addr: listen.into(), reason: format!("{e}") })?;
        net.swarm.listen_on(addr).map_err(|e| NetworkError::Listen { addr: listen.into(), reason: e.to_string() })?;
        for (peer, addr) in net.bootstrap.clone() {
            net.swarm.add_peer_address(peer, addr);
        }
        Ok(net)
    }

    pub fn local_peer_id(&self) -> PeerId {
        self.me
    }

    /// Peers connected now.
    pub fn connected(&self) -> usize {
        self.peers.values().filter(|p| p.connections > 0).count()
    }

    /// The next thing for the network task to handle (cancel-safe: nothing is lost when another
    /// branch of the caller's `select!` wins).
    pub async fn next(&mut self) -> NetEvent {
        tokio::select! {
            event = self.swarm.select_next_some() => NetEvent::Swarm(event),
            Some((peer, stream)) = self.accepted.recv() => NetEvent::Stream(peer, stream),
            Some(inbound) = self.inbound_rx.recv() => NetEvent::Inbound(inbound),
        }
    }

    /// The participants' node keys as the ledger has them now (they change by governance).
    fn refresh_directory(&mut self, core: &Core) -> Result<(), NetworkError> {
        let keys: Vec<(ParticipantId, PublicKey)> = core.node_keys().to_vec();
        let voter_ids: Vec<ParticipantId> = core.voters().iter().map(|(id, _)| *id).collect();
        // A joining node becomes a participant's when its admission is committed.
        self.observer = core.me().is_none();
        // Called at every commit; only governance changes it.
        if self.directory.0 == keys && self.directory.1 == voter_ids {
            return Ok(());
        }
        self.directory = (keys.clone(), voter_ids);
        for (id, key) in keys {
            let peer = peer_id_of(&key)?;
            if self.participants.insert(peer, id).is_none() {
                self.swarm.behaviour_mut().allowed.allow_peer(peer);
            }
        }
        let voters: HashSet<ParticipantId> = self.directory.1.iter().copied().collect();
        self.voters = self.participants.iter().filter(|(_, id)| voters.contains(id)).map(|(peer, _)| *peer).collect();
        Ok(())
    }

    fn peer_of(&self, participant: ParticipantId) -> Option<PeerId> {
        self.participants.iter().find(|(_, p)| **p == participant).map(|(peer, _)| *peer)
    }

    /// Sends a catch-up or height request.
    fn request(&mut self, peer: PeerId, request: Request) {
        let state = self.peers.entry(peer).or_default();
        if state.outstanding >= MAX_OUTSTANDING_PER_PEER {
            tracing::debug!(%peer, "too many unanswered requests to this peer: request dropped");
            return;
        }
        state.outstanding += 1;
        self.swarm.behaviour_mut().rr.send_request(&peer, request);
    }

    /// A message as its frame bytes, with this node's height.
    fn frame(message: Message, height: u64) -> Arc<[u8]> {
        Arc::from(framed(&encode(&Frame { height, message })))
    }

    /// Queues a frame on the peer's message stream (its writer task is started on first use).
    fn send(&mut self, peer: PeerId, frame: Arc<[u8]>) {
        let metrics = &self.metrics;
        let control = &self.control;
        let outbox = self.outboxes.entry(peer).or_insert_with(|| {
            let (frames, rx) = mpsc::channel(SEND_QUEUE_FRAMES);
            let queued_bytes = Arc::new(AtomicUsize::new(0));
            tokio::spawn(write_stream(peer, control.clone(), rx, Arc::clone(&queued_bytes), Arc::clone(metrics)));
            Outbox { frames, queued_bytes }
        });
        let len = frame.len();
        if outbox.queued_bytes.fetch_add(len, Ordering::Relaxed) + len > SEND_QUEUE_BYTES {
            outbox.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.metrics.net_messages_dropped.inc();
            tracing::debug!(%peer, "send queue to this peer full (bytes): message dropped");
            return;
        }
        if let Err(e) = outbox.frames.try_send(frame) {
            outbox.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.metrics.net_messages_dropped.inc();
            match e {
                mpsc::error::TrySendError::Full(_) => {
                    tracing::debug!(%peer, "send queue to this peer full: message dropped");
                }
                // The writer ended (it cannot, short of a panic): started afresh next time.
                mpsc::error::TrySendError::Closed(_) => {
                    self.outboxes.remove(&peer);
                }
            }
        }
    }

    /// Voters' nodes other than this one that are connected.
    fn voter_peers(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(peer, p)| p.connections > 0 && self.voters.contains(peer))
            .map(|(peer, _)| *peer)
            .collect()
    }

    /// Carries out the core's effects that concern the network.
    pub fn carry_out(&mut self, effects: &[Effect], core: &mut Core) {
        for e in effects {
            let height = core.height();
            match e {
                Effect::Send(to, message) => match self.peer_of(*to) {
                    Some(peer) => {
                        self.send(peer, Self::frame(Message::Consensus(wire::encode_message(message)), height))
                    }
                    None => tracing::warn!(%to, "no node key known for this voter: message not sent"),
                },
                Effect::Broadcast(message) => {
                    // Encoded once; every voter's queue holds the same bytes.
                    let frame = Self::frame(Message::Consensus(wire::encode_message(message)), height);
                    for peer in self.voter_peers() {
                        self.send(peer, Arc::clone(&frame));
                    }
                }
                Effect::Forward(to, envelopes) => match self.peer_of(*to) {
                    Some(peer) => {
                        for chunk in chunks(envelopes) {
                            self.send(peer, Self::frame(Message::Events(chunk), height));
                        }
                    }
                    None => tracing::warn!(%to, "no node key known for this proposer: events not passed on"),
                },
                Effect::GossipApproval(a) => {
                    let (act, key, signature) = (a.act.clone(), a.key.clone(), a.signature.clone());
                    let frame = Self::frame(Message::Approval { act, key, signature }, height);
                    for peer in self.voter_peers() {
                        self.send(peer, Arc::clone(&frame));
                    }
                }
                Effect::Behind(_) => self.behind = true,
                Effect::Misbehaved(who, why) => {
                    if let Some(peer) = self.peer_of(*who) {
                        self.strike(peer, "peer_bad_consensus_message", why);
                    }
                }
                Effect::Committed(_) => {
                    if let Err(e) = self.refresh_directory(core) {
                        tracing::warn!(error = %e, "a participant's node key is not a libp2p key");
                    }
                }
            }
        }
    }

    /// Counts a fault against a peer; too many disconnect it for a while.
    fn strike(&mut self, peer: PeerId, reason: &str, detail: &str) {
        self.metrics.reject(reason);
        tracing::warn!(%peer, reason, detail, "peer misbehaved");
        let now = Instant::now();
        let state = self.peers.entry(peer).or_default();
        state.strikes.push_back(now);
        while state.strikes.front().is_some_and(|t| now.duration_since(*t) > STRIKE_WINDOW) {
            state.strikes.pop_front();
        }
        if state.strikes.len() >= MAX_STRIKES {
            state.strikes.clear();
            tracing::warn!(%peer, ban = ?BAN, "peer disconnected after {MAX_STRIKES} faults");
            self.metrics.reject("peer_banned");
            self.swarm.behaviour_mut().blocked.block_peer(peer);
            self.banned.retain(|(b, _)| *b != peer);
            self.banned.push((peer, now + BAN));
        }
    }

    /// Periodic work: dial missing peers, lift bans, ask for heights, fetch missing blocks.
    pub fn tick(&mut self, core: &Core) {
        let now = Instant::now();
        let lifted: Vec<PeerId> = self.banned.iter().filter(|(_, until)| *until <= now).map(|(p, _)| *p).collect();
        self.banned.retain(|(_, until)| *until > now);
        for peer in lifted {
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
        if self.last_redial.is_none_or(|t| now.duration_since(t) >= REDIAL) {
            self.last_redial = Some(now);
            for (peer, addr) in self.bootstrap.clone() {
                let connected = self.peers.get(&peer).is_some_and(|p| p.connections > 0);
                if !connected && !self.banned.iter().any(|(b, _)| *b == peer) {
                    let opts = DialOpts::peer_id(peer)
                        .addresses(vec![addr])
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build();
                    if let Err(e) = self.swarm.dial(opts) {
                        tracing::debug!(%peer, error = %e, "dial");
                    }
                }
            }
        }
        let every = if self.observer { HEAD_PING / 4 } else { HEAD_PING };
        if self.last_ping.is_none_or(|t| now.duration_since(t) >= every) {
            self.last_ping = Some(now);
            let connected: Vec<PeerId> =
                self.peers.iter().filter(|(_, p)| p.connections > 0).map(|(peer, _)| *peer).collect();
            self.ping_next = (self.ping_next + 1) % connected.len().max(1);
            if let Some(peer) = connected.get(self.ping_next) {
                self.request(*peer, Request::Head);
            }
        }
        self.maybe_fetch(core.height(), now);
    }

    fn maybe_fetch(&mut self, height: u64, now: Instant) {
        if self.fetching.is_some_and(|(_, _, at)| now.duration_since(at) > REQUEST_TIMEOUT) {
            self.fetching = None;
        }
        let best = self
            .peers
            .iter()
            .filter(|(_, p)| p.connections > 0)
            .max_by_key(|(_, p)| p.height)
            .map(|(peer, p)| (*peer, p.height, p.ahead_since));
        let lag = best.map_or(0, |(_, h, _)| h.saturating_sub(height));
        self.metrics.sync_lag.set(i64::try_from(lag).unwrap_or(i64::MAX));
        for p in self.peers.values_mut() {
            if p.height <= height {
                p.ahead_since = None;
            }
        }
        if self.fetching.is_some() {
            return;
        }
        let Some((peer, best_height, ahead_since)) = best else { return };
        if best_height <= height {
            self.behind = false;
            return;
        }
        let overdue = ahead_since.is_some_and(|t| now.duration_since(t) >= LAG_GRACE);
        if self.behind || overdue || self.observer || best_height >= height + 2 {
            self.peers.entry(peer).or_default().outstanding += 1;
            let id = self.swarm.behaviour_mut().rr.send_request(&peer, Request::Blocks { from: height + 1 });
            self.fetching = Some((peer, id, now));
            self.behind = false;
            tracing::debug!(%peer, from = height + 1, to = best_height, "fetching committed blocks");
        }
    }

    fn saw_height(&mut self, peer: PeerId, height: u64, mine: u64) {
        let state = self.peers.entry(peer).or_default();
        // The latest claim (a peer whose data was wiped starts again from nothing).
        state.height = height;
        if state.height > mine && state.ahead_since.is_none() {
            state.ahead_since = Some(Instant::now());
        }
    }

    /// Handles one swarm event; returns the core's effects for the runtime to publish (and to
    /// hand back to [`Network::carry_out`]).
    pub fn on_event(&mut self, event: NetEvent, core: &mut Core, now: Timestamp) -> Result<Vec<Effect>, CoreError> {
        match event {
            NetEvent::Swarm(event) => self.on_swarm_event(event, core, now),
            NetEvent::Stream(peer, stream) => {
                // Only participants' nodes send messages (everyone refuses an observer's): an
                // observer's stream would only take room in the inbound queue.
                if !self.participants.contains_key(&peer) {
                    drop(stream);
                    self.metrics.reject("peer_not_a_voter");
                    return Ok(Vec::new());
                }
                let state = self.peers.entry(peer).or_default();
                if state.inbound_streams >= MAX_INBOUND_STREAMS_PER_PEER {
                    // Refused and counted, not struck: streams an honest peer gave up on while
                    // this task was busy arrive together, before their readers' ends are seen.
                    drop(stream);
                    self.metrics.reject("peer_too_many_streams");
                    tracing::debug!(%peer, "more than {MAX_INBOUND_STREAMS_PER_PEER} message streams: refused");
                } else {
                    state.inbound_streams += 1;
                    tokio::spawn(read_stream(peer, stream, self.inbound_tx.clone(), Arc::clone(&self.inbound_room)));
                }
                Ok(Vec::new())
            }
            NetEvent::Inbound(Inbound::Closed(peer)) => {
                let state = self.peers.entry(peer).or_default();
                state.inbound_streams = state.inbound_streams.saturating_sub(1);
                Ok(Vec::new())
            }
            NetEvent::Inbound(Inbound::Invalid(peer, why)) => {
                self.strike(peer, "peer_malformed", &why);
                Ok(Vec::new())
            }
            NetEvent::Inbound(Inbound::Frame(peer, frame, room)) => {
                self.metrics.net_messages_received.inc();
                self.saw_height(peer, frame.height, core.height());
                let effects = self.on_frame(peer, frame.message, core, now);
                drop(room);
                effects
            }
        }
    }

    fn on_swarm_event(
        &mut self,
        event: SwarmEvent<BehaviourEvent>,
        core: &mut Core,
        now: Timestamp,
    ) -> Result<Vec<Effect>, CoreError> {
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                let p = self.peers.entry(peer_id).or_default();
                p.connections += 1;
                if p.connections == 1 {
                    tracing::info!(peer = %peer_id, participant = ?self.participants.get(&peer_id), "peer connected");
                    self.request(peer_id, Request::Head);
                    // It may have restarted: the events passed on to it are passed on again.
                    if let Some(participant) = self.participants.get(&peer_id) {
                        core.peer_connected(*participant);
                    }
                    // A voter's node that was away learns the approvals collected meanwhile.
                    if self.voters.contains(&peer_id) {
                        for a in core.open_approvals() {
                            let approval = Message::Approval { act: a.act, key: a.key, signature: a.signature };
                            self.send(peer_id, Self::frame(approval, core.height()));
                        }
                    }
                }
                self.metrics.peers.set(i64::try_from(self.connected()).unwrap_or(i64::MAX));
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established, .. } => {
                let p = self.peers.entry(peer_id).or_default();
                p.connections = usize::try_from(num_established).unwrap_or(0);
                if p.connections == 0 {
                    p.outstanding = 0;
                    tracing::info!(peer = %peer_id, "peer disconnected");
                }
                self.metrics.peers.set(i64::try_from(self.connected()).unwrap_or(i64::MAX));
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                self.metrics.reject("peer_refused");
                tracing::warn!(from = %send_back_addr, error = %error, "incoming connection refused");
            }
            SwarmEvent::NewListenAddr { address, .. } => tracing::info!(%address, "listening"),
            SwarmEvent::Behaviour(BehaviourEvent::Rr(e)) => return self.on_message(e, core, now),
            _ => {}
        }
        Ok(Vec::new())
    }

    fn answer(&mut self, channel: ResponseChannel<Response>, response: Response) {
        // Fails only if the peer is gone; nothing to do then.
        let _ = self.swarm.behaviour_mut().rr.send_response(channel, response);
    }

    /// A message from a peer's message stream.
    fn on_frame(
        &mut self,
        peer: PeerId,
        message: Message,
        core: &mut Core,
        now: Timestamp,
    ) -> Result<Vec<Effect>, CoreError> {
        match message {
            Message::Consensus(bytes) => {
                let Some(from) = self.participants.get(&peer).copied() else {
                    self.metrics.reject("peer_not_a_voter");
                    return Ok(Vec::new());
                };
                match wire::decode_message(&bytes) {
                    Ok(message) => return core.on_message(from, message, now),
                    Err(e) => self.strike(peer, "peer_malformed", &e.to_string()),
                }
            }
            Message::Events(envelopes) => {
                if !self.participants.contains_key(&peer) {
                    self.metrics.reject("peer_not_a_voter");
                    return Ok(Vec::new());
                }
                if envelopes.len() > MAX_FORWARD_EVENTS {
                    self.strike(peer, "peer_malformed", &format!("{} events in one batch", envelopes.len()));
                    return Ok(Vec::new());
                }
                let started = Instant::now();
                let n = envelopes.len();
                let (received, effects) = core.receive_events(envelopes, now)?;
                tracing::debug!(events = n, took = ?started.elapsed(), "events passed on by a peer");
                if let Some(why) = received.first_bad {
                    self.strike(peer, "peer_bad_event", &why);
                }
                return Ok(effects);
            }
            Message::Approval { act, key, signature } => {
                if !self.participants.contains_key(&peer) {
                    self.metrics.reject("peer_not_a_voter");
                    return Ok(Vec::new());
                }
                let approval = crate::core::ApprovalBytes { act, key, signature };
                let (outcome, effects) = core.approve(approval, false)?;
                if let Err(
                    e @ (crate::core::ApprovalError::Malformed(_) | crate::core::ApprovalError::BadSignature(_)),
                ) = outcome
                {
                    self.strike(peer, "peer_bad_approval", &e.to_string());
                }
                return Ok(effects);
            }
        }
        Ok(Vec::new())
    }

    fn on_message(
        &mut self,
        event: request_response::Event<Request, Response>,
        core: &mut Core,
        now: Timestamp,
    ) -> Result<Vec<Effect>, CoreError> {
        use request_response::{Event, Message};
        let mine = core.height();
        match event {
            Event::Message { peer, message: Message::Request { request, channel, .. }, .. } => {
                let ack = Response::Ack { height: mine };
                match request {
                    Request::Invalid(why) => {
                        // Not answered: the stream is dropped.
                        drop(channel);
                        self.strike(peer, "peer_malformed", &why);
                    }
                    Request::Head => self.answer(channel, ack),
                    Request::Blocks { from } => {
                        // Reading and encoding a batch holds the core: a peer is served at most
                        // one batch per MIN_SERVE_INTERVAL (an honest one asks for the next batch
                        // only once it has applied the last); sooner, it gets only the height.
                        let state = self.peers.entry(peer).or_default();
                        let now = Instant::now();
                        if state.served.is_some_and(|t| now.duration_since(t) < MIN_SERVE_INTERVAL) {
                            self.metrics.reject("peer_catch_up_too_often");
                            self.answer(channel, ack);
                        } else {
                            state.served = Some(now);
                            let blocks = core.serve_blocks(from)?;
                            self.answer(channel, Response::Blocks { height: mine, blocks });
                        }
                    }
                }
            }
            Event::Message { peer, message: Message::Response { request_id, response }, .. } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.outstanding = p.outstanding.saturating_sub(1);
                }
                self.saw_height(peer, response.height(), mine);
                if self.fetching.is_some_and(|(_, id, _)| id == request_id) {
                    self.fetching = None;
                }
                if let Response::Blocks { blocks, height: claimed } = response {
                    let blocks = match wire::decode_blocks(&blocks) {
                        Ok(b) => b,
                        Err(e) => {
                            self.strike(peer, "peer_malformed", &format!("catch-up batch: {e}"));
                            return Ok(Vec::new());
                        }
                    };
                    let (applied, effects) = core.apply_blocks(blocks, now)?;
                    if let Some(why) = &applied.refused {
                        self.strike(peer, "peer_bad_block", why);
                    }
                    if applied.applied == 0 && applied.refused.is_none() && claimed > mine {
                        // It claims blocks it does not serve: not asked again until it says more.
                        self.strike(peer, "peer_empty_catch_up", &format!("claims height {claimed}, served nothing"));
                        if let Some(p) = self.peers.get_mut(&peer) {
                            p.height = mine;
                        }
                    }
                    if applied.applied > 0 {
                        tracing::info!(%peer, blocks = applied.applied, height = core.height(), "caught up");
                        // More may follow at once.
                        self.maybe_fetch(core.height(), Instant::now());
                    }
                    return Ok(effects);
                }
            }
            Event::OutboundFailure { peer, request_id, error, .. } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.outstanding = p.outstanding.saturating_sub(1);
                }
                if self.fetching.is_some_and(|(_, id, _)| id == request_id) {
                    self.fetching = None;
                }
                tracing::debug!(%peer, error = %error, "message to peer failed");
            }
            // Requests that do not decode arrive as Request::Invalid; what fails here is the
            // stream itself (the peer went away, a timeout).
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, error = %error, "message from peer failed")
            }
            Event::ResponseSent { .. } => {}
        }
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sample() -> Vec<Frame> {
        vec![
            Frame { height: 7, message: Message::Consensus(vec![1, 2, 3]) },
            Frame { height: 8, message: Message::Events(vec![vec![9; 40], vec![]]) },
            Frame {
                height: u64::MAX,
                message: Message::Approval { act: vec![5], key: vec![6; 32], signature: vec![7; 64] },
            },
        ]
    }

    #[tokio::test]
    async fn a_batch_of_frames_reads_back_frame_by_frame() {
        // What a writer puts in one write: frames back to back.
        let batch: Vec<u8> = sample().iter().flat_map(|f| framed(&encode(f))).collect();
        let mut io = futures::io::Cursor::new(batch);
        for expected in sample() {
            let body = read_frame(&mut io).await.unwrap();
            assert_eq!(decode::<Frame>(&body).unwrap(), expected);
        }
        assert_eq!(read_frame(&mut io).await.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_before_its_body_is_read() {
        let len = u32::try_from(MAX_FRAME_BYTES + 1).unwrap();
        let mut io = futures::io::Cursor::new(len.to_be_bytes().to_vec());
        let e = read_frame(&mut io).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("more than"), "{e}");
    }

    #[test]
    fn damaged_frames_are_errors_not_panics_nor_other_frames() {
        for frame in sample() {
            let good = encode(&frame);
            // Every truncation, and one trailing byte, are refused.
            for cut in 0..good.len() {
                assert!(decode::<Frame>(&good[..cut]).is_err(), "truncated at {cut} decoded");
            }
            let mut longer = good.clone();
            longer.push(0);
            assert!(decode::<Frame>(&longer).is_err());
            // Every single-byte change either fails or decodes to a frame that re-encodes to
            // exactly the bytes read (never a panic, never bytes the decoder did not use).
            for i in 0..good.len() {
                for bit in 0..8 {
                    let mut bad = good.clone();
                    bad[i] ^= 1 << bit;
                    if let Ok(f) = decode::<Frame>(&bad) {
                        assert_eq!(encode(&f), bad);
                    }
                }
            }
        }
    }
}
