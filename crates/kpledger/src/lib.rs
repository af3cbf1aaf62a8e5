//! The library behind the `kpledger` command: key files, the participant registry, local test
//! networks, the sample custody flow, the KP decision scenarios, and the node and its API client. The binary (`main.rs`) only parses arguments and
//! prints.

pub mod audit;
pub mod cert;
pub mod demo;
pub mod governance;
pub mod keyfile;
pub mod load;
pub mod node;
pub mod pki;
pub mod registry;
pub mod review;
pub mod scenario;
pub mod store;
pub mod testnet;
pub mod wan;
