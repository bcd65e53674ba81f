//! The command line: clap definitions, rendering, exit codes. Nothing else prints.

mod render;

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::harness::{self, Lane, RunOptions};
use crate::home::{self, Home};
use crate::ledger::Mode;
use crate::ops;
use crate::remote;

/// Exit codes (documented in the README).
pub const EXIT_OK: i32 = 0;
pub const EXIT_NEGATIVE: i32 = 1;

#[derive(Parser)]
#[command(
    name = "cto-ledger",
    version,
    about = "Content-addressed artifact store and tamper-evident provenance ledger for agent harnesses"
)]
#[command(
    after_help = "Exit codes: 0 success, 1 negative verdict (not admitted, audit findings, Stage 2 did not pass), \
2 usage or bad input (nothing changed, or a refusal recorded), 3 integrity failure (stored bytes do not match their digest), \
4 I/O or database error, 130 interrupted."
)]
pub struct Cli {
    /// Ledger home (default: $CTO_LEDGER_DIR, else $XDG_DATA_HOME/cto-ledger, else ~/.local/share/cto-ledger)
    #[arg(long, global = true, value_name = "DIR")]
    pub ledger: Option<PathBuf>,
    /// Print one JSON document on stdout instead of text
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Create the ledger home explicitly (any writing command also does)
    Init,
    /// Store files and directories (as tree objects) and record them
    Ingest {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// What the artifact is (source, binary, config, run-artifact, ...)
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        label: Option<String>,
    },
    /// Record git clones
    #[command(subcommand)]
    Source(SourceCmd),
    /// Run a build in a clone and record it: sources before/after, argv, tools, env, logs, outputs
    Build(BuildCmdArgs),
    /// Admit a built file (exact digest) from a pinned commit, or a provider/model pair
    Admit(AdmitArgs),
    /// Exit 0 only if this exact file or digest is admitted and not revoked
    Verify { target: String },
    /// Revoke an admission (a later event; nothing is edited)
    Revoke {
        #[arg(value_name = "REF")]
        target: String,
        #[arg(long)]
        reason: String,
    },
    /// Write an object's bytes to stdout (verified first)
    Cat {
        #[arg(value_name = "DIGEST")]
        target: String,
    },
    /// Write a tree object into a new or empty directory
    Restore {
        #[arg(value_name = "TREE")]
        target: String,
        dir: PathBuf,
    },
    /// Show any node of the graph and its neighbours
    Show {
        #[arg(value_name = "REF")]
        target: String,
    },
    /// The journal, oldest first
    Log {
        #[arg(long)]
        kind: Option<String>,
        /// Only events at or after this time (RFC 3339 or a date, e.g. 2026-05-31)
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Everything upstream of a node, down to the source commit and its URL
    Trace {
        #[arg(value_name = "REF")]
        target: String,
    },
    /// Everything downstream of a node: builds, outputs, admissions, runs and verdicts
    Impact {
        #[arg(value_name = "REF")]
        target: String,
    },
    /// The lineage of a node (upstream and downstream) as a picture
    Graph {
        #[arg(value_name = "REF")]
        target: String,
        #[arg(long, value_enum, default_value = "dot")]
        format: GraphFormat,
    },
    /// Export an artifact's provenance: in-toto Statement v1 with SLSA Provenance v1, or W3C PROV-JSON
    Export {
        #[arg(value_name = "REF")]
        target: String,
        #[arg(long, value_enum, default_value = "in-toto")]
        format: ExportFormat,
    },
    /// Run one read-only SQL query over the ledger's tables (docs/ledger.md)
    Sql { query: String },
    /// Check the journal chain, projections, every object and every run; exit 1 on findings
    Audit {
        /// SEQ:HASH printed earlier by `checkpoint`: prove the journal still extends it
        #[arg(long, value_name = "SEQ:HASH", conflicts_with = "remote")]
        checkpoint: Option<String>,
        /// Audit a remote instead: its whole chain, every named object present, a sample re-hashed
        #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
        remote: Option<String>,
        /// With --remote: re-hash every remote object, not a sample
        #[arg(long, requires = "remote")]
        full: bool,
    },
    /// Remotes: S3-compatible object storage shared by many hosts (docs/remote.md)
    Remote {
        #[command(subcommand)]
        cmd: Option<RemoteCmd>,
    },
    /// Publish local events (and the objects they name) to a remote, pulling first
    Push {
        /// The remote (default: the only one configured)
        name: Option<String>,
    },
    /// Take a remote's new events (re-hashing every object they name) into this ledger
    Pull {
        /// The remote (default: the only one configured)
        name: Option<String>,
    },
    /// Rebuild every projection table from the journal
    Reindex,
    /// Print the journal head (SEQ:HASH) to keep for `audit --checkpoint`
    Checkpoint,
    /// Run a harness job
    #[command(subcommand)]
    Run(RunCmd),
    /// List runs
    Runs {
        #[arg(long)]
        status: Option<String>,
        /// Only runs of this provider (admission name or id, or a digest)
        #[arg(long, value_name = "REF")]
        provider: Option<String>,
        /// Only runs started at or after this time (RFC 3339 or a date)
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
    },
    /// Run the built-in Stage 2 checks in a throwaway ledger
    Health,
    /// Finalise and record run folders whose harness was killed (report says `interrupted`)
    Recover,
    /// Print shell completions
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff)
    Man,
}

