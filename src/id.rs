//! Typed digests. Every digest is written with its algorithm (`blake3:<hex>`,
//! `sha256:<hex>`) so a reader never has to guess which hash a string is.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a digest string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a valid {algo} digest: {why}")]
pub struct DigestParseError {
    pub input: String,
    pub algo: &'static str,
    pub why: &'static str,
}

fn parse_hex32(s: &str, algo: &'static str) -> Result<[u8; 32], DigestParseError> {
    let hex_part = s
        .strip_prefix(algo)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or(s);
    let err = |why| DigestParseError {
        input: s.to_string(),
        algo,
        why,
    };
    if hex_part.len() != 64 {
        return Err(err("expected 64 hex digits"));
    }
    if !hex_part
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(err("expected lowercase hex digits"));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).map_err(|_| err("expected hex digits"))?;
    Ok(out)
}

/// 64 hex digits held on the stack.
struct HexStr([u8; 64]);

impl HexStr {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }
}

impl fmt::Display for HexStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! digest_type {
    ($name:ident, $algo:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub const ALGO: &'static str = $algo;

            pub fn hex(&self) -> String {
                self.hex_str().to_string()
            }

            /// The hex digits on the stack: tree manifests write thousands of these.
            fn hex_buf(&self) -> [u8; 64] {
                let mut buf = [0u8; 64];
                hex::encode_to_slice(self.0, &mut buf).expect("64 = 2 x 32");
                buf
            }

            fn hex_str(&self) -> HexStr {
                HexStr(self.hex_buf())
            }

            /// Parses bare hex or `algo:hex`.
            pub fn parse(s: &str) -> Result<Self, DigestParseError> {
                parse_hex32(s, $algo).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!($algo, ":"))?;
                f.write_str(self.hex_str().as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = DigestParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                if !s.starts_with(concat!($algo, ":")) {
                    return Err(serde::de::Error::custom(format!(
                        "digest `{s}` must be written as {}:<hex>",
                        $algo
                    )));
                }
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

digest_type!(
    ObjectId,
    "blake3",
    "The BLAKE3 digest that addresses an object in the store."
);
digest_type!(
    Sha256Digest,
    "sha256",
    "The SHA-256 digest recorded for every object."
);

/// Both digests and the size of one object: what the store learns in one read pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub id: ObjectId,
    pub sha256: Sha256Digest,
    pub size: u64,
}

/// A string that looks like a digest the user typed: algorithm (if given) and hex prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestPrefix {
    pub algo: Option<&'static str>,
    pub hex: String,
}

impl DigestPrefix {
    /// Accepts `blake3:<hex>`, `sha256:<hex>` or bare hex of at least `min_len` digits.
    pub fn parse(s: &str, min_len: usize) -> Option<Self> {
        let (algo, rest) = if let Some(r) = s.strip_prefix("blake3:") {
            (Some(ObjectId::ALGO), r)
        } else if let Some(r) = s.strip_prefix("sha256:") {
            (Some(Sha256Digest::ALGO), r)
        } else {
            (None, s)
        };
        let rest = rest.to_ascii_lowercase();
        let ok = !rest.is_empty()
            && rest.len() <= 64
            && rest.bytes().all(|b| b.is_ascii_hexdigit())
            && (algo.is_some() || rest.len() >= min_len);
        ok.then_some(DigestPrefix { algo, hex: rest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_round_trips_through_display_and_serde() {
        let id = ObjectId(*blake3::hash(b"x").as_bytes());
        let s = id.to_string();
        assert!(s.starts_with("blake3:"));
        assert_eq!(s.parse::<ObjectId>().unwrap(), id);
        let j = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<ObjectId>(&j).unwrap(), id);
        assert!(serde_json::from_str::<ObjectId>(&format!("\"{}\"", id.hex())).is_err());
        assert!("sha256:zz".parse::<Sha256Digest>().is_err());
        assert!(ObjectId::parse(&id.hex().to_uppercase()).is_err());
    }

    #[test]
    fn prefixes_need_hex_and_length() {
        assert!(DigestPrefix::parse("abc", 7).is_none());
        assert_eq!(
            DigestPrefix::parse("blake3:ab", 7).unwrap().algo,
            Some("blake3")
        );
        assert!(DigestPrefix::parse("7959ac9", 7).is_some());
        assert!(DigestPrefix::parse("7959acx", 7).is_none());
    }
}
