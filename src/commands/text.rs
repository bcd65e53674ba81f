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
        Value::String(s) => shown(s),
        other => other.to_string(),
    }
}

/// An argv as a POSIX shell would take it back: each word that is not plain
/// (letters, digits, `-_./=:,+@%`) in single quotes, a quote inside as `'\''`; shown
/// safe for a terminal.
pub(crate) fn shell_quoted(argv: &[String]) -> String {
    let plain = |a: &str| {
        !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    };
    let words: Vec<String> = argv
        .iter()
        .map(|a| match plain(a) {
            true => a.clone(),
            false => format!("'{}'", a.replace('\'', "'\\''")),
        })
        .collect();
    shown(&words.join(" "))
}

/// Text a provider, a model or a remote may have chosen (a file name, a message), safe
/// for a terminal: control characters (escape sequences, newlines, carriage returns) are
/// written as `\u{..}`, so none can move the cursor, colour the screen or forge a line.
pub(crate) fn shown(s: &str) -> String {
    let hidden = |c: char| c.is_control() || invisible(c);
    if !s.chars().any(hidden) {
        return s.to_string();
    }
    s.chars()
        .map(|c| match c {
            c if hidden(c) => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// At most the first `n` characters of `s`: a prefix of text from outside (a manifest, a
/// remote) cut at a character, never inside one (slicing bytes there panics).
pub(crate) fn prefix(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// [`shown`] for each line of `s`: its line breaks kept, every other control escaped.
pub(crate) fn shown_lines(s: &str) -> String {
    s.split('\n').map(shown).collect::<Vec<_>>().join("\n")
}

/// Characters that print as nothing or reorder what follows (zero-width, bidirectional
/// controls, the soft hyphen): two names that differ only by them would read alike.
pub(crate) fn invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Notes, findings and the last line every audit prints.
pub(crate) fn verdict(w: &mut dyn Write, what: &str, notes: &[String], findings: &[Finding]) -> R {
    for n in notes {
        writeln!(w, "note: {}", shown(n))?;
    }
    for f in findings {
        writeln!(
            w,
            "FINDING [{}] {}: {}",
            f.check,
            shown(&f.subject),
            shown(&f.message)
        )?;
    }
    if findings.is_empty() {
        writeln!(w, "{what} passed")
    } else {
        writeln!(w, "{what} FAILED: {} finding(s)", findings.len())
    }
}

/// An aligned text table; cells wider than 80 characters widen no column.
pub(crate) fn table(w: &mut dyn Write, headers: &[String], rows: &[Vec<String>]) -> R {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| shown(c)).collect())
        .collect();
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
    for r in &rows {
        writeln!(w, "{}", line(r))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn argv_is_quoted_as_a_shell_reads_it() {
        let argv: Vec<String> = ["sh", "-c", "bun install && bun run build", "it's", ""]
            .map(String::from)
            .to_vec();
        assert_eq!(
            super::shell_quoted(&argv),
            "sh -c 'bun install && bun run build' 'it'\\''s' ''"
        );
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(super::shown("plain/name.txt"), "plain/name.txt");
        assert_eq!(
            super::shown("workspace/\u{1b}[1;32mPASSED\u{1b}[0m.txt"),
            "workspace/\\u{1b}[1;32mPASSED\\u{1b}[0m.txt"
        );
        assert_eq!(super::shown("new\nline"), "new\\u{a}line");
        // Invisible and reordering characters too: these two names must not read alike.
        assert_eq!(
            super::shown("test_\u{200b}strings.py"),
            "test_\\u{200b}strings.py"
        );
        assert_eq!(super::shown("a\u{202e}txt.exe"), "a\\u{202e}txt.exe");
    }
}
