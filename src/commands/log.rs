//! `cto-ledger log`: the journal, oldest first, one line per event.

use std::io::Write;

use serde::Serialize;

use super::{parse_since, text::shown, text::R, Context, Output};
use crate::error::{Error, Result};
use crate::ledger::events::{Body, Event};
use crate::ledger::{JournalRow, Mode};

#[derive(clap::Args)]
pub(crate) struct Args {
    #[arg(long)]
    kind: Option<String>,
    /// Only events at or after this time (RFC 3339 or a date, e.g. 2026-05-31)
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Serialize)]
struct LogEntry {
    seq: i64,
    time: String,
    kind: String,
    summary: String,
    actor: String,
    hash: String,
}

fn short(c: &impl std::fmt::Display) -> String {
    c.to_string().chars().take(12).collect()
}

fn summary(b: &Body) -> String {
    match b {
        Body::Init { .. } => "ledger created".to_string(),
        Body::Ingest(r) => r
            .items
            .iter()
            .map(|i| format!("{} {}", i.object, i.path))
            .collect::<Vec<_>>()
            .join(", "),
        Body::Source(s) => format!(
            "{} {} at {}",
            s.id,
            s.url.as_deref().unwrap_or(&s.path),
            short(&s.commit)
        ),
        Body::Admission(a) => format!(
            "{} {} {} pin {} ({})",
            a.id,
            a.name,
            a.sha256,
            a.pin.as_deref().unwrap_or("-"),
            a.scope
        ),
        Body::Refusal(r) => format!("{} {}: {}", r.id, r.reason, r.message),
        Body::ModelAdmission(m) => format!("{} {}/{}", m.id, m.provider, m.model),
        Body::Revocation(r) => format!("{} of {}: {}", r.id, r.target, r.reason),
        Body::RunStart(r) => format!(
            "run:{} registered: {} on {} ({} lane)",
            r.id,
            short(&r.provider_object),
            r.fixture,
            r.lane
        ),
        Body::Run(r) => format!("run:{} {} {} ({})", r.id, r.lane, r.status, r.verdict),
        Body::Build(b) => match &b.check {
            Some(c) => format!("{} check of {}: {}", b.id, c.of, c.result),
            None => format!(
                "{} {} `{}` at {}",
                b.id,
                b.status,
                super::text::shell_quoted(&b.argv),
                short(&b.commit)
            ),
        },
        Body::Key(k) => match &k.replaces {
            Some(old) => format!(
                "key {} ({}) replaces {}",
                short(&k.keyid),
                k.algorithm,
                short(old)
            ),
            None => format!("key {} ({})", short(&k.keyid), k.algorithm),
        },
        Body::KeyRevocation(r) => format!("key {} revoked: {}", short(&r.keyid), r.reason),
        Body::Witness(w) if w.removed => format!("witness {} removed", shown(&w.name)),
        Body::Witness(w) => format!(
            "witness {}{}",
            shown(&w.name),
            w.url
                .as_deref()
                .map(|u| format!(" at {}", shown(u)))
                .unwrap_or_default()
        ),
        Body::Policy(p) if p.removed => format!("policy {} removed", shown(&p.name)),
        Body::Policy(p) => format!(
            "policy {} {} on {}",
            shown(&p.name),
            p.sha256.map(|d| d.to_string()).unwrap_or_default(),
            p.applies
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn entry(row: &JournalRow) -> LogEntry {
    let (summary, actor) = match serde_json::from_str::<Event>(&row.event) {
        Ok(e) => (summary(&e.body), e.actor.display()),
        Err(_) => ("(undecodable event)".into(), String::new()),
    };
    LogEntry {
        seq: row.seq,
        time: row.time.clone(),
        kind: row.kind.clone(),
        summary,
        actor,
        hash: row.hash.clone(),
    }
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    if let Some(k) = a.kind.as_deref().filter(|k| !Body::KINDS.contains(k)) {
        return Err(Error::bad_input(
            format!("--kind `{k}` is not an event kind"),
            format!("use one of {}", Body::KINDS.join(", ")),
        ));
    }
    let since = a.since.as_deref().map(parse_since).transpose()?;
    let home = cx.open(Mode::ReadOnly)?;
    let rows = home.ledger.journal_rows()?;
    let mut out: Vec<LogEntry> = rows
        .iter()
        .filter(|r| a.kind.as_ref().is_none_or(|k| &r.kind == k))
        .filter(|r| since.as_ref().is_none_or(|t| &r.time >= t))
        .map(entry)
        .collect();
    if let Some(n) = a.limit {
        out.drain(..out.len().saturating_sub(n));
    }
    Ok(Output::doc(out, |w, r| text(w, r)))
}

fn text(w: &mut dyn Write, r: &[LogEntry]) -> R {
    for e in r {
        writeln!(
            w,
            "{:>5}  {}  {:<16} {}  [{}]",
            e.seq, e.time, e.kind, e.summary, e.actor
        )?;
    }
    Ok(())
}