#[derive(Subcommand)]
pub enum RemoteCmd {
    /// Add a remote: s3://BUCKET[/PREFIX]; credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    Add {
        name: String,
        url: String,
        /// An S3-compatible server (e.g. http://127.0.0.1:9000); default: AWS_ENDPOINT_URL, else AWS
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        /// Default: AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1
        #[arg(long)]
        region: Option<String>,
    },
    /// List remotes and how far this ledger is ahead of each (without contacting them)
    List,
    /// Forget a remote (nothing on the remote is touched)
    Remove { name: String },
    /// Contact a remote: its head, and how far this ledger is ahead and behind
    Status {
        /// The remote (default: every one configured)
        name: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum SourceCmd {
    /// Record a git clone: remote, HEAD, branch, changed paths, snapshot of tracked files
    Add { dir: PathBuf },
}

#[derive(Args)]
pub struct AdmitArgs {
    /// The built file to admit
    #[arg(required_unless_present = "model", conflicts_with = "model")]
    pub path: Option<PathBuf>,
    /// Commit the file was built from (7+ hex digits); must be the clone's HEAD
    #[arg(long, required_unless_present = "model")]
    pub source_pin: Option<String>,
    /// Admission name (default: the file name)
    #[arg(long)]
    pub name: Option<String>,
    /// The git clone it was built from (default: the clone containing PATH)
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
    /// Accept this modified tracked file (repeatable); its contents are recorded
    #[arg(long, value_name = "PATH")]
    pub allow_modified: Vec<PathBuf>,
    /// Admit a PROVIDER/MODEL pair that runs may use
    #[arg(long, value_name = "PROVIDER/MODEL")]
    pub model: Option<String>,
}

#[derive(Args)]
pub struct BuildCmdArgs {
    /// What the build makes (e.g. `ca`); shown in show, trace and graph
    #[arg(long)]
    pub name: Option<String>,
    /// The git clone to build in (default: the clone containing the current directory)
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
    /// A file or directory the build produces (repeatable)
    #[arg(
        long = "output",
        value_name = "PATH",
        required_unless_present = "check"
    )]
    pub outputs: Vec<PathBuf>,
    /// Directory to run the command in (default: the clone's root)
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Also record `<TOOL> --version` (node, bun, cargo, rustc, go, python3 are detected)
    #[arg(long = "tool", value_name = "TOOL")]
    pub tools: Vec<String>,
    /// Also record this environment variable's value (repeatable)
    #[arg(long = "env", value_name = "NAME")]
    pub env: Vec<String>,
    /// Re-run a recorded build (id or output digest) from a clean work tree of its commit
    #[arg(long, value_name = "REF", conflicts_with_all = ["outputs", "source", "cwd"])]
    pub check: Option<String>,
    /// The build command
    #[arg(last = true, value_name = "CMD")]
    pub argv: Vec<String>,
}

#[derive(Subcommand)]
pub enum RunCmd {
    /// Run an admitted provider against a Stage 2 fixture and record all evidence
    Stage2(Stage2Args),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    InToto,
    ProvJson,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ProviderArg {
    Fake,
    Case,
}

#[derive(Args)]
pub struct Stage2Args {
    /// Built-in fixture name or a fixture directory
    #[arg(long, default_value = "r1-string-slugify")]
    pub fixture: String,
    /// Lane: fake (default) or case (the real WorkOS Case; implied by CTO_HARNESS_CASE_BIN)
    #[arg(long, value_enum)]
    pub provider: Option<ProviderArg>,
    /// Provider executable (default: CTO_HARNESS_CASE_BIN, or the shipped fake `ca`)
    #[arg(long, value_name = "PATH")]
    pub provider_bin: Option<PathBuf>,
    /// Seconds before the provider's process group is killed (default: CTO_HARNESS_CASE_TIMEOUT_SECONDS or 900)
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Fake lane behaviour: solve, fail, hang, hang-grandchild, crash, noop
    #[arg(long, default_value = "solve")]
    pub fake_behavior: String,
    /// Where run folders go (default: <ledger>/runs)
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Option<PathBuf>,
}

fn progress(json: bool) -> ProgressBar {
    if json || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} files {elapsed}")
            .expect("valid template"),
    );
    pb
}

