//! One integration test binary: every test runs the real `cto-ledger` binary in a
//! temporary directory with a cleared environment.

mod util;

mod admission;
mod audit;
mod auditor;
mod bad_input;
mod build;
mod bundle;
mod compat;
mod hardening;
mod hostile_remote;
mod judge;
mod keys;
mod model;
mod packs;
mod policy;
mod policy_run;
mod properties;
mod queries;
mod reliability;
mod remote;
mod sandbox;
mod serve;
mod signing;
mod stage2;
mod store;
mod structure;
mod tiles;
mod witness;
