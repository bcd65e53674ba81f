//! The commands, as library functions that return data. `cli` renders them.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::git::{self, Pin};
use crate::home::Home;
use crate::id::{DigestPrefix, ObjectId, ObjectMeta};
use crate::ledger::events::*;
use crate::ledger::query::Node;
use crate::ledger::{Head, JournalRow};
use crate::store::tree::{self, ObjKind};
use crate::store::{hash_file, Store};

pub(crate) fn lossy(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

pub(crate) fn abs(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Records of the objects the ledger does not know yet, each once.
pub(crate) fn new_objects(home: &Home, objects: &[(ObjectMeta, ObjKind)]) -> Result<Vec<ObjRec>> {
    let ids: Vec<ObjectId> = objects.iter().map(|(m, _)| m.id).collect();
    let known = home.ledger.has_objects(&ids)?;
    let mut seen = BTreeSet::new();
    Ok(objects
        .iter()
        .zip(known)
        .filter(|(_, k)| !k)
        .filter(|((m, _), _)| seen.insert(m.id))
        .map(|((m, k), _)| ObjRec::new(*m, *k))
        .collect())
}

// ---------------------------------------------------------------- init / ingest

#[derive(Serialize)]
pub struct InitOut {
    pub home: String,
    pub created: bool,
    pub head: Head,
}

pub fn init(home: &mut Home) -> Result<InitOut> {
    let head = home.ledger.head()?;
    if head.seq > 0 {
        return Ok(InitOut {
            home: lossy(&home.dir),
            created: false,
            head,
        });
    }
    home.commit(vec![Body::Init { format: 1 }])?;
    Ok(InitOut {
        home: lossy(&home.dir),
        created: true,
        head: home.ledger.head()?,
    })
}

#[derive(Serialize)]
pub struct IngestedItem {
    pub path: String,
    pub kind: ObjKind,
    pub object: ObjectId,
    pub sha256: crate::id::Sha256Digest,
    pub size: u64,
    pub files: u64,
    /// Files not re-read because the stat cache showed them unchanged.
    pub unchanged: u64,
}

#[derive(Serialize)]
pub struct IngestOut {
    pub items: Vec<IngestedItem>,
    pub new_objects: usize,
    pub seq: u64,
}

pub fn ingest(
    home: &mut Home,
    paths: &[PathBuf],
    artifact_kind: Option<&str>,
    label: Option<&str>,
    progress: &ProgressBar,
) -> Result<IngestOut> {
    // Check every input before storing anything.
    for p in paths {
        if fs::symlink_metadata(p).is_err() {
            return Err(Error::bad_input(
                format!("{} does not exist", p.display()),
                "check the path; nothing was stored",
            ));
        }
    }
    let mut items = Vec::new();
    let mut stat_rows = Vec::new();
    let mut tree_rows = Vec::new();
    let mut recs = Vec::new();
    let mut objects = Vec::new();
    for p in paths {
        let ap = abs(p);
        let ledger = &home.ledger;
        let mut ing = tree::ingest_path_cached(&home.store, &ap, progress, || {
            ledger
                .load_stat_cache(ap.as_os_str().as_encoded_bytes())
                .map(Some)
        })?;
        stat_rows.append(&mut ing.stat_rows);
        tree_rows.append(&mut ing.tree_rows);
        objects.extend(new_objects(home, &ing.objects)?);
        recs.push(IngestItem {
            path: lossy(&abs(p)),
            object: ing.root.id,
            kind: ing.root_kind,
            artifact_kind: artifact_kind.map(str::to_string),
            label: label.map(str::to_string),
        });
        items.push(IngestedItem {
            path: lossy(p),
            kind: ing.root_kind,
            object: ing.root.id,
            sha256: ing.root.sha256,
            size: ing.root.size,
            files: ing.files,
            unchanged: ing.cache_hits,
        });
    }
    let mut seen = BTreeSet::new();
    objects.retain(|o: &ObjRec| seen.insert(o.id));
    let n = objects.len();
    let ev = home.commit(vec![Body::Ingest(IngestRec {
        items: recs,
        objects,
    })])?;
    // Only now that the journal names these objects may the cache vouch for them.
    home.ledger.save_stat_cache(&stat_rows, &tree_rows)?;
    Ok(IngestOut {
        items,
        new_objects: n,
        seq: ev[0].seq,
    })
}

// ---------------------------------------------------------------- sources

/// Snapshots a clone: its tracked files as a tree, and the contents of changed paths.
/// A recorded source, the objects its snapshot consists of, and the clone's state.
pub type Snapshot = (SourceRec, Vec<(ObjectMeta, ObjKind)>, git::CloneState);

pub fn snapshot_source(store: &Store, dir: &Path, progress: &ProgressBar) -> Result<Snapshot> {
    let st = git::state(dir)?;
    let snap = tree::ingest_listed(store, &st.workdir, &st.tracked, progress)?;
    let mut objects = snap.objects.clone();
    let mut changes = Vec::new();
    for (path, status) in &st.changes {
        let on_disk = st.workdir.join(OsStr::from_bytes(path));
        let object = if *status != "untracked"
            && *status != "deleted"
            && fs::symlink_metadata(&on_disk)
                .map(|m| m.is_file())
                .unwrap_or(false)
        {
            let m = store.put_file(&on_disk)?;
            objects.push((m, ObjKind::Blob));
            Some(m.id)
        } else {
            None
        };
        changes.push(ChangeRec {
            path: String::from_utf8_lossy(path).into_owned(),
            status: status.to_string(),
            object,
        });
    }
    let mut rec = SourceRec {
        id: String::new(),
        path: lossy(&st.workdir),
        url: st.url.clone(),
        commit: st.commit.clone(),
        branch: st.branch.clone(),
        tree: st.tree.clone(),
        snapshot: snap.root.id,
        changes,
        objects: Vec::new(),
    };
    // The same clone in the same state is the same source: the id is its content hash.
    let digest = blake3::hash(&serde_jcs::to_vec(&rec).expect("serialises"));
    rec.id = format!("src_{}", &digest.to_hex()[..16]);
    Ok((rec, objects, st))
}

/// The source event to commit (with only objects the ledger lacks), or none if recorded.
pub(crate) fn source_body(
    home: &Home,
    mut rec: SourceRec,
    objects: &[(ObjectMeta, ObjKind)],
) -> Result<Option<Body>> {
    if home
        .ledger
        .row("SELECT id FROM sources WHERE id = ?1", &[&rec.id])?
        .is_some()
    {
        return Ok(None);
    }
    rec.objects = new_objects(home, objects)?;
    Ok(Some(Body::Source(rec)))
}

#[derive(Serialize)]
pub struct SourceOut {
    pub source: SourceRec,
    pub recorded: bool,
}

pub fn source_add(home: &mut Home, dir: &Path, progress: &ProgressBar) -> Result<SourceOut> {
    let (rec, objects, _) = snapshot_source(&home.store, dir, progress)?;
    let body = source_body(home, rec.clone(), &objects)?;
    let recorded = body.is_some();
    if let Some(b) = body {
        home.commit(vec![b])?;
    }
    Ok(SourceOut {
        source: rec,
        recorded,
    })
}

// ---------------------------------------------------------------- admission

#[derive(Serialize)]
pub struct AdmitOut {
    pub admission: AdmissionRec,
    pub source: SourceRec,
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+@".contains(&b))
        && !name.contains(':')
        && !["adm_", "mod_", "src_", "ref_", "rev_"]
            .iter()
            .any(|p| name.starts_with(p))
        && DigestPrefix::parse(name, 4).is_none();
    if ok {
        Ok(())
    } else {
        Err(Error::bad_input(
            format!("admission name `{name}` is not allowed"),
            "use letters, digits and . _ - + @ (not a hex string or an id prefix), e.g. --name ca",
        ))
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

fn open_for_admission(path: &Path) -> Result<()> {
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
    fs::File::open(path).map_err(|e| {
        Error::bad_input(
            format!("{} cannot be read: {e}", path.display()),
            "check its permissions",
        )
    })?;
    Ok(())
}

pub struct AdmitArgs<'a> {
    pub path: &'a Path,
    pub pin: &'a str,
    pub name: Option<&'a str>,
    pub source: Option<&'a Path>,
    pub allow_modified: &'a [PathBuf],
}

/// Records a refusal as evidence and returns the error to show.
/// What a refusal records as evidence: the file, and the clone as it was (if read).
struct Refusing<'a> {
    a: &'a AdmitArgs<'a>,
    name: String,
    meta: ObjectMeta,
    source: Option<(SourceRec, Vec<(ObjectMeta, ObjKind)>)>,
}

fn refuse(home: &mut Home, r: &Refusing, reason: &str, message: String, hint: &str) -> Error {
    let mut evidence = vec![(r.meta, ObjKind::Blob)];
    let source = r.source.as_ref().map(|(src, objs)| {
        evidence.extend(objs.iter().copied());
        src.clone()
    });
    let objects = match new_objects(home, &evidence) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let rec = RefusalRec {
        id: new_id("ref"),
        subject: "admission".into(),
        name: Some(r.name.clone()),
        path: Some(lossy(&abs(r.a.path))),
        object: Some(r.meta.id),
        sha256: Some(r.meta.sha256),
        pin: Some(r.a.pin.to_string()),
        source,
        reason: reason.to_string(),
        message: message.clone(),
        objects,
    };
    let id = rec.id.clone();
    match home.commit(vec![Body::Refusal(rec)]) {
        Ok(_) => Error::Refused {
            message,
            hint: Some(format!("{hint} (refusal recorded as {id})")),
            refusal: id,
        },
        Err(e) => e,
    }
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

pub fn admit(home: &mut Home, a: &AdmitArgs, progress: &ProgressBar) -> Result<AdmitOut> {
    open_for_admission(a.path)?;
    check_pin(a.pin)?;
    let default_name = a
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = a.name.unwrap_or(&default_name).to_string();
    check_name(&name)?;
    if let Some(s) = a.source {
        if !s.is_dir() {
            return Err(Error::bad_input(
                format!("--source {} is not a directory", s.display()),
                "give the git clone the file was built from",
            ));
        }
    }
    let pin = a.pin.to_ascii_lowercase();
    let meta = home.store.put_file(a.path)?;
    let mut ctx = Refusing {
        a,
        name: name.clone(),
        meta,
        source: None,
    };

    let clone = match a.source {
        Some(s) => Some(s.to_path_buf()),
        None => git::discover(a.path),
    };
    let Some(clone) = clone else {
        return Err(refuse(
            home,
            &ctx,
            "no_source",
            format!(
                "{} is not inside a git clone, so pin {} cannot be checked",
                a.path.display(),
                a.pin
            ),
            "pass --source DIR naming the clone it was built from",
        ));
    };
    let (src, src_objects, st) = match snapshot_source(&home.store, &clone, progress) {
        Ok(v) => v,
        Err(Error::BadInput { message, .. }) => {
            return Err(refuse(
                home,
                &ctx,
                "no_source",
                format!("--source {message}"),
                "pass --source DIR naming the git clone it was built from",
            ))
        }
        Err(e) => return Err(e),
    };
    ctx.source = Some((src.clone(), src_objects.clone()));

    // The pin must name exactly one commit, in the clone or among recorded sources, and be HEAD.
    let mut candidates: BTreeSet<String> =
        home.ledger.commits_by_prefix(&pin)?.into_iter().collect();
    match git::resolve_pin(&st.workdir, &pin)? {
        Pin::Commit(c) => {
            candidates.insert(c);
        }
        Pin::Ambiguous(cs) => candidates.extend(cs),
        Pin::Unknown => {}
    }
    let commit = match candidates.len() {
        0 => {
            return Err(refuse(
                home,
                &ctx,
                "pin_unknown",
                format!(
                    "source pin {} matches no commit in {} or in the ledger (HEAD is {})",
                    a.pin,
                    st.workdir.display(),
                    st.commit
                ),
                "check the pin, or fetch the commit into the clone",
            ))
        }
        1 => candidates.into_iter().next().expect("one"),
        _ => {
            let list = candidates.into_iter().collect::<Vec<_>>().join(", ");
            return Err(refuse(
                home,
                &ctx,
                "pin_ambiguous",
                format!("source pin {} is ambiguous: it matches {list}", a.pin),
                "give more hex digits of the commit",
            ));
        }
    };
    if commit != st.commit {
        return Err(refuse(
            home,
            &ctx,
            "pin_not_head",
            format!(
                "source pin {} resolves to {commit}, but {} has {} checked out",
                a.pin,
                st.workdir.display(),
                st.commit
            ),
            "check out the pinned commit and rebuild, or pin the commit that is checked out",
        ));
    }

    // Modified tracked files refuse unless each is allowed by name.
    let tracked_changes: Vec<&ChangeRec> = src
        .changes
        .iter()
        .filter(|c| c.is_tracked_change())
        .collect();
    let allowed: BTreeSet<String> = a
        .allow_modified
        .iter()
        .map(|p| clone_relative(&st.workdir, p))
        .collect();
    let not_modified: Vec<&String> = allowed
        .iter()
        .filter(|p| !tracked_changes.iter().any(|c| &&c.path == p))
        .collect();
    if !not_modified.is_empty() {
        let list = not_modified
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(refuse(
            home,
            &ctx,
            "allow_modified_not_modified",
            format!(
                "--allow-modified names {list}, which is not a modified tracked file of {}",
                st.workdir.display()
            ),
            "name only files that `git status` shows as modified",
        ));
    }
    // The build that produced these exact bytes from this commit, if one was recorded:
    // the tracked files it modified (to these exact contents) are provenance, not unknowns.
    let build = home
        .ledger
        .row(
            "SELECT b.id FROM builds b JOIN build_outputs o ON o.build_id = b.id
             WHERE o.object = ?1 AND b.status = 'succeeded' AND b.commit_id = ?2
             ORDER BY b.check_of IS NOT NULL, b.seq DESC LIMIT 1",
            &[&meta.id.to_string(), &commit],
        )?
        .and_then(|v| v["id"].as_str().map(str::to_string));
    let by_build: BTreeMap<String, Value> = match &build {
        Some(b) => home
            .ledger
            .rows(
                "SELECT path, old_object, new_object FROM build_modified WHERE build_id = ?1",
                &[b],
            )?
            .into_iter()
            .map(|r| (r["path"].as_str().unwrap_or_default().to_string(), r))
            .collect(),
        None => BTreeMap::new(),
    };
    let explained = |c: &ChangeRec| {
        by_build
            .get(&c.path)
            .is_some_and(|r| r["new_object"].as_str() == c.object.map(|o| o.to_string()).as_deref())
    };
    let unexplained: Vec<&&ChangeRec> = tracked_changes
        .iter()
        .filter(|c| !allowed.contains(&c.path) && !explained(c))
        .collect();
    if !unexplained.is_empty() {
        let list = unexplained
            .iter()
            .map(|c| format!("{} ({})", c.path, c.status))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(refuse(home, &ctx,
            "source_modified",
            format!("the source tree {} has modified tracked files: {list}", st.workdir.display()),
            "commit or revert them, or accept each with --allow-modified PATH (their contents are recorded)",
        ));
    }

    let mut decisions = vec![format!(
        "pin {} resolved to {commit}, the HEAD of {}",
        a.pin,
        st.workdir.display()
    )];
    if let Some(b) = &build {
        decisions.push(format!(
            "built by recorded build {b}, whose outputs include these exact bytes"
        ));
    }
    if tracked_changes.is_empty() {
        decisions.push("source tree has no modified tracked files".into());
    } else {
        for c in tracked_changes
            .iter()
            .filter(|c| !allowed.contains(&c.path))
        {
            let r = &by_build[&c.path];
            decisions.push(format!(
                "modified tracked file {} was written by build {} (from {} to {}); accepted as recorded provenance without --allow-modified",
                c.path,
                build.as_deref().unwrap_or_default(),
                r["old_object"].as_str().unwrap_or("nothing"),
                r["new_object"].as_str().unwrap_or("nothing"),
            ));
        }
        for c in tracked_changes.iter().filter(|c| allowed.contains(&c.path)) {
            decisions.push(format!(
                "modified tracked file {} allowed by --allow-modified; contents {}",
                c.path,
                c.object
                    .map(|o| o.to_string())
                    .unwrap_or_else(|| "absent".into())
            ));
        }
    }
    let admission = AdmissionRec {
        id: new_id("adm"),
        name,
        object: meta.id,
        sha256: meta.sha256,
        size: meta.size,
        path: lossy(&abs(a.path)),
        pin: Some(a.pin.to_string()),
        commit: Some(commit),
        source: Some(src.id.clone()),
        scope: "any".into(),
        build,
        allowed_modified: tracked_changes.into_iter().cloned().collect(),
        decisions,
        objects: vec![ObjRec::new(meta, ObjKind::Blob)],
    };
    let mut bodies = Vec::new();
    if let Some(b) = source_body(home, src.clone(), &src_objects)? {
        bodies.push(b);
    }
    bodies.push(Body::Admission(admission.clone()));
    home.commit(bodies)?;
    Ok(AdmitOut {
        admission,
        source: src,
    })
}

#[derive(Serialize)]
pub struct ModelAdmitOut {
    pub admission: ModelAdmissionRec,
    pub already: bool,
}

pub fn parse_model(s: &str) -> Result<(String, String)> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.len() <= 128
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-:@".contains(&b))
    };
    match s.split_once('/') {
        Some((p, m)) if ok_part(p) && ok_part(m) => Ok((p.to_string(), m.to_string())),
        _ => Err(Error::bad_input(
            format!("model `{s}` is not PROVIDER/MODEL"),
            "write it as provider/model, e.g. --model anthropic/claude-sonnet-4-6",
        )),
    }
}

/// The live (unrevoked) model admission for a pair, if any.
pub fn model_admission(home: &Home, provider: &str, model: &str) -> Result<Option<String>> {
    let rows = home.ledger.rows(
        "SELECT m.id FROM model_admissions m WHERE m.provider = ?1 AND m.model = ?2
           AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.target = m.id) ORDER BY m.seq DESC LIMIT 1",
        &[&provider, &model],
    )?;
    Ok(rows
        .first()
        .and_then(|r| r["id"].as_str().map(str::to_string)))
}

