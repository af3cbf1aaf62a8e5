//! What a Byzantine node sends instead of what its (honest) engine asked for. It holds its own
//! node key, so what it sends is signed like an honest node's message.

use crate::{Behaviour, Sim};
use kp_consensus::block::Certificate;
use kp_consensus::block::{Block, BlockHeader, VoteBody, VoteKind, events_root, voters_hash};
use kp_consensus::wire::encode_message;
use kp_consensus::{Message, NewRound, Proposal, Vote, leader_of, proposal_signing_bytes};
use kp_crypto::Tag;
use kp_domain::{Hash32, Timestamp};
use rand::Rng;

pub(crate) type Sends = Vec<(Option<usize>, Vec<u8>)>;

pub(crate) fn rewrite(sim: &mut Sim, i: usize, b: Behaviour, to: Option<usize>, message: Message) -> Sends {
    let honest = vec![(to, encode_message(&message))];
    match (b, message) {
        // Its own vote travels inside the certificates it would assemble as leader, and inside
        // the lock and precommit its NewRound reports: those too.
        (Behaviour::Withhold, Message::Vote(_) | Message::Certificate(_)) => vec![],
        (Behaviour::Withhold, Message::NewRound(mut n)) => {
            n.lock = None;
            n.precommit = None;
            vec![(to, encode_message(&Message::NewRound(n)))]
        }
        (Behaviour::DoubleVote, Message::Vote(v)) => {
            let mut other = v.body;
            other.block_hash = Hash32(sim.rng.random());
            let second = Message::Vote(sign_vote(sim, i, other));
            let mut out = vec![(to, encode_message(&second))];
            if sim.rng.random_bool(0.5) {
                out.insert(0, honest[0].clone());
            } else {
                out.push(honest[0].clone());
            }
            out
        }
        (Behaviour::BadSignatures, m @ (Message::Vote(_) | Message::Proposal(_))) => {
            if !sim.rng.random_bool(0.5) {
                return honest;
            }
            let forged = match m {
                Message::Vote(mut v) => {
                    v.signature.0[7] ^= 0x40;
                    Message::Vote(v)
                }
                Message::Proposal(mut p) => {
                    p.signature.0[7] ^= 0x40;
                    Message::Proposal(p)
                }
                other => other,
            };
            vec![(to, encode_message(&forged))]
        }
        (Behaviour::Garbage, m) => {
            let bytes = encode_message(&m);
            let mut out = vec![(to, bytes.clone())];
            if sim.rng.random_bool(0.5) {
                let target = Some(sim.rng.random_range(0..sim.nodes.len()));
                let junk = match sim.rng.random_range(0..3) {
                    0 => {
                        let len = sim.rng.random_range(0..512);
                        (0..len).map(|_| sim.rng.random()).collect()
                    }
                    1 => bytes[..sim.rng.random_range(0..bytes.len())].to_vec(),
                    _ => {
                        let mut flipped = bytes.clone();
                        let at = sim.rng.random_range(0..flipped.len());
                        flipped[at] ^= 1 << sim.rng.random_range(0..8);
                        flipped
                    }
                };
                out.push((target, junk));
            }
            out
        }
        (Behaviour::Equivocate, Message::Proposal(p)) if p.justify.is_none() => {
            // A second, valid block for the same (height, round): the same events a millisecond
            // later. Half the nodes get one, half the other, and a few get both.
            let Some(second) = alternative_proposal(sim, i, &p, None) else { return honest };
            let first = encode_message(&Message::Proposal(p));
            let second = encode_message(&Message::Proposal(Box::new(second)));
            let mut out = vec![];
            for n in 0..sim.nodes.len() {
                if n == i {
                    continue;
                }
                match sim.rng.random_range(0..5) {
                    0 | 1 => out.push((Some(n), first.clone())),
                    2 | 3 => out.push((Some(n), second.clone())),
                    _ => {
                        out.push((Some(n), first.clone()));
                        out.push((Some(n), second.clone()));
                    }
                }
            }
            out
        }
        (Behaviour::InvalidEvents, Message::Proposal(p)) if p.justify.is_none() => {
            let mut events = p.block.events().to_vec();
            let extra = match events.first() {
                Some(e) if sim.rng.random_bool(0.5) => e.clone(), // A duplicate: the rules refuse it.
                _ => b"not a signed event".to_vec(),              // The edge refuses it.
            };
            let at = sim.rng.random_range(0..=events.len());
            events.insert(at, extra);
            match alternative_proposal(sim, i, &p, Some(events)) {
                Some(bad) => vec![(to, encode_message(&Message::Proposal(Box::new(bad))))],
                None => honest,
            }
        }
        (Behaviour::WithholdAt(w), m) => {
            use crate::WithholdPoint as W;
            let kept = match (w, m) {
                (W::Proposal, Message::Proposal(_)) | (W::NewRound, Message::NewRound(_)) => None,
                (W::Prevote, Message::Vote(v)) if v.body.kind == VoteKind::Prevote => None,
                (W::Precommit, Message::Vote(v)) if v.body.kind == VoteKind::Precommit => None,
                (W::PrevoteCertificate, Message::Certificate(c)) if c.body.kind == VoteKind::Prevote => None,
                (W::Precommit | W::CommitCertificate, Message::Certificate(c))
                    if c.body.kind == VoteKind::Precommit =>
                {
                    None
                }
                (W::Precommit, Message::NewRound(mut n)) => {
                    n.precommit = None;
                    Some(Message::NewRound(n))
                }
                (_, m) => Some(m),
            };
            kept.map(|m| vec![(to, encode_message(&m))]).unwrap_or_default()
        }
        (Behaviour::HideCommit, Message::Certificate(c)) if c.body.kind == VoteKind::Precommit => {
            sim.hidden.insert(i, *c);
            vec![]
        }
        (_, m) => vec![(to, encode_message(&m))],
    }
}