struct Out<'a> {
    json: bool,
    w: &'a mut dyn Write,
}

impl Out<'_> {
    fn emit<T: Serialize>(
        &mut self,
        v: &T,
        human: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        if self.json {
            serde_json::to_writer_pretty(&mut *self.w, v)?;
            writeln!(self.w)
        } else {
            human(self.w)
        }
    }
}

/// Parses arguments, runs the command, prints, and returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let json = cli.json;
    let stdout = io::stdout();
    let mut lock = stdout.lock();
    let result = run(cli, &mut lock);
    match result {
        Ok(code) => code,
        Err(CliError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(CliError::Io(e)) => {
            eprintln!("cto-ledger: error: writing output: {e}");
            4
        }
        Err(CliError::Lib(e)) => {
            let code = e.exit_code();
            eprintln!("cto-ledger: error: {e}");
            if let Some(h) = e.hint() {
                eprintln!("  hint: {h}");
            }
            if json {
                let doc = serde_json::json!({"error": e.to_string(), "hint": e.hint(), "exit_code": code});
                let _ = writeln!(
                    lock,
                    "{}",
                    serde_json::to_string_pretty(&doc).unwrap_or_default()
                );
            }
            code
        }
    }
}

enum CliError {
    Lib(Error),
    Io(io::Error),
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Lib(e)
    }
}
impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        CliError::Io(e)
    }
}

fn open(cli_ledger: Option<&std::path::Path>, mode: Mode) -> Result<Home> {
    let dir = home::locate(cli_ledger)?;
    Home::open(&dir, mode)
}