pub fn admit_model(home: &mut Home, spec: &str) -> Result<ModelAdmitOut> {
    let (provider, model) = parse_model(spec)?;
    if let Some(id) = model_admission(home, &provider, &model)? {
        return Ok(ModelAdmitOut {
            admission: ModelAdmissionRec {
                id,
                provider,
                model,
            },
            already: true,
        });
    }
    let rec = ModelAdmissionRec {
        id: new_id("mod"),
        provider,
        model,
    };
    home.ledger
        .commit(vec![Body::ModelAdmission(rec.clone())])?;
    Ok(ModelAdmitOut {
        admission: rec,
        already: false,
    })
}

// ---------------------------------------------------------------- verify / revoke

#[derive(Serialize)]
pub struct VerifyOut {
    pub admitted: bool,
    pub input: String,
    pub object: ObjectId,
    pub sha256: Option<crate::id::Sha256Digest>,
    pub size: Option<u64>,
    pub admissions: Vec<Value>,
    pub revoked: Vec<Value>,
}

fn admissions_of(home: &Home, object: &ObjectId) -> Result<(Vec<Value>, Vec<Value>)> {
    let rows = home.ledger.rows(
        "SELECT a.id, a.name, a.scope, a.pin, a.commit_id, a.source_id, a.build_id, a.time, a.actor, s.url
           FROM admissions a LEFT JOIN sources s ON s.id = a.source_id WHERE a.object = ?1 ORDER BY a.seq",
        &[&object.to_string()],
    )?;
    let (mut live, mut revoked) = (Vec::new(), Vec::new());
    for mut r in rows {
        let id = r["id"].as_str().unwrap_or_default().to_string();
        match home.ledger.revocation_of(&id)? {
            Some(rev) => {
                r["revocation"] = rev;
                revoked.push(r)
            }
            None => live.push(r),
        }
    }
    Ok((live, revoked))
}

