//! `cto-ledger build [--source DIR] --output PATH... -- CMD...` and `build --check REF`.

use std::io::Write;
use std::path::PathBuf;

use super::{text::R, Context, Output};
use crate::build::{self, BuildArgs, BuildOut};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::ledger::Mode;
use crate::state::{BuildStatus, CheckResult};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// What the build makes (e.g. `ca`); shown in show, trace and graph
    #[arg(long)]
    name: Option<String>,
    /// The git clone to build in (default: the clone containing the current directory)
    #[arg(long, value_name = "DIR")]
    source: Option<PathBuf>,
    /// A file or directory the build produces (repeatable)
    #[arg(
        long = "output",
        value_name = "PATH",
        required_unless_present = "check"
    )]
    outputs: Vec<PathBuf>,
    /// Directory to run the command in (default: the clone's root)
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// Also record `<TOOL> --version` (node, bun, cargo, rustc, go, python3 are detected)
    #[arg(long = "tool", value_name = "TOOL")]
    tools: Vec<String>,
    /// Also record this environment variable's value (repeatable)
    #[arg(long = "env", value_name = "NAME")]
    env: Vec<String>,
    /// Re-run a recorded build (id or output digest) from a clean work tree of its commit
    #[arg(long, value_name = "REF", conflicts_with_all = ["outputs", "source", "cwd"])]
    check: Option<String>,
    /// The build command
    #[arg(last = true, value_name = "CMD")]
    argv: Vec<String>,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    if a.check.is_some() && !a.argv.is_empty() {
        return Err(Error::bad_input(
            "build --check re-runs the recorded command; do not give one",
            "drop the command after `--`",
        ));
    }
    let mut home = cx.open(Mode::ReadWrite)?;
    let progress = cx.progress();
    let r = match &a.check {
        Some(r) => build::check(&mut home, r, &progress)?,
        None => {
            let args = BuildArgs {
                name: a.name,
                source: a.source,
                outputs: a.outputs,
                cwd: a.cwd,
                tools: a.tools,
                env: a.env,
                argv: a.argv,
            };
            build::build(&mut home, &args, &progress)?
        }
    };
    progress.finish_and_clear();
    let good = r.build.status == BuildStatus::Succeeded
        && r.build
            .check
            .as_ref()
            .is_none_or(|c| c.result == CheckResult::Reproduces);
    Ok(Output::doc(r, text).negative_unless(good))
}

fn text(w: &mut dyn Write, r: &BuildOut) -> R {
    let b = &r.build;
    match &b.check {
        Some(c) => writeln!(
            w,
            "check {} of {}: {}",
            b.id,
            c.of,
            c.result.as_str().to_uppercase()
        )?,
        None => {
            let name = b
                .name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            writeln!(w, "build {}{name} {}", b.id, b.status)?
        }
    }
    if let Some(reason) = &b.reason {
        writeln!(w, "  reason:   {reason}")?;
    }
    if !r.dirty_before.is_empty() {
        writeln!(
            w,
            "  warning:  the source tree was dirty before the build: {} (recorded; `admit` refuses these bytes unless the build's own edits explain them, or --allow-modified)",
            super::text::shown(&r.dirty_before.join(", "))
        )?;
    }
    writeln!(w, "  command:  {}", super::text::shell_quoted(&b.argv))?;
    writeln!(
        w,
        "  source:   {} {}",
        b.url.as_deref().unwrap_or("(no remote)"),
        b.commit
    )?;
    for t in &b.tools {
        writeln!(
            w,
            "  tool:     {} {}",
            t.name,
            t.version.as_deref().unwrap_or("(version unknown)")
        )?;
    }
    for o in &b.outputs {
        let ignored = if o.ignored { " (ignored by git)" } else { "" };
        writeln!(
            w,
            "  output:   {} {} {}{ignored}",
            o.path, o.sha256, o.object
        )?;
    }
    let show = |o: &Option<ObjectId>| o.map_or("-".into(), |o| o.to_string());
    for m in &b.modified {
        writeln!(
            w,
            "  modified: {} ({}) {} -> {}",
            m.path,
            m.status,
            show(&m.old_object),
            show(&m.new_object)
        )?;
    }
    for p in &b.created {
        writeln!(w, "  created:  {p}")?;
    }
    if let Some(c) = &b.check {
        match c.same_path {
            Some(true) => writeln!(w, "  rebuilt:  at the original path, mounted over it in a private mount namespace")?,
            Some(false) => writeln!(w, "  rebuilt:  in a temporary folder (mount namespaces unavailable): outputs that embed their path will differ")?,
            None => {}
        }
        for o in &c.outputs {
            writeln!(w, "  {:<8}  {}", o.result.as_str(), o.path)?;
            if let Some(d) = &o.difference {
                writeln!(
                    w,
                    "            {} bytes -> {} bytes; first difference at byte {}{}; {} bytes differ",
                    d.original_size,
                    d.rebuilt_size,
                    d.first_difference_offset,
                    d.last_difference_offset.map(|l| format!(", last at {l}")).unwrap_or_default(),
                    d.differing_bytes
                )?;
                for h in &d.hints {
                    writeln!(w, "            hint: {h}")?;
                }
            }
        }
    }
    Ok(())
}