/// A commit-hiding node looks at what it receives for the height of its hidden certificate: it
/// prevotes any other block proposed there, and when such a block is certified it precommits it
/// and releases the hidden certificate to a random half of the nodes.
pub(crate) fn observe(sim: &mut Sim, i: usize, message: &Message) -> Sends {
    let Some(hidden) = sim.hidden.get(&i).cloned() else { return vec![] };
    let h = hidden.body.height;
    let voters = match &sim.nodes[i].core {
        Some(c) => c.voters().to_vec(),
        None => return vec![],
    };
    let leader = |round| leader_of(&voters, h, round).and_then(|id| sim.index.get(&id).copied());
    let (kind, round, hash) = match message {
        Message::Proposal(p) if p.height == h && p.block.hash() != hidden.body.block_hash => {
            (VoteKind::Prevote, p.round, p.block.hash())
        }
        Message::Certificate(c)
            if c.body.kind == VoteKind::Prevote
                && c.body.height == h
                && c.body.block_hash != hidden.body.block_hash =>
        {
            (VoteKind::Precommit, c.body.round, c.body.block_hash)
        }
        _ => return vec![],
    };
    let vote = sign_vote(sim, i, VoteBody { kind, height: h, round, block_hash: hash });
    let mut out = vec![(leader(round), encode_message(&Message::Vote(vote)))];
    if kind == VoteKind::Precommit {
        let cert = encode_message(&Message::Certificate(Box::new(hidden)));
        for n in 0..sim.nodes.len() {
            if n != i && sim.rng.random_bool(0.5) {
                out.push((Some(n), cert.clone()));
            }
        }
        sim.hidden.remove(&i);
    }
    out.retain(|(to, _)| to.is_some());
    out
}

fn sign_vote(sim: &Sim, i: usize, body: VoteBody) -> Vote {
    let time = sim.clock(i);
    let signature = sim.key(i).sign(Tag::Vote, &sim.net.genesis.chain_id, &body.signing_bytes(time));
    Vote { body, voter: sim.nodes[i].id, time, signature }
}

/// Another signed proposal for the same (height, round): the block without its last event
/// (re-executed for a correct state root: a valid block too), or with `events` in place of the
/// block's (the state root left as it was: such a block is invalid). An empty block has no valid
/// alternative (its time is the consensus time): it is given another time, which makes it invalid.
fn alternative_proposal(sim: &mut Sim, i: usize, p: &Proposal, events: Option<Vec<Vec<u8>>>) -> Option<Proposal> {
    let old = p.block.header();
    let mut time = old.time;
    let (events, state_root, voters) = match events {
        Some(events) => (events, old.state_root, old.voters_hash),
        None => {
            let mut events = p.block.events().to_vec();
            if events.pop().is_none() {
                time = Timestamp(time.0 + 1);
            }
            let x = sim.nodes[i].core.as_mut()?.execute_on_committed(time, &events).ok()?;
            (events, x.state_root, voters_hash(&x.required))
        }
    };
    let header = BlockHeader {
        time,
        events_root: events_root(&events),
        event_count: u32::try_from(events.len()).ok()?,
        state_root,
        voters_hash: voters,
        ..old.clone()
    };
    let block = Block::new(header, events, p.block.last_commit().cloned()).ok()?;
    let bytes = proposal_signing_bytes(p.height, p.round, &block.hash(), None);
    let signature = sim.key(i).sign(Tag::Proposal, &sim.net.genesis.chain_id, &bytes);
    Some(Proposal { block, signature, justify: None, ..p.clone() })
}

/// A flooding node's next `NewRound`s, one to every voter's node: a round up to the engines'
/// window ahead of its own, half of them reporting a lock that is a made-up block of the height
/// with a certificate whose signatures do not verify.
pub(crate) fn flood(sim: &mut Sim, i: usize) -> Sends {
    let Some(core) = sim.nodes[i].core.as_ref() else { return vec![] };
    let height = core.height() + 1;
    let round = core.round().saturating_add(sim.rng.random_range(1..=kp_consensus::engine::MAX_ROUNDS_AHEAD));
    let voters = core.voters().to_vec();
    let head = core.store().head();
    let last_commit = core.store().block(head.height).ok().flatten().map(|b| b.certificate);
    let lock = sim.rng.random_bool(0.5).then(|| {
        let last_commit_hash = match &last_commit {
            Some(c) => kp_consensus::block::certificate_hash(&kp_consensus::wire::encode_certificate(c)),
            None => Hash32::default(),
        };
        let header = BlockHeader {
            chain_id: sim.net.genesis.chain_id.clone(),
            height,
            round: 0,
            prev_hash: head.hash,
            last_commit_hash,
            proposer: sim.nodes[i].id,
            time: kp_consensus::block::consensus_time(last_commit.as_ref(), head.time),
            events_root: events_root(&[]),
            event_count: 0,
            state_root: Hash32(sim.rng.random()),
            voters_hash: voters_hash(&voters),
        };
        let block = Block::new(header, vec![], last_commit.clone()).ok()?;
        let body = VoteBody { kind: VoteKind::Prevote, height, round: round - 1, block_hash: block.hash() };
        let signatures = voters
            .iter()
            .map(|(id, _)| kp_consensus::block::VoteSignature {
                voter: *id,
                time: head.time,
                signature: kp_crypto::Signature(sim.rng.random()),
            })
            .collect();
        Some(Box::new((block, Certificate { body, signatures, withheld: None })))
    });
    let message = Message::NewRound(NewRound { height, round, lock: lock.flatten(), precommit: None, missing: vec![] });
    vec![(None, encode_message(&message))]
}