pub fn verify(home: &Home, target: &str) -> Result<VerifyOut> {
    let p = Path::new(target);
    let (object, sha256, size) = if p.exists() {
        if p.is_dir() {
            return Err(Error::bad_input(
                format!("{target} is a directory"),
                "verify takes one file or a digest",
            ));
        }
        let m = hash_file(p)?;
        (m.id, Some(m.sha256), Some(m.size))
    } else if let Some(dp) = DigestPrefix::parse(target, 7) {
        let full = dp.hex.len() == 64;
        match home.resolve(target) {
            Ok(Node::Object(id)) => {
                let m = home.ledger.object_meta(&id)?;
                (id, m.map(|m| m.sha256), m.map(|m| m.size))
            }
            Ok(other) => {
                return Err(Error::bad_input(
                    format!("{target} names {}, not a file digest", other.label()),
                    "give a file path or a file's digest",
                ))
            }
            // A full digest the ledger has never seen is a clear negative verdict.
            Err(Error::NotFound { .. }) if full && dp.algo != Some("sha256") => {
                (ObjectId::parse(&dp.hex).expect("64 hex"), None, None)
            }
            Err(Error::NotFound { .. }) if full => {
                return Ok(VerifyOut {
                    admitted: false,
                    input: target.into(),
                    object: ObjectId([0; 32]),
                    sha256: crate::id::Sha256Digest::parse(&dp.hex).ok(),
                    size: None,
                    admissions: vec![],
                    revoked: vec![],
                })
            }
            Err(e) => return Err(e),
        }
    } else {
        return Err(Error::bad_input(
            format!("{target} is neither an existing file nor a digest"),
            "give a file path, sha256:<hex>, blake3:<hex> or a hex prefix of 7+ digits",
        ));
    };
    let (admissions, revoked) = admissions_of(home, &object)?;
    Ok(VerifyOut {
        admitted: !admissions.is_empty(),
        input: target.into(),
        object,
        sha256,
        size,
        admissions,
        revoked,
    })
}

