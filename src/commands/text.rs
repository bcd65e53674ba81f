//! Text rendering shared by several commands: aligned tables, indented JSON documents,
//! and the notes/findings/verdict lines every audit ends with.

use std::io::{self, Write};

use serde_json::Value;

use crate::audit::Finding;

pub(crate) type R = io::Result<()>;

/// Generic indented rendering of a JSON document (for `show`).
pub(crate) fn value(w: &mut dyn Write, v: &Value, indent: usize) -> R {
    let pad = "  ".repeat(indent);
    let Value::Object(m) = v else {
        return writeln!(w, "{pad}{}", scalar(v));
    };
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

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Notes, findings and the last line every audit prints.
pub(crate) fn verdict(w: &mut dyn Write, what: &str, notes: &[String], findings: &[Finding]) -> R {
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
pub(crate) fn table(w: &mut dyn Write, headers: &[String], rows: &[Vec<String>]) -> R {
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
