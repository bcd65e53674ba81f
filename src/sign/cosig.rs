//! Witness cosignatures (C2SP `tlog-cosignature`, Ed25519, `cosignature/v1`): a
//! witness's statement that, at a time, the checkpoint is the largest consistent tree it
//! has seen of that log. A cosignature is a note signature line,
//!
//! ```text
//! — <witness name> base64(key id[4] || timestamp[8, big-endian] || Ed25519 signature[64])
//! ```
//!
//! over `cosignature/v1\ntime <timestamp>\n` followed by the checkpoint's note text; the
//! key id is `SHA-256(name || "\n" || 0x04 || public key)[:4]`. Witnesses are named by
//! their verifier key (vkey) `<name>+<hex key id>+<base64(0x04 || public key)>`.

use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use sha2::{Digest as _, Sha256};

use super::keys::{PublicKey, SecretKey};
use super::note::SignedNote;

/// The signature type byte C2SP assigns to Ed25519 cosignatures.
const COSIG_TYPE: u8 = 0x04;
const DASH: &str = "\u{2014} ";

/// A witness as a verifier knows it: its name and public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Witness {
    pub name: String,
    pub key: PublicKey,
}

/// `SHA-256(name || "\n" || 0x04 || 32-byte key)[:4]`.
fn key_id(name: &str, key: &PublicKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([COSIG_TYPE]);
    h.update(key.verifying.as_bytes());
    h.finalize()[..4].try_into().expect("4 bytes")
}

fn message(note_text: &str, time: u64) -> String {
    format!("cosignature/v1\ntime {time}\n{note_text}")
}

impl Witness {
    /// The witness's verifier key: `<name>+<hex key id>+<base64(0x04 || key)>`.
    pub(crate) fn vkey(&self) -> String {
        let mut raw = vec![COSIG_TYPE];
        raw.extend_from_slice(self.key.verifying.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(key_id(&self.name, &self.key)),
            B64.encode(raw)
        )
    }

    /// Parses a verifier key; the error says what is wrong with it.
    pub(crate) fn parse_vkey(s: &str) -> Result<Witness, String> {
        // As Go's note.NewVerifier: a name has no `+`, the key's base64 may.
        let mut parts = s.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("`{s}` is not a witness key NAME+KEYID+KEY"));
        };
        let raw = B64
            .decode(key)
            .map_err(|_| format!("the key in `{s}` is not base64"))?;
        let (Some(&COSIG_TYPE), Ok(bytes)) = (raw.first(), <[u8; 32]>::try_from(&raw[1..])) else {
            return Err(format!(
                "`{s}` is not an Ed25519 cosignature key (type 0x04, 32 bytes)"
            ));
        };
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(|verifying| PublicKey { verifying })
            .map_err(|e| format!("`{s}`: {e}"))?;
        let w = Witness {
            name: name.to_string(),
            key,
        };
        if hex::encode(key_id(&w.name, &w.key)) != id {
            return Err(format!("the key id in `{s}` is not its name's and key's"));
        }
        Ok(w)
    }

    /// Whether `note` carries a valid cosignature by this witness (a bad line by it is
    /// an error, as for the log's own signature).
    pub(crate) fn cosigned(&self, note: &SignedNote) -> Result<bool, String> {
        let id = key_id(&self.name, &self.key);
        let mut found = false;
        for s in note
            .signatures
            .iter()
            .filter(|s| s.name == self.name && s.key_hash == id)
        {
            let holds = s.sig.len() == 72
                && ed25519_dalek::Signature::from_slice(&s.sig[8..]).is_ok_and(|sig| {
                    let time = u64::from_be_bytes(s.sig[..8].try_into().expect("8 bytes"));
                    self.key
                        .verifying
                        .verify_strict(message(&note.text, time).as_bytes(), &sig)
                        .is_ok()
                });
            if !holds {
                return Err(format!(
                    "the cosignature of witness {} does not verify",
                    self.name
                ));
            }
            found = true;
        }
        Ok(found)
    }
}

/// The cosignature line of witness `name` with `key` over a note's text, at `time`.
pub(crate) fn cosign(note_text: &str, name: &str, key: &SecretKey, time: u64) -> String {
    let sig = key.signing.sign(message(note_text, time).as_bytes());
    let mut blob = key_id(name, &key.public()).to_vec();
    blob.extend_from_slice(&time.to_be_bytes());
    blob.extend_from_slice(&sig.to_bytes());
    format!("{DASH}{name} {}\n", B64.encode(blob))
}

/// How many distinct witnesses of `witnesses` validly cosigned `note`, and the problems
/// (a bad cosignature by a known witness). Distinct by key: the signed message does not
/// name the witness, so one key listed under two names is one witness.
pub(crate) fn count(note: &SignedNote, witnesses: &[Witness]) -> (usize, Vec<String>) {
    let mut names = BTreeSet::new();
    let mut problems = Vec::new();
    for w in witnesses {
        match w.cosigned(note) {
            Ok(true) => {
                names.insert(*w.key.verifying.as_bytes());
            }
            Ok(false) => {}
            Err(e) => problems.push(e),
        }
    }
    (names.len(), problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::keys::test_key;
    use crate::sign::note::Checkpoint;

    #[test]
    fn a_cosignature_verifies_and_an_altered_one_or_another_key_does_not() {
        let log = test_key("810a1402d5146c8d84f2443330f54080ebf98ee17d9c74f6252fc5d5c7283173");
        let wk = test_key("0101010101010101010101010101010101010101010101010101010101010101");
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: 5,
            root: [9; 32],
        };
        let signed = cp.sign("example.com/log", &log);
        let note = SignedNote::parse(&signed).unwrap();
        let line = cosign(&note.text, "w1.example", &wk, 1_700_000_000);
        let w = Witness {
            name: "w1.example".into(),
            key: wk.public(),
        };
        assert_eq!(Witness::parse_vkey(&w.vkey()).unwrap(), w);
        let with = SignedNote::parse(&format!("{signed}{line}")).unwrap();
        assert_eq!(count(&with, std::slice::from_ref(&w)), (1, vec![]));
        // One key listed under two names is one witness (the message names no witness).
        let alias = Witness {
            name: "alias.example".into(),
            key: wk.public(),
        };
        let aliased = format!(
            "{signed}{line}{}",
            line.replace("w1.example", "alias.example")
        );
        let aliased = SignedNote::parse(&aliased).unwrap();
        assert_eq!(count(&aliased, &[w.clone(), alias]).0, 1);
        // The log's own signature still verifies beside it.
        with.verify(&log.public()).unwrap();
        assert_eq!(count(&note, std::slice::from_ref(&w)).0, 0);
        let mut bad = line.clone().into_bytes();
        let n = bad.len();
        bad[n - 5] = if bad[n - 5] == b'A' { b'B' } else { b'A' };
        let with_bad =
            SignedNote::parse(&format!("{signed}{}", String::from_utf8(bad).unwrap())).unwrap();
        assert_eq!(count(&with_bad, std::slice::from_ref(&w)).1.len(), 1);
        assert!(Witness::parse_vkey("nope").is_err());
    }
}
