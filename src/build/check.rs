//! `build --check`: re-run a recorded build from a clean work tree of its commit and
//! compare what it makes with what was recorded. The comparison itself is pure.

use std::fs;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;

use super::diff::{timestamp_hint, Comparer};
use super::samepath::SamePath;
use super::{commit_build, env_that_matters, run_command, BuildOut};
use crate::error::{Error, Result};
use crate::git;
use crate::home::Home;
use crate::id::{BuildId, ObjectId, ObjectMeta};
use crate::ledger::events::{BuildRec, CheckOutputRec, CheckRec, DifferenceRec, OutputRec};
use crate::ledger::query::Node;
use crate::ledger::Ledger;
use crate::ledger::{BuildOutputRow, BuildRow};
use crate::paths::lossy;
use crate::source::snapshot;
use crate::state::{BuildStatus, CheckResult, OutputCheck};
use crate::store::tree::{self, ObjKind};

/// The build a REF names: a build id, or the newest succeeded build with that output.
fn find_build(home: &Home, r: &str) -> Result<BuildRow> {
    let id = match home.resolve(r)? {
        Node::Build(id) => id,
        Node::Object(obj) => {
            home.ledger
                .build_producing(&obj, None)?
                .ok_or_else(|| Error::NotFound {
                    what: "build output",
                    input: r.to_string(),
                    hint: Some(
                        "give a build id (bld_...) or the digest of a recorded build output".into(),
                    ),
                })?
        }
        other => {
            return Err(Error::bad_input(
                format!("{r} names {}, not a build", other.label()),
                "give a build id (bld_...) or an output digest",
            ))
        }
    };
    home.ledger.build(&id)?.ok_or_else(|| Error::NotFound {
        what: "build",
        input: r.to_string(),
        hint: None,
    })
}

/// What the rebuild left where a recorded output was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rebuilt {
    /// The output lies outside the source tree: not rebuilt.
    Outside,
    Missing,
    Produced(ObjectId),
}

/// One recorded output against what the rebuild left in its place.
fn compare(path: String, original: ObjectId, rebuilt: Rebuilt) -> CheckOutputRec {
    let (rebuilt, result) = match rebuilt {
        Rebuilt::Outside => (None, OutputCheck::NotChecked),
        Rebuilt::Missing => (None, OutputCheck::Missing),
        Rebuilt::Produced(id) if id == original => (Some(id), OutputCheck::Same),
        Rebuilt::Produced(id) => (Some(id), OutputCheck::Differs),
    };
    CheckOutputRec {
        path,
        original: Some(original),
        rebuilt,
        result,
        difference: None,
    }
}

/// The check's result and, unless it reproduces, why. `failed` is why the rebuild
/// itself failed, if it did.
fn verdict(failed: Option<String>, cmp: &[CheckOutputRec]) -> (CheckResult, Option<String>) {
    if let Some(why) = failed {
        return (CheckResult::Failed, Some(why));
    }
    let checked = cmp
        .iter()
        .filter(|c| c.result != OutputCheck::NotChecked)
        .count();
    if checked == 0 {
        let why = "no output lies inside the source tree, so none could be compared";
        return (CheckResult::Diverges, Some(why.into()));
    }
    let differing: Vec<&str> = cmp
        .iter()
        .filter(|c| matches!(c.result, OutputCheck::Differs | OutputCheck::Missing))
        .map(|c| c.path.as_str())
        .collect();
    if differing.is_empty() {
        (CheckResult::Reproduces, None)
    } else {
        (
            CheckResult::Diverges,
            Some(format!("outputs differ: {}", differing.join(", "))),
        )
    }
}

/// Ingests what the rebuild left at each recorded output and compares it.
struct Compared {
    cmp: Vec<CheckOutputRec>,
    outs: Vec<OutputRec>,
}

/// Where the rebuild ran, for the hints: the original source path, the work tree, and
/// whether the rebuild saw the work tree at the original path.
#[derive(Clone, Copy)]
struct Where<'a> {
    src_path: &'a Path,
    work: &'a Path,
    same_path: bool,
}

/// Streams the recorded output from the store against the rebuilt file: where they
/// differ, and hints at why.
fn locate(
    home: &Home,
    original: ObjectId,
    rebuilt: &Path,
    at: Where,
) -> Result<Option<DifferenceRec>> {
    let file = fs::File::open(rebuilt).map_err(Error::io("open", rebuilt))?;
    let mut cmp = Comparer::new(std::io::BufReader::new(file));
    // Only a rebuild that ran elsewhere can differ by its path: then look for both paths
    // in the same pass that compares.
    if !at.same_path {
        cmp = cmp.looking_for(
            at.src_path.as_os_str().as_encoded_bytes(),
            at.work.as_os_str().as_encoded_bytes(),
        );
    }
    home.store.copy_verified(&original, &mut cmp)?;
    let Some(l) = cmp.finish().map_err(Error::io("read", rebuilt))? else {
        return Ok(None);
    };
    let mut d = l.difference;
    if l.path_found {
        d.hints.push(format!(
            "the output embeds its build path: the original holds {} and the rebuild ran at {} (namespaces were not available, so the rebuild could not run at the original path)",
            at.src_path.display(),
            at.work.display()
        ));
    }
    d.hints.extend(timestamp_hint(&l.window));
    Ok(Some(d))
}

