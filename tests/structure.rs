//! The house rules the compiler does not check: no source file over 700 lines, no
//! function over 100, and no code but `src/env.rs` reading the environment. Prints the
//! longest functions either way, so the figure is there to see.

use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 700;
const MAX_FN_LINES: usize = 100;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn src_files() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

/// A line with string and char literals and `//` comments blanked, for brace counting.
fn code_of(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push_str("\"\"");
            }
            '\'' => {
                // A char literal ('x', '\n', '{'), not a lifetime ('a).
                let rest: String = chars.clone().take(3).collect();
                let lit = rest.starts_with('\\') || rest.chars().nth(1) == Some('\'');
                if lit {
                    while let Some(d) = chars.next() {
                        if d == '\\' {
                            chars.next();
                        } else if d == '\'' {
                            break;
                        }
                    }
                }
                out.push('\'');
            }
            '/' if chars.peek() == Some(&'/') => break,
            _ => out.push(c),
        }
    }
    out
}

/// (lines, name, first line) of every function with a body.
fn functions(text: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        if t.starts_with("//") {
            continue;
        }
        let Some(at) = t.find("fn ") else { continue };
        let head = &t[..at];
        let is_item = head.split_whitespace().all(|w| {
            w.starts_with("pub") || ["const", "async", "unsafe", "extern", "\"C\""].contains(&w)
        });
        if !is_item {
            continue;
        }
        let name: String = t[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let (mut depth, mut started) = (0i64, false);
        for (j, l2) in lines.iter().enumerate().skip(i) {
            let code = code_of(l2);
            if !started && code.contains(';') && !code.contains('{') {
                break; // a declaration without a body
            }
            for c in code.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        started = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if started && depth <= 0 {
                out.push((j - i + 1, name.clone(), i + 1));
                break;
            }
        }
    }
    out
}

#[test]
fn no_file_over_700_lines_and_no_function_over_100() {
    let mut all = Vec::new();
    let mut long_files = Vec::new();
    for (p, text) in src_files() {
        let rel = p
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap()
            .display()
            .to_string();
        let n = text.lines().count();
        if n > MAX_FILE_LINES {
            long_files.push(format!("{rel} ({n} lines)"));
        }
        for (len, name, line) in functions(&text) {
            all.push((len, format!("{rel}:{line} {name}")));
        }
    }
    all.sort_by_key(|f| std::cmp::Reverse(f.0));
    eprintln!("longest functions:");
    for (len, at) in all.iter().take(10) {
        eprintln!("  {len:4} {at}");
    }
    assert!(
        all.len() > 300,
        "the scanner found only {} functions",
        all.len()
    );
    let long_fns: Vec<String> = all
        .iter()
        .filter(|(len, _)| *len > MAX_FN_LINES)
        .map(|(len, at)| format!("{at} ({len} lines)"))
        .collect();
    assert!(
        long_files.is_empty() && long_fns.is_empty(),
        "over the limits: files {long_files:?}, functions {long_fns:?}"
    );
}

#[test]
fn the_scanner_counts_a_function_as_a_reader_would() {
    let text = "fn a() {\n    let s = \"}\";\n    let c = '{';\n    // }\n}\nfn b<'x>(v: &'x str) -> &'x str {\n    v\n}\n";
    assert_eq!(
        functions(text),
        vec![(5, "a".to_string(), 1), (3, "b".to_string(), 6)]
    );
}

#[test]
fn only_env_rs_reads_the_environment() {
    let readers = ["env::var(", "env::var_os(", "env::vars()", "env::vars_os()"];
    let mut found = Vec::new();
    for (p, text) in src_files() {
        let rel = p.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
        // The fake provider is its own program, whose interface is its environment.
        if rel == Path::new("src/env.rs") || rel.starts_with("src/bin") {
            continue;
        }
        for (i, l) in text.lines().enumerate() {
            if readers.iter().any(|r| code_of(l).contains(r)) {
                found.push(format!("{}:{}: {}", rel.display(), i + 1, l.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "read the environment through src/env.rs (and list the variable there):\n{}",
        found.join("\n")
    );
}
