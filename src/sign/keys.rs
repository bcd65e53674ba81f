//! Signing keys: Ed25519, the private half as PKCS#8 PEM (mode 0600) outside the ledger
//! home, the public half recorded in the journal under its keyid (lowercase hex SHA-256
//! of the DER SubjectPublicKeyInfo, as sigstore and in-toto name keys).

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// The one algorithm keys have.
pub(crate) const ALGORITHM: &str = "ed25519";

/// A private key, loaded.
pub(crate) struct SecretKey {
    pub(crate) signing: SigningKey,
}

/// A public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicKey {
    pub(crate) verifying: VerifyingKey,
}

/// Fills `buf` from the kernel's random source (getrandom(2)); `action` names the use.
pub(crate) fn random_bytes(buf: &mut [u8], action: &'static str) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        filled +=
            rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty())
                .map_err(|e| Error::Io {
                    action,
                    path: PathBuf::from("getrandom(2)"),
                    source: e.into(),
                })?;
    }
    Ok(())
}

impl SecretKey {
    /// A fresh key from the kernel's random source.
    pub(crate) fn generate() -> Result<SecretKey> {
        let mut seed = [0u8; 32];
        random_bytes(&mut seed, "read random bytes for a key")?;
        Ok(SecretKey {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    pub(crate) fn public(&self) -> PublicKey {
        PublicKey {
            verifying: self.signing.verifying_key(),
        }
    }

    /// PKCS#8 v1 (RFC 8410's `PrivateKeyInfo`, the seed only), as OpenSSL writes it: v2
    /// with the public key embedded is what older OpenSSL and `cryptography` cannot read.
    fn to_pem(&self) -> String {
        ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.signing.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_pem(LineEnding::LF)
        .expect("an Ed25519 key encodes")
        .to_string()
    }
}

impl PublicKey {
    /// The DER SubjectPublicKeyInfo.
    pub(crate) fn spki_der(&self) -> Vec<u8> {
        self.verifying
            .to_public_key_der()
            .expect("an Ed25519 key encodes")
            .into_vec()
    }

    /// Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo.
    pub(crate) fn keyid(&self) -> String {
        hex::encode(Sha256::digest(self.spki_der()))
    }

    pub(crate) fn pem(&self) -> String {
        self.verifying
            .to_public_key_pem(LineEnding::LF)
            .expect("an Ed25519 key encodes")
    }

    /// The raw 32-byte key, base64: what the journal records.
    pub(crate) fn raw_b64(&self) -> String {
        B64.encode(self.verifying.as_bytes())
    }

    pub(crate) fn from_raw_b64(s: &str) -> std::result::Result<PublicKey, String> {
        let raw = B64.decode(s).map_err(|e| format!("not base64: {e}"))?;
        let bytes: [u8; 32] = raw.try_into().map_err(|_| "not 32 bytes".to_string())?;
        VerifyingKey::from_bytes(&bytes)
            .map(|verifying| PublicKey { verifying })
            .map_err(|e| format!("not an Ed25519 public key: {e}"))
    }

    pub(crate) fn from_pem(s: &str) -> std::result::Result<PublicKey, String> {
        VerifyingKey::from_public_key_pem(s)
            .map(|verifying| PublicKey { verifying })
            .map_err(|e| format!("not an Ed25519 public key in PEM (SubjectPublicKeyInfo): {e}"))
    }
}

/// Where the private key lives: `$CTO_LEDGER_KEY`, else
/// `$XDG_CONFIG_HOME/cto-ledger/signing-key`, else `~/.config/cto-ledger/signing-key`.
pub(crate) fn key_path() -> Result<PathBuf> {
    let non_empty = |k: &str| crate::env::get_os(k).map(PathBuf::from);
    let p = if let Some(p) = non_empty("CTO_LEDGER_KEY") {
        p
    } else if let Some(p) = non_empty("XDG_CONFIG_HOME") {
        p.join("cto-ledger/signing-key")
    } else if let Some(h) = non_empty("HOME") {
        h.join(".config/cto-ledger/signing-key")
    } else {
        return Err(Error::bad_input(
            "cannot find the signing key: none of CTO_LEDGER_KEY, XDG_CONFIG_HOME or HOME is set",
            "set CTO_LEDGER_KEY to the key file's path",
        ));
    };
    std::path::absolute(&p).map_err(Error::io("resolve the signing key path", &p))
}

/// A key inside the ledger home would travel with it (backups, `push`) and be as
/// writable as the evidence it signs.
fn refuse_inside_home(path: &Path, home: &Path) -> Result<()> {
    let canon = |p: &Path| {
        p.parent()
            .and_then(|d| fs::canonicalize(d).ok())
            .map(|d| d.join(p.file_name().unwrap_or_default()))
            .unwrap_or_else(|| p.to_path_buf())
    };
    let home = fs::canonicalize(home).unwrap_or_else(|_| home.to_path_buf());
    if canon(path).starts_with(&home) {
        return Err(Error::bad_input(
            format!(
                "signing key {} is inside the ledger home {}",
                path.display(),
                home.display()
            ),
            "keep the key outside the ledger home: set CTO_LEDGER_KEY to a path elsewhere (e.g. ~/.config/cto-ledger/signing-key)",
        ));
    }
    Ok(())
}

/// Loads the private key at `path`: it must exist, be a regular file that only its
/// owner can read, and hold an Ed25519 PKCS#8 PEM key.
pub(crate) fn load(path: &Path, home: &Path) -> Result<SecretKey> {
    refuse_inside_home(path, home)?;
    read_secret(path)
}

/// [`load`] for a key that belongs to no ledger (a witness's).
pub(crate) fn read_secret(path: &Path) -> Result<SecretKey> {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "does not exist".to_string(),
                _ => format!("cannot be read: {e}"),
            };
            Error::bad_input(
                format!("signing key {} {why}", path.display()),
                "create one with `cto-ledger key generate` (or set CTO_LEDGER_KEY to an existing key)",
            )
        })?;
    let meta = f.metadata().map_err(Error::io("stat", path))?;
    if !meta.is_file() {
        return Err(Error::bad_input(
            format!("signing key {} is not a regular file", path.display()),
            "point CTO_LEDGER_KEY at the key file written by `cto-ledger key generate`",
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(Error::BadInput {
            message: format!(
                "signing key {} is readable or writable by group or others (mode {:04o})",
                path.display(),
                meta.mode() & 0o7777
            ),
            hint: Some(format!("run `chmod 600 {}`", path.display())),
        });
    }
    let mut pem = String::new();
    f.read_to_string(&mut pem).map_err(|_| {
        Error::bad_input(
            format!("signing key {} is not text", path.display()),
            "it should be an Ed25519 PKCS#8 PEM key written by `cto-ledger key generate`",
        )
    })?;
    let signing = SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        Error::bad_input(
            format!(
                "signing key {} is not an Ed25519 PKCS#8 PEM private key: {e}",
                path.display()
            ),
            "create one with `cto-ledger key generate`",
        )
    })?;
    Ok(SecretKey { signing })
}

