//! One module per command. Each takes its parsed arguments and returns an [`Output`]:
//! data that renders as text or as one JSON document, and the exit code it carries.
//! `cli` parses and dispatches; nothing here prints to a terminal directly.

pub(crate) mod admit;
pub(crate) mod attest;
pub(crate) mod audit;
pub(crate) mod build;
pub(crate) mod cat;
pub(crate) mod checkpoint;
pub(crate) mod completions;
pub(crate) mod export;
pub(crate) mod gc;
pub(crate) mod graph;
pub(crate) mod health;
pub(crate) mod impact;
pub(crate) mod ingest;
pub(crate) mod init;
pub(crate) mod key;
pub(crate) mod log;
pub(crate) mod man;
pub(crate) mod policy;
pub(crate) mod prove;
pub(crate) mod pull;
pub(crate) mod push;
pub(crate) mod recover;
pub(crate) mod reindex;
pub(crate) mod remote;
pub(crate) mod repack;
pub(crate) mod restore;
pub(crate) mod revoke;
pub(crate) mod run;
pub(crate) mod runs;
pub(crate) mod serve;
pub(crate) mod show;
pub(crate) mod source;
pub(crate) mod sql;
pub(crate) mod text;
pub(crate) mod trace;
pub(crate) mod verify;
pub(crate) mod verify_attestation;
pub(crate) mod verify_bundle;
pub(crate) mod verify_proof;
pub(crate) mod witness;

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::home::{self, Home};
use crate::ledger::query::Node;
use crate::ledger::Mode;
use crate::sync::{self, Remote};

/// Exit codes (documented in the README).
pub(crate) const EXIT_OK: i32 = 0;
pub(crate) const EXIT_NEGATIVE: i32 = 1;
pub(crate) const EXIT_INTEGRITY: i32 = 3;
pub(crate) const EXIT_IO: i32 = 4;

/// What every command may use: where the ledger is, and how output is wanted.
pub(crate) struct Context {
    pub(crate) ledger: Option<PathBuf>,
    pub(crate) json: bool,
}

impl Context {
    pub(crate) fn open(&self, mode: Mode) -> Result<Home> {
        Home::open(&home::locate(self.ledger.as_deref())?, mode)
    }

    /// A progress bar on a terminal; hidden when output is piped or JSON.
    pub(crate) fn progress(&self) -> ProgressBar {
        if self.json || !io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template("{spinner} {pos}/{len} files {elapsed}")
                .expect("valid template"),
        );
        pb
    }
}

impl Context {
    /// Bytes moved from a remote, on a terminal; hidden when output is piped or JSON.
    pub(crate) fn transfer_progress(&self) -> ProgressBar {
        let pb = self.progress();
        pb.set_style(
            ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} {bytes_per_sec} {elapsed}",
            )
            .expect("valid template"),
        );
        pb
    }
}

/// The argument of commands that look at one node of the graph.
#[derive(clap::Args)]
pub(crate) struct RefArg {
    /// What to look at: an admission's name or id (adm_…), any other id (bld_…, …),
    /// run:ID or run:latest (run:latest:pass, run:latest:fail), a digest (blake3:…,
    /// sha256:…, or a hex prefix), commit:PREFIX, or a file path
    #[arg(value_name = "REF")]
    target: String,
}

impl RefArg {
    pub(crate) fn as_str(&self) -> &str {
        &self.target
    }

    /// The ledger, read-only, and the node the REF names.
    pub(crate) fn resolve(&self, cx: &Context) -> Result<(Home, Node)> {
        let home = cx.open(Mode::ReadOnly)?;
        let node = home.resolve(&self.target)?;
        Ok((home, node))
    }
}

/// The arguments of the offline verifiers (`verify-attestation`, `verify-proof`).
#[derive(clap::Args)]
pub(crate) struct OfflineArgs {
    /// The evidence: envelopes from `attest` (`.intoto.jsonl`, one per line) or a proof from `prove`
    pub(crate) file: PathBuf,
    /// The signer's public key, PEM (`cto-ledger key export --format pem`)
    #[arg(long, value_name = "PEM")]
    pub(crate) key: PathBuf,
    /// Require this file to be what the evidence is about (a subject of an envelope, or
    /// named by the proven event), by SHA-256 (or BLAKE3 for proofs)
    #[arg(long, value_name = "PATH")]
    pub(crate) subject: Option<PathBuf>,
}

/// The witnesses whose cosignatures a checkpoint must carry (`verify-proof`,
/// `verify-bundle`): C2SP verifier keys, and how many must have cosigned.
#[derive(clap::Args, Default)]
pub(crate) struct WitnessArgs {
    /// A witness's verifier key NAME+KEYID+KEY (as `witness serve` prints it); repeatable
    #[arg(long = "witness-key", value_name = "VKEY")]
    keys: Vec<String>,
    /// How many distinct witnesses must have cosigned the checkpoint (default: every one given)
    #[arg(long, value_name = "N")]
    quorum: Option<usize>,
}

