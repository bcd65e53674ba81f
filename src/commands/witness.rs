//! `cto-ledger witness key FILE --name NAME` and `witness serve`: a C2SP tlog-witness
//! (see `crate::witness`) that cosigns the checkpoints of the logs it is told to follow.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::{Context, Output};
use crate::error::{Error, Result};
use crate::sign::keys::{self, SecretKey};
use crate::witness::Witness;

#[derive(clap::Subcommand)]
pub(crate) enum Cmd {
    /// Make the witness's Ed25519 key at FILE (mode 0600) unless it exists; print its verifier key
    Key(KeyArgs),
    /// Serve POST /add-checkpoint until stopped; prints the address and verifier key first
    Serve(ServeArgs),
    /// Record a witness of this log (a journal event): VKEY, or VKEY@URL to ask it when
    /// signing (`checkpoint --sign`, `push`); quorum checks count it
    Add(AddArgs),
    /// Record that a witness no longer witnesses this log
    Remove(RemoveArgs),
    /// The witnesses recorded for this log
    List,
}

#[derive(clap::Args)]
pub(crate) struct AddArgs {
    /// The witness's verifier key (as `witness serve` prints it), with @URL to ask it
    #[arg(value_name = "VKEY[@URL]")]
    witness: String,
}

#[derive(clap::Args)]
pub(crate) struct RemoveArgs {
    /// The witness's name (its verifier key's first part)
    name: String,
}

#[derive(clap::Args)]
pub(crate) struct KeyArgs {
    /// The private key file (PKCS#8 PEM)
    file: PathBuf,
    /// The witness's name in its cosignatures (a schema-less URL, e.g. witness.example/w1)
    #[arg(long)]
    name: String,
}

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// The witness's private key file (`witness key`)
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The witness's name in its cosignatures
    #[arg(long)]
    name: String,
    /// A log to follow: its origin (a checkpoint's first line) and its public key PEM
    /// (`cto-ledger key export`); repeatable
    #[arg(long = "log", value_name = "ORIGIN=PEM", required = true)]
    logs: Vec<String>,
    /// The SQLite file where the witness records the newest size it cosigned per log
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    bind: String,
}

#[derive(Serialize)]
struct Key {
    file: PathBuf,
    generated: bool,
    vkey: String,
}

pub(crate) fn run(cx: &Context, cmd: Cmd) -> Result<Output> {
    match cmd {
        Cmd::Key(a) => key(a),
        Cmd::Serve(a) => serve(a),
        Cmd::Add(a) => add(cx, a),
        Cmd::Remove(a) => remove(cx, a),
        Cmd::List => list(cx),
    }
}

fn add(cx: &Context, a: AddArgs) -> Result<Output> {
    let (w, url) = match a.witness.contains('@') {
        true => {
            let asking = crate::witness::client::Asking::parse(&a.witness)?;
            (asking.witness, Some(asking.url))
        }
        false => (
            crate::sign::cosig::Witness::parse_vkey(&a.witness).map_err(|e| {
                Error::bad_input(
                    format!("witness {}: {e}", super::text::shown(&a.witness)),
                    "give the verifier key `witness serve` prints, with @URL to ask it",
                )
            })?,
            None,
        ),
    };
    check_name(&w.name)?;
    let mut home = cx.open(crate::ledger::Mode::ReadWrite)?;
    let recorded = home.ledger.witnesses()?;
    // The same key again without a URL keeps the URL it was recorded with.
    let url = url.or_else(|| {
        recorded
            .iter()
            .find(|r| r.name == w.name && r.vkey == w.vkey())
            .and_then(|r| r.url.clone())
    });
    let rec = crate::ledger::events::WitnessRec {
        name: w.name.clone(),
        vkey: w.vkey(),
        url,
        removed: false,
    };
    let same = home
        .ledger
        .witnesses()?
        .into_iter()
        .any(|r| r.name == rec.name && r.vkey == rec.vkey && r.url == rec.url);
    if !same {
        home.commit(vec![crate::ledger::events::Body::Witness(rec)])?;
    }
    list_of(&home)
}

