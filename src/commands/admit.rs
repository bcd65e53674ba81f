//! `cto-ledger admit PATH --source-pin PIN` and `admit --model PROVIDER/MODEL`.

use std::io::Write;
use std::path::PathBuf;

use super::{text::R, Context, Output};
use crate::admission::{self, AdmitArgs, AdmitOut, ModelAdmitOut};
use crate::error::{Error, Result};
use crate::ledger::Mode;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The built file to admit
    #[arg(required_unless_present = "model", conflicts_with = "model")]
    path: Option<PathBuf>,
    /// Commit the file was built from (7+ hex digits); must be the clone's HEAD
    #[arg(long, required_unless_present = "model")]
    source_pin: Option<String>,
    /// Admission name (default: the file name)
    #[arg(long)]
    name: Option<String>,
    /// The git clone it was built from (default: the clone containing PATH)
    #[arg(long, value_name = "DIR")]
    source: Option<PathBuf>,
    /// Accept this modified tracked file (repeatable); its contents are recorded
    #[arg(long, value_name = "PATH")]
    allow_modified: Vec<PathBuf>,
    /// Refuse (recorded) unless the build that made the file has a check that reproduced
    #[arg(long, conflicts_with = "model")]
    require_reproducible: bool,
    /// Admit a PROVIDER/MODEL pair that runs may use (`scripted/NAME`: a fixture's model script)
    #[arg(long, value_name = "PROVIDER/MODEL")]
    model: Option<String>,
    /// With --model: the URL the model is served at (a local server or a remote API)
    #[arg(long, value_name = "URL", requires = "model")]
    endpoint: Option<String>,
    /// With --endpoint: the API spoken there
    #[arg(long, value_name = "API", requires = "endpoint")]
    api: Option<String>,
    /// With --model scripted/NAME: the fixture whose model-scripts/NAME.json is admitted
    #[arg(long, value_name = "NAME|DIR", requires = "model")]
    fixture: Option<String>,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    if let Some(m) = &a.model {
        if a.source_pin.is_some() || !a.allow_modified.is_empty() || a.source.is_some() {
            return Err(Error::bad_input(
                "--model cannot be combined with --source-pin, --source or --allow-modified",
                "admit a model on its own: cto-ledger admit --model PROVIDER/MODEL",
            ));
        }
        let mut home = cx.open(Mode::ReadWrite)?;
        return Ok(Output::doc(
            admission::admit_model(
                &mut home,
                m,
                &admission::ModelArgs {
                    endpoint: a.endpoint.as_deref(),
                    api: a.api.as_deref(),
                    fixture: a.fixture.as_deref(),
                },
            )?,
            model_text,
        ));
    }
    let path = a.path.expect("clap requires PATH without --model");
    let pin = a
        .source_pin
        .expect("clap requires --source-pin without --model");
    let args = AdmitArgs {
        path: &path,
        pin: &pin,
        name: a.name.as_deref(),
        source: a.source.as_deref(),
        allow_modified: &a.allow_modified,
        require_reproducible: a.require_reproducible,
    };
    let mut home = cx.open(Mode::ReadWrite)?;
    let progress = cx.progress();
    let out = admission::admit(&mut home, &args, &progress);
    progress.finish_and_clear();
    Ok(Output::doc(out?, text))
}

fn text(w: &mut dyn Write, r: &AdmitOut) -> R {
    let a = &r.admission;
    if r.already {
        writeln!(
            w,
            "already admitted {} as {} ({}); nothing new recorded",
            a.path, a.name, a.id
        )?;
    } else {
        writeln!(w, "admitted {} as {}", a.path, a.name)?;
    }
    writeln!(w, "  admission {}", a.id)?;
    writeln!(w, "  {}", a.sha256)?;
    writeln!(w, "  {}", a.object)?;
    writeln!(
        w,
        "  source    {} {} (pin {})",
        r.source.url.as_deref().unwrap_or(&r.source.path),
        r.source.commit,
        a.pin.as_deref().unwrap_or("-")
    )?;
    for d in &a.decisions {
        writeln!(w, "  - {d}")?;
    }
    Ok(())
}

fn model_text(w: &mut dyn Write, r: &ModelAdmitOut) -> R {
    let a = &r.admission;
    let verb = if r.already {
        "already admitted"
    } else {
        "admitted"
    };
    writeln!(w, "{verb} model {}/{} as {}", a.provider, a.model, a.id)?;
    if let Some(e) = &a.endpoint {
        writeln!(w, "  endpoint {e} ({})", a.api.as_deref().unwrap_or("-"))?;
    }
    if let Some(s) = &a.script {
        writeln!(
            w,
            "  script   {} {}",
            a.script_path.as_deref().unwrap_or("-"),
            s.sha256
        )?;
    }
    Ok(())
}
