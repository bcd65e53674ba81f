//! DSSE (Dead Simple Signing Envelope) v1: the envelope in-toto attestations travel in.
//! The signature covers PAE(payloadType, payload), never the JSON around it.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};

use super::keys::{PublicKey, SecretKey};

pub(crate) const IN_TOTO_PAYLOAD: &str = "application/vnd.in-toto+json";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Envelope {
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Signature {
    #[serde(default)]
    pub keyid: String,
    pub sig: String,
}

/// The Pre-Authentication Encoding: `DSSEv1 SP len(type) SP type SP len(body) SP body`.
pub(crate) fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// `payload` signed by `key` as an in-toto statement.
    pub(crate) fn sign(payload: &[u8], key: &SecretKey) -> Envelope {
        let sig = key.signing.sign(&pae(IN_TOTO_PAYLOAD, payload));
        Envelope {
            payload: B64.encode(payload),
            payload_type: IN_TOTO_PAYLOAD.into(),
            signatures: vec![Signature {
                keyid: key.public().keyid(),
                sig: B64.encode(sig.to_bytes()),
            }],
        }
    }

    /// The payload, decoded, once a signature by `key` over it is valid. Signatures
    /// by other keys are passed over, as DSSE verifiers do; at least one must be `key`'s.
    pub(crate) fn verify(&self, key: &PublicKey) -> Result<Vec<u8>, String> {
        let payload = B64
            .decode(&self.payload)
            .map_err(|e| format!("its payload is not base64: {e}"))?;
        let message = pae(&self.payload_type, &payload);
        let keyid = key.keyid();
        let mine: Vec<&Signature> = self
            .signatures
            .iter()
            .filter(|s| s.keyid.is_empty() || s.keyid == keyid)
            .collect();
        if mine.is_empty() {
            return Err(format!(
                "no signature is by key {} (signed by: {})",
                &keyid[..16],
                self.signatures
                    .iter()
                    .map(|s| s.keyid.get(..16).unwrap_or(&s.keyid))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for s in mine {
            let Ok(raw) = B64.decode(&s.sig) else {
                continue;
            };
            let Ok(sig) = ed25519_dalek::Signature::from_slice(&raw) else {
                continue;
            };
            if key.verifying.verify_strict(&message, &sig).is_ok() {
                if self.payload_type != IN_TOTO_PAYLOAD {
                    return Err(format!(
                        "its payloadType is `{}`, not `{IN_TOTO_PAYLOAD}`",
                        self.payload_type
                    ));
                }
                return Ok(payload);
            }
        }
        Err(format!(
            "the signature by key {} does not verify (the payload or signature was altered)",
            &keyid[..16]
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::keys::test_key;

    /// DSSE protocol.md, "Test Vectors".
    #[test]
    fn pae_is_the_specs_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        // Lengths are bytes, not characters; an empty body ends in a space.
        assert_eq!(
            pae("application/vnd.ex\u{e4}mple+json", b"{}"),
            "DSSEv1 29 application/vnd.ex\u{e4}mple+json 2 {}".as_bytes()
        );
        assert_eq!(
            pae(IN_TOTO_PAYLOAD, b""),
            b"DSSEv1 28 application/vnd.in-toto+json 0 "
        );
    }

    /// DSSE's test vector `single-signature` (testvectors/vectors.json): RFC 8032's TEST 1
    /// key over a minimal in-toto statement. Ed25519 is deterministic, so the signature
    /// is known in advance.
    #[test]
    fn a_signature_is_the_known_answer_and_verifies_only_unchanged() {
        let key = test_key("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let statement = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;
        let env = Envelope::sign(statement, &key);
        assert_eq!(
            env.payload,
            "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEifQ=="
        );
        assert_eq!(
            env.signatures[0].sig,
            "2WAfaHm5jluo0w+0rk8uVkluELJYWjSmU9x7EUzx+AyteDGJ4/nqyJXfmAUVFIAoQafWm7AxBZNw5M9ixNHiCA=="
        );
        assert_eq!(env.verify(&key.public()).unwrap(), statement);
        // The same signature under another payload type (`payload-type-swapped`) is refused.
        let mut swapped = env.clone();
        swapped.payload_type = "application/vnd.example.other+json".into();
        assert!(swapped.verify(&key.public()).is_err());
        let mut altered = env.clone();
        altered.payload = B64.encode(br#"{"_type":"https://in-toto.io/Statement/v0"}"#);
        assert!(altered.verify(&key.public()).is_err());
        let other = test_key("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb");
        assert!(env
            .verify(&other.public())
            .unwrap_err()
            .contains("no signature is by key"));
    }
}