#[derive(Serialize)]
pub struct RevokeOut {
    pub revoked: Vec<RevocationRec>,
}

pub fn revoke(home: &mut Home, r: &str, reason: &str) -> Result<RevokeOut> {
    if reason.trim().is_empty() {
        return Err(Error::bad_input(
            "--reason is empty",
            "say why the admission is revoked; the reason is recorded",
        ));
    }
    let node = home.resolve(r)?;
    let targets: Vec<String> = match &node {
        Node::Admission(id) | Node::ModelAdmission(id) => vec![id.clone()],
        Node::Object(obj) => admissions_of(home, obj)?
            .0
            .into_iter()
            .filter_map(|v| v["id"].as_str().map(str::to_string))
            .collect(),
        other => {
            return Err(Error::bad_input(
                format!("{r} names {}, which cannot be revoked", other.label()),
                "give an admission (name or id), a model admission, or an admitted digest",
            ))
        }
    };
    let mut live = Vec::new();
    for t in targets {
        if home.ledger.revocation_of(&t)?.is_none() {
            live.push(t);
        }
    }
    if live.is_empty() {
        return Err(Error::bad_input(
            format!("{r} has no admission left to revoke (already revoked or never admitted)"),
            "see `cto-ledger show` for its admissions",
        ));
    }
    let recs: Vec<RevocationRec> = live
        .into_iter()
        .map(|t| RevocationRec {
            id: new_id("rev"),
            target: t,
            reason: reason.to_string(),
        })
        .collect();
    home.ledger
        .commit(recs.iter().cloned().map(Body::Revocation).collect())?;
    Ok(RevokeOut { revoked: recs })
}

