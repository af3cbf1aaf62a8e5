//! kp-review's tests, one binary (one link): a synthetic year with planted anomalies, hand-built
//! ledgers for the report and the statistics, the chart, and odd input streams.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::float_arithmetic,
    clippy::cast_possible_truncation
)]

mod anomalies;
mod chart;
mod common;
mod odd_inputs;
mod report;
mod stats;
mod synthetic;

use std::sync::OnceLock;

/// The synthetic world of [`synthetic::SEED`], generated once for every test that needs it.
pub fn world() -> &'static synthetic::World {
    static WORLD: OnceLock<synthetic::World> = OnceLock::new();
    WORLD.get_or_init(|| {
        println!("synthetic world: seed {:#x}", synthetic::SEED);
        synthetic::generate(synthetic::SEED)
    })
}
