//! Checkpoints as C2SP signed notes (`tlog-checkpoint` inside `signed-note`):
//!
//! ```text
//! cto-ledger/<ledger id>
//! <tree size>
//! <base64 root hash>
//!
//! — <key name> <base64(4-byte key hash || Ed25519 signature)>
//! ```
//!
//! The signature covers the note text (the lines before the blank line, each ending in
//! a newline); the key hash is `SHA-256(name || "\n" || 0x01 || public key)[:4]`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use sha2::{Digest as _, Sha256};

use super::keys::{PublicKey, SecretKey};
use super::merkle::Hash;

/// The signature type byte C2SP assigns to Ed25519.
const ED25519_TYPE: u8 = 0x01;
const DASH: &str = "\u{2014} ";

/// What a checkpoint commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// A parsed signed note: the checkpoint, its exact text and its signature lines.
#[derive(Debug, Clone)]
pub(crate) struct SignedNote {
    pub checkpoint: Checkpoint,
    pub text: String,
    pub signatures: Vec<NoteSig>,
}

#[derive(Debug, Clone)]
pub(crate) struct NoteSig {
    pub name: String,
    pub key_hash: [u8; 4],
    pub sig: Vec<u8>,
}

/// `SHA-256(name || "\n" || 0x01 || 32-byte key)[:4]`.
pub(crate) fn key_hash(name: &str, key: &PublicKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519_TYPE]);
    h.update(key.verifying.as_bytes());
    h.finalize()[..4].try_into().expect("4 bytes")
}

/// The verifier key string Go's `note` package and C2SP tools read:
/// `<name>+<hex key hash>+<base64(0x01 || key)>`.
pub(crate) fn verifier_key(name: &str, key: &PublicKey) -> String {
    let mut raw = vec![ED25519_TYPE];
    raw.extend_from_slice(key.verifying.as_bytes());
    format!(
        "{name}+{}+{}",
        hex::encode(key_hash(name, key)),
        B64.encode(raw)
    )
}

impl Checkpoint {
    pub(crate) fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// The signed note: the text, a blank line and one signature line, by `key` under
    /// the key name `name`.
    pub(crate) fn sign(&self, name: &str, key: &SecretKey) -> String {
        let text = self.text();
        let sig = key.signing.sign(text.as_bytes());
        let mut blob = key_hash(name, &key.public()).to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        format!("{text}\n{DASH}{name} {}\n", B64.encode(blob))
    }
}

impl SignedNote {
    /// Parses a signed checkpoint note; the error says what is malformed.
    pub(crate) fn parse(note: &str) -> Result<SignedNote, String> {
        let (text, sigs) = note
            .rsplit_once("\n\n")
            .ok_or("it has no blank line between the checkpoint and its signatures")?;
        let text = format!("{text}\n");
        let mut lines = text.lines();
        let origin = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or("its first line (the origin) is empty")?;
        let size = lines
            .next()
            .and_then(|l| (!(l.starts_with('+') || l.len() > 1 && l.starts_with('0'))).then_some(l))
            .and_then(|l| l.parse::<u64>().ok())
            .ok_or("its second line is not a tree size")?;
        let root: Hash = lines
            .next()
            .and_then(|l| B64.decode(l).ok())
            .and_then(|b| b.try_into().ok())
            .ok_or("its third line is not a base64 SHA-256 root hash")?;
        if !sigs.ends_with('\n') {
            return Err("it does not end with a newline".into());
        }
        let mut signatures = Vec::new();
        for line in sigs.lines() {
            let rest = line
                .strip_prefix(DASH)
                .ok_or_else(|| format!("signature line `{line}` does not start with an em dash"))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| format!("signature line `{line}` has no key name"))?;
            let blob = B64
                .decode(b64)
                .map_err(|_| format!("signature line `{line}` is not base64"))?;
            if blob.len() < 5 {
                return Err(format!("signature line `{line}` is too short"));
            }
            signatures.push(NoteSig {
                name: name.to_string(),
                key_hash: blob[..4].try_into().expect("4 bytes"),
                sig: blob[4..].to_vec(),
            });
        }
        if signatures.is_empty() {
            return Err("it has no signature lines".into());
        }
        Ok(SignedNote {
            checkpoint: Checkpoint {
                origin: origin.to_string(),
                size,
                root,
            },
            text,
            signatures,
        })
    }

    /// Ok when a signature line is `key`'s (its key hash under its name matches) and
    /// verifies over the note text.
    pub(crate) fn verify(&self, key: &PublicKey) -> Result<(), String> {
        let mut matched = false;
        for s in &self.signatures {
            if s.key_hash != key_hash(&s.name, key) {
                continue;
            }
            matched = true;
            let Ok(sig) = ed25519_dalek::Signature::from_slice(&s.sig) else {
                continue;
            };
            if key
                .verifying
                .verify_strict(self.text.as_bytes(), &sig)
                .is_ok()
            {
                return Ok(());
            }
        }
        Err(if matched {
            "its signature does not verify (the note was altered)".into()
        } else {
            format!("it has no signature by key {}", &key.keyid()[..16])
        })
    }
}
