//! What the fuzz targets share: the fixed test network their seed corpus was made on
//! (`examples/make-corpus.rs`), and the two decoders of the node and the command-line tool that
//! are compiled into this crate from their own source files.
//!
//! The node's configuration loader (`crates/kp-node/src/config.rs`) and the key file reader
//! (`crates/kpledger/src/keyfile.rs`) are pure parsing over serde, TOML, JSON and hex, but their
//! crates pull in libp2p, tonic, axum, clap and the rest of the node: minutes of nightly build
//! under coverage instrumentation for two small functions. So their files are compiled here as
//! modules, exactly as they are in their crates (`#[path]`), against the few crates they name;
//! `libp2p::PeerId` is libp2p-identity's, which libp2p re-exports. A change to either file is
//! fuzzed as soon as it is made, and one that reaches for more of its crate fails this build.

use kp_testkit::TestNet;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The node's configuration loader, from `crates/kp-node/src/config.rs`.
#[path = "../../../crates/kp-node/src/role.rs"]
#[allow(dead_code)]
pub mod role;
#[path = "../../../crates/kp-node/src/config.rs"]
pub mod node_config;

/// Key files, from `crates/kpledger/src/keyfile.rs`.
#[path = "../../../crates/kpledger/src/keyfile.rs"]
pub mod keyfile;

/// Participants of the fixed test network.
pub const CODES: [&str; 5] = ["AA", "AB", "AC", "AD", "AE"];
/// Seed of its keys (issue 18: fuzzing).
pub const SEED: u64 = 18;

/// The test network whose chain id and genesis the targets check against, and on which the
/// seed corpus's events, blocks and bundles are signed.
pub fn net() -> &'static TestNet {
    static NET: OnceLock<TestNet> = OnceLock::new();
    NET.get_or_init(|| TestNet::new(&CODES, SEED))
}

/// A scratch directory of this process for the targets that read files (under /dev/shm when
/// there is one, so that a run does not wear a disk), created on first use.
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("KP_FUZZ_TMP").map(PathBuf::from).unwrap_or_else(|| {
        let shm = PathBuf::from("/dev/shm");
        if shm.is_dir() { shm } else { std::env::temp_dir() }
    });
    let dir = base.join(format!("kp-fuzz-{name}-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        // The target cannot run without it; libFuzzer reports this as a crash of the setup.
        panic!("cannot create {}: {e}", dir.display());
    }
    dir
}

/// The files a node configuration of the seed corpus names, relative to its own directory:
/// `genesis.pb` and `node.key` exist, `data` is a directory. Returns the path to parse as.
pub fn node_config_dir() -> &'static std::path::Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch_dir("node-config");
        let made = std::fs::write(dir.join("genesis.pb"), kp_proto::encode_genesis(&net().genesis))
            .and_then(|()| std::fs::write(dir.join("node.key"), "{}"))
            .and_then(|()| std::fs::create_dir_all(dir.join("data")));
        if let Err(e) = made {
            panic!("cannot set up {}: {e}", dir.display());
        }
        dir
    })
}
