//! `export REF --bundle FILE`: a run's (or an admission's) evidence, assembled from the
//! ledger into one tar file (see [`super`] for the layout and what binds it).

use std::cell::RefCell;
use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::changes::{self, Recording};
use super::*;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::{Revocable, RunId, Sha256Digest};
use crate::ledger::query::Node;
use crate::ledger::tlog::CheckpointRow;
use crate::lineage::attest;
use crate::offline::proof::Proof;
use crate::report::Report;
use crate::sign::dsse::Envelope;
use crate::sign::keys::SecretKey;
use crate::tlog;

/// What a bundle is of, with the journal events it proves.
pub(crate) struct Plan {
    node: Node,
    subject: String,
    /// Proof name and event number, in the order the log holds them.
    events: Vec<(&'static str, u64)>,
    /// Events the checkpoint must also cover: the revocations of the admissions proven,
    /// so their proofs carry them.
    revocations: Vec<u64>,
    /// A run's report (parsed, and its bytes), read once.
    report: Option<(Report, Vec<u8>)>,
    /// What `--withhold` named, checked.
    withhold: Vec<String>,
}

impl Plan {
    /// The bundle `REF` asks for (a run, or an admission: a file's newest one), with
    /// `withhold` checked before anything is signed.
    pub(crate) fn of(home: &Home, node: Node, withhold: &[String]) -> Result<Plan> {
        let l = &home.ledger;
        let node = match node {
            Node::Object(o) => match l.admissions_of_object(&o)?.pop() {
                Some(v) => Node::Admission(v.admission.id),
                None => return Err(not_bundled(&node.label())),
            },
            n => n,
        };
        let seq_of = |n: &Node| -> Result<u64> {
            l.event_of(n)?.ok_or_else(|| Error::Integrity {
                message: format!("{} has no journal event", n.label()),
            })
        };
        let mut events = Vec::new();
        // The admissions proven, whose revocations the checkpoint must cover.
        let mut revocable = Vec::new();
        let mut report = None;
        let subject = match &node {
            Node::Run(id) => {
                let run = run_row(home, id)?;
                report = report_of(home, &run)?;
                if let Some(s) = l.run_start_seq(id)? {
                    events.push((RUN_START, s));
                }
                events.push((RUN, seq_of(&node)?));
                if let Some(a) = &run.provider_admission {
                    events.push((PROVIDER_ADMISSION, seq_of(&Node::Admission(a.clone()))?));
                    revocable.push(Revocable::Admission(a.clone()));
                }
                if let Some(m) = &run.model_admission {
                    events.push((MODEL_ADMISSION, seq_of(&Node::ModelAdmission(m.clone()))?));
                    revocable.push(Revocable::Model(m.clone()));
                }
                format!("run:{id}")
            }
            Node::Admission(id) => {
                events.push((ADMISSION, seq_of(&node)?));
                revocable.push(Revocable::Admission(id.clone()));
                format!("admission:{id}")
            }
            other => return Err(not_bundled(&other.label())),
        };
        events.sort_by_key(|(_, s)| *s);
        let mut revocations = Vec::new();
        for t in &revocable {
            if let Some(r) = l.revocation_of(t)? {
                revocations.push(r.seq);
            }
        }
        let plan = Plan {
            node,
            subject,
            events,
            revocations,
            report,
            withhold: withhold.to_vec(),
        };
        plan.check_withhold()?;
        Ok(plan)
    }

    /// The smallest log that holds every event the bundle proves, and the revocations
    /// of what it proves.
    pub(crate) fn needs(&self) -> u64 {
        let events = self.events.iter().map(|(_, s)| *s);
        events
            .chain(self.revocations.iter().copied())
            .max()
            .unwrap_or(0)
    }

    /// What `--withhold` may name: the run's evidence members and the diff.
    fn withholdable(&self) -> Vec<String> {
        let Some((report, _)) = &self.report else {
            return Vec::new();
        };
        let mut out: Vec<String> = report
            .evidence
            .iter()
            .chain(report.config.as_ref())
            .map(|e| evidence_member(&e.path))
            .collect();
        if report
            .judge
            .as_ref()
            .is_some_and(|j| j.workspace_tree.is_some())
        {
            out.push(DIFF.to_string());
        }
        out
    }