/// Writes `key` to `path` (mode 0600, parent 0700 when created). With `replace`, an
/// existing key is atomically replaced; without, an existing key is an error.
pub(crate) fn store(key: &SecretKey, path: &Path, home: &Path, replace: bool) -> Result<()> {
    refuse_inside_home(path, home)?;
    write_secret(key, path, replace)
}

/// [`store`] for a key that belongs to no ledger (a witness's).
pub(crate) fn write_secret(key: &SecretKey, path: &Path, replace: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(Error::io("create the key's folder", dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".signing-key.")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(Error::io("create a key file in", dir))?;
    tmp.write_all(key.to_pem().as_bytes())
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(Error::io("write", tmp.path()))?;
    if replace {
        tmp.persist(path)
            .map_err(|e| Error::io("replace", path)(e.error))?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                Error::bad_input(
                    format!("a signing key already exists at {}", path.display()),
                    "use `cto-ledger key rotate` to replace it (its signatures stay verifiable), or set CTO_LEDGER_KEY to another path",
                )
            } else {
                Error::io("write", path)(e.error)
            }
        })?;
    }
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Where `key rotate` keeps the new private key until the journal has named it: beside
/// the key file, `NAME.next`.
pub(crate) fn pending_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".next");
    path.with_file_name(name)
}

