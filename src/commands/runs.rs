//! `cto-ledger runs`: list Stage 2 runs.

use std::io::Write;

use super::{
    parse_since,
    text::{table, R},
    Context, Output,
};
use crate::error::{Error, Result};
use crate::ledger::query::Node;
use crate::ledger::{Mode, RunFilter, RunRow};
use crate::state::RunStatus;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[arg(long)]
    status: Option<String>,
    /// Only runs of this provider (admission name or id, or a digest)
    #[arg(long, value_name = "REF")]
    provider: Option<String>,
    /// Only runs started at or after this time (RFC 3339 or a date)
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only runs with this verdict: pass or fail
    #[arg(long, value_parser = ["pass", "fail"])]
    verdict: Option<String>,
    /// Only runs of this fixture
    #[arg(long, value_name = "NAME")]
    fixture: Option<String>,
    /// Only runs with this model, PROVIDER/MODEL (e.g. scripted/r1-string-slugify)
    #[arg(long, value_name = "PROVIDER/MODEL")]
    model: Option<String>,
    /// Every column (lane, provider admission id, sandbox, start time), however wide
    #[arg(long)]
    wide: bool,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let since = a.since.as_deref().map(parse_since).transpose()?;
    let status = match a.status.as_deref() {
        None => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            Error::bad_input(
                format!("--status `{s}` is not a run status"),
                format!("use one of {}", RunStatus::names()),
            )
        })?),
    };
    let home = cx.open(Mode::ReadOnly)?;
    let provider_object = a
        .provider
        .as_deref()
        .map(|r| provider_object(&home, r, &|h, r| h.resolve(r)))
        .transpose()?;
    let filter = RunFilter {
        status,
        provider_object,
        since,
    };
    let mut rows = home.ledger.runs(&filter)?;
    // Attempts registered and never ended are runs too: status `unfinished`.
    rows.extend(
        home.ledger
            .unfinished_runs()?
            .iter()
            .map(|u| u.as_run())
            .filter(|r| filter.status.is_none_or(|s| s == r.status))
            .filter(|r| {
                filter.provider_object.is_none() || r.provider_object == filter.provider_object
            })
            .filter(|r| filter.since.as_ref().is_none_or(|t| r.started >= *t)),
    );
    rows.retain(|r| {
        a.verdict
            .as_deref()
            .is_none_or(|v| r.verdict.to_string() == v)
            && a.fixture.as_deref().is_none_or(|f| r.fixture == f)
            && a.model
                .as_deref()
                .is_none_or(|m| r.model.as_deref() == Some(m))
    });
    rows.sort_by_key(|r| r.seq);
    let out = Listed {
        rows,
        names: home.ledger.admission_names()?,
        wide: a.wide,
    };
    Ok(Output::doc(out, |w, l| match l.wide {
        true => text(w, &l.rows),
        false => narrow(w, &l.rows, &l.names),
    }))
}

/// The provider bytes a `--provider REF` names: an admission's, or a digest's.
pub(crate) fn provider_object(
    home: &crate::home::Home,
    r: &str,
    resolve: &dyn Fn(&crate::home::Home, &str) -> Result<Node>,
) -> Result<crate::id::ObjectId> {
    let missing = || {
        Error::bad_input(
            format!("--provider {r} names an admission that is not recorded"),
            "give an admission name or id, or a provider digest",
        )
    };
    match resolve(home, r)? {
        Node::Admission(id) => home
            .ledger
            .admission(&id)?
            .map(|a| a.object)
            .ok_or_else(missing),
        Node::Object(o) => Ok(o),
        other => Err(Error::bad_input(
            format!("--provider {r} names {}, not a provider", other.label()),
            "give an admission name or id, or a provider digest",
        )),
    }
}

/// As JSON, the rows; as text, narrow or `--wide`.
#[derive(serde::Serialize)]
#[serde(transparent)]
struct Listed {
    rows: Vec<RunRow>,
    #[serde(skip)]
    names: std::collections::BTreeMap<String, String>,
    #[serde(skip)]
    wide: bool,
}

/// The columns that fit 100: the run (its id says when and what), what it came to, who
/// and what ran it.
fn narrow(
    w: &mut dyn Write,
    rows: &[RunRow],
    names: &std::collections::BTreeMap<String, String>,
) -> R {
    let headers = ["RUN", "OUTCOME", "PROVIDER", "MODEL"];
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let provider = r.provider_admission.as_ref().map_or("-".into(), |a| {
                names
                    .get(a.as_str())
                    .cloned()
                    .unwrap_or_else(|| a.to_string())
            });
            vec![
                format!("run:{}", r.id),
                outcome(r),
                elide(&provider, 10),
                elide(r.model.as_deref().unwrap_or("-"), 18),
            ]
        })
        .collect();
    table(w, &headers.map(String::from), &body)
}

/// The verdict, and the status when it says more (`fail blocked`, `fail provider_timeout`).
/// A run without the sandbox says so here too: it is what an auditor must not miss.
fn outcome(r: &RunRow) -> String {
    let (v, st) = (r.verdict.to_string(), r.status.to_string());
    let mut out = match (v.as_str(), st.as_str()) {
        ("pass", "passed") | ("fail", "failed") => v,
        _ => format!("{v} {st}"),
    };
    if r.sandbox.as_deref().is_some_and(|s| s.starts_with("off")) {
        out.push_str(", unsandboxed");
    }
    out
}

/// At most `max` characters: the rest elided with `…`.
pub(crate) fn elide(s: &str, max: usize) -> String {
    match s.chars().count() > max {
        true => s.chars().take(max - 1).chain(['…']).collect(),
        false => s.to_string(),
    }
}

fn text(w: &mut dyn Write, rows: &[RunRow]) -> R {
    let headers = [
        "RUN",
        "LANE",
        "STATUS",
        "VERDICT",
        "PROVIDER_ADMISSION",
        "MODEL",
        "SANDBOX",
        "STARTED",
    ];
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                // As a REF: pasted into `show`, `attest` or `export` it names the run.
                format!("run:{}", r.id),
                r.lane.to_string(),
                r.status.to_string(),
                r.verdict.to_string(),
                r.provider_admission
                    .as_ref()
                    .map_or("-".into(), |a| a.to_string()),
                r.model.clone().unwrap_or_else(|| "-".into()),
                r.sandbox.clone().unwrap_or_else(|| "-".into()),
                r.started.clone(),
            ]
        })
        .collect();
    table(w, &headers.map(String::from), &body)
}
