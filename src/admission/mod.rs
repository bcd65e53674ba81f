//! Admission: the exact bytes of a built file, tied to the commit they were built from.
//! An admission is planned as a sequence of checks, each of which may stop it with a
//! [`Refusal`]; a refusal is recorded as evidence in one place, then shown. Beside it:
//! admitting a model ([`model`]), asking whether bytes are admitted ([`verify`]) and
//! revoking an admission ([`revoke`]).

mod model;
mod revoke;
mod verify;

pub(crate) use model::{admit_model, ModelAdmitOut, ModelArgs};
pub(crate) use revoke::{revoke, RevokeOut};
pub(crate) use verify::{verify, VerifyOut};

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::git::{self, CloneState, Pin};
use crate::home::Home;
use crate::id::{AdmissionId, BuildId, CommitId, DigestPrefix, ObjectMeta, RefusalId, ID_PREFIXES};
use crate::ledger::events::{AdmissionRec, Body, ChangeRec, ObjRec, RefusalRec, SourceRec};
use crate::ledger::BuildModifiedRow;
use crate::paths::{abs, lossy};
use crate::source::{new_objects, snapshot, source_body, Snapshot};
use crate::state::{AdmissionScope, CheckResult, RefusalReason, RefusalSubject};
use crate::store::tree::ObjKind;

pub(crate) struct AdmitArgs<'a> {
    pub path: &'a Path,
    pub pin: &'a str,
    pub name: Option<&'a str>,
    pub source: Option<&'a Path>,
    pub allow_modified: &'a [PathBuf],
    /// Refuse unless the build that made the file has a check that reproduced.
    pub require_reproducible: bool,
}

#[derive(Serialize)]
pub(crate) struct AdmitOut {
    pub admission: AdmissionRec,
    pub source: SourceRec,
    pub reproducibility: Reproducibility,
    /// The same bytes were already admitted, unrevoked, under the same name, pin, commit,
    /// source tree, build and path: nothing new was recorded, and `admission` is that one.
    pub already: bool,
}

/// What is known of the admitted file's reproducibility: its build's latest check.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Reproducibility {
    pub build: Option<BuildId>,
    /// The latest `build --check` of that build.
    pub check: Option<BuildId>,
    /// `reproduces`, `diverges`, `failed`, `never checked`, or `no recorded build`.
    pub result: String,
}

impl Reproducibility {
    fn of(home: &Home, build: Option<&BuildId>) -> Result<Reproducibility> {
        let Some(b) = build else {
            return Ok(Reproducibility {
                build: None,
                check: None,
                result: "no recorded build".into(),
            });
        };
        let latest = home.ledger.checks_of(b)?.pop();
        Ok(Reproducibility {
            build: Some(b.clone()),
            check: latest.as_ref().map(|c| c.id.clone()),
            result: latest
                .and_then(|c| c.check_result)
                .map_or("never checked".into(), |r| r.as_str().to_string()),
        })
    }

    pub(crate) fn reproduces(&self) -> bool {
        self.result == CheckResult::Reproduces.as_str()
    }

    fn describe(&self) -> String {
        match (&self.build, &self.check) {
            (Some(b), Some(c)) => format!(
                "reproducibility: build {b}'s latest check {c} {}",
                self.result
            ),
            (Some(b), None) => format!(
                "reproducibility: build {b} was never checked (`cto-ledger build --check {b}`)"
            ),
            _ => "reproducibility: no recorded build made these bytes".into(),
        }
    }
}

/// Why an admission was refused: the stable code, the message, and what to do.
struct Refusal {
    reason: RefusalReason,
    message: String,
    hint: &'static str,
}

/// How planning an admission stopped: refused (recorded as evidence) or failed.
enum Stop {
    Refused(Refusal),
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failed(e)
    }
}

fn refused(reason: RefusalReason, message: String, hint: &'static str) -> Stop {
    Stop::Refused(Refusal {
        reason,
        message,
        hint,
    })
}