fn run(cli: Cli, w: &mut dyn Write) -> std::result::Result<i32, CliError> {
    let json = cli.json;
    let mut out = Out { json, w };
    let lp = cli.ledger.as_deref();
    let pb = progress(json);
    let code = match cli.cmd {
        Cmd::Init => {
            let mut h = open(lp, Mode::ReadWrite)?;
            let r = ops::init(&mut h)?;
            out.emit(&r, |w| render::init(w, &r))?;
            EXIT_OK
        }
        Cmd::Ingest { paths, kind, label } => {
            let mut h = open(lp, Mode::ReadWrite)?;
            let r = ops::ingest(&mut h, &paths, kind.as_deref(), label.as_deref(), &pb)?;
            pb.finish_and_clear();
            out.emit(&r, |w| render::ingest(w, &r))?;
            EXIT_OK
        }
        Cmd::Source(SourceCmd::Add { dir }) => {
            let mut h = open(lp, Mode::ReadWrite)?;
            let r = ops::source_add(&mut h, &dir, &pb)?;
            pb.finish_and_clear();
            out.emit(&r, |w| render::source(w, &r))?;
            EXIT_OK
        }
        Cmd::Admit(a) => {
            let mut h = open(lp, Mode::ReadWrite)?;
            if let Some(m) = a.model {
                if a.source_pin.is_some() || !a.allow_modified.is_empty() || a.source.is_some() {
                    return Err(Error::bad_input("--model cannot be combined with --source-pin, --source or --allow-modified", "admit a model on its own: cto-ledger admit --model PROVIDER/MODEL").into());
                }
                let r = ops::admit_model(&mut h, &m)?;
                out.emit(&r, |w| render::admit_model(w, &r))?;
            } else {
                let path = a.path.expect("clap requires PATH without --model");
                let pin = a
                    .source_pin
                    .expect("clap requires --source-pin without --model");
                let args = ops::AdmitArgs {
                    path: &path,
                    pin: &pin,
                    name: a.name.as_deref(),
                    source: a.source.as_deref(),
                    allow_modified: &a.allow_modified,
                };
                let r = ops::admit(&mut h, &args, &pb)?;
                pb.finish_and_clear();
                out.emit(&r, |w| render::admit(w, &r))?;
            }
            EXIT_OK
        }
        Cmd::Build(b) => {
            let mut h = open(lp, Mode::ReadWrite)?;
            let r = match &b.check {
                Some(r) => {
                    if !b.argv.is_empty() {
                        return Err(Error::bad_input(
                            "build --check re-runs the recorded command; do not give one",
                            "drop the command after `--`",
                        )
                        .into());
                    }
                    crate::build::check(&mut h, r, &pb)?
                }
                None => {
                    let args = crate::build::BuildArgs {
                        name: b.name,
                        source: b.source,
                        outputs: b.outputs,
                        cwd: b.cwd,
                        tools: b.tools,
                        env: b.env,
                        argv: b.argv,
                    };
                    crate::build::build(&mut h, &args, &pb)?
                }
            };
            pb.finish_and_clear();
            out.emit(&r, |w| render::build(w, &r))?;
            let good = r.build.status == "succeeded"
                && r.build
                    .check
                    .as_ref()
                    .is_none_or(|c| c.result == "reproduces");
            if good {
                EXIT_OK
            } else {
                EXIT_NEGATIVE
            }
        }
        Cmd::Verify { target } => {
            let h = open(lp, Mode::ReadOnly)?;
            let r = ops::verify(&h, &target)?;
            out.emit(&r, |w| render::verify(w, &r))?;
            if r.admitted {
                EXIT_OK
            } else {
                EXIT_NEGATIVE
            }
        }
        Cmd::Revoke { target, reason } => {
            let mut h = open(lp, Mode::ReadWrite)?;
            let r = ops::revoke(&mut h, &target, &reason)?;
            out.emit(&r, |w| render::revoke(w, &r))?;
            EXIT_OK
        }
        Cmd::Cat { target } => {
            let h = open(lp, Mode::ReadOnly)?;
            ops::cat(&h, &target, out.w)?;
            EXIT_OK
        }
        Cmd::Restore { target, dir } => {
            let h = open(lp, Mode::ReadOnly)?;
            let r = ops::restore(&h, &target, &dir)?;
            out.emit(&r, |w| {
                writeln!(
                    w,
                    "restored {} ({} entries) into {}",
                    r.tree, r.entries, r.dir
                )
            })?;
            EXIT_OK
        }
        Cmd::Show { target } => {
            let h = open(lp, Mode::ReadOnly)?;
            let r = ops::show(&h, &target)?;
            out.emit(&r, |w| render::value(w, &r, 0))?;
            EXIT_OK
        }
        Cmd::Log { kind, since, limit } => {
            let h = open(lp, Mode::ReadOnly)?;
            let since = since.as_deref().map(parse_since).transpose()?;
            let r = ops::log(&h, kind.as_deref(), since.as_deref(), limit)?;
            out.emit(&r, |w| render::log(w, &r))?;
            EXIT_OK
        }
        Cmd::Audit {
            remote: Some(name),
            full,
            ..
        } => {
            let h = open(lp, Mode::ReadOnly)?;
            let row = remote::pick(
                &h,
                Some(&name).filter(|n| !n.is_empty()).map(|n| n.as_str()),
            )?;
            let r = remote::audit(&h, &remote::Remote::connect(row)?, full)?;
            out.emit(&r, |w| render::remote_audit(w, &r))?;
            if r.ok {
                EXIT_OK
            } else {
                EXIT_NEGATIVE
            }
        }
        Cmd::Remote { cmd } => match cmd.unwrap_or(RemoteCmd::List) {
            RemoteCmd::Add {
                name,
                url,
                endpoint,
                region,
            } => {
                let mut h = open(lp, Mode::ReadWrite)?;
                let r = remote::add(&mut h, &name, &url, endpoint.as_deref(), region.as_deref())?;
                out.emit(&r, |w| writeln!(w, "added remote {} {}", r.name, r.url))?;
                EXIT_OK
            }
            RemoteCmd::List => {
                let h = open(lp, Mode::ReadOnly)?;
                let rows = h
                    .ledger
                    .remotes()?
                    .into_iter()
                    .map(|r| remote::status(&h, r, false))
                    .collect::<Result<Vec<_>>>()?;
                out.emit(&rows, |w| render::remotes(w, &rows))?;
                EXIT_OK
            }
            RemoteCmd::Remove { name } => {
                let mut h = open(lp, Mode::ReadWrite)?;
                h.ledger.remote_remove(&name)?;
                let r = serde_json::json!({"removed": name});
                out.emit(&r, |w| writeln!(w, "removed remote {name}"))?;
                EXIT_OK
            }
            RemoteCmd::Status { name } => {
                let h = open(lp, Mode::ReadOnly)?;
                let rows = match name {
                    Some(n) => vec![h.ledger.remote(&n)?],
                    None => h.ledger.remotes()?,
                };
                let st = rows
                    .into_iter()
                    .map(|r| remote::status(&h, r, true))
                    .collect::<Result<Vec<_>>>()?;
                out.emit(&st, |w| render::remotes(w, &st))?;
                if st.iter().any(|s| s.error.is_some()) {
                    4
                } else {
                    EXIT_OK
                }
            }
        },
        Cmd::Push { name } => {
            let mut h = open(lp, Mode::ReadWrite)?;
            let mut r = remote::Remote::connect(remote::pick(&h, name.as_deref())?)?;
            let p = remote::push(&mut h, &mut r)?;
            out.emit(&p, |w| render::push(w, &p))?;
            EXIT_OK
        }
        Cmd::Pull { name } => {
            let mut h = open(lp, Mode::ReadWrite)?;
            let mut r = remote::Remote::connect(remote::pick(&h, name.as_deref())?)?;
            let p = remote::pull(&mut h, &mut r)?;
            out.emit(&p, |w| render::pull(w, &p))?;
            EXIT_OK
        }
        Cmd::Audit { checkpoint, .. } => {
            let cp = checkpoint
                .as_deref()
                .map(ops::parse_checkpoint)
                .transpose()?;
            let h = open(lp, Mode::ReadOnly)?;
            let r = ops::audit(&h, cp.as_ref(), &pb)?;
            pb.finish_and_clear();
            out.emit(&r, |w| render::audit(w, &r))?;
            if r.ok {
                EXIT_OK
            } else {
                EXIT_NEGATIVE
            }
        }
        Cmd::Reindex => {
            let mut h = open(lp, Mode::ReadWrite)?;
            let n = h.ledger.reindex()?;
            let r = serde_json::json!({"events_replayed": n, "head": h.ledger.head()?});
            out.emit(&r, |w| {
                writeln!(w, "rebuilt projections from {n} journal events")
            })?;
            EXIT_OK
        }
        Cmd::Checkpoint => {
            let h = open(lp, Mode::ReadOnly)?;
            let head = h.ledger.head()?;
            out.emit(&head, |w| writeln!(w, "{}:{}", head.seq, head.hash))?;
            EXIT_OK
        }
        Cmd::Run(RunCmd::Stage2(a)) => {
            let mut h = open(lp, Mode::ReadWrite)?;
            let opts = stage2_options(a)?;
            let r = harness::run_stage2(&mut h, &opts)?;
            out.emit(&r.report, |w| render::stage2(w, &r))?;
            if r.report.verdict == "pass" {
                EXIT_OK
            } else {
                EXIT_NEGATIVE
            }
        }
        Cmd::Runs {
            status,
            provider,
            since,
        } => {
            let h = open(lp, Mode::ReadOnly)?;
            let since = since.as_deref().map(parse_since).transpose()?;
            let provider_object = match provider.as_deref() {
                None => None,
                Some(r) => Some(match h.resolve(r)? {
                    crate::ledger::query::Node::Admission(a) => h
                        .ledger
                        .row("SELECT object FROM admissions WHERE id = ?1", &[&a])?
                        .and_then(|v| v["object"].as_str().map(str::to_string))
                        .unwrap_or_default(),
                    crate::ledger::query::Node::Object(o) => o.to_string(),
                    other => {
                        return Err(Error::bad_input(
                            format!("--provider {r} names {}, not a provider", other.label()),
                            "give an admission name or id, or a provider digest",
                        )
                        .into())
                    }
                }),
            };
            let rows = h.ledger.rows(
                "SELECT id, lane, status, verdict, fixture, provider_admission, model, started FROM runs
                 WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR provider_object = ?2) AND (?3 IS NULL OR started >= ?3) ORDER BY seq",
                &[&status, &provider_object, &since],
            )?;
            out.emit(&rows, |w| render::runs(w, &rows))?;
            EXIT_OK
        }
        Cmd::Trace { target } => {
            let h = open(lp, Mode::ReadOnly)?;
            let node = h.resolve(&target)?;
            let t = crate::lineage::trace(&h.ledger, &node)?;
            out.emit(&t, |w| render::lineage(w, &t))?;
            EXIT_OK
        }
        Cmd::Impact { target } => {
            let h = open(lp, Mode::ReadOnly)?;
            let node = h.resolve(&target)?;
            let t = crate::lineage::impact(&h.ledger, &node)?;
            out.emit(&t, |w| render::lineage(w, &t))?;
            EXIT_OK
        }
        Cmd::Graph { target, format } => {
            let h = open(lp, Mode::ReadOnly)?;
            let node = h.resolve(&target)?;
            let fmt = match format {
                GraphFormat::Dot => "dot",
                GraphFormat::Mermaid => "mermaid",
            };
            let text = crate::lineage::graph(&h.ledger, &node, fmt)?;
            out.emit(&serde_json::json!({"format": fmt, "graph": text}), |w| {
                w.write_all(text.as_bytes())
            })?;
            EXIT_OK
        }
        Cmd::Export { target, format } => {
            let h = open(lp, Mode::ReadOnly)?;
            let node = h.resolve(&target)?;
            let doc = match format {
                ExportFormat::InToto => crate::lineage::export_in_toto(&h.ledger, &node)?,
                ExportFormat::ProvJson => crate::lineage::export_prov(&h.ledger, &node)?,
            };
            // The export is a JSON document either way.
            serde_json::to_writer_pretty(&mut *out.w, &doc).map_err(io::Error::from)?;
            writeln!(out.w)?;
            EXIT_OK
        }
        Cmd::Sql { query } => {
            let h = open(lp, Mode::ReadOnly)?;
            let r = h.ledger.sql_readonly(&query)?;
            out.emit(&r, |w| render::sql(w, &r))?;
            EXIT_OK
        }
        Cmd::Recover => {
            let mut h = open(lp, Mode::ReadWrite)?;
            let r = harness::recover(&mut h)?;
            out.emit(&r, |w| {
                for n in &r.recovered {
                    writeln!(w, "recovered run:{n} (interrupted)")?;
                }
                for n in &r.in_progress {
                    writeln!(w, "in progress, left alone: {n}")?;
                }
                if !r.killed_pids.is_empty() {
                    writeln!(w, "killed leftover processes: {:?}", r.killed_pids)?;
                }
                writeln!(w, "{} run folder(s) recovered", r.recovered.len())
            })?;
            EXIT_OK
        }
        Cmd::Health => {
            let r = harness::health::run()?;
            out.emit(&r, |w| render::health(w, &r))?;
            if r.ok {
                EXIT_OK
            } else {
                EXIT_NEGATIVE
            }
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "cto-ledger", out.w);
            EXIT_OK
        }
        Cmd::Man => {
            clap_mangen::Man::new(Cli::command()).render(out.w)?;
            EXIT_OK
        }
    };
    Ok(code)
}

