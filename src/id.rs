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

impl Sha256Digest {
    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Sha256Digest {
        use sha2::Digest as _;
        Sha256Digest(sha2::Sha256::digest(bytes).into())
    }
}

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

/// Why an id string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a {what} id: {why}")]
pub struct IdParseError {
    pub input: String,
    pub what: &'static str,
    pub why: &'static str,
}

/// A fresh node id: `prefix` and 16 hex digits that no two calls share.
pub(crate) fn fresh(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = blake3::Hasher::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.update(&now.as_nanos().to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let mut rnd = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut rnd);
    }
    h.update(&rnd);
    format!("{prefix}{}", &h.finalize().to_hex()[..16])
}

/// Serde, `Display` and `FromStr` for a newtype over a checked `String`.
macro_rules! string_id_impls {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// An id of a recorded node: a fixed prefix (`adm_`, `bld_`, ...) and hex digits.
macro_rules! prefixed_id {
    ($name:ident, $prefix:literal, $what:literal) => {
        #[doc = concat!("The id of ", $what, ": `", $prefix, "` and 16 hex digits.")]
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id that no other call shares.
            pub fn new() -> Self {
                Self(fresh($prefix))
            }

            pub fn parse(s: &str) -> Result<Self, IdParseError> {
                let err = |why| IdParseError {
                    input: s.to_string(),
                    what: $what,
                    why,
                };
                let rest = s
                    .strip_prefix($prefix)
                    .ok_or_else(|| err(concat!("expected the prefix `", $prefix, "`")))?;
                if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(err("expected letters and digits after the prefix"));
                }
                Ok(Self(s.to_string()))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        string_id_impls!($name);
    };
}

prefixed_id!(AdmissionId, "adm_", "an admission");
prefixed_id!(ModelAdmissionId, "mod_", "a model admission");
prefixed_id!(SourceId, "src_", "a recorded source");
prefixed_id!(RefusalId, "ref_", "a refusal");
prefixed_id!(RevocationId, "rev_", "a revocation");
prefixed_id!(BuildId, "bld_", "a build");

impl SourceId {
    /// The id whose digits are `hex`: a source's id is derived from its content.
    pub(crate) fn from_hex(hex: &str) -> Self {
        SourceId(format!("{}{hex}", Self::PREFIX))
    }
}

/// Every prefix a node id can start with: a name that starts with one reads as an id.
pub const ID_PREFIXES: &[&str] = &[
    AdmissionId::PREFIX,
    ModelAdmissionId::PREFIX,
    SourceId::PREFIX,
    RefusalId::PREFIX,
    RevocationId::PREFIX,
    BuildId::PREFIX,
];

/// A Stage 2 run: its folder's name, `<UTC yyyymmddThhmmssZ>-<fixture>-<pid>[-N]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(String);

impl RunId {
    /// The id for a run folder name made by the harness.
    pub(crate) fn from_folder(name: String) -> Self {
        RunId(name)
    }

    pub fn parse(s: &str) -> Result<Self, IdParseError> {
        let err = |why| IdParseError {
            input: s.to_string(),
            what: "a run",
            why,
        };
        if s.is_empty() || s.len() > 255 {
            return Err(err("expected 1 to 255 characters"));
        }
        if s.contains(['/', '\0']) || s == "." || s == ".." {
            return Err(err("a run id is a folder name"));
        }
        Ok(RunId(s.to_string()))
    }
}

string_id_impls!(RunId);

/// A git commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitId(String);

impl CommitId {
    pub fn parse(s: &str) -> Result<Self, IdParseError> {
        let ok = (s.len() == 40 || s.len() == 64)
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(CommitId(s.to_string()))
        } else {
            Err(IdParseError {
                input: s.to_string(),
                what: "a commit",
                why: "expected 40 or 64 lowercase hex digits",
            })
        }
    }

    /// The first `n` digits, for messages.
    pub fn short(&self, n: usize) -> &str {
        &self.0[..n.min(self.0.len())]
    }
}

string_id_impls!(CommitId);

/// A link of the journal's hash chain, `SHA-256(prev_hash || event)`: written as 64
/// lowercase hex digits without an algorithm, as the journal has always stored it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The hash before the first event.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// Exactly 64 lowercase hex digits.
    pub fn parse(s: &str) -> Result<Self, IdParseError> {
        let err = |why| IdParseError {
            input: s.to_string(),
            what: "a journal chain hash",
            why,
        };
        if s.len() != 64 {
            return Err(err("expected 64 hex digits"));
        }
        parse_hex32(s, "sha256")
            .map(ChainHash)
            .map_err(|e| err(e.why))
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(self.0, &mut buf).expect("64 = 2 x 32");
        f.pad(std::str::from_utf8(&buf).expect("hex digits are ASCII"))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for ChainHash {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for ChainHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ChainHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What a revocation revokes: an admission or a model admission.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Revocable {
    Admission(AdmissionId),
    Model(ModelAdmissionId),
}

impl Revocable {
    pub fn parse(s: &str) -> Result<Self, IdParseError> {
        if s.starts_with(ModelAdmissionId::PREFIX) {
            ModelAdmissionId::parse(s).map(Revocable::Model)
        } else {
            AdmissionId::parse(s).map(Revocable::Admission)
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Revocable::Admission(a) => a.as_str(),
            Revocable::Model(m) => m.as_str(),
        }
    }
}

impl fmt::Display for Revocable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Revocable {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for Revocable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Revocable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Revocable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
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

    #[test]
    fn prefixed_ids_keep_their_prefix_and_serialise_as_plain_strings() {
        let id = BuildId::new();
        assert!(id.as_str().starts_with("bld_") && id.as_str().len() == 20);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{id}\""));
        assert!(AdmissionId::parse(id.as_str()).is_err());
        assert!(AdmissionId::parse("adm_").is_err());
        assert!(serde_json::from_str::<BuildId>("\"adm_0123\"").is_err());
        assert_eq!(
            Revocable::parse("mod_0a").unwrap(),
            Revocable::Model(ModelAdmissionId::parse("mod_0a").unwrap())
        );
        assert!(CommitId::parse("7959ac9").is_err());
        assert!(RunId::parse("../x").is_err());
    }

    #[test]
    fn chain_hashes_are_bare_lowercase_hex() {
        let h = ChainHash([0xab; 32]);
        assert_eq!(h.to_string(), "ab".repeat(32));
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            format!("\"{}\"", "ab".repeat(32))
        );
        assert_eq!(ChainHash::parse(&h.to_string()).unwrap(), h);
        assert!(ChainHash::parse(&"AB".repeat(32)).is_err());
        assert!(ChainHash::parse(&format!("sha256:{}", "ab".repeat(32))).is_err());
        assert_eq!(ChainHash::GENESIS.to_string(), "0".repeat(64));
    }
}
