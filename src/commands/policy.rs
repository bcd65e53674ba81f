//! `cto-ledger policy add|list|show|remove|eval|test`: Rego policies evaluated before
//! every admission, at the `policy_allowed` gate of a run, and by `verify --policy`
//! (docs/policies.md).

use std::path::{Path, PathBuf};

use rusqlite::OptionalExtension as _;
use serde::Serialize;
use serde_json::Value;

use super::{text::shown, Context, Output};
use crate::error::{Error, Result};
use crate::ledger::events::{Body, ObjRec, PolicyRec};
use crate::ledger::Mode;
use crate::policy::engine::{self, Outcome, Request, Source, Task};
use crate::policy::{in_force, points, source_of, PolicyRow};
use crate::state::PolicyPoint;
use crate::store::tree::ObjKind;

#[derive(clap::Subcommand)]
pub(crate) enum Cmd {
    /// Store a Rego policy and put it in force (a journal event) at `admit` and/or `run`
    Add(AddArgs),
    /// The policies in force
    List,
    /// A policy's record and its Rego
    Show(NameArgs),
    /// Take a policy out of force (a later event; its decisions stay recorded)
    Remove(NameArgs),
    /// Evaluate a policy over an input document and print both: a recorded decision's
    /// input (`admission:ID`, `refusal:ID`, `run:ID`) or a JSON file
    Eval(EvalArgs),
    /// Run the `test_` rules of every .rego file in DIR; exit 1 if any fails
    Test(TestArgs),
    /// Make a remote require these policies (as in force here) of every host that shares
    /// it: `admit` and `run stage2` refuse without them, `push` publishes nothing
    Require(RequireArgs),
}

#[derive(clap::Args)]
pub(crate) struct RequireArgs {
    /// Policies in force here (the remote then requires exactly these)
    #[arg(required_unless_present = "none")]
    names: Vec<String>,
    /// The remote (default: the only one configured)
    #[arg(long)]
    remote: Option<String>,
    /// Require no policy
    #[arg(long, conflicts_with = "names")]
    none: bool,
}

#[derive(clap::Args)]
pub(crate) struct AddArgs {
    /// The policy file (Rego v1; it must declare `allow`)
    file: PathBuf,
    /// Its name (default: the file name without .rego)
    #[arg(long)]
    name: Option<String>,
    /// Put it in force in place of the policy of that name (refused without it)
    #[arg(long)]
    replace: bool,
    /// Where it applies: `admit`, `run` (the `policy_allowed` gate of `run stage2`);
    /// repeat for both (default: admit)
    #[arg(long = "on", value_name = "POINT", value_parser = point)]
    on: Vec<PolicyPoint>,
}

fn point(s: &str) -> std::result::Result<PolicyPoint, String> {
    PolicyPoint::parse(s).ok_or_else(|| format!("valid points are {}", PolicyPoint::names()))
}

#[derive(clap::Args)]
pub(crate) struct NameArgs {
    name: String,
}

#[derive(clap::Args)]
pub(crate) struct EvalArgs {
    /// A policy in force, or a .rego file
    policy: String,
    /// `admission:ID`, `refusal:ID` or `run:ID` (the input its policies saw), or a JSON file
    #[arg(long, value_name = "REF|FILE")]
    input: String,
}

#[derive(clap::Args)]
pub(crate) struct TestArgs {
    dir: PathBuf,
}

pub(crate) fn run(cx: &Context, cmd: Cmd) -> Result<Output> {
    match cmd {
        Cmd::Add(a) => add(cx, a),
        Cmd::List => list(cx),
        Cmd::Show(a) => show(cx, a),
        Cmd::Remove(a) => remove(cx, a),
        Cmd::Eval(a) => eval(cx, a),
        Cmd::Test(a) => test(a),
        Cmd::Require(a) => require(cx, a),
    }
}

/// Parses `sources` in the engine: each one's outcome, or the first that does not parse
/// (or declares no `allow`) as an error naming it.
fn check(sources: Vec<Source>) -> Result<Vec<Outcome>> {
    let outcomes = engine::run(&Request {
        task: Task::Check,
        policies: sources,
        input: Value::Null,
    })?;
    if let Some(o) = outcomes.iter().find(|o| o.error.is_some()) {
        return Err(Error::bad_input(
            format!(
                "{} is not a policy cto-ledger can use: {}",
                o.origin,
                o.error.as_deref().unwrap_or_default()
            ),
            "fix the Rego (it must parse as Rego v1 and declare `allow`), then add it again",
        ));
    }
    Ok(outcomes)
}