    /// Refuses a `--withhold` that names nothing withholdable.
    fn check_withhold(&self) -> Result<()> {
        let can = self.withholdable();
        for w in &self.withhold {
            let named = [w.clone(), evidence_member(w)];
            if named.iter().any(|n| can.contains(n)) {
                continue;
            }
            if w == "report.json" || w == REPORT || !withholdable(w) && role_of(w).is_some() {
                return Err(Error::bad_input(
                    format!("--withhold {w}: it is what the rest is checked by"),
                    "only evidence files and the diff can be withheld; report.json binds their digests to the signed run",
                ));
            }
            return Err(Error::bad_input(
                format!("--withhold {w}: the bundle has no such evidence"),
                format!("withhold one of: {}", can.join(", ")),
            ));
        }
        Ok(())
    }
}

/// The report a run recorded (parsed, and its bytes), if it recorded one.
fn report_of(home: &Home, run: &crate::ledger::RunRow) -> Result<Option<(Report, Vec<u8>)>> {
    let Some(object) = &run.report_object else {
        return Ok(None);
    };
    let bytes = home.store.get_verified(object)?;
    serde_json::from_slice(&bytes)
        .map(|r| Some((r, bytes)))
        .map_err(|e| Error::Integrity {
            message: format!(
                "run {}: its report.json ({object}) is not a report: {e}",
                run.id
            ),
        })
}

fn not_bundled(what: &str) -> Error {
    Error::bad_input(
        format!("{what} is neither a run nor an admitted file"),
        "bundle a run (`run:ID`, see `cto-ledger runs`) or an admission (`adm_…`, or an admitted file)",
    )
}

fn run_row(home: &Home, id: &RunId) -> Result<crate::ledger::RunRow> {
    home.ledger.run(id)?.ok_or_else(|| Error::NotFound {
        what: "run",
        input: id.to_string(),
        hint: None,
    })
}

struct Assembly {
    members: Vec<(String, Vec<u8>, Role)>,
    withheld: Vec<Member>,
}

impl Assembly {
    fn add(&mut self, path: impl Into<String>, bytes: Vec<u8>, role: Role) {
        self.members.push((path.into(), bytes, role));
    }
}

/// The bundle's bytes, and the paths withheld.
pub(crate) fn bundle(
    home: &Home,
    plan: &Plan,
    checkpoint: &CheckpointRow,
    key: &SecretKey,
) -> Result<(Vec<u8>, Manifest)> {
    let l = &home.ledger;
    let mut a = Assembly {
        members: Vec::new(),
        withheld: Vec::new(),
    };
    let keyid = key.public().keyid();
    attestations(home, &plan.node, key, &mut a)?;
    // The log: one checkpoint, and each event's inclusion proof against it.
    a.add(
        CHECKPOINT,
        checkpoint.note.clone().into_bytes(),
        Role::Checkpoint,
    );
    for (name, seq) in &plan.events {
        let proof = tlog::prove_inclusion(l, *seq, Some(checkpoint.size))?;
        let Proof::Inclusion(p) = &proof else {
            unreachable!("an inclusion proof")
        };
        a.add(
            proof_text(name),
            tlog_proof(p)?.into_bytes(),
            Role::TlogProof,
        );
        a.add(
            proof_json(name),
            serde_json::to_vec_pretty(&proof).expect("proofs serialise"),
            Role::Proof,
        );
    }
    if let (Node::Run(id), Some(report)) = (&plan.node, &plan.report) {
        run_evidence(home, id, report, &mut a)?;
    }
    a.add(
        format!("keys/{}.pem", &keyid[..16]),
        key.public().pem().into_bytes(),
        Role::Key,
    );
    withhold_members(&mut a, &plan.withhold);

    let mut files: Vec<Member> = a
        .members
        .iter()
        .map(|(path, bytes, role)| Member {
            path: path.clone(),
            role: role.clone(),
            size: bytes.len() as u64,
            sha256: Sha256Digest::of(bytes).to_string(),
            withheld: false,
        })
        .chain(a.withheld)
        .collect();
    files.sort_by(|x, y| x.path.cmp(&y.path));
    let manifest = Manifest {
        format: FORMAT.into(),
        subject: plan.subject.clone(),
        created: crate::ledger::now(),
        log: LogInfo {
            origin: tlog::origin(l)?,
            size: checkpoint.size,
            keyid,
        },
        files,
    };
    let mut members = vec![(
        MANIFEST.to_string(),
        serde_json::to_vec_pretty(&manifest).expect("manifests serialise"),
    )];
    a.members.sort_by(|x, y| x.0.cmp(&y.0));
    members.extend(a.members.into_iter().map(|(p, b, _)| (p, b)));
    let mtime = chrono::Utc::now().timestamp().max(0) as u64;
    let tar = tar_of(&members, mtime).map_err(|e| Error::Integrity {
        message: format!("cannot assemble the bundle: {e}"),
    })?;
    Ok((tar, manifest))
}

/// The signed statements, each as a DSSE envelope and as a Sigstore bundle.
fn attestations(home: &Home, node: &Node, key: &SecretKey, a: &mut Assembly) -> Result<()> {
    let keyid = key.public().keyid();
    for (i, s) in attest::statements(&home.ledger, &home.store, node)?
        .iter()
        .enumerate()
    {
        let env = Envelope::sign(&attest::payload(s), key);
        let name = statement_name(s["predicateType"].as_str().unwrap_or_default());
        let stem = format!("attestations/{}-{name}", i + 1);
        let mut line = serde_json::to_vec(&env).expect("envelopes serialise");
        line.push(b'\n');
        a.add(format!("{stem}.dsse.json"), line, Role::Attestation);
        a.add(
            format!("{stem}.sigstore.json"),
            serde_json::to_vec_pretty(&sigstore_bundle(&env, &keyid)).expect("bundles serialise"),
            Role::SigstoreBundle,
        );
    }
    Ok(())
}

/// A short name for a statement's predicate, for its file name.
pub(crate) fn statement_name(predicate_type: &str) -> &'static str {
    match predicate_type {
        attest::TEST_RESULT => "test-result",
        attest::VSA => "verification-summary",
        _ => "provenance",
    }
}

