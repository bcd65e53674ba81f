//! What an auditor runs far from the ledger, with only a public key: checking DSSE
//! attestations ([`attestation`]) and log proofs ([`proof`]). Pure functions of the
//! evidence and the key; nothing here opens a ledger.

pub(crate) mod attestation;
pub(crate) mod proof;
