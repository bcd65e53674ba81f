//! Human-readable output. JSON output is the serialised data itself.

use std::io::{self, Write};

use serde_json::Value;

use crate::harness::health::HealthOut;
use crate::harness::Stage2Out;
use crate::ops::*;

type R = io::Result<()>;

pub fn init(w: &mut dyn Write, r: &InitOut) -> R {
    if r.created {
        writeln!(w, "created ledger at {}", r.home)
    } else {
        writeln!(
            w,
            "ledger at {} already exists (head {}:{})",
            r.home, r.head.seq, r.head.hash
        )
    }
}

pub fn ingest(w: &mut dyn Write, r: &IngestOut) -> R {
    for i in &r.items {
        writeln!(
            w,
            "{} {}  {}  {} ({} bytes{})",
            i.kind.as_str(),
            i.object,
            i.sha256,
            i.path,
            i.size,
            if i.files > 1 {
                format!(", {} files", i.files)
            } else {
                String::new()
            }
        )?;
    }
    writeln!(
        w,
        "recorded as event {} ({} new objects)",
        r.seq, r.new_objects
    )
}

pub fn source(w: &mut dyn Write, r: &SourceOut) -> R {
    let s = &r.source;
    writeln!(
        w,
        "source {}{}",
        s.id,
        if r.recorded {
            ""
        } else {
            " (already recorded)"
        }
    )?;
    writeln!(
        w,
        "  url       {}",
        s.url.as_deref().unwrap_or("(no remote)")
    )?;
    writeln!(
        w,
        "  commit    {}{}",
        s.commit,
        s.branch
            .as_deref()
            .map(|b| format!(" ({b})"))
            .unwrap_or_default()
    )?;
    writeln!(w, "  snapshot  {}", s.snapshot)?;
    for c in &s.changes {
        writeln!(w, "  {:<10} {}", c.status, c.path)?;
    }
    Ok(())
}

pub fn admit(w: &mut dyn Write, r: &AdmitOut) -> R {
    let a = &r.admission;
    writeln!(w, "admitted {} as {}", a.path, a.name)?;
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

pub fn build(w: &mut dyn Write, r: &crate::build::BuildOut) -> R {
    let b = &r.build;
    match &b.check {
        Some(c) => writeln!(w, "check {} of {}: {}", b.id, c.of, c.result.to_uppercase())?,
        None => writeln!(
            w,
            "build {}{} {}",
            b.id,
            b.name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            b.status
        )?,
    }
    if let Some(reason) = &b.reason {
        writeln!(w, "  reason:   {reason}")?;
    }
    writeln!(w, "  command:  {}", b.argv.join(" "))?;
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
        writeln!(
            w,
            "  output:   {} {} {}{}",
            o.path,
            o.sha256,
            o.object,
            if o.ignored { " (ignored by git)" } else { "" }
        )?;
    }
    for m in &b.modified {
        let show = |o: &Option<crate::id::ObjectId>| {
            o.map(|o| o.to_string()).unwrap_or_else(|| "-".into())
        };
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
        for o in &c.outputs {
            writeln!(w, "  {:<8}  {}", o.result, o.path)?;
        }
    }
    Ok(())
}

pub fn admit_model(w: &mut dyn Write, r: &ModelAdmitOut) -> R {
    let a = &r.admission;
    writeln!(
        w,
        "{} model {}/{} as {}",
        if r.already {
            "already admitted"
        } else {
            "admitted"
        },
        a.provider,
        a.model,
        a.id
    )
}

pub fn verify(w: &mut dyn Write, r: &VerifyOut) -> R {
    if r.admitted {
        writeln!(w, "ADMITTED {}", r.input)?;
    } else {
        writeln!(w, "NOT ADMITTED {}", r.input)?;
    }
    if let Some(s) = &r.sha256 {
        writeln!(w, "  {s}")?;
    }
    writeln!(w, "  {}", r.object)?;
    for a in &r.admissions {
        writeln!(
            w,
            "  admission {} name {} pin {} commit {} source {} ({})",
            a["id"].as_str().unwrap_or(""),
            a["name"].as_str().unwrap_or(""),
            a["pin"].as_str().unwrap_or(""),
            a["commit_id"].as_str().unwrap_or(""),
            a["url"].as_str().unwrap_or("-"),
            a["time"].as_str().unwrap_or("")
        )?;
    }
    for a in &r.revoked {
        writeln!(
            w,
            "  revoked admission {} ({}): {}",
            a["id"].as_str().unwrap_or(""),
            a["name"].as_str().unwrap_or(""),
            a["revocation"]["reason"].as_str().unwrap_or("")
        )?;
    }
    Ok(())
}