fn compare_outputs(
    home: &Home,
    outputs: &[BuildOutputRow],
    where_: Where,
    rebuilt_ok: bool,
    objects: &mut Vec<(ObjectMeta, ObjKind)>,
    progress: &ProgressBar,
) -> Result<Compared> {
    let mut c = Compared {
        cmp: Vec::new(),
        outs: Vec::new(),
    };
    let (src_path, work) = (where_.src_path, where_.work);
    for o in outputs {
        let path = PathBuf::from(&o.path);
        let Some(rel) = inside(&path, src_path) else {
            c.cmp
                .push(compare(lossy(&path), o.object, Rebuilt::Outside));
            continue;
        };
        let rel = rel.as_path();
        let rebuilt_path = work.join(rel);
        if !rebuilt_ok || fs::symlink_metadata(&rebuilt_path).is_err() {
            c.cmp.push(compare(lossy(rel), o.object, Rebuilt::Missing));
            continue;
        }
        // A reproducing rebuild wrote the original's bytes: then nothing is copied.
        let like = home.ledger.object_meta(&o.object)?;
        let ing = tree::ingest_path_like(&home.store, &rebuilt_path, progress, like.as_ref())?;
        let mut out = compare(lossy(rel), o.object, Rebuilt::Produced(ing.root.id));
        if out.result == OutputCheck::Differs && ing.root_kind == ObjKind::Blob {
            out.difference = locate(home, o.object, &rebuilt_path, where_)?;
        }
        c.cmp.push(out);
        // Where the rebuild wrote it, as the rebuild saw it.
        let seen_at = if where_.same_path {
            src_path.join(rel)
        } else {
            rebuilt_path.clone()
        };
        c.outs.push(OutputRec {
            path: lossy(&seen_at),
            object: ing.root.id,
            sha256: ing.root.sha256,
            size: ing.root.size,
            kind: ing.root_kind,
            inside_source: true,
            ignored: git::is_ignored(work, rel),
        });
        objects.extend(ing.objects);
    }
    Ok(c)
}

/// `path` relative to the clone at `src`, when it is inside it: both compared with `..`
/// resolved (a build recorded before outputs were resolved may say `dist/../../x`).
fn inside(path: &Path, src: &Path) -> Option<PathBuf> {
    let p = crate::paths::normalize(path);
    let roots = [
        Some(crate::paths::normalize(src)),
        fs::canonicalize(src).ok(),
    ];
    roots
        .into_iter()
        .flatten()
        .find_map(|root| p.strip_prefix(&root).ok().map(Path::to_path_buf))
}

/// Covers each recorded output outside the clone with a scratch file or folder in the
/// rebuild's namespace, so the rebuild writes nothing outside its scratch tree; where
/// there is no namespace (or the output is gone, so nothing can be mounted over it),
/// the check is refused before anything runs.
fn cover_outside(
    orig: &BuildRow,
    outputs: &[BuildOutputRow],
    src_path: &Path,
    same: Option<&mut SamePath>,
    scratch: &Path,
) -> Result<()> {
    let outside: Vec<PathBuf> = outputs
        .iter()
        .map(|o| PathBuf::from(&o.path))
        .filter(|p| inside(p, src_path).is_none())
        .collect();
    if outside.is_empty() {
        return Ok(());
    }
    let named = outside
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let Some(same) = same else {
        return Err(Error::bad_input(
            format!("build {} declares outputs outside its clone ({named}), and this machine refused the mount namespace that keeps a rebuild from writing them; nothing was run", orig.id),
            "run the check where user namespaces are allowed (or as root)",
        ));
    };
    let dir = scratch.join("outside");
    fs::create_dir(&dir).map_err(Error::io("create", &dir))?;
    for (i, p) in outside.iter().enumerate() {
        let stand_in = dir.join(i.to_string());
        match fs::metadata(p) {
            Ok(m) if m.is_dir() => fs::create_dir(&stand_in),
            Ok(_) => fs::File::create(&stand_in).map(drop),
            Err(_) => {
                return Err(Error::bad_input(
                    format!("build {} declares output {}, outside its clone, which is not there now: the check mounts a scratch copy over it so the rebuild cannot write it, and cannot without it; nothing was run", orig.id, p.display()),
                    "put the output back (`cto-ledger restore OBJECT PATH` restores the recorded one), then check again",
                ))
            }
        }
        .map_err(Error::io("create", &stand_in))?;
        same.cover(p, &stand_in)
            .map_err(Error::io("prepare the rebuild's cover for", p))?;
    }
    Ok(())
}