/// Moves the pending key (`pending_path`) over the key file, durably.
pub(crate) fn promote(path: &Path) -> Result<()> {
    let next = pending_path(path);
    fs::rename(&next, path).map_err(Error::io("replace the key with", &next))?;
    if let Some(d) = path.parent().and_then(|d| fs::File::open(d).ok()) {
        d.sync_all()
            .map_err(Error::io("sync the key's folder", path))?;
    }
    Ok(())
}

/// Reads a public key file given on the command line: SPKI PEM (as `key export`
/// writes), or a private PKCS#8 PEM whose public half is taken.
pub(crate) fn read_public(path: &Path) -> Result<PublicKey> {
    let text = fs::read_to_string(path).map_err(|e| {
        Error::bad_input(
            format!("public key {} cannot be read: {e}", path.display()),
            "pass the PEM written by `cto-ledger key export --format pem`",
        )
    })?;
    if let Ok(k) = PublicKey::from_pem(&text) {
        return Ok(k);
    }
    if let Ok(s) = SigningKey::from_pkcs8_pem(&text) {
        return Ok(SecretKey { signing: s }.public());
    }
    Err(Error::bad_input(
        format!(
            "{} is not an Ed25519 public key in PEM (-----BEGIN PUBLIC KEY-----)",
            path.display()
        ),
        "pass the PEM written by `cto-ledger key export --format pem`",
    ))
}

/// A key from a known 32-byte seed (hex), for known-answer tests.
#[cfg(test)]
pub(crate) fn test_key(seed_hex: &str) -> SecretKey {
    let mut seed = [0u8; 32];
    hex::decode_to_slice(seed_hex, &mut seed).expect("64 hex digits");
    SecretKey {
        signing: SigningKey::from_bytes(&seed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8410 section 10.3 (PKCS#8 v1) and 10.1 (its public key).
    const RFC8410_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
    const RFC8410_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
    /// The same key as PKCS#8 v2, with an attribute and the public key (RFC 8410 10.3).
    const RFC8410_PRIVATE_V2: &str = "-----BEGIN PRIVATE KEY-----\nMHICAQEwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\noB8wHQYKKoZIhvcNAQkJFDEPDA1DdXJkbGUgQ2hhaXJzgSEAGb9ECWmEzf6FQbrB\nZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PRIVATE KEY-----\n";

    fn private_file(dir: &Path, pem: &str) -> PathBuf {
        let p = dir.join("key.pem");
        fs::write(&p, pem).unwrap();
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        p
    }

    #[test]
    fn the_rfc_8410_key_loads_in_either_form_and_names_its_public_half() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("ledger");
        for pem in [RFC8410_PRIVATE, RFC8410_PRIVATE_V2] {
            let key = load(&private_file(tmp.path(), pem), &home).unwrap();
            assert_eq!(key.public().pem(), RFC8410_PUBLIC);
            assert_eq!(
                hex::encode(key.public().verifying.as_bytes()),
                "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1"
            );
            // keyid: SHA-256 of the 44-byte DER SubjectPublicKeyInfo.
            let der = hex::decode("302a300506032b657003210019bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1").unwrap();
            assert_eq!(key.public().keyid(), hex::encode(Sha256::digest(der)));
        }
        assert_eq!(
            PublicKey::from_pem(RFC8410_PUBLIC).unwrap().raw_b64(),
            "Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="
        );
    }

    #[test]
    fn a_stored_key_loads_back_and_loose_or_misplaced_key_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("ledger");
        let path = tmp.path().join("keys/signing-key");
        let key = SecretKey::generate().unwrap();
        store(&key, &path, &home, false).unwrap();
        assert_eq!(load(&path, &home).unwrap().public(), key.public());
        assert!(
            store(&key, &path, &home, false).is_err(),
            "an existing key is not replaced"
        );
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
        assert!(load(&path, &home)
            .err()
            .expect("refused")
            .to_string()
            .contains("readable or writable by group or others"));
        let inside = home.join("signing-key");
        assert!(
            store(&key, &inside, &home, false).is_err(),
            "never inside the ledger home"
        );
        let garbage = private_file(
            tmp.path(),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        assert!(load(&garbage, &home)
            .err()
            .expect("refused")
            .to_string()
            .contains("is not an Ed25519 PKCS#8 PEM private key"));
    }
}
