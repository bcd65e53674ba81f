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

/// A signed note of any text (each line ending in a newline): the text, a blank line and
/// `key`'s signature line under `name`.
fn sign_text(text: &str, name: &str, key: &SecretKey) -> String {
    let sig = key.signing.sign(text.as_bytes());
    let mut blob = key_hash(name, &key.public()).to_vec();
    blob.extend_from_slice(&sig.to_bytes());
    format!("{text}\n{DASH}{name} {}\n", B64.encode(blob))
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
        sign_text(&self.text(), name, key)
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
        if sigs.is_empty() {
            return Err("it has no signature lines".into());
        }
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
    /// verifies over the note text, and no other line of `key`'s fails: as Go's
    /// `sumdb/note` does, a note carrying a bad signature by a known key is rejected, not
    /// read past. Lines repeated byte for byte count once.
    pub(crate) fn verify(&self, key: &PublicKey) -> Result<(), String> {
        let mut verified = false;
        for s in &self.signatures {
            if s.key_hash != key_hash(&s.name, key) {
                continue;
            }
            let holds = ed25519_dalek::Signature::from_slice(&s.sig).is_ok_and(|sig| {
                key.verifying
                    .verify_strict(self.text.as_bytes(), &sig)
                    .is_ok()
            });
            if !holds {
                return Err(format!(
                    "a signature line by key {} does not verify (the note was altered, or carries a forged line)",
                    &key.keyid()[..16]
                ));
            }
            verified = true;
        }
        if verified {
            Ok(())
        } else {
            Err(format!("it has no signature by key {}", &key.keyid()[..16]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::keys::test_key;

    /// golang.org/x/mod/sumdb/note's test key (note_test.go): its seed, in the signer key
    /// `PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz`.
    fn peter() -> SecretKey {
        test_key("810a1402d5146c8d84f2443330f54080ebf98ee17d9c74f6252fc5d5c7283173")
    }

    #[test]
    fn a_bad_line_by_the_same_key_beside_a_good_one_is_rejected() {
        let k = peter();
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: 3,
            root: [7; 32],
        };
        let good = cp.sign("example.com/log", &k);
        assert!(SignedNote::parse(&good)
            .unwrap()
            .verify(&k.public())
            .is_ok());
        let line = good.lines().last().unwrap();
        let (head, b64) = line.rsplit_once(' ').unwrap();
        let mut blob = B64.decode(b64).unwrap();
        blob[10] ^= 1;
        let forged = format!("{good}{head} {}\n", B64.encode(blob));
        let err = SignedNote::parse(&forged)
            .unwrap()
            .verify(&k.public())
            .unwrap_err();
        assert!(err.contains("does not verify"), "{err}");
        // The same good line twice is one signature, not an error.
        let twice = format!("{good}{line}\n");
        assert!(SignedNote::parse(&twice)
            .unwrap()
            .verify(&k.public())
            .is_ok());
    }

    #[test]
    fn key_hash_verifier_key_and_signature_are_gos_known_answers() {
        let k = peter();
        assert_eq!(
            hex::encode(key_hash("PeterNeumann", &k.public())),
            "c74f20a3"
        );
        assert_eq!(
            verifier_key("PeterNeumann", &k.public()),
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        );
        // TestSign's `want`.
        let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        assert_eq!(
            sign_text(text, "PeterNeumann", &k),
            format!("{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")
        );
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "example.com/log".into(),
            size: 8,
            root: [7u8; 32],
        }
    }

    #[test]
    fn a_signed_checkpoint_parses_back_and_verifies_only_unchanged() {
        let (k, cp) = (peter(), checkpoint());
        let note = cp.sign("example.com/log", &k);
        let parsed = SignedNote::parse(&note).unwrap();
        assert_eq!(parsed.checkpoint, cp);
        assert_eq!(parsed.text, cp.text());
        parsed.verify(&k.public()).unwrap();
        let other = test_key("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb");
        assert!(parsed
            .verify(&other.public())
            .unwrap_err()
            .contains("no signature by key"));
        let altered = note.replacen("\n8\n", "\n9\n", 1);
        let parsed = SignedNote::parse(&altered).unwrap();
        assert!(parsed
            .verify(&k.public())
            .unwrap_err()
            .contains("does not verify"));
    }

    #[test]
    fn malformed_notes_are_refused_with_the_reason() {
        let note = checkpoint().sign("example.com/log", &peter());
        let cases = [
            (note.trim_end().to_string(), "does not end with a newline"),
            (note.replacen("\n\n", "\n", 1), "no blank line"),
            (note.replacen("\n8\n", "\n08\n", 1), "not a tree size"),
            (note.replacen("\n8\n", "\n+8\n", 1), "not a tree size"),
            (
                note.replacen("\u{2014} ", "- ", 1),
                "does not start with an em dash",
            ),
            (format!("{}\n\n", checkpoint().text()), "no signature lines"),
        ];
        for (bad, why) in cases {
            let e = SignedNote::parse(&bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