fn remove(cx: &Context, a: RemoveArgs) -> Result<Output> {
    let mut home = cx.open(crate::ledger::Mode::ReadWrite)?;
    let Some(w) = home
        .ledger
        .witnesses()?
        .into_iter()
        .find(|w| w.name == a.name)
    else {
        return Err(Error::bad_input(
            format!(
                "no witness named {} is recorded",
                super::text::shown(&a.name)
            ),
            "see `cto-ledger witness list`",
        ));
    };
    home.commit(vec![crate::ledger::events::Body::Witness(
        crate::ledger::events::WitnessRec {
            name: w.name,
            vkey: w.vkey,
            url: None,
            removed: true,
        },
    )])?;
    list_of(&home)
}

fn list(cx: &Context) -> Result<Output> {
    list_of(&cx.open(crate::ledger::Mode::ReadOnly)?)
}

fn list_of(home: &crate::home::Home) -> Result<Output> {
    Ok(Output::doc(home.ledger.witnesses()?, |w, rows| {
        if rows.is_empty() {
            return writeln!(
                w,
                "no witnesses recorded (add one: cto-ledger witness add VKEY@URL)"
            );
        }
        for r in rows {
            let at = r.url.as_deref().unwrap_or("(not asked: no URL)");
            writeln!(
                w,
                "{}  {at}  (event {})",
                super::text::shown(&r.vkey),
                r.seq
            )?;
        }
        Ok(())
    }))
}

fn vkey(name: &str, key: &SecretKey) -> String {
    crate::sign::cosig::Witness {
        name: name.to_string(),
        key: key.public(),
    }
    .vkey()
}

fn key(a: KeyArgs) -> Result<Output> {
    check_name(&a.name)?;
    let generated = std::fs::symlink_metadata(&a.file).is_err();
    if generated {
        keys::write_secret(&SecretKey::generate()?, &a.file, false)?;
    }
    let k = keys::read_secret(&a.file)?;
    let out = Key {
        vkey: vkey(&a.name, &k),
        file: a.file,
        generated,
    };
    Ok(Output::doc(out, |w, k| writeln!(w, "{}", k.vkey)))
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(['+', ' ', '\n']) || name.chars().any(char::is_control) {
        return Err(Error::bad_input(
            format!("witness name {name:?} has a space, `+` or control character, or is empty"),
            "name the witness like a URL without its scheme, e.g. witness.example/w1",
        ));
    }
    Ok(())
}

fn serve(a: ServeArgs) -> Result<Output> {
    check_name(&a.name)?;
    let key = keys::read_secret(&a.key)?;
    let mut logs = BTreeMap::new();
    for l in &a.logs {
        let (origin, pem) = l.split_once('=').ok_or_else(|| {
            Error::bad_input(
                format!("--log {l} is not ORIGIN=PEM"),
                "give the log's origin (its checkpoints' first line) and its public key file",
            )
        })?;
        logs.insert(
            origin.to_string(),
            keys::read_public(std::path::Path::new(pem))?,
        );
    }
    let w = Witness::open(a.name, key, logs, &a.state)?;
    let listener = std::net::TcpListener::bind(&a.bind).map_err(|e| {
        Error::bad_input(
            format!("cannot listen on {}: {e}", a.bind),
            "give a free address with --bind, e.g. 127.0.0.1:0",
        )
    })?;
    let addr = listener
        .local_addr()
        .map_err(Error::io("read the address of", a.state.clone()))?;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "witness listening on http://{addr}");
    let _ = writeln!(out, "vkey {}", w.vkey());
    let _ = out.flush();
    w.serve(listener)?;
    Ok(Output::raw(|_| Ok(())))
}
