//! Signed evidence: keys, DSSE envelopes, the Merkle tree over the journal and its
//! checkpoints as C2SP signed notes. Everything here is pure: reading the journal and
//! the key file is the callers' part.

pub(crate) mod cosig;
pub(crate) mod dsse;
pub(crate) mod keys;
pub(crate) mod merkle;
pub(crate) mod note;