#[derive(Serialize)]
struct Added {
    policy: PolicyRow,
    /// The same file was already in force under that name: nothing new recorded.
    already: bool,
}

fn add(cx: &Context, a: AddArgs) -> Result<Output> {
    let rego = crate::policy::read_file(&a.file)?;
    let name = match &a.name {
        Some(n) => n.clone(),
        None => a
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    crate::admission::check_name(&name).map_err(|e| match e {
        Error::BadInput { message, .. } => Error::bad_input(
            message.replace("admission name", "policy name"),
            "use 1 to 128 letters, digits and . _ - + @, e.g. --name team",
        ),
        other => other,
    })?;
    let origin = a.file.display().to_string();
    let checked = check(vec![Source {
        origin: origin.clone(),
        rego: rego.clone(),
    }])?;
    let mut applies = match a.on.is_empty() {
        true => vec![PolicyPoint::Admit],
        false => a.on.clone(),
    };
    applies.sort();
    applies.dedup();
    let mut home = cx.open(Mode::ReadWrite)?;
    let digest = crate::store::hash_bytes(rego.as_bytes());
    match in_force(&home.ledger)?.into_iter().find(|p| p.name == name) {
        Some(p) if p.sha256 == digest.sha256 && p.applies == applies => {
            return Ok(added(Added {
                policy: p,
                already: true,
            }))
        }
        Some(p) if !a.replace => {
            return Err(Error::bad_input(
                format!(
                    "policy {} is already in force with another file or at other points ({} on {}, event {})",
                    shown(&name),
                    p.sha256,
                    points(&p.applies),
                    p.seq
                ),
                "give another --name, or --replace to put this file in force in its place",
            ))
        }
        _ => {}
    }
    let meta = home.store.put_bytes(rego.as_bytes())?;
    let rec = PolicyRec {
        name: name.clone(),
        object: Some(meta.id),
        sha256: Some(meta.sha256),
        size: Some(meta.size),
        package: checked[0].package.clone(),
        applies,
        path: Some(crate::paths::lossy(&crate::paths::abs(&a.file))),
        removed: false,
        objects: crate::source::new_objects(&home, &[(meta, ObjKind::Blob)])?,
    };
    home.commit(vec![Body::Policy(rec)])?;
    let policy = in_force(&home.ledger)?
        .into_iter()
        .find(|p| p.name == name)
        .expect("just recorded");
    Ok(added(Added {
        policy,
        already: false,
    }))
}

fn added(a: Added) -> Output {
    Output::doc(a, |w, a| {
        let p = &a.policy;
        let verb = if a.already {
            "already in force"
        } else {
            "added"
        };
        writeln!(
            w,
            "policy {} {verb}: {} (event {})",
            shown(&p.name),
            p.sha256,
            p.seq
        )?;
        writeln!(
            w,
            "  package {}, evaluated at {}",
            p.package.as_deref().unwrap_or("-"),
            points(&p.applies)
        )?;
        Ok(())
    })
}

/// The policies in force (all `--json` prints), and for the text what each remote
/// requires and whether this ledger meets it.
struct Listed {
    rows: Vec<PolicyRow>,
    required: Vec<String>,
}

impl Serialize for Listed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.rows.serialize(s)
    }
}

fn list(cx: &Context) -> Result<Output> {
    let home = cx.open(Mode::ReadOnly)?;
    let rows = in_force(&home.ledger)?;
    let required = crate::policy::required::all(&home.ledger)?
        .into_iter()
        .map(|(remote, r)| {
            let state = r
                .unmet(&rows, &remote)
                .map_or("met".to_string(), |why| format!("NOT MET: {why}"));
            format!(
                "required by remote {remote}: {} {} at {} ({state})",
                r.name,
                r.sha256,
                points(&r.on)
            )
        })
        .collect();
    Ok(Output::doc(Listed { rows, required }, |w, l| {
        for r in &l.required {
            writeln!(w, "{}", shown(r))?;
        }
        let rows = &l.rows;
        if rows.is_empty() {
            return writeln!(
                w,
                "no policies in force (add one: cto-ledger policy add FILE.rego)"
            );
        }
        for p in rows {
            writeln!(
                w,
                "{}  {}  {}  at {}  (event {}, {} {})",
                shown(&p.name),
                p.sha256,
                p.package.as_deref().unwrap_or("-"),
                points(&p.applies),
                p.seq,
                shown(&p.actor),
                p.time
            )?;
        }
        Ok(())
    }))
}

fn find(home: &crate::home::Home, name: &str) -> Result<PolicyRow> {
    in_force(&home.ledger)?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| not_found(name))
}

