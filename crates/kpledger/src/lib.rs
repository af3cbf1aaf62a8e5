//! The library behind the `kpledger` command: key files, the participant registry, local test
//! networks and the sample custody flow. The binary (`main.rs`) only parses arguments and
//! prints.

pub mod demo;
pub mod keyfile;
pub mod registry;
pub mod store;
pub mod testnet;
