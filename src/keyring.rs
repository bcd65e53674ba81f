//! The ledger's signing keys: generate, rotate, revoke, list and export. Private keys
//! live outside the ledger home (`sign::keys` reads and writes the file); their public
//! halves are `key` events, so every host of a ledger knows what verifies its notes.

use std::path::PathBuf;

use serde::Serialize;

use crate::audit::{AuditOut, Finding};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::ledger::events::{Body, KeyRevocationRec};
use crate::ledger::tlog::KeyRow;
use crate::sign::keys::{self, PublicKey, SecretKey};
use crate::sign::note;
use crate::state::AuditCheck;
use crate::tlog;

/// A key recorded by `generate` or `rotate`.
#[derive(Serialize)]
pub(crate) struct Recorded {
    pub keyid: String,
    pub path: PathBuf,
    /// False when an existing key file was recorded rather than a new one made.
    pub generated: bool,
    pub replaces: Option<String>,
    pub seq: u64,
}

/// How `export` writes a public key.
#[derive(Clone, Copy)]
pub(crate) enum Format {
    /// SubjectPublicKeyInfo PEM
    Pem,
    /// The raw 32-byte key, base64
    Raw,
    /// A C2SP note verifier key (`<origin>+<hash>+<key>`)
    Note,
}

/// A key as `key list` shows it.
#[derive(Serialize)]
pub(crate) struct Listed {
    #[serde(flatten)]
    pub key: KeyRow,
    pub status: &'static str,
    /// This host's signing key.
    pub current: bool,
}

/// Records `key` unless the ledger already has it; the event's number either way.
fn record(home: &mut Home, key: &PublicKey, replaces: Option<String>) -> Result<(u64, bool)> {
    let keyid = key.keyid();
    let known = |l: &crate::ledger::Ledger| Ok(!l.keys_matching(&keyid)?.is_empty());
    match home.commit_unless(known, vec![tlog::key_event(key, replaces)])? {
        Some(events) => Ok((events[0].seq, true)),
        None => Ok((home.ledger.keys_matching(&keyid)?[0].seq, false)),
    }
}

/// Makes a signing key at the key path (or takes the one there) and records its public half.
pub(crate) fn generate(home: &mut Home) -> Result<Recorded> {
    let path = keys::key_path()?;
    let (key, generated) = if path.exists() {
        (keys::load(&path, &home.dir)?, false)
    } else {
        let k = SecretKey::generate()?;
        keys::store(&k, &path, &home.dir, false)?;
        (k, true)
    };
    let (seq, new_event) = record(home, &key.public(), None)?;
    if !new_event {
        return Err(Error::bad_input(
            format!("the key at {} is already recorded (event {seq})", path.display()),
            "to replace it use `cto-ledger key rotate`; to make another, set CTO_LEDGER_KEY to a new path",
        ));
    }
    Ok(Recorded {
        keyid: key.public().keyid(),
        path,
        generated,
        replaces: None,
        seq,
    })
}

/// Replaces this host's key with a new one; the old one stays recorded (retired) and
/// still verifies what it signed.
pub(crate) fn rotate(home: &mut Home) -> Result<Recorded> {
    let path = keys::key_path()?;
    if let Some(done) = tlog::settle_rotation(home, &path)? {
        return Ok(done);
    }
    let old = keys::load(&path, &home.dir)?.public().keyid();
    let row = home
        .ledger
        .keys_matching(&old)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            Error::bad_input(
                format!(
                    "the key at {} is not recorded in this ledger",
                    path.display()
                ),
                "record it with `cto-ledger key generate` first",
            )
        })?;
    if let Some(by) = row.replaced_by {
        return Err(Error::bad_input(
            format!("key {} was already rotated out (by {by})", &old[..16]),
            "point CTO_LEDGER_KEY at the current key",
        ));
    }
    // The new key is on disk (beside the old, durably) before the journal names it, and
    // replaces the old only after: a kill at any moment leaves the old key active with
    // its file, or the new one recorded with its file waiting (`settle_rotation`).
    let new = SecretKey::generate()?;
    keys::store(&new, &keys::pending_path(&path), &home.dir, true)?;
    crate::env::crash_point("key-rotate-stored");
    let (seq, _) = record(home, &new.public(), Some(old.clone()))?;
    crate::env::crash_point("key-rotate-recorded");
    keys::promote(&path)?;
    Ok(Recorded {
        keyid: new.public().keyid(),
        path,
        generated: true,
        replaces: Some(old),
        seq,
    })
}

/// The one recorded key `prefix` names.
fn one_key(home: &Home, prefix: &str) -> Result<KeyRow> {
    if prefix.len() < 8 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::bad_input(
            format!("`{prefix}` is not a key id"),
            "give at least 8 hex digits of a key id from `cto-ledger key list`",
        ));
    }
    let mut found = home.ledger.keys_matching(&prefix.to_ascii_lowercase())?;
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::NotFound {
            what: "key",
            input: prefix.into(),
            hint: Some("list keys with `cto-ledger key list`".into()),
        }),
        _ => Err(Error::Ambiguous {
            input: prefix.into(),
            candidates: found.into_iter().map(|k| k.keyid).collect(),
        }),
    }
}