/// What a refusal records: the file, and the clone as it was (once it was read).
struct Evidence<'a> {
    a: &'a AdmitArgs<'a>,
    name: String,
    meta: ObjectMeta,
    source: Option<(SourceRec, Vec<(ObjectMeta, ObjKind)>)>,
    /// The policies evaluated, and their stored input document.
    policies: Vec<crate::ledger::events::PolicyDecisionRec>,
    policy_input: Option<ObjectMeta>,
}

/// An admission that every check allowed, ready to record.
struct Plan {
    admission: AdmissionRec,
    snapshot: Snapshot,
    reproducibility: Reproducibility,
}

/// Names that a REF could read as something else are refused: an id prefix, a digest,
/// a hex string, `run:` or `commit:` (no `:` at all), a path or a model pair (no `/`).
pub(crate) fn check_name(name: &str) -> Result<()> {
    let charset = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+@".contains(&b));
    if !charset {
        return Err(Error::bad_input(
            format!("admission name `{name}` is not allowed"),
            "use 1 to 128 letters, digits and . _ - + @, e.g. --name ca",
        ));
    }
    let reads_as = if let Some(p) = ID_PREFIXES.iter().find(|p| name.starts_with(**p)) {
        Some(format!("an id (it starts with `{p}`)"))
    } else if DigestPrefix::parse(name, 4).is_some() {
        Some("a digest or commit prefix (it is hex)".to_string())
    } else {
        None
    };
    match reads_as {
        Some(what) => Err(Error::bad_input(
            format!("admission name `{name}` would be read as {what}, so it could never be found by its name"),
            "pick a name that is not an id, digest or hex string, e.g. --name ca",
        )),
        None => Ok(()),
    }
}

fn check_pin(pin: &str) -> Result<()> {
    if pin.len() < 7 || pin.len() > 40 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::bad_input(
            format!("source pin `{pin}` is not a commit id prefix"),
            "give 7 to 40 hex digits of the commit the file was built from, e.g. --source-pin 7959ac9",
        ));
    }
    Ok(())
}

fn check_file(path: &Path) -> Result<()> {
    let m = fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::bad_input(
            format!("{} does not exist", path.display()),
            "give the path of the built file to admit",
        ),
        _ => Error::bad_input(
            format!("{} cannot be read: {e}", path.display()),
            "check the path and its permissions",
        ),
    })?;
    if m.is_dir() {
        return Err(Error::bad_input(
            format!("{} is a directory", path.display()),
            "admit takes one file (the built executable); use `cto-ledger ingest` to record a directory",
        ));
    }
    if let Some(git_dir) = git::inside_git_dir(path) {
        return Err(Error::bad_input(
            format!(
                "{} is inside the git directory {}, not a built file",
                path.display(),
                git_dir.display()
            ),
            "admit the file the build produced (e.g. dist/ca), not git's own bookkeeping",
        ));
    }
    crate::store::open_regular(path).map_err(|e| match e {
        Error::Io { source, .. } => Error::bad_input(
            format!("{} cannot be read: {source}", path.display()),
            "check its permissions",
        ),
        other => other,
    })?;
    Ok(())
}

/// Checks every input that needs no ledger; returns the admission name.
fn check_inputs(a: &AdmitArgs) -> Result<String> {
    check_file(a.path)?;
    check_pin(a.pin)?;
    let default_name = a
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = a.name.unwrap_or(&default_name).to_string();
    check_name(&name)?;
    if let Some(s) = a.source.filter(|s| !s.is_dir()) {
        return Err(Error::bad_input(
            format!("--source {} is not a directory", s.display()),
            "give the git clone the file was built from",
        ));
    }
    Ok(name)
}