pub fn revoke(w: &mut dyn Write, r: &RevokeOut) -> R {
    for v in &r.revoked {
        writeln!(w, "revoked {} ({}): {}", v.target, v.id, v.reason)?;
    }
    Ok(())
}

/// Generic indented rendering of a JSON document (for `show`).
pub fn value(w: &mut dyn Write, v: &Value, indent: usize) -> R {
    let pad = "  ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::Object(_) => {
                        writeln!(w, "{pad}{k}:")?;
                        value(w, x, indent + 1)?;
                    }
                    Value::Array(a) if a.is_empty() => {}
                    Value::Array(a) => {
                        writeln!(w, "{pad}{k}:")?;
                        for item in a {
                            match item {
                                Value::Object(_) => {
                                    writeln!(w, "{pad}  -")?;
                                    value(w, item, indent + 2)?;
                                }
                                other => writeln!(w, "{pad}  - {}", scalar(other))?,
                            }
                        }
                    }
                    Value::Null => {}
                    other => writeln!(w, "{pad}{k}: {}", scalar(other))?,
                }
            }
            Ok(())
        }
        other => writeln!(w, "{pad}{}", scalar(other)),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn log(w: &mut dyn Write, r: &[LogEntry]) -> R {
    for e in r {
        writeln!(
            w,
            "{:>5}  {}  {:<16} {}  [{}]",
            e.seq, e.time, e.kind, e.summary, e.actor
        )?;
    }
    Ok(())
}

pub fn audit(w: &mut dyn Write, r: &AuditOut) -> R {
    match &r.head {
        Some(h) => writeln!(w, "journal: {} events, head {}:{}", r.events, h.seq, h.hash)?,
        None => writeln!(w, "journal: empty")?,
    }
    writeln!(
        w,
        "objects: {} re-hashed ({} bytes, BLAKE3 and SHA-256)",
        r.objects_checked, r.bytes_checked
    )?;
    writeln!(w, "runs:    {} checked", r.runs_checked)?;
    verdict(w, "audit", &r.notes, &r.findings)
}

/// Notes, findings and the last line every audit prints.
fn verdict(w: &mut dyn Write, what: &str, notes: &[String], findings: &[crate::ops::Finding]) -> R {
    for n in notes {
        writeln!(w, "note: {n}")?;
    }
    for f in findings {
        writeln!(w, "FINDING [{}] {}: {}", f.check, f.subject, f.message)?;
    }
    if findings.is_empty() {
        writeln!(w, "{what} passed")
    } else {
        writeln!(w, "{what} FAILED: {} finding(s)", findings.len())
    }
}

/// An aligned text table; cells wider than 80 characters widen no column.
fn table(w: &mut dyn Write, headers: &[String], rows: &[Vec<String>]) -> R {
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
                .min(80)
        })
        .collect();
    let line = |vals: &[String]| {
        vals.iter()
            .zip(&widths)
            .map(|(v, n)| format!("{v:<n$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    writeln!(w, "{}", line(headers))?;
    for r in rows {
        writeln!(w, "{}", line(r))?;
    }
    Ok(())
}

pub fn runs(w: &mut dyn Write, rows: &[Value]) -> R {
    let cols = [
        "id",
        "lane",
        "status",
        "verdict",
        "provider_admission",
        "model",
        "started",
    ];
    let cell = |r: &Value, c: &str| {
        r[c].as_str()
            .map(str::to_string)
            .unwrap_or_else(|| "-".into())
    };
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| cols.iter().map(|c| cell(r, c)).collect())
        .collect();
    table(
        w,
        &cols.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>(),
        &body,
    )
}

pub fn stage2(w: &mut dyn Write, r: &Stage2Out) -> R {
    let rep = &r.report;
    writeln!(
        w,
        "run:{}  lane {}  status {}  verdict {}",
        rep.run_id, rep.lane, rep.status, rep.verdict
    )?;
    if let Some(reason) = &rep.reason {
        writeln!(w, "  reason:   {reason}")?;
    }
    writeln!(w, "  folder:   {}", r.run_dir.display())?;
    writeln!(w, "  report:   {}", r.run_dir.join("report.json").display())?;
    if let Some(t) = &rep.tests {
        writeln!(
            w,
            "  tests:    {} (exit {})",
            t.result,
            t.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into())
        )?;
    }
    writeln!(w, "  recorded: event {} ({} artifacts)", r.seq, r.artifacts)
}

