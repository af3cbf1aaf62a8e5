//! The participant node.

/// The generated kp.v1.Node API.
#[allow(clippy::all, clippy::pedantic, missing_debug_implementations)]
pub mod pb {
    tonic::include_proto!("kp.v1");
    /// The encoded descriptors of node.proto, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("kp_node_descriptor");
}

pub mod access;
pub mod api;
pub mod config;
pub mod explorer;
pub mod network;
pub mod role;
pub mod runtime;
pub mod tls;

pub use config::NodeConfig;
/// The node's core lives in its own crate (no runtime, network or clock), driven here by the
/// runtime and in `kp-sim` by the simulator.
pub use kp_core as core;
pub use kp_core::metrics;
pub use runtime::{Listeners, now, run};