// ---------------------------------------------------------------- cat / restore

fn object_ref(home: &Home, r: &str) -> Result<ObjectId> {
    match home.resolve(r)? {
        Node::Object(id) => Ok(id),
        other => Err(Error::bad_input(
            format!("{r} names {}, not an object", other.label()),
            "give an object digest",
        )),
    }
}

pub fn cat(home: &Home, r: &str, out: &mut dyn Write) -> Result<()> {
    let id = object_ref(home, r)?;
    // Verify before emitting a byte, so a corrupt object never reaches the reader.
    match home.store.rehash(&id)? {
        None => {
            return Err(Error::Integrity {
                message: format!("object {id} is recorded but missing from the store"),
            })
        }
        Some(m) if m.id != id => {
            return Err(Error::Integrity {
                message: format!("object {id} is corrupt: its bytes hash to {}", m.id),
            })
        }
        Some(_) => {}
    }
    home.store.copy_verified(&id, out)?;
    Ok(())
}

#[derive(Serialize)]
pub struct RestoreOut {
    pub tree: ObjectId,
    pub dir: String,
    pub entries: u64,
}

pub fn restore(home: &Home, r: &str, dir: &Path) -> Result<RestoreOut> {
    let id = object_ref(home, r)?;
    let n = tree::restore(&home.store, &id, dir)?;
    Ok(RestoreOut {
        tree: id,
        dir: lossy(dir),
        entries: n,
    })
}

// ---------------------------------------------------------------- show / log

