//! cto-ledger: a content-addressed artifact store and tamper-evident provenance
//! ledger for agent harnesses. See README.md and docs/.
//!
//! The library's public surface is what the tests, examples and benchmarks use: the
//! typed ids and states, the journal's event vocabulary, the ledger and store, tree
//! manifests and the fixture loader. Commands and the command line are internal.

mod admission;
mod audit;
mod build;
mod bundle;
mod cli;
mod commands;
mod env;
pub mod error;
mod git;
mod health;
mod home;
pub mod id;
mod ingest;
mod keyring;
mod ledger;
mod lineage;
mod model;
mod net;
mod offline;
mod paths;
mod policy;
mod report;
mod runner;
mod sandbox;
mod serve;
mod sign;
mod source;
mod stage2;
pub mod state;
mod store;
mod sync;
mod tlog;
mod witness;

pub use home::Home;
pub use ledger::query::Node;
pub use ledger::{events, Head, Ledger, Mode};
pub use stage2::fixture;
pub use store::{hash_file, tree};

/// Runs the `cto-ledger` command line; returns the process exit code.
pub fn run_cli() -> i32 {
    // The policy engine's child (see `policy::engine`): no command line to parse.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == policy::engine::ENGINE_ARG)
    {
        return policy::engine::child_main();
    }
    cli::main()
}