/// Admits the file at `a.path`, or records why not and returns that refusal.
pub(crate) fn admit(home: &mut Home, a: &AdmitArgs, progress: &ProgressBar) -> Result<AdmitOut> {
    let name = check_inputs(a)?;
    let meta = home.store.put_file(a.path)?;
    let mut ev = Evidence {
        a,
        name,
        meta,
        source: None,
        policies: Vec::new(),
        policy_input: None,
    };
    match plan(home, &mut ev, progress) {
        Ok(p) => record(home, p),
        Err(Stop::Failed(e)) => Err(e),
        Err(Stop::Refused(r)) => Err(record_refusal(home, &ev, r)),
    }
}

fn plan(home: &Home, ev: &mut Evidence, progress: &ProgressBar) -> std::result::Result<Plan, Stop> {
    let a = ev.a;
    // Started now, the policy engine is ready by the time the input is.
    let engine = crate::policy::warm(home, crate::state::PolicyPoint::Admit)?;
    let clone = match a.source {
        Some(s) => Some(s.to_path_buf()),
        None => git::discover(a.path),
    };
    let Some(clone) = clone else {
        return Err(refused(
            RefusalReason::NoSource,
            format!(
                "{} is not inside a git clone, so pin {} cannot be checked",
                a.path.display(),
                a.pin
            ),
            "pass --source DIR naming the clone it was built from",
        ));
    };
    let snap = match snapshot(&home.store, &clone, progress) {
        Ok(s) => s,
        Err(Error::BadInput { message, .. }) => {
            return Err(refused(
                RefusalReason::NoSource,
                format!("--source {message}"),
                "pass --source DIR naming the git clone it was built from",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    ev.source = Some((snap.rec.clone(), snap.objects.clone()));
    let commit = resolve_pin(home, a, &snap.state)?;
    check_submodules(&snap.state, &commit)?;
    let tracked: Vec<ChangeRec> = snap
        .rec
        .changes
        .iter()
        .filter(|c| c.is_tracked_change())
        .cloned()
        .collect();
    let builds = builds_with_edits(home, &ev.meta.id, &commit)?;
    // Any recorded build of these bytes from this commit whose own edits explain the
    // tree, newest first: a rebuild that found the files already rewritten recorded no
    // edit, and the first build's record still explains them.
    let chosen = builds
        .iter()
        .position(|(_, edits)| check_modified(a, &snap.state, &tracked, edits, &[]).is_ok())
        .unwrap_or(0);
    let (build, by_build) = match builds.get(chosen) {
        Some((b, edits)) => (Some(b.clone()), edits.clone()),
        None => (None, BTreeMap::new()),
    };
    let allowed = check_modified(a, &snap.state, &tracked, &by_build, &builds)?;
    let repro = Reproducibility::of(home, build.as_ref())?;
    if a.require_reproducible && !repro.reproduces() {
        return Err(refused(
            RefusalReason::NotReproducible,
            format!("--require-reproducible: {} ({})", repro.describe(), a.path.display()),
            "record the build with `cto-ledger build`, run `cto-ledger build --check BUILD` until it reproduces, then admit",
        ));
    }
    let mut decisions = vec![format!(
        "pin {} resolved to {commit}, the HEAD of {}",
        a.pin,
        snap.state.workdir.display()
    )];
    decisions.push(repro.describe());
    decisions.extend(modified_decisions(
        &tracked,
        &allowed,
        build.as_ref(),
        &by_build,
    ));
    let mut admission = AdmissionRec {
        id: AdmissionId::new(),
        name: ev.name.clone(),
        object: ev.meta.id,
        sha256: ev.meta.sha256,
        size: ev.meta.size,
        path: lossy(&abs(a.path)),
        pin: Some(a.pin.to_string()),
        commit: Some(commit),
        source: Some(snap.rec.id.clone()),
        scope: AdmissionScope::Any,
        build,
        allowed_modified: tracked,
        decisions,
        policies: Vec::new(),
        objects: vec![ObjRec::new(ev.meta, ObjKind::Blob)],
    };
    apply_policies(home, ev, &mut admission, &snap.rec, engine)?;
    Ok(Plan {
        admission,
        snapshot: snap,
        reproducibility: repro,
    })
}

/// Every policy in force at `admit`, over the admission as planned: the decisions go
/// into the admission (or the refusal), and any that does not allow refuses it.
fn apply_policies(
    home: &Home,
    ev: &mut Evidence,
    admission: &mut AdmissionRec,
    source: &SourceRec,
    engine: Option<crate::policy::engine::Warm>,
) -> std::result::Result<(), Stop> {
    let input = || crate::policy::input::admission(&home.ledger, admission, Some(source));
    let (decided, stored) =
        crate::policy::decide(home, crate::state::PolicyPoint::Admit, input, true, engine)?;
    ev.policies = decided.clone();
    ev.policy_input = stored;
    if let Some(m) = stored {
        admission.objects.push(ObjRec::new(m, ObjKind::Blob));
    }
    if let Some(message) = crate::policy::refusal_message(&decided) {
        return Err(refused(
            RefusalReason::PolicyDenied,
            format!("{message} ({})", ev.a.path.display()),
            "see what the policy saw with `cto-ledger policy eval NAME --input refusal:ID` (NAME: a policy named above), fix the build or the policy, then admit again",
        ));
    }
    admission
        .decisions
        .extend(decided.iter().map(crate::policy::describe));
    admission.policies = decided;
    Ok(())
}

/// Submodules must be what `commit` records: git status leaves them out.
fn check_submodules(st: &CloneState, commit: &CommitId) -> std::result::Result<(), Stop> {
    if st.submodules.is_empty() {
        return Ok(());
    }
    let subs: Vec<String> = st
        .submodules
        .iter()
        .map(|(p, why)| format!("{p} ({why})"))
        .collect();
    Err(refused(
        RefusalReason::SourceModified,
        format!(
            "the source tree {} has submodules that are not what commit {commit} records: {}",
            st.workdir.display(),
            subs.join(", ")
        ),
        "commit inside the submodule and commit its new commit in the clone, or put it back with `git submodule update`, then rebuild and admit",
    ))
}

/// Every recorded build of `object` from `commit`, newest first, with the tracked files
/// it modified by path.
fn builds_with_edits(
    home: &Home,
    object: &crate::id::ObjectId,
    commit: &CommitId,
) -> Result<Vec<(BuildId, BTreeMap<String, BuildModifiedRow>)>> {
    let mut builds = Vec::new();
    for b in home.ledger.builds_producing(object, Some(commit))? {
        let edits = home
            .ledger
            .build_modified(&b)?
            .into_iter()
            .map(|r| (r.path.clone(), r))
            .collect();
        builds.push((b, edits));
    }
    Ok(builds)
}

/// The pin must name exactly one commit, in the clone or among recorded sources, and be HEAD.
fn resolve_pin(home: &Home, a: &AdmitArgs, st: &CloneState) -> std::result::Result<CommitId, Stop> {
    let pin = a.pin.to_ascii_lowercase();
    let mut candidates: BTreeSet<CommitId> =
        home.ledger.commits_by_prefix(&pin)?.into_iter().collect();
    match git::resolve_pin(&st.workdir, &pin)? {
        Pin::Commit(c) => {
            candidates.insert(c);
        }
        Pin::Ambiguous(cs) => candidates.extend(cs),
        Pin::Unknown => {}
    }
    let mut candidates: Vec<CommitId> = candidates.into_iter().collect();
    let commit = match candidates.len() {
        0 => {
            return Err(refused(
                RefusalReason::PinUnknown,
                format!(
                    "source pin {} matches no commit in {} or in the ledger (HEAD is {})",
                    a.pin,
                    st.workdir.display(),
                    st.commit
                ),
                "check the pin, or fetch the commit into the clone",
            ))
        }
        1 => candidates.remove(0),
        _ => {
            let list = candidates
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(refused(
                RefusalReason::PinAmbiguous,
                format!("source pin {} is ambiguous: it matches {list}", a.pin),
                "give more hex digits of the commit",
            ));
        }
    };
    if commit != st.commit {
        return Err(refused(
            RefusalReason::PinNotHead,
            format!(
                "source pin {} resolves to {commit}, but {} has {} checked out",
                a.pin,
                st.workdir.display(),
                st.commit
            ),
            "check out the pinned commit and rebuild, or pin the commit that is checked out",
        ));
    }
    Ok(commit)
}

/// Normalises an --allow-modified path to one relative to the clone's root.
fn clone_relative(workdir: &Path, p: &Path) -> String {
    let candidate = abs(p);
    if let Ok(canon) = candidate.canonicalize() {
        if let Ok(rel) = canon.strip_prefix(workdir) {
            return lossy(rel);
        }
    }
    if let Ok(rel) = candidate.strip_prefix(workdir) {
        return lossy(rel);
    }
    lossy(p).trim_start_matches("./").to_string()
}

/// Modified tracked files refuse unless each is allowed by name or was written, to these
/// exact contents, by the recorded build; returns the allowed paths.
/// `builds`: every recorded build of these bytes, to say which of them wrote a file
/// that none explains.
fn check_modified(
    a: &AdmitArgs,
    st: &CloneState,
    tracked: &[ChangeRec],
    by_build: &BTreeMap<String, BuildModifiedRow>,
    builds: &[(BuildId, BTreeMap<String, BuildModifiedRow>)],
) -> std::result::Result<BTreeSet<String>, Stop> {
    let allowed: BTreeSet<String> = a
        .allow_modified
        .iter()
        .map(|p| clone_relative(&st.workdir, p))
        .collect();
    let not_modified: Vec<&str> = allowed
        .iter()
        .filter(|p| !tracked.iter().any(|c| &&c.path == p))
        .map(|s| s.as_str())
        .collect();
    if !not_modified.is_empty() {
        return Err(refused(
            RefusalReason::AllowModifiedNotModified,
            format!(
                "--allow-modified names {}, which is not a modified tracked file of {}",
                not_modified.join(", "),
                st.workdir.display()
            ),
            "name only files that `git status` shows as modified",
        ));
    }
    let explained = |c: &ChangeRec| {
        by_build
            .get(&c.path)
            .is_some_and(|r| r.new_object == c.object)
    };
    let unexplained: Vec<String> = tracked
        .iter()
        .filter(|c| !allowed.contains(&c.path) && !explained(c))
        .map(|c| format!("{} ({})", c.path, c.status))
        .collect();
    if !unexplained.is_empty() {
        let nothing =
            |o: &Option<crate::id::ObjectId>| o.map_or("nothing".to_string(), |o| o.to_string());
        // A file a recorded build of these bytes wrote, holding something else now: the
        // tree changed after that build (or another build ran on an already edited tree).
        let written: Vec<String> = tracked
            .iter()
            .filter(|c| !allowed.contains(&c.path) && !explained(c))
            .filter_map(|c| {
                let (b, r) = builds
                    .iter()
                    .find_map(|(b, e)| Some((b, e.get(&c.path)?)))?;
                Some(format!(
                    "build {b} wrote {} as {}, and it now holds {}",
                    c.path,
                    nothing(&r.new_object),
                    nothing(&c.object)
                ))
            })
            .collect();
        let mut message = format!(
            "the source tree {} has modified tracked files: {}",
            st.workdir.display(),
            unexplained.join(", ")
        );
        if !written.is_empty() {
            message.push_str(&format!(
                "; no recorded build of these bytes explains them ({})",
                written.join("; ")
            ));
        }
        let hint = if written.is_empty() && !builds.is_empty() {
            "the recorded builds of these bytes did not write them: a build that starts from a tree another build already edited records no edit of its own. Revert them (`git checkout -- PATH`), rebuild with `cto-ledger build`, then admit; or accept each with --allow-modified PATH (their contents are recorded)"
        } else {
            "commit or revert them (`git checkout -- PATH`) and rebuild with `cto-ledger build`, or accept each with --allow-modified PATH (their contents are recorded)"
        };
        return Err(refused(RefusalReason::SourceModified, message, hint));
    }
    Ok(allowed)
}

/// The decisions taken about the build and each modified tracked file.
fn modified_decisions(
    tracked: &[ChangeRec],
    allowed: &BTreeSet<String>,
    build: Option<&BuildId>,
    by_build: &BTreeMap<String, BuildModifiedRow>,
) -> Vec<String> {
    let mut decisions = Vec::new();
    if let Some(b) = build {
        decisions.push(format!(
            "built by recorded build {b}, whose outputs include these exact bytes"
        ));
    }
    if tracked.is_empty() {
        decisions.push("source tree has no modified tracked files".into());
        return decisions;
    }
    let nothing =
        |o: &Option<crate::id::ObjectId>| o.map_or("nothing".to_string(), |o| o.to_string());
    for c in tracked.iter().filter(|c| !allowed.contains(&c.path)) {
        let r = &by_build[&c.path];
        decisions.push(format!(
            "modified tracked file {} was written by build {} (from {} to {}); accepted as recorded provenance without --allow-modified",
            c.path,
            build.map(|b| b.as_str()).unwrap_or_default(),
            nothing(&r.old_object),
            nothing(&r.new_object),
        ));
    }
    for c in tracked.iter().filter(|c| allowed.contains(&c.path)) {
        let contents = c.object.map_or("absent".to_string(), |o| o.to_string());
        decisions.push(format!(
            "modified tracked file {} allowed by --allow-modified; contents {contents}",
            c.path
        ));
    }
    decisions
}

fn record(home: &mut Home, mut p: Plan) -> Result<AdmitOut> {
    let a = &p.admission;
    let same = home
        .ledger
        .admissions_of_object(&a.object)?
        .into_iter()
        .rev()
        .find(|v| {
            let r = &v.admission;
            v.revocation.is_none()
                && r.scope == AdmissionScope::Any
                && r.name == a.name
                && r.pin == a.pin
                && r.commit_id == a.commit
                && r.source_id == a.source
                && r.build_id == a.build
                && r.path == a.path
        });
    if let Some(v) = same {
        p.admission.id = v.admission.id;
        return Ok(AdmitOut {
            admission: p.admission,
            source: p.snapshot.rec,
            reproducibility: p.reproducibility,
            already: true,
        });
    }
    let mut bodies = Vec::new();
    if let Some(b) = source_body(home, p.snapshot.rec.clone(), &p.snapshot.objects)? {
        bodies.push(b);
    }
    bodies.push(Body::Admission(p.admission.clone()));
    home.commit(bodies)?;
    Ok(AdmitOut {
        admission: p.admission,
        source: p.snapshot.rec,
        reproducibility: p.reproducibility,
        already: false,
    })
}

/// Records a refusal as evidence and returns the error to show.
fn record_refusal(home: &mut Home, ev: &Evidence, r: Refusal) -> Error {
    let mut evidence = vec![(ev.meta, ObjKind::Blob)];
    evidence.extend(ev.policy_input.map(|m| (m, ObjKind::Blob)));
    let source = ev.source.as_ref().map(|(src, objs)| {
        evidence.extend(objs.iter().copied());
        src.clone()
    });
    let objects = match new_objects(home, &evidence) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let rec = RefusalRec {
        id: RefusalId::new(),
        subject: RefusalSubject::Admission,
        name: Some(ev.name.clone()),
        path: Some(lossy(&abs(ev.a.path))),
        object: Some(ev.meta.id),
        sha256: Some(ev.meta.sha256),
        pin: Some(ev.a.pin.to_string()),
        source,
        reason: r.reason,
        message: r.message.clone(),
        policies: ev.policies.clone(),
        objects,
    };
    let id = rec.id.clone();
    match home.commit(vec![Body::Refusal(rec)]) {
        Ok(_) => Error::Refused {
            message: r.message,
            hint: Some(format!("{} (refusal recorded as {id})", r.hint)),
            refusal: id.to_string(),
        },
        Err(e) => e,
    }
}