pub fn show(home: &Home, r: &str) -> Result<Value> {
    let node = home.resolve(r)?;
    let l = &home.ledger;
    let v = match &node {
        Node::Object(id) => {
            let idt = id.to_string();
            let mut o = l
                .row(
                    "SELECT id, sha256, size, kind, seq FROM objects WHERE id = ?1",
                    &[&idt],
                )?
                .unwrap_or(Value::Null);
            let (live, revoked) = admissions_of(home, id)?;
            o["admissions"] = json!(live);
            o["revoked_admissions"] = json!(revoked);
            o["ingests"] = json!(l.rows(
                "SELECT seq, path, label FROM ingests WHERE object = ?1 ORDER BY seq",
                &[&idt]
            )?);
            o["runs_using_as_provider"] = json!(l.rows(
                "SELECT id, status, verdict FROM runs WHERE provider_object = ?1 ORDER BY seq",
                &[&idt]
            )?);
            o["run_artifacts"] = json!(l.rows(
                "SELECT run_id, path FROM run_artifacts WHERE object = ?1 ORDER BY run_id, path",
                &[&idt]
            )?);
            o["refusals"] = json!(l.rows(
                "SELECT id, reason, message, time FROM refusals WHERE object = ?1 ORDER BY seq",
                &[&idt]
            )?);
            o["source_changes"] = json!(l.rows(
                "SELECT source_id, path, status FROM source_changes WHERE object = ?1",
                &[&idt]
            )?);
            json!({"type": "object", "object": o})
        }
        Node::Admission(id) => {
            let mut a = l
                .row("SELECT * FROM admissions WHERE id = ?1", &[id])?
                .unwrap_or(Value::Null);
            a["modified_files"] = json!(l.rows("SELECT path, status, object FROM admission_modified WHERE admission_id = ?1 ORDER BY path", &[id])?);
            a["source"] = l.row("SELECT id, url, commit_id, branch, path, tree_id, snapshot FROM sources WHERE id = ?1", &[&a["source_id"].as_str().unwrap_or_default()])?.unwrap_or(Value::Null);
            a["revocation"] = l.revocation_of(id)?.unwrap_or(Value::Null);
            if let Some(b) = a["build_id"].as_str().map(str::to_string) {
                a["build"] = show_build(l, &b)?;
            }
            a["runs"] = json!(l.rows(
                "SELECT id, status, verdict FROM runs WHERE provider_admission = ?1 ORDER BY seq",
                &[id]
            )?);
            json!({"type": "admission", "admission": a})
        }
        Node::ModelAdmission(id) => {
            let mut m = l
                .row("SELECT * FROM model_admissions WHERE id = ?1", &[id])?
                .unwrap_or(Value::Null);
            m["revocation"] = l.revocation_of(id)?.unwrap_or(Value::Null);
            m["runs"] = json!(l.rows(
                "SELECT id, status, verdict FROM runs WHERE model_admission = ?1 ORDER BY seq",
                &[id]
            )?);
            json!({"type": "model_admission", "model_admission": m})
        }
        Node::Source(id) => {
            let mut s = l
                .row("SELECT * FROM sources WHERE id = ?1", &[id])?
                .unwrap_or(Value::Null);
            s["changes"] = json!(l.rows("SELECT path, status, object FROM source_changes WHERE source_id = ?1 ORDER BY path", &[id])?);
            s["admissions"] = json!(l.rows(
                "SELECT id, name, object FROM admissions WHERE source_id = ?1 ORDER BY seq",
                &[id]
            )?);
            json!({"type": "source", "source": s})
        }
        Node::Commit(c) => {
            let sources = l.rows(
                "SELECT id, url, path, branch, time FROM sources WHERE commit_id = ?1 ORDER BY seq",
                &[c],
            )?;
            let adm = l.rows(
                "SELECT id, name, object, sha256 FROM admissions WHERE commit_id = ?1 ORDER BY seq",
                &[c],
            )?;
            json!({"type": "commit", "commit": {"id": c, "sources": sources, "admissions": adm}})
        }
        Node::Run(id) => {
            let mut run = l
                .row("SELECT * FROM runs WHERE id = ?1", &[id])?
                .unwrap_or(Value::Null);
            run["artifacts"] = json!(l.rows(
                "SELECT path, object FROM run_artifacts WHERE run_id = ?1 ORDER BY path",
                &[id]
            )?);
            if let Some(a) = run["provider_admission"].as_str().map(str::to_string) {
                run["provider"] = l.row("SELECT a.id, a.name, a.pin, a.commit_id, s.url FROM admissions a LEFT JOIN sources s ON s.id = a.source_id WHERE a.id = ?1", &[&a])?.unwrap_or(Value::Null);
            }
            json!({"type": "run", "run": run})
        }
        Node::Refusal(id) => {
            json!({"type": "refusal", "refusal": l.row("SELECT * FROM refusals WHERE id = ?1", &[id])?})
        }
        Node::Revocation(id) => {
            json!({"type": "revocation", "revocation": l.row("SELECT * FROM revocations WHERE id = ?1", &[id])?})
        }
        Node::Build(id) => json!({"type": "build", "build": show_build(l, id)?}),
    };
    Ok(v)
}

/// A build with its outputs, modified files, created files, checks and admissions.
pub fn show_build(l: &crate::ledger::Ledger, id: &str) -> Result<Value> {
    let mut b = l
        .row("SELECT * FROM builds WHERE id = ?1", &[&id])?
        .unwrap_or(Value::Null);
    for col in ["argv", "tools", "env", "check_outputs"] {
        if let Some(s) = b[col].as_str() {
            b[col] = serde_json::from_str(s).unwrap_or(Value::Null);
        }
    }
    b["source"] = l
        .row(
            "SELECT id, url, path, commit_id, branch FROM sources WHERE id = ?1",
            &[&b["source_id"].as_str().unwrap_or_default()],
        )?
        .unwrap_or(Value::Null);
    b["outputs"] = json!(l.rows("SELECT path, object, sha256, size, kind, inside_source, ignored FROM build_outputs WHERE build_id = ?1 ORDER BY path", &[&id])?);
    b["modified"] = json!(l.rows("SELECT path, status, old_object, new_object FROM build_modified WHERE build_id = ?1 ORDER BY path", &[&id])?);
    b["created"] = json!(l.rows(
        "SELECT path FROM build_created WHERE build_id = ?1 ORDER BY path",
        &[&id]
    )?);
    b["checks"] = json!(l.rows("SELECT id, check_result, check_outputs, finished FROM builds WHERE check_of = ?1 ORDER BY seq", &[&id])?);
    b["admissions"] = json!(l.rows(
        "SELECT id, name, sha256 FROM admissions WHERE build_id = ?1 ORDER BY seq",
        &[&id]
    )?);
    Ok(b)
}