impl WitnessArgs {
    /// Whether any witness key was given.
    pub(crate) fn given(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether `--quorum` was given.
    pub(crate) fn quorum_given(&self) -> bool {
        self.quorum.is_some()
    }

    /// The problems with `note` under this policy: fewer valid cosignatures than the
    /// quorum, or a bad one. Nothing asked, nothing checked.
    pub(crate) fn problems(&self, note: &str) -> Result<Vec<String>> {
        if self.keys.is_empty() {
            return match self.quorum {
                None => Ok(Vec::new()),
                // The policy comes from outside the log: whoever can write to a remote
                // can write `witness` events too.
                Some(_) => Err(Error::bad_input(
                    "--quorum counts the witnesses given with --witness-key, and none is given",
                    "give each witness's verifier key with --witness-key VKEY",
                )),
            };
        }
        let witnesses = self
            .keys
            .iter()
            .map(|k| crate::sign::cosig::Witness::parse_vkey(k))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| {
                Error::bad_input(
                    format!("--witness-key: {e}"),
                    "pass the vkey line `cto-ledger witness serve` prints",
                )
            })?;
        let quorum = self.quorum.unwrap_or(witnesses.len());
        if quorum == 0 || quorum > witnesses.len() {
            return Err(Error::bad_input(
                format!("--quorum {quorum} with {} witness key(s)", witnesses.len()),
                "give a quorum between 1 and the number of --witness-key",
            ));
        }
        let Ok(parsed) = crate::sign::note::SignedNote::parse(note) else {
            return Ok(vec!["the checkpoint is not a signed note".into()]);
        };
        let (n, mut problems) = crate::sign::cosig::count(&parsed, &witnesses);
        if n < quorum {
            problems.push(format!(
                "the checkpoint carries valid cosignatures from {n} of the witnesses given, fewer than the quorum of {quorum}"
            ));
        }
        Ok(problems)
    }
}

/// The argument of `push` and `pull`.
#[derive(clap::Args)]
pub(crate) struct RemoteArg {
    /// The remote (default: the only one configured)
    name: Option<String>,
}

impl RemoteArg {
    /// The ledger, writable, and the remote connected.
    pub(crate) fn connect(&self, cx: &Context) -> Result<(Home, Remote)> {
        let home = cx.open(Mode::ReadWrite)?;
        let remote = Remote::connect(sync::pick(&home, self.name.as_deref())?)?;
        Ok((home, remote))
    }
}

/// Why rendering stopped: the output could not be written, or the library failed
/// while streaming (e.g. `cat` found the object damaged mid-way).
pub(crate) enum RenderError {
    Io(io::Error),
    Lib(Error),
}

impl From<io::Error> for RenderError {
    fn from(e: io::Error) -> Self {
        RenderError::Io(e)
    }
}

impl From<Error> for RenderError {
    fn from(e: Error) -> Self {
        RenderError::Lib(e)
    }
}

type Render = Box<dyn FnOnce(&mut dyn Write, bool) -> std::result::Result<(), RenderError>>;

/// A command's result: how to write it (as text, or as JSON with `--json`) and its exit code.
pub(crate) struct Output {
    code: i32,
    render: Render,
}

impl Output {
    /// A document: pretty JSON with `--json`, else `text` renders it.
    pub(crate) fn doc<T: Serialize + 'static>(
        v: T,
        text: fn(&mut dyn Write, &T) -> io::Result<()>,
    ) -> Output {
        Output {
            code: EXIT_OK,
            render: Box::new(move |w, json| {
                if json {
                    serde_json::to_writer_pretty(&mut *w, &v).map_err(io::Error::from)?;
                    writeln!(w)?;
                } else {
                    text(w, &v)?;
                }
                Ok(())
            }),
        }
    }

    /// Output that is the same with or without `--json` (bytes, a JSON export, a man page).
    pub(crate) fn raw(
        f: impl FnOnce(&mut dyn Write) -> std::result::Result<(), RenderError> + 'static,
    ) -> Output {
        Output {
            code: EXIT_OK,
            render: Box::new(move |w, _| f(w)),
        }
    }

    pub(crate) fn with_code(mut self, code: i32) -> Output {
        self.code = code;
        self
    }

    /// Exit 1 (a negative verdict) unless `ok`.
    pub(crate) fn negative_unless(self, ok: bool) -> Output {
        self.with_code(if ok { EXIT_OK } else { EXIT_NEGATIVE })
    }

    pub(crate) fn code(&self) -> i32 {
        self.code
    }

    pub(crate) fn write(
        self,
        w: &mut dyn Write,
        json: bool,
    ) -> std::result::Result<(), RenderError> {
        (self.render)(w, json)
    }
}

/// `--since` takes RFC 3339 or a bare date; events store RFC 3339 UTC, which sorts as text.
pub(crate) fn parse_since(s: &str) -> Result<String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(format!("{d}T00:00:00.000Z"));
    }
    Err(Error::bad_input(
        format!("--since `{s}` is not a time"),
        "write a date (2026-05-31) or an RFC 3339 time (2026-05-31T23:42:05Z)",
    ))
}