/// The build `r` names, which must have succeeded (there is nothing else to reproduce).
fn succeeded_build(home: &Home, r: &str) -> Result<BuildRow> {
    let orig = find_build(home, r)?;
    if orig.status != BuildStatus::Succeeded {
        return Err(Error::bad_input(
            format!(
                "build {} did not succeed, so there is nothing to reproduce",
                orig.id
            ),
            "check a succeeded build",
        ));
    }
    Ok(orig)
}

/// What a rebuild did, for its `build` event.
struct CheckRun {
    ok: bool,
    same_path: bool,
    cwd: PathBuf,
    tools_at: PathBuf,
    source: crate::ledger::events::SourceRec,
    result: CheckResult,
    reason: Option<String>,
    compared: Compared,
}

/// The `build` event of a check: the rebuild as a build of its own, with what it found.
fn check_rec(
    ledger: &mut Ledger,
    orig: &BuildRow,
    ran: super::Ran,
    x: CheckRun,
) -> Result<BuildRec> {
    let tools = rebuild_tools(ledger, orig, &x.tools_at)?;
    let status = match (x.ok, ran.interrupted) {
        (true, _) => BuildStatus::Succeeded,
        (false, true) => BuildStatus::Interrupted,
        (false, false) => BuildStatus::Failed,
    };
    Ok(BuildRec {
        id: BuildId::new(),
        name: orig.name.clone(),
        status,
        reason: x.reason,
        source: x.source.id.clone(),
        source_after: None,
        commit: orig.commit_id.clone(),
        url: x.source.url.clone().or_else(|| orig.url.clone()),
        argv: orig.argv.clone(),
        cwd: lossy(&x.cwd),
        started: ran.started,
        finished: ran.finished,
        exit_code: ran.code,
        signal: ran.signal,
        tools,
        env: env_that_matters(&[]),
        stdout: Some(ran.stdout.id),
        stderr: Some(ran.stderr.id),
        outputs: if x.ok { x.compared.outs } else { Vec::new() },
        modified: Vec::new(),
        created: Vec::new(),
        check: Some(CheckRec {
            of: orig.id.clone(),
            result: x.result,
            outputs: x.compared.cmp,
            same_path: Some(x.same_path),
        }),
        objects: Vec::new(),
    })
}

pub(crate) fn check(home: &mut Home, r: &str, progress: &ProgressBar) -> Result<BuildOut> {
    let orig = succeeded_build(home, r)?;
    let src_path = PathBuf::from(
        home.ledger
            .source_path(&orig.source_id)?
            .unwrap_or_default(),
    );
    let cwd_rel = Path::new(&orig.cwd)
        .strip_prefix(&src_path)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let outputs = home.ledger.build_outputs(&orig.id)?;

    let scratch = tempfile::Builder::new()
        .prefix("build-check-")
        .tempdir_in(&home.dir)
        .map_err(Error::io("create scratch folder in", &home.dir))?;
    let work = scratch.path().join("src");
    git::checkout_clean(&src_path, &orig.commit_id, &work)?;
    let work = work.canonicalize().map_err(Error::io("resolve", &work))?;
    let before = snapshot(&home.store, &work, progress)?;
    // At the original path, in a mount namespace of the rebuild's own, when the machine
    // allows it; else in the scratch folder, and the result says so.
    let mut same =
        SamePath::new(&src_path, &work).map_err(Error::io("prepare the rebuild at", &src_path))?;
    let same_path = src_path.is_dir() && same.works();
    let can_cover = same_path.then_some(&mut same);
    cover_outside(&orig, &outputs, &src_path, can_cover, scratch.path())?;
    let under = |root: &Path| match cwd_rel.as_os_str().is_empty() {
        true => root.to_path_buf(),
        false => root.join(&cwd_rel),
    };
    let (cwd, confine) = if same_path {
        (under(&src_path), Some(&same))
    } else {
        (under(&work), None)
    };
    let ran = run_command(home, &orig.argv, &cwd, confine)?;
    let mut objects = before.objects;
    objects.push((ran.stdout, ObjKind::Blob));
    objects.push((ran.stderr, ObjKind::Blob));
    let ok = ran.code == Some(0) && ran.spawn_error.is_none() && !ran.interrupted;
    let where_ = Where {
        src_path: &src_path,
        work: &work,
        same_path,
    };
    let c = compare_outputs(home, &outputs, where_, ok, &mut objects, progress)?;
    let failed = (!ok).then(|| rebuild_failure(home, &ran, &orig.commit_id.to_string()));
    let (result, mut reason) = verdict(failed, &c.cmp);
    if !same_path && result != CheckResult::Reproduces {
        let why = format!(
            "the rebuild ran in {} (not at {}: this machine refused a mount namespace)",
            work.display(),
            src_path.display()
        );
        reason = Some(reason.map_or(why.clone(), |r| format!("{r}; {why}")));
    }
    let tools_at = under(&work);
    let x = CheckRun {
        ok,
        same_path,
        cwd,
        tools_at,
        source: before.rec.clone(),
        result,
        reason,
        compared: c,
    };
    let rec = check_rec(&mut home.ledger, &orig, ran, x)?;
    let rec = commit_build(home, rec, &[before.rec], objects)?;
    home.discard(scratch);
    let differences = differences(&rec);
    Ok(BuildOut {
        build: rec,
        differences,
        dirty_before: Vec::new(),
    })
}

