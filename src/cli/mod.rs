//! The command line: clap definitions, the dispatch table, printing and exit codes.
//! Each command lives in its own module under `commands/`.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands::{self as c, Context, Output, RenderError, EXIT_IO, EXIT_OK};
use crate::error::Result;

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
pub(crate) struct Cli {
    /// Ledger home (default: $CTO_LEDGER_DIR, else $XDG_DATA_HOME/cto-ledger, else ~/.local/share/cto-ledger)
    #[arg(long, global = true, value_name = "DIR")]
    ledger: Option<PathBuf>,
    /// Print one JSON document on stdout instead of text
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the ledger home explicitly (any writing command also does)
    Init(c::init::Args),
    /// Store files and directories (as tree objects) and record them
    Ingest(c::ingest::Args),
    /// Record git clones
    #[command(subcommand)]
    Source(c::source::Cmd),
    /// Run a build in a clone and record it: sources before/after, argv, tools, env, logs, outputs
    Build(c::build::Args),
    /// Admit a built file (exact digest) from a pinned commit, or a provider/model pair
    Admit(c::admit::Args),
    /// Exit 0 only if this exact file or digest is admitted and not revoked
    Verify(c::verify::Args),
    /// Revoke an admission (a later event; nothing is edited)
    Revoke(c::revoke::Args),
    /// Write an object's bytes to stdout (verified first)
    Cat(c::cat::Args),
    /// Write a tree object into a new or empty directory
    Restore(c::restore::Args),
    /// Show any node of the graph and its neighbours
    Show(c::show::Args),
    /// The journal, oldest first
    Log(c::log::Args),
    /// Everything upstream of a node, down to the source commit and its URL
    Trace(c::trace::Args),
    /// Everything downstream of a node: builds, outputs, admissions, runs and verdicts
    Impact(c::impact::Args),
    /// The lineage of a node (upstream and downstream) as a picture
    Graph(c::graph::Args),
    /// Export an artifact's provenance (in-toto Statement v1 with SLSA Provenance v1, or W3C PROV-JSON), or a run's evidence bundle
    Export(c::export::Args),
    /// Run one read-only SQL query over the ledger's tables (docs/ledger.md)
    Sql(c::sql::Args),
    /// Check the journal chain, projections, every object and every run; exit 1 on findings
    Audit(c::audit::Args),
    /// Remotes: S3-compatible object storage shared by many hosts (docs/remote.md)
    Remote {
        #[command(subcommand)]
        cmd: Option<c::remote::Cmd>,
    },
    /// Publish local events (and the objects they name) to a remote, pulling first
    Push(c::push::Args),
    /// Take a remote's new events (re-hashing every object they name) into this ledger
    Pull(c::pull::Args),
    /// Rebuild every projection table from the journal
    Reindex(c::reindex::Args),
    /// Move loose small objects of the store into packs (every object stays readable throughout)
    Repack(c::repack::Args),
    /// Remove stored objects no journal event names, after a grace period; --dry-run lists them
    Gc(c::gc::Args),
    /// Print the journal head (SEQ:HASH) to keep for `audit --checkpoint`; with --sign, a signed note over the log
    Checkpoint(c::checkpoint::Args),
    /// Signing keys: generate, list, export, rotate, revoke (docs/signing.md)
    #[command(subcommand)]
    Key(c::key::Cmd),
    /// Write DSSE-signed in-toto attestations (SLSA provenance; for runs, test result and verification summary)
    Attest(c::attest::Args),
    /// Check DSSE attestations offline with a public key, and what they claim (a run's must say PASSED); exit 1 naming what fails
    VerifyAttestation(c::verify_attestation::Args),
    /// A read-only web view of runs, transcripts and lineage on loopback, behind a token it prints
    Serve(c::serve::Args),
    /// A C2SP tlog-witness: cosign checkpoints of the logs it follows, consistent with all it saw before
    #[command(subcommand)]
    Witness(c::witness::Cmd),
    /// Check an evidence bundle from `export --bundle` offline with a public key; exit 1 naming the piece that fails
    VerifyBundle(c::verify_bundle::Args),
    /// Print an inclusion proof of an event (or a consistency proof) against a signed checkpoint
    Prove(c::prove::Args),
    /// Check a proof from `prove` offline with a public key
    VerifyProof(c::verify_proof::Args),
    /// Rego policies evaluated at admit and before a run's provider starts, each decision recorded (docs/policies.md)
    #[command(subcommand)]
    Policy(c::policy::Cmd),
    /// Run a harness job
    #[command(subcommand)]
    Run(c::run::Cmd),
    /// List runs
    Runs(c::runs::Args),
    /// Run the built-in Stage 2 checks in a throwaway ledger
    Health(c::health::Args),
    /// Finalise and record run folders whose harness was killed (report says `interrupted`)
    Recover(c::recover::Args),
    /// Print shell completions
    Completions(c::completions::Args),
    /// Print the man page (roff)
    Man(c::man::Args),
}