pub fn lineage(w: &mut dyn Write, t: &crate::lineage::LNode) -> R {
    let mut s = String::new();
    crate::lineage::render_tree(t, &mut s, "", true, true);
    w.write_all(s.as_bytes())
}

pub fn sql(w: &mut dyn Write, r: &crate::ledger::query::SqlOut) -> R {
    let cell = |v: &Value| match v {
        Value::Null => "NULL".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let body: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|row| row.iter().map(cell).collect())
        .collect();
    table(w, &r.columns, &body)?;
    writeln!(
        w,
        "({} row{})",
        r.rows.len(),
        if r.rows.len() == 1 { "" } else { "s" }
    )
}

pub fn health(w: &mut dyn Write, r: &HealthOut) -> R {
    for c in &r.checks {
        writeln!(
            w,
            "{} {:<32} {}",
            if c.pass { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        )?;
    }
    writeln!(
        w,
        "{}",
        if r.ok {
            "health: all checks passed"
        } else {
            "health: FAILED"
        }
    )
}

pub fn remotes(w: &mut dyn Write, rows: &[crate::remote::StatusOut]) -> R {
    if rows.is_empty() {
        return writeln!(
            w,
            "no remotes (add one with `cto-ledger remote add NAME s3://BUCKET/PREFIX`)"
        );
    }
    for r in rows {
        let at = r
            .endpoint
            .as_deref()
            .map(|e| format!(" at {e}"))
            .unwrap_or_default();
        writeln!(w, "{}\t{}{at}", r.remote, r.url)?;
        writeln!(
            w,
            "  in step up to event {} of {}; {} local event(s) to push",
            r.synced.seq, r.local_head.seq, r.ahead
        )?;
        match (&r.remote_head, r.behind, &r.error) {
            (Some(h), Some(_), _) if h.seq == 0 => writeln!(w, "  remote journal is empty")?,
            (Some(h), Some(b), _) => writeln!(
                w,
                "  remote head {}:{}; {b} event(s) to pull",
                h.seq, h.hash
            )?,
            (_, _, Some(e)) => writeln!(w, "  remote not reachable: {e}")?,
            _ => {}
        }
    }
    Ok(())
}

fn moved(w: &mut dyn Write, moved: &[(u64, u64)]) -> R {
    if let (Some(a), Some(b)) = (moved.first(), moved.last()) {
        writeln!(
            w,
            "re-appended {} local event(s) after the remote's: {}..{} are now {}..{} (checkpoints taken before still verify: docs/remote.md)",
            moved.len(), a.0, b.0, a.1, b.1
        )?;
    }
    Ok(())
}

pub fn pull(w: &mut dyn Write, r: &crate::remote::PullOut) -> R {
    if r.remote_replaced {
        writeln!(w, "warning: the remote no longer holds events this host saw there; this ledger's own events were kept and re-appended")?;
    }
    writeln!(
        w,
        "pulled {} event(s) from {} ({} object(s), {} bytes, each re-hashed)",
        r.pulled, r.remote, r.objects_fetched, r.bytes_fetched
    )?;
    moved(w, &r.moved)?;
    writeln!(w, "head {}:{}", r.head.seq, r.head.hash)
}

pub fn push(w: &mut dyn Write, r: &crate::remote::PushOut) -> R {
    if r.pulled > 0 {
        writeln!(w, "pulled {} event(s) from {} first", r.pulled, r.remote)?;
    }
    moved(w, &r.moved)?;
    writeln!(
        w,
        "published {} event(s) to {} ({} object(s) uploaded, {} bytes){}",
        r.published,
        r.url,
        r.objects_uploaded,
        r.bytes_uploaded,
        if r.conflicts > 0 {
            format!(
                "; lost the race for the next event {} time(s) and went again",
                r.conflicts
            )
        } else {
            String::new()
        }
    )?;
    writeln!(w, "head {}:{}", r.head.seq, r.head.hash)
}

pub fn remote_audit(w: &mut dyn Write, r: &crate::remote::RemoteAuditOut) -> R {
    match &r.head {
        Some(h) => writeln!(
            w,
            "remote {} journal: {} events, head {}:{}",
            r.remote, r.events, h.seq, h.hash
        )?,
        None => writeln!(w, "remote {} journal: empty", r.remote)?,
    }
    writeln!(
        w,
        "objects: {} named, {} re-hashed ({} bytes)",
        r.objects_named, r.objects_checked, r.bytes_checked
    )?;
    verdict(w, "remote audit", &r.notes, &r.findings)
}