/// `--since` takes RFC 3339 or a bare date; events store RFC 3339 UTC, which sorts as text.
fn parse_since(s: &str) -> Result<String> {
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

fn stage2_options(a: Stage2Args) -> Result<RunOptions> {
    let env_bin = std::env::var_os("CTO_HARNESS_CASE_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let lane = match a.provider {
        Some(ProviderArg::Fake) => Lane::Fake,
        Some(ProviderArg::Case) => Lane::Case,
        None if env_bin.is_some() => Lane::Case,
        None => Lane::Fake,
    };
    let timeout = match a.timeout {
        Some(t) => t,
        None => match std::env::var("CTO_HARNESS_CASE_TIMEOUT_SECONDS") {
            Ok(s) if !s.trim().is_empty() => s.trim().parse::<f64>().map_err(|_| {
                Error::bad_input(
                    format!("CTO_HARNESS_CASE_TIMEOUT_SECONDS=`{s}` is not a number of seconds"),
                    "set it to a positive number, e.g. 900",
                )
            })?,
            _ => harness::DEFAULT_TIMEOUT_SECONDS,
        },
    };
    if !(timeout.is_finite() && timeout > 0.0) {
        return Err(Error::bad_input(
            format!("timeout {timeout} is not a positive number of seconds"),
            "give e.g. --timeout 900",
        ));
    }
    let provider_bin = match lane {
        Lane::Case => a.provider_bin.or(env_bin),
        Lane::Fake => a.provider_bin,
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    Ok(RunOptions {
        fixture: a.fixture,
        lane,
        provider_bin,
        timeout_seconds: timeout,
        fake_behavior: a.fake_behavior,
        runs_dir: a.runs_dir,
        model_provider: env("CTO_HARNESS_CASE_MODEL_PROVIDER"),
        model: env("CTO_HARNESS_CASE_MODEL"),
    })
}