/// The dispatch table: one line per command.
fn dispatch(cx: &Context, cmd: Cmd) -> Result<Output> {
    match cmd {
        Cmd::Init(a) => c::init::run(cx, a),
        Cmd::Ingest(a) => c::ingest::run(cx, a),
        Cmd::Source(a) => c::source::run(cx, a),
        Cmd::Build(a) => c::build::run(cx, a),
        Cmd::Admit(a) => c::admit::run(cx, a),
        Cmd::Verify(a) => c::verify::run(cx, a),
        Cmd::Revoke(a) => c::revoke::run(cx, a),
        Cmd::Cat(a) => c::cat::run(cx, a),
        Cmd::Restore(a) => c::restore::run(cx, a),
        Cmd::Show(a) => c::show::run(cx, a),
        Cmd::Log(a) => c::log::run(cx, a),
        Cmd::Trace(a) => c::trace::run(cx, a),
        Cmd::Impact(a) => c::impact::run(cx, a),
        Cmd::Graph(a) => c::graph::run(cx, a),
        Cmd::Export(a) => c::export::run(cx, a),
        Cmd::Sql(a) => c::sql::run(cx, a),
        Cmd::Audit(a) => c::audit::run(cx, a),
        Cmd::Remote { cmd } => c::remote::run(cx, cmd),
        Cmd::Push(a) => c::push::run(cx, a),
        Cmd::Pull(a) => c::pull::run(cx, a),
        Cmd::Reindex(a) => c::reindex::run(cx, a),
        Cmd::Repack(a) => c::repack::run(cx, a),
        Cmd::Gc(a) => c::gc::run(cx, a),
        Cmd::Checkpoint(a) => c::checkpoint::run(cx, a),
        Cmd::Key(a) => c::key::run(cx, a),
        Cmd::Attest(a) => c::attest::run(cx, a),
        Cmd::VerifyAttestation(a) => c::verify_attestation::run(cx, a),
        Cmd::VerifyBundle(a) => c::verify_bundle::run(cx, a),
        Cmd::Witness(a) => c::witness::run(cx, a),
        Cmd::Serve(a) => c::serve::run(cx, a),
        Cmd::Prove(a) => c::prove::run(cx, a),
        Cmd::VerifyProof(a) => c::verify_proof::run(cx, a),
        Cmd::Policy(a) => c::policy::run(cx, a),
        Cmd::Run(a) => c::run::run(cx, a),
        Cmd::Runs(a) => c::runs::run(cx, a),
        Cmd::Health(a) => c::health::run(cx, a),
        Cmd::Recover(a) => c::recover::run(cx, a),
        Cmd::Completions(a) => c::completions::run(cx, a),
        Cmd::Man(a) => c::man::run(cx, a),
    }
}

/// Prints a library error (and, with `--json`, the same as one JSON document); its exit code.
fn report_error(e: &crate::error::Error, json: bool, out: &mut dyn Write) -> i32 {
    let code = e.exit_code();
    // Errors quote what they refused, which may be a remote's or a provider's bytes:
    // every control character is shown escaped, line by line.
    use crate::commands::text::shown_lines;
    eprintln!("cto-ledger: error: {}", shown_lines(&e.to_string()));
    if let Some(h) = e.hint() {
        eprintln!("  hint: {}", shown_lines(h));
    }
    if json {
        let doc = serde_json::json!({"error": e.to_string(), "hint": e.hint(), "exit_code": code});
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        );
    }
    code
}

/// A command line clap could not parse: its message on stderr and, when `--json` was
/// asked for, the same as one JSON document on stdout, as for every other error.
fn usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    let code = e.exit_code();
    let shown = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    let _ = e.print();
    if !shown && std::env::args_os().skip(1).any(|a| a == "--json") {
        let rendered = e.render().to_string();
        let message = rendered
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string();
        let doc = serde_json::json!({
            "error": message,
            "hint": "see `cto-ledger --help` or `cto-ledger COMMAND --help`",
            "exit_code": code,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    code
}

/// Parses arguments, runs the command, prints, and returns the exit code.
pub(crate) fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let cx = Context {
        ledger: cli.ledger,
        json: cli.json,
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let output = match dispatch(&cx, cli.cmd) {
        Ok(o) => o,
        Err(e) => return report_error(&on_disk(e, &cx), cx.json, &mut out),
    };
    let code = output.code();
    match output
        .write(&mut out, cx.json)
        .and_then(|_| out.flush().map_err(RenderError::Io))
    {
        Ok(()) => code,
        Err(RenderError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(RenderError::Io(e)) => {
            eprintln!("cto-ledger: error: writing output: {e}");
            EXIT_IO
        }
        Err(RenderError::Lib(e)) => report_error(&on_disk(e, &cx), cx.json, &mut out),
    }
}

/// A full disk named: the one holding the ledger home.
fn on_disk(e: crate::error::Error, cx: &Context) -> crate::error::Error {
    match crate::home::locate(cx.ledger.as_deref()) {
        Ok(home) => e.on_disk_of(&home),
        Err(_) => e,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