fn not_found(name: &str) -> Error {
    Error::NotFound {
        what: "policy",
        input: name.to_string(),
        hint: Some("see `cto-ledger policy list`".into()),
    }
}

#[derive(Serialize)]
struct Shown {
    policy: PolicyRow,
    rego: String,
}

fn show(cx: &Context, a: NameArgs) -> Result<Output> {
    let home = cx.open(Mode::ReadOnly)?;
    let policy = find(&home, &a.name)?;
    let rego = source_of(&home, &policy)?.rego;
    Ok(Output::doc(Shown { policy, rego }, |w, s| {
        let p = &s.policy;
        writeln!(w, "policy {}  {}  ({})", shown(&p.name), p.sha256, p.object)?;
        writeln!(
            w,
            "  added by {} at {} (event {}) from {}",
            shown(&p.actor),
            p.time,
            p.seq,
            shown(p.path.as_deref().unwrap_or("-"))
        )?;
        writeln!(w, "  evaluated at {}", points(&p.applies))?;
        writeln!(w)?;
        for line in s.rego.lines() {
            writeln!(w, "{}", shown(line))?;
        }
        Ok(())
    }))
}

fn remove(cx: &Context, a: NameArgs) -> Result<Output> {
    let mut home = cx.open(Mode::ReadWrite)?;
    let p = find(&home, &a.name)?;
    home.commit(vec![Body::Policy(PolicyRec {
        name: p.name.clone(),
        object: None,
        sha256: None,
        size: None,
        package: None,
        applies: Vec::new(),
        path: None,
        removed: true,
        objects: Vec::<ObjRec>::new(),
    })])?;
    let seq = home.ledger.head()?.seq;
    Ok(Output::doc(
        serde_json::json!({"removed": p.name, "event": seq}),
        |w, v| {
            writeln!(
                w,
                "policy {} removed (event {}); its decisions stay recorded",
                shown(v["removed"].as_str().unwrap_or_default()),
                v["event"]
            )
        },
    ))
}

#[derive(Serialize)]
struct Evaluated {
    policy: String,
    input: Value,
    input_sha256: String,
    allow: bool,
    deny: Vec<String>,
    error: Option<String>,
}

/// The input document a recorded decision of `subject_id` saw.
fn recorded_input(home: &crate::home::Home, r: &str) -> Result<Option<Value>> {
    let (id, subject) = match r.split_once(':') {
        Some(("admission", id)) => (id, "admission"),
        Some(("refusal", id)) => (id, "refusal"),
        Some(("run", id)) => (id, "run"),
        _ => return Ok(None),
    };
    let object: Option<String> = home
        .ledger
        .conn()
        .query_row(
            "SELECT input_object FROM policy_decisions WHERE subject_id = ?1 AND subject = ?2 AND input_object IS NOT NULL ORDER BY ord LIMIT 1",
            [id, subject],
            |row| row.get(0),
        )
        .optional()
        .map_err(Error::sql("read policy decisions"))?;
    let Some(object) = object else {
        return Ok(None);
    };
    let id: crate::id::ObjectId = object.parse().map_err(|_| Error::Integrity {
        message: format!("policy decision of {r} names `{object}`, which is not an object id"),
    })?;
    let bytes = home.store.get_verified(&id)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Integrity {
            message: format!("the input document {id} of {r} is not JSON: {e}"),
        })
}