/// The tools of the rebuild: its command's executable, and the original's other tools
/// under their names, found where they were recorded (else by name), resolved where the
/// rebuild runs.
fn rebuild_tools(
    ledger: &mut Ledger,
    orig: &BuildRow,
    cwd: &Path,
) -> Result<Vec<crate::ledger::events::ToolRec>> {
    let argv0 = super::base_name(&orig.argv[0]);
    let named = orig
        .tools
        .iter()
        .filter(|t| t.name != argv0)
        .map(|t| (t.name.clone(), t.path.as_deref().unwrap_or(&t.name)));
    super::tools(ledger, &orig.argv[0], named, cwd)
}

/// Every located difference of a check, for `--json`: one entry per differing output.
fn differences(rec: &BuildRec) -> Vec<serde_json::Value> {
    let outputs = rec.check.iter().flat_map(|c| &c.outputs);
    outputs
        .filter_map(|o| {
            let d = o.difference.as_ref()?;
            let mut v = serde_json::to_value(d).expect("serialises");
            v["path"] = serde_json::Value::String(o.path.clone());
            Some(v)
        })
        .collect()
}

/// Why the rebuild failed, readably: how it ended, the last lines it printed, and what a
/// clean checkout implies.
fn rebuild_failure(home: &Home, ran: &super::Ran, commit: &str) -> String {
    let how = super::failure(ran).unwrap_or_else(|| "the rebuild failed".into());
    let tail = [ran.stderr.id, ran.stdout.id]
        .iter()
        .filter_map(|id| home.store.get_verified(id).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .find(|t| !t.trim().is_empty())
        .map(|t| {
            let lines: Vec<&str> = t.lines().filter(|l| !l.trim().is_empty()).collect();
            let last = &lines[lines.len().saturating_sub(10)..];
            format!("; its last lines:\n    {}", last.join("\n    "))
        })
        .unwrap_or_default();
    let short = &commit[..12.min(commit.len())];
    format!(
        "{}{tail}\n  hint: a check rebuilds from a clean checkout of commit {short}, without untracked files, so inputs such as node_modules must come from the recorded command itself (record e.g. `sh -c 'npm ci && npm run build'`)",
        how.replacen("the command", "the rebuild", 1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> ObjectId {
        ObjectId([b; 32])
    }

    #[test]
    fn same_bytes_reproduce_and_outside_outputs_are_not_compared() {
        let cmp = vec![
            compare("dist/ca".into(), id(1), Rebuilt::Produced(id(1))),
            compare("/elsewhere/log".into(), id(2), Rebuilt::Outside),
        ];
        assert_eq!(cmp[0].result, OutputCheck::Same);
        assert_eq!(cmp[1].result, OutputCheck::NotChecked);
        assert_eq!(verdict(None, &cmp), (CheckResult::Reproduces, None));
    }

    #[test]
    fn differing_or_missing_outputs_diverge_and_are_named() {
        let cmp = vec![
            compare("a".into(), id(1), Rebuilt::Produced(id(9))),
            compare("b".into(), id(2), Rebuilt::Missing),
            compare("c".into(), id(3), Rebuilt::Produced(id(3))),
        ];
        let (r, why) = verdict(None, &cmp);
        assert_eq!(r, CheckResult::Diverges);
        assert_eq!(why.as_deref(), Some("outputs differ: a, b"));
        assert_eq!(cmp[0].rebuilt, Some(id(9)));
    }

    #[test]
    fn nothing_comparable_diverges_and_a_failed_rebuild_fails() {
        let outside = vec![compare("/x".into(), id(1), Rebuilt::Outside)];
        assert_eq!(verdict(None, &outside).0, CheckResult::Diverges);
        let same = vec![compare("a".into(), id(1), Rebuilt::Produced(id(1)))];
        let (r, why) = verdict(Some("exit 1".into()), &same);
        assert_eq!((r, why.as_deref()), (CheckResult::Failed, Some("exit 1")));
    }
}