#[derive(Serialize)]
pub struct LogEntry {
    pub seq: i64,
    pub time: String,
    pub kind: String,
    pub summary: String,
    pub actor: String,
    pub hash: String,
}

fn summarize(row: &JournalRow) -> (String, String) {
    let Ok(e) = serde_json::from_str::<Event>(&row.event) else {
        return ("(undecodable event)".into(), String::new());
    };
    let s = match &e.body {
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
            &s.commit[..12.min(s.commit.len())]
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
        Body::Run(r) => format!("run:{} {} {} ({})", r.id, r.lane, r.status, r.verdict),
        Body::Build(b) => match &b.check {
            Some(c) => format!("{} check of {}: {}", b.id, c.of, c.result),
            None => format!(
                "{} {} `{}` at {}",
                b.id,
                b.status,
                b.argv.join(" "),
                &b.commit[..12.min(b.commit.len())]
            ),
        },
    };
    (s, e.actor.display())
}

pub fn log(
    home: &Home,
    kind: Option<&str>,
    since: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<LogEntry>> {
    let rows = home.ledger.journal_rows()?;
    let mut out: Vec<LogEntry> = rows
        .iter()
        .filter(|r| kind.is_none_or(|k| r.kind == k) && since.is_none_or(|t| r.time.as_str() >= t))
        .map(|r| {
            let (summary, actor) = summarize(r);
            LogEntry {
                seq: r.seq,
                time: r.time.clone(),
                kind: r.kind.clone(),
                summary,
                actor,
                hash: r.hash.clone(),
            }
        })
        .collect();
    if let Some(n) = limit {
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
    }
    Ok(out)
}

// ---------------------------------------------------------------- audit

#[derive(Serialize, Debug)]
pub struct Finding {
    pub check: String,
    pub subject: String,
    pub message: String,
}

impl Finding {
    pub fn new(check: &str, subject: String, message: String) -> Finding {
        Finding {
            check: check.into(),
            subject,
            message,
        }
    }
}

#[derive(Serialize, Default)]
pub struct AuditOut {
    pub ok: bool,
    pub head: Option<Head>,
    pub events: u64,
    pub objects_checked: u64,
    pub bytes_checked: u64,
    pub runs_checked: u64,
    pub findings: Vec<Finding>,
    /// Not failures: objects present in the store that no event names (left by an interrupted command).
    pub notes: Vec<String>,
}

pub fn parse_checkpoint(s: &str) -> Result<Head> {
    let bad = || {
        Error::bad_input(
            format!("checkpoint `{s}` is not SEQ:HASH"),
            "pass the value printed by `cto-ledger checkpoint`, e.g. 42:9f86d0...",
        )
    };
    let (seq, hash) = s.trim().split_once(':').ok_or_else(bad)?;
    let seq: u64 = seq.parse().map_err(|_| bad())?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok(Head {
        seq,
        hash: hash.to_ascii_lowercase(),
    })
}

pub fn audit(home: &Home, checkpoint: Option<&Head>, progress: &ProgressBar) -> Result<AuditOut> {
    let mut out = AuditOut::default();
    let f = Finding::new;

    // 1. The journal is one unbroken chain.
    let rows = home.ledger.journal_rows()?;
    let mut prev = crate::ledger::GENESIS.to_string();
    for (i, row) in rows.iter().enumerate() {
        for m in crate::ledger::check_row(row, i as i64 + 1, &prev) {
            out.findings
                .push(f("journal", format!("event {}", row.seq), m));
        }
        prev = row.hash.clone();
    }
    out.events = rows.len() as u64;
    out.head = rows.last().map(|r| Head {
        seq: r.seq as u64,
        hash: r.hash.clone(),
    });

    // 2. The ledger still extends an earlier checkpoint.
    if let Some(cp) = checkpoint {
        let row = rows.iter().find(|r| r.seq as u64 == cp.seq);
        // Events that were local-only when the checkpoint was taken may have been
        // re-appended after another host's by push/pull; prove that instead.
        let moved = match row {
            Some(r) if r.hash == cp.hash => None,
            _ => home.ledger.explain_moved_checkpoint(cp)?,
        };
        if let Some(notes) = moved {
            out.notes.extend(notes);
        } else {
            match row {
            None => out.findings.push(f(
                "checkpoint",
                format!("{}:{}", cp.seq, cp.hash),
                format!("the journal ends at event {} but the checkpoint is at event {}: the journal was truncated", rows.len(), cp.seq),
            )),
            Some(r) if r.hash != cp.hash => out.findings.push(f(
                "checkpoint",
                format!("{}:{}", cp.seq, cp.hash),
                format!("event {} now hashes to {}, not the checkpoint's {}: history was rewritten", cp.seq, r.hash, cp.hash),
            )),
            Some(_) => {}
        }
        }
    }

    // 3. The projections are what the journal says.
    for (table, m) in home.ledger.diff_projections()? {
        out.findings.push(f("projection", table, m));
    }

    // 4. Every object re-hashes to both recorded digests.
    let objs = home
        .ledger
        .rows("SELECT id, sha256, size FROM objects ORDER BY id", &[])?;
    progress.set_length(objs.len() as u64);
    let store = &home.store;
    let results: Vec<Option<Finding>> = objs
        .par_iter()
        .map(|o| {
            progress.inc(1);
            let id_s = o["id"].as_str().unwrap_or_default();
            let Ok(id) = ObjectId::parse(id_s) else {
                return Some(f(
                    "object",
                    id_s.into(),
                    "recorded id is not a BLAKE3 digest".into(),
                ));
            };
            match store.rehash(&id) {
                Ok(None) => Some(f("object", id_s.into(), "missing from the store".into())),
                Ok(Some(m)) => {
                    let mut bad = Vec::new();
                    if m.id != id {
                        bad.push(format!("bytes hash to {}", m.id));
                    }
                    if o["sha256"].as_str() != Some(&m.sha256.to_string()) {
                        bad.push(format!("SHA-256 is {}, recorded {}", m.sha256, o["sha256"]));
                    }
                    if o["size"].as_u64() != Some(m.size) {
                        bad.push(format!("size is {}, recorded {}", m.size, o["size"]));
                    }
                    (!bad.is_empty()).then(|| {
                        f(
                            "object",
                            id_s.into(),
                            format!("corrupt: {}", bad.join("; ")),
                        )
                    })
                }
                Err(e) => Some(f("object", id_s.into(), format!("unreadable: {e}"))),
            }
        })
        .collect();
    out.objects_checked = objs.len() as u64;
    out.bytes_checked = objs.iter().filter_map(|o| o["size"].as_u64()).sum();
    out.findings.extend(results.into_iter().flatten());

    // 5. The store holds nothing that pretends to be an object.
    let listing = home.store.backend().list()?;
    for (name, why) in listing.anomalies {
        out.findings.push(f("store", name, why));
    }
    if listing.temps > 0 {
        out.notes.push(format!("{} temporary file(s) beside objects (being written, or left by a killed command; `cto-ledger recover` removes old ones)", listing.temps));
    }
    let known: BTreeSet<&str> = objs.iter().filter_map(|o| o["id"].as_str()).collect();
    let stray = listing
        .objects
        .iter()
        .filter(|id| !known.contains(id.to_string().as_str()))
        .count();
    if stray > 0 {
        out.notes.push(format!("{stray} object(s) in the store are named by no event (left by an interrupted or refused-before-commit command); harmless"));
    }

    // 6. Every run left a final report and used an admitted, unrevoked provider.
    let runs = home.ledger.rows("SELECT id, seq, status, report_object, provider_admission, model_admission, lane, provider_started FROM runs ORDER BY seq", &[])?;
    out.runs_checked = runs.len() as u64;
    for r in runs {
        let id = format!("run:{}", r["id"].as_str().unwrap_or_default());
        let status = r["status"].as_str().unwrap_or_default();
        if r["report_object"].is_null() {
            out.findings
                .push(f("run", id.clone(), "has no report.json object".into()));
        }
        if status == "started" {
            out.findings.push(f(
                "run",
                id.clone(),
                "report.json was never finalised (status started)".into(),
            ));
        }
        if status == "blocked" || r["provider_started"] == 0 {
            continue; // the provider never started
        }
        let seq = r["seq"].as_i64().unwrap_or_default();
        for (col, what) in [
            ("provider_admission", "provider"),
            ("model_admission", "model"),
        ] {
            if what == "model" && r["lane"].as_str() == Some("fake") {
                continue;
            }
            match r[col].as_str() {
                None => out.findings.push(f(
                    "run",
                    id.clone(),
                    format!("ran a {what} with no admission"),
                )),
                Some(adm) => {
                    let rev = home.ledger.row("SELECT id, seq FROM revocations WHERE target = ?1 AND seq < ?2 ORDER BY seq LIMIT 1", &[&adm, &seq])?;
                    if let Some(rev) = rev {
                        out.findings.push(f(
                            "run",
                            id.clone(),
                            format!(
                                "ran {what} admission {adm} after it was revoked by {}",
                                rev["id"]
                            ),
                        ));
                    }
                }
            }
        }
    }
    // 7. No run folder was left behind unrecorded (a harness killed mid-run).
    out.findings.extend(unrecorded_runs(home, &mut out.notes)?);
    out.ok = out.findings.is_empty();
    Ok(out)
}

/// Run folders under `<home>/runs` that no `run` event records. A folder whose
/// cto-ledger process is still alive is in progress, not a finding.
fn unrecorded_runs(home: &Home, notes: &mut Vec<String>) -> Result<Vec<Finding>> {
    let runs_dir = home.runs_dir();
    let Ok(rd) = fs::read_dir(&runs_dir) else {
        return Ok(Vec::new());
    };
    let mut findings = Vec::new();
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        if !ent.path().is_dir()
            || home
                .ledger
                .row("SELECT id FROM runs WHERE id = ?1", &[&name])?
                .is_some()
        {
            continue;
        }
        let report = fs::read(ent.path().join("report.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let status = report
            .as_ref()
            .and_then(|v| v["status"].as_str().map(str::to_string));
        let pid = report.as_ref().and_then(|v| v["harness_pid"].as_u64());
        let running = pid.is_some_and(|p| {
            fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|exe| {
                exe.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("cto-ledger"))
            })
        });
        if running {
            notes.push(format!("run folder {name} is in progress"));
            continue;
        }
        findings.push(Finding {
            check: "run".into(),
            subject: ent.path().display().to_string(),
            message: match status {
                Some(s) => format!("run folder is not recorded in the ledger (the harness stopped before finishing); its report.json says {s}; `cto-ledger recover` records it as interrupted"),
                None => "run folder is not recorded in the ledger and has no readable report.json".into(),
            },
        });
    }
    Ok(findings)
}