/// An inclusion proof in the C2SP `tlog-proof` text format. The log's leaves are the
/// journal's chain hashes, so the extra data is the entry's hash (the record hashed into
/// the leaf); the entry itself travels in the JSON proof beside it.
fn tlog_proof(p: &crate::offline::proof::InclusionProof) -> Result<String> {
    let entry = hex::decode(&p.entry.hash).map_err(|_| Error::Integrity {
        message: format!("event {}: its recorded hash is not hex", p.entry.seq),
    })?;
    let mut out = format!(
        "{TLOG_PROOF}\nextra {}\nindex {}\n",
        B64.encode(entry),
        p.leaf_index
    );
    for h in &p.hashes {
        out.push_str(h);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&p.checkpoint);
    Ok(out)
}

/// The run's report, every evidence file it lists, and the diff of the provider's
/// changes with the objects that bind it.
fn run_evidence(
    home: &Home,
    id: &RunId,
    (report, bytes): &(Report, Vec<u8>),
    a: &mut Assembly,
) -> Result<()> {
    a.add(REPORT, bytes.clone(), Role::Report);
    let mut seen = BTreeMap::new();
    for e in report.evidence.iter().chain(report.config.as_ref()) {
        if seen.insert(e.path.clone(), ()).is_none() {
            let bytes = home.store.get_verified(&e.blake3)?;
            a.add(evidence_member(&e.path), bytes, Role::Evidence);
        }
    }
    let trees = report
        .judge
        .as_ref()
        .and_then(|j| Some((j.fixture_tree, j.workspace_tree?)));
    if let Some((fixture, workspace)) = trees {
        let objs = Recording {
            store: &home.store,
            read: RefCell::new(BTreeMap::new()),
        };
        let text =
            changes::diff(&objs, &fixture, &workspace, &report.workspace_changes).map_err(|e| {
                Error::Integrity {
                    message: format!("run {id}: the diff of its workspace: {e}"),
                }
            })?;
        a.add(DIFF, text.into_bytes(), Role::Diff);
        for (id, bytes) in objs.read.into_inner() {
            a.add(changes::member(&id), bytes, Role::Object);
        }
    }
    Ok(())
}

/// Moves the members `--withhold` names (checked by [`Plan::check_withhold`]) out of the
/// bundle, keeping their digests. Withholding the diff withholds the objects that bind it.
fn withhold_members(a: &mut Assembly, withhold: &[String]) {
    for w in withhold {
        let named = [w.clone(), evidence_member(w)];
        let Some(i) = a
            .members
            .iter()
            .position(|m| named.contains(&m.0) && withholdable(&m.0))
        else {
            continue;
        };
        let (path, bytes, role) = a.members.remove(i);
        if role == Role::Diff {
            a.members.retain(|m| m.2 != Role::Object);
        }
        a.withheld.push(Member {
            path,
            role,
            size: bytes.len() as u64,
            sha256: Sha256Digest::of(&bytes).to_string(),
            withheld: true,
        });
    }
}