fn eval(cx: &Context, a: EvalArgs) -> Result<Output> {
    let home = cx.open(Mode::ReadOnly)?;
    let Some(source) = crate::policy::in_force_or_file(&home, &a.policy)? else {
        return Err(not_found(&a.policy));
    };
    let input = match recorded_input(&home, &a.input)? {
        Some(v) => v,
        None if Path::new(&a.input).is_file() => {
            let bytes = std::fs::read(&a.input).map_err(Error::io("read", Path::new(&a.input)))?;
            serde_json::from_slice(&bytes).map_err(|e| {
                Error::bad_input(
                    format!("--input {}: not JSON: {e}", a.input),
                    "give a JSON input document, or admission:ID / refusal:ID / run:ID",
                )
            })?
        }
        None => {
            return Err(Error::bad_input(
                format!("--input {}: no recorded policy decision has that subject, and it is not a file", a.input),
                "give admission:ID, refusal:ID or run:ID of something a policy decided (see `cto-ledger show`), or a JSON file",
            ))
        }
    };
    let doc = serde_jcs::to_vec(&input).expect("JSON serialises");
    let o = engine::run(&Request {
        task: Task::Eval,
        policies: vec![source.clone()],
        input: input.clone(),
    })?
    .remove(0);
    let out = Evaluated {
        policy: source.origin,
        input_sha256: crate::id::Sha256Digest::of(&doc).to_string(),
        input,
        allow: o.allow && o.deny.is_empty() && o.error.is_none(),
        deny: o.deny,
        error: o.error,
    };
    let ok = out.allow;
    Ok(Output::doc(out, |w, e| {
        writeln!(w, "input ({}):", e.input_sha256)?;
        // JSON escapes C0 controls, not C1 or bidirectional ones: each line is shown.
        for line in serde_json::to_string_pretty(&e.input)
            .unwrap_or_default()
            .lines()
        {
            writeln!(w, "{}", shown(line))?;
        }
        match (&e.error, e.allow) {
            (Some(err), _) => writeln!(w, "{}: could not decide: {}", e.policy, shown(err))?,
            (None, true) => writeln!(w, "{}: allowed", e.policy)?,
            (None, false) => {
                writeln!(w, "{}: denied", e.policy)?;
                for m in &e.deny {
                    writeln!(w, "  - {}", shown(m))?;
                }
            }
        }
        Ok(())
    })
    .negative_unless(ok))
}

fn test(a: TestArgs) -> Result<Output> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(&a.dir)
        .map_err(|e| {
            Error::bad_input(
                format!("policy test {}: {e}", a.dir.display()),
                "give a folder of .rego files",
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rego") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() || files.len() > 1000 {
        return Err(Error::bad_input(
            format!(
                "policy test {}: {} .rego files",
                a.dir.display(),
                files.len()
            ),
            "give a folder of 1 to 1000 .rego files (policies and their tests)",
        ));
    }
    let sources = files
        .iter()
        .map(|f| {
            Ok(Source {
                origin: f.display().to_string(),
                rego: crate::policy::read_file(f)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let outcomes = engine::run(&Request {
        task: Task::Test,
        policies: sources,
        input: Value::Null,
    })?;
    if let Some(o) = outcomes.iter().find(|o| o.error.is_some()) {
        return Err(Error::bad_input(
            format!("{}: {}", o.origin, o.error.as_deref().unwrap_or_default()),
            "fix the Rego, then test again",
        ));
    }
    let tests: Vec<(String, engine::TestResult)> = outcomes
        .iter()
        .flat_map(|o| o.tests.iter().map(|t| (o.origin.clone(), t.clone())))
        .collect();
    let ok = !tests.is_empty() && tests.iter().all(|(_, t)| t.passed);
    let doc: Vec<Value> = tests
        .iter()
        .map(|(f, t)| serde_json::json!({"file": f, "test": t.name, "passed": t.passed, "detail": t.detail}))
        .collect();
    Ok(Output::doc(doc, |w, rows| {
        if rows.is_empty() {
            return writeln!(w, "no test_ rules found");
        }
        let passed = rows.iter().filter(|r| r["passed"] == true).count();
        for r in rows {
            let mark = if r["passed"] == true { "PASS" } else { "FAIL" };
            let detail = r["detail"]
                .as_str()
                .map(|d| format!(" ({})", shown(d)))
                .unwrap_or_default();
            writeln!(
                w,
                "{mark} {}: {}{detail}",
                r["file"].as_str().unwrap_or_default(),
                r["test"].as_str().unwrap_or_default()
            )?;
        }
        writeln!(w, "{passed}/{} passed", rows.len())
    })
    .negative_unless(ok))
}

#[derive(Serialize)]
struct RequiredOut {
    remote: String,
    url: String,
    #[serde(flatten)]
    config: crate::sync::RemotePolicies,
}

fn require(cx: &Context, a: RequireArgs) -> Result<Output> {
    let mut home = cx.open(Mode::ReadWrite)?;
    let remote = crate::sync::Remote::connect(crate::sync::pick(&home, a.remote.as_deref())?)?;
    let config = crate::sync::require(&mut home, &remote, &a.names)?;
    let out = RequiredOut {
        remote: remote.row.name.clone(),
        url: remote.row.url.clone(),
        config,
    };
    Ok(Output::doc(out, |w, o| {
        if o.config.required.is_empty() {
            return writeln!(w, "remote {} ({}) requires no policy", o.remote, o.url);
        }
        writeln!(w, "remote {} ({}) requires of every host:", o.remote, o.url)?;
        for r in &o.config.required {
            writeln!(w, "  {} {} at {}", r.name, r.sha256, points(&r.on))?;
        }
        Ok(())
    }))
}
