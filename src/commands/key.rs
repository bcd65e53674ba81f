//! `cto-ledger key generate|list|export|rotate|revoke`: the Ed25519 keys that sign
//! checkpoints and attestations. Private keys live outside the ledger home; their
//! public halves are journal events.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::{text, Context, Output};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::ledger::events::{Body, KeyRevocationRec};
use crate::ledger::tlog::KeyRow;
use crate::ledger::Mode;
use crate::sign::keys::{self, PublicKey, SecretKey};
use crate::sign::note;
use crate::tlog;

#[derive(clap::Subcommand)]
pub(crate) enum Cmd {
    /// Make a signing key (or record the existing one at the key path) and record its public half
    Generate,
    /// List recorded keys: current, retired or revoked
    List,
    /// Print a public key: PEM (SubjectPublicKeyInfo), raw base64, or a C2SP note verifier key
    Export {
        /// A recorded key id or a unique prefix of one (default: this host's key)
        keyid: Option<String>,
        #[arg(long, value_enum, default_value = "pem")]
        format: Format,
    },
    /// Replace this host's key with a new one; the old key stays recorded and still verifies what it signed
    Rotate,
    /// Revoke a key: nothing more is signed with it, and `audit` flags checkpoints it signed
    Revoke {
        keyid: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    Pem,
    Raw,
    Note,
}

#[derive(Serialize)]
struct Recorded {
    keyid: String,
    path: PathBuf,
    /// False when an existing key file was recorded rather than a new one made.
    generated: bool,
    replaces: Option<String>,
    seq: u64,
}

pub(crate) fn run(cx: &Context, cmd: Cmd) -> Result<Output> {
    match cmd {
        Cmd::Generate => generate(cx),
        Cmd::List => list(cx),
        Cmd::Export { keyid, format } => export(cx, keyid, format),
        Cmd::Rotate => rotate(cx),
        Cmd::Revoke { keyid, reason } => revoke(cx, &keyid, reason),
    }
}

fn recorded_text(w: &mut dyn Write, r: &Recorded) -> text::R {
    let verb = match (&r.replaces, r.generated) {
        (Some(_), _) => "rotated to new key",
        (None, true) => "generated key",
        (None, false) => "recorded existing key",
    };
    writeln!(w, "{verb} {} (event {})", r.keyid, r.seq)?;
    writeln!(w, "private key: {}", r.path.display())?;
    if let Some(old) = &r.replaces {
        writeln!(w, "retired key: {old} (still verifies what it signed)")?;
    }
    Ok(())
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

fn generate(cx: &Context) -> Result<Output> {
    let mut home = cx.open(Mode::ReadWrite)?;
    let path = keys::key_path()?;
    let (key, generated) = if path.exists() {
        (keys::load(&path, &home.dir)?, false)
    } else {
        let k = SecretKey::generate()?;
        keys::store(&k, &path, &home.dir, false)?;
        (k, true)
    };
    let (seq, new_event) = record(&mut home, &key.public(), None)?;
    if !new_event {
        return Err(Error::bad_input(
            format!("the key at {} is already recorded (event {seq})", path.display()),
            "to replace it use `cto-ledger key rotate`; to make another, set CTO_LEDGER_KEY to a new path",
        ));
    }
    let out = Recorded {
        keyid: key.public().keyid(),
        path,
        generated,
        replaces: None,
        seq,
    };
    Ok(Output::doc(out, recorded_text))
}

fn rotate(cx: &Context) -> Result<Output> {
    let mut home = cx.open(Mode::ReadWrite)?;
    let path = keys::key_path()?;
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
    let new = SecretKey::generate()?;
    // Record first: a crash before the file is replaced leaves the old key in place
    // (recorded as retired, so `key rotate` runs again), never an unrecorded key.
    let (seq, _) = record(&mut home, &new.public(), Some(old.clone()))?;
    keys::store(&new, &path, &home.dir, true)?;
    let out = Recorded {
        keyid: new.public().keyid(),
        path,
        generated: true,
        replaces: Some(old),
        seq,
    };
    Ok(Output::doc(out, recorded_text))
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

fn revoke(cx: &Context, prefix: &str, reason: String) -> Result<Output> {
    let mut home = cx.open(Mode::ReadWrite)?;
    if reason.trim().is_empty() {
        return Err(Error::bad_input(
            "--reason is empty",
            "say why the key is revoked",
        ));
    }
    let key = one_key(&home, prefix)?;
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
    let row = one_key(&home, &key.keyid)?;
    Ok(Output::doc(row, |w, k| {
        let r = k.revoked.as_ref().expect("just revoked");
        writeln!(w, "revoked key {} (event {}): {}", k.keyid, r.seq, r.reason)
    }))
}

#[derive(Serialize)]
struct Listed {
    #[serde(flatten)]
    key: KeyRow,
    status: &'static str,
    /// This host's signing key.
    current: bool,
}

fn list(cx: &Context) -> Result<Output> {
    let home = cx.open(Mode::ReadOnly)?;
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
    Ok(Output::doc(rows, |w, rows| {
        let headers = ["KEYID", "STATUS", "EVENT", "ADDED", "BY"].map(String::from);
        let body: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    format!("{}{}", r.key.keyid, if r.current { " *" } else { "" }),
                    r.status.to_string(),
                    r.key.seq.to_string(),
                    r.key.time.clone(),
                    r.key.actor.clone(),
                ]
            })
            .collect();
        text::table(w, &headers, &body)
    }))
}

fn export(cx: &Context, keyid: Option<String>, format: Format) -> Result<Output> {
    let home = cx.open(Mode::ReadOnly)?;
    let public = match &keyid {
        Some(k) => tlog::public_of(&one_key(&home, k)?)?,
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
    Ok(Output::raw(move |w| Ok(w.write_all(text.as_bytes())?)))
}