/// Revokes a recorded key: nothing more is signed with it, and `audit` flags what it signed.
pub(crate) fn revoke(home: &mut Home, prefix: &str, reason: String) -> Result<KeyRow> {
    if reason.trim().is_empty() {
        return Err(Error::bad_input(
            "--reason is empty",
            "say why the key is revoked",
        ));
    }
    let key = one_key(home, prefix)?;
    let keyid = key.keyid.clone();
    let already = |l: &crate::ledger::Ledger| {
        Ok(l.keys_matching(&keyid)?
            .first()
            .is_some_and(|k| k.revoked.is_some()))
    };
    let body = Body::KeyRevocation(KeyRevocationRec {
        keyid: key.keyid.clone(),
        reason,
    });
    if home.commit_unless(already, vec![body])?.is_none() {
        return Err(Error::bad_input(
            format!("key {} is already revoked", key.keyid),
            "see `cto-ledger key list`",
        ));
    }
    one_key(home, &key.keyid)
}

/// Every recorded key: active, retired or revoked, and which is this host's.
pub(crate) fn list(home: &Home) -> Result<Vec<Listed>> {
    // This host's key, if one can be read: listing must not fail for want of it.
    let mine = keys::key_path()
        .ok()
        .and_then(|p| keys::load(&p, &home.dir).ok())
        .map(|k| k.public().keyid());
    let rows: Vec<Listed> = home
        .ledger
        .keys()?
        .into_iter()
        .map(|k| Listed {
            status: match (&k.revoked, &k.replaced_by) {
                (Some(_), _) => "revoked",
                (None, Some(_)) => "retired",
                (None, None) => "active",
            },
            current: mine.as_deref() == Some(&k.keyid),
            key: k,
        })
        .collect();
    Ok(rows)
}

/// A public key as text: a recorded key, or (no id) this host's.
pub(crate) fn export(home: &Home, keyid: Option<&str>, format: Format) -> Result<String> {
    let public = match keyid {
        Some(k) => tlog::public_of(&one_key(home, k)?)?,
        None => keys::load(&keys::key_path()?, &home.dir)?.public(),
    };
    let text = match format {
        Format::Pem => public.pem(),
        Format::Raw => format!("{}\n", public.raw_b64()),
        Format::Note => format!(
            "{}\n",
            note::verifier_key(&tlog::origin(&home.ledger)?, &public)
        ),
    };
    Ok(text)
}

/// Whether the ledger records `keyid` as revoked: (event, reason).
pub(crate) fn revocation(home: &Home, keyid: &str) -> Result<Option<(u64, String)>> {
    Ok(home
        .ledger
        .keys_matching(keyid)?
        .first()
        .and_then(|k| k.revoked.clone())
        .map(|r| (r.seq, r.reason)))
}

/// This host's key file against the journal's keys: a file holding a retired or revoked
/// key, most often a `key rotate` that was interrupted, is named with its mend.
pub(crate) fn check_key_file(home: &Home, out: &mut AuditOut) -> Result<()> {
    let Ok(path) = keys::key_path() else {
        return Ok(());
    };
    let Ok(file) = keys::load(&path, &home.dir).map(|k| k.public().keyid()) else {
        return Ok(());
    };
    let recorded = home.ledger.keys()?;
    let subject = path.display().to_string();
    let Some(row) = recorded.iter().find(|k| k.keyid == file) else {
        if !recorded.is_empty() {
            out.notes.push(format!(
                "the key file {subject} holds key {}, which this ledger does not record (`cto-ledger key generate` records it)",
                &file[..16]
            ));
        }
        return Ok(());
    };
    let pending = keys::load(&keys::pending_path(&path), &home.dir)
        .ok()
        .map(|k| k.public().keyid());
    let message = match (&row.revoked, &row.replaced_by) {
        (Some(r), _) => format!(
            "it holds key {}, revoked in event {}: make a new key with `cto-ledger key rotate`",
            &file[..16],
            r.seq
        ),
        (None, Some(by)) if pending.as_deref() == Some(by) => format!(
            "a `key rotate` was interrupted: it holds retired key {}, and the active key {} waits at {}; run `cto-ledger key rotate` to finish it",
            &file[..16],
            &by[..16],
            keys::pending_path(&path).display()
        ),
        (None, Some(by)) => format!(
            "it holds retired key {}; the private half of the key that replaced it ({}) is not here: if it is lost, `cto-ledger key revoke {} --reason lost`, then `cto-ledger key generate` with CTO_LEDGER_KEY set to a new path",
            &file[..16],
            &by[..16],
            &by[..16]
        ),
        (None, None) => return Ok(()),
    };
    out.findings
        .push(Finding::new(AuditCheck::Key, subject, message));
    Ok(())
}
