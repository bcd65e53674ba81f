//! cto-ledger: a content-addressed artifact store and tamper-evident provenance
//! ledger for agent harnesses. See README.md and docs/.

pub mod build;
pub mod cli;
pub mod error;
pub mod git;
pub mod harness;
pub mod home;
pub mod id;
pub mod ledger;
pub mod lineage;
pub mod ops;
pub mod remote;
pub mod report;
pub mod runner;
pub mod store;
