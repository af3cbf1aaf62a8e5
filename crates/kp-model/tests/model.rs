//! The engine's round-entry rules that the model checker's withheld-rule bound depends on, run
//! on the engine directly; and one small configuration checked exhaustively.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_consensus::block::VoteKind;
use kp_consensus::{Engine, Input, Message, NewRound, Output};
use kp_crypto::SecretKey;
use kp_domain::{ChainId, Hash32, ParticipantId, Timestamp};
use kp_model::app::{ModelApp, tx};
use kp_model::{ConsensusModel, Setup, engine_config, fresh_proposal};
use stateright::{Checker, Model};

const T0: Timestamp = Timestamp(1_000_000);

struct Net {
    chain: ChainId,
    ids: Vec<ParticipantId>,
    seeds: Vec<[u8; 32]>,
    app: ModelApp,
}

fn net() -> Net {
    let ids: Vec<ParticipantId> = ["AA", "AB", "AC"].iter().map(|s| ParticipantId::new(s).unwrap()).collect();
    let seeds: Vec<[u8; 32]> = (1..=3u8).map(|i| [i; 32]).collect();
    let voters = ids.iter().zip(&seeds).map(|(id, s)| (*id, SecretKey::from_seed(s).public())).collect();
    Net { chain: ChainId::new("kp-model").unwrap(), ids, seeds, app: ModelApp::new(Hash32([7; 32]), T0, voters) }
}

fn engine(n: &mut Net, i: usize) -> Engine {
    let key = SecretKey::from_seed(&n.seeds[i]);
    Engine::new(engine_config(), n.chain.clone(), kp_model::RULE, n.ids[i], key, vec![], T0, &mut n.app).unwrap().0
}

fn new_round(round: u32) -> Message {
    Message::NewRound(NewRound { height: 1, round, lock: None, precommit: None, missing: vec![] })
}

#[test]
fn one_voters_new_round_does_not_pull_a_node_out_of_its_round_two_do() {
    let mut n = net();
    let mut e = engine(&mut n, 0);
    assert_eq!(e.round(), 0);
    let _ = e.handle(Input::Message { from: n.ids[1], message: new_round(3) }, T0, &mut n.app);
    assert_eq!(e.round(), 0, "a single voter's report of round 3 must not cut round 0 short");
    let _ = e.handle(Input::Message { from: n.ids[2], message: new_round(2) }, T0, &mut n.app);
    assert_eq!(e.round(), 2, "two voters have reached round 2 at least: the node follows them there");
}

#[test]
fn a_proposal_of_a_later_round_is_prevoted_once_the_node_enters_that_round() {
    let mut n = net();
    let mut e = engine(&mut n, 0);
    // The leader of height 1, round 1 is voters[(1 + 1) mod 3] = AC.
    let key = SecretKey::from_seed(&n.seeds[2]);
    let p = fresh_proposal(&n.chain, &n.app, &key, n.ids[2], 1, vec![tx(1)]).unwrap();
    let hash = p.block.hash();
    let prevote_sent = |out: &[Output]| {
        out.iter().any(|o| {
            matches!(o, Output::Send { message: Message::Vote(v), .. }
                if v.body.kind == VoteKind::Prevote && v.body.round == 1 && v.body.block_hash == hash)
        })
    };
    let out = e.handle(Input::Message { from: n.ids[2], message: Message::Proposal(Box::new(p)) }, T0, &mut n.app);
    assert_eq!(e.round(), 0, "a leader alone cannot pull a node into its round");
    assert!(!prevote_sent(&out));
    let end = e.round_deadline();
    let out = e.handle(Input::Timeout { height: 1, round: 0 }, end, &mut n.app);
    assert_eq!(e.round(), 1);
    assert!(prevote_sent(&out), "entering round 1, the node prevotes the proposal it kept: {out:?}");
}

#[test]
fn a_small_configuration_is_explored_to_the_end_and_holds() {
    let setup = Setup {
        name: "test".into(),
        voters: 3,
        byzantine: Some(1),
        suspension: None,
        synchronous: false,
        max_height: 1,
        rounds: vec![0],
        losses: 0,
        duplicates: 1,
        byzantine_acts: 1,
        timeouts: 1,
        fifo: true,
    };
    let model = ConsensusModel::new(setup).unwrap();
    let names: Vec<&str> = model.properties().iter().map(|p| p.name).collect();
    let checker = model.checker().spawn_bfs().join();
    assert!(checker.is_done());
    assert!(checker.unique_state_count() > 10, "{} states", checker.unique_state_count());
    for p in ["agreement", "validity", "no panic"] {
        assert!(names.contains(&p));
        assert!(checker.discovery(p).is_none(), "{p} fails");
    }
    assert!(checker.discovery("every honest node reaches the last height").is_some());
}
