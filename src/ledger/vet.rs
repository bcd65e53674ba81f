//! What events claim about objects, checked before the events are trusted: every object
//! an event names is recorded by it or by an event before it, as the kind and with the
//! digests the event says; no event records a known object as something else; and a
//! tree's entries are recorded objects of the kinds and sizes the tree gives.
//!
//! `pull` vets a remote's events before it fetches or commits anything, `audit --remote`
//! vets the whole remote journal on its own terms, and `audit` the local one.

use std::collections::HashMap;

use super::events::{Body, BuildRec, Event, ObjRec, SourceRec};
use super::Ledger;
use crate::error::Result;
use crate::id::{ObjectId, Sha256Digest};
use crate::store::tree::{Kind, ObjKind, Tree};

/// Object records seen so far, by the event that first gave each.
pub(crate) struct Vetting<'a> {
    /// Objects recorded before the first vetted event (the local ledger), if any.
    earlier: Option<&'a Ledger>,
    recorded: HashMap<ObjectId, (ObjRec, u64)>,
}

impl<'a> Vetting<'a> {
    /// Vets events that follow the local ledger's own.
    pub(crate) fn after(ledger: &'a Ledger) -> Vetting<'a> {
        Vetting {
            earlier: Some(ledger),
            recorded: HashMap::new(),
        }
    }

    /// Vets a journal from its first event.
    pub(crate) fn from_start() -> Vetting<'static> {
        Vetting {
            earlier: None,
            recorded: HashMap::new(),
        }
    }

    /// What is recorded about `id`, and by which event (0: before the vetted ones).
    pub(crate) fn get(&self, id: &ObjectId) -> Result<Option<(ObjRec, u64)>> {
        if let Some(r) = self.recorded.get(id) {
            return Ok(Some(*r));
        }
        let Some(l) = self.earlier else {
            return Ok(None);
        };
        Ok(l.object(id)?.map(|o| {
            let rec = ObjRec {
                id: o.id,
                sha256: o.sha256,
                size: o.size,
                kind: o.kind,
            };
            (rec, 0)
        }))
    }

    /// The problems with one event; its records are remembered for the events after it.
    pub(crate) fn event(&mut self, e: &Event) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        for o in e.body.objects() {
            match self.get(&o.id)? {
                Some((known, _)) if known == *o => {}
                Some((known, seq)) => problems.push(format!(
                    "records object {} as {}, but {} recorded it as {}",
                    o.id,
                    describe(o),
                    by(seq),
                    describe(&known)
                )),
                None => {
                    self.recorded.insert(o.id, (*o, e.seq));
                }
            }
        }
        for r in e.body.references() {
            let Some((known, _)) = self.get(&r.id)? else {
                problems.push(format!(
                    "names object {} ({}) but neither it nor an event before it records that object",
                    r.id, r.role
                ));
                continue;
            };
            let mut wrong = Vec::new();
            if r.kind.is_some_and(|k| k != known.kind) {
                wrong.push(format!(
                    "is a {}, not a {}",
                    known.kind.as_str(),
                    r.kind.map_or("", |k| k.as_str())
                ));
            }
            if r.size.is_some_and(|s| s != known.size) {
                wrong.push(format!(
                    "has {} bytes, not {}",
                    known.size,
                    r.size.unwrap_or(0)
                ));
            }
            if r.sha256.is_some_and(|s| s != known.sha256) {
                wrong.push(format!(
                    "has SHA-256 {}, not {}",
                    known.sha256,
                    r.sha256.map(|s| s.to_string()).unwrap_or_default()
                ));
            }
            if !wrong.is_empty() {
                problems.push(format!(
                    "names object {} ({}), but the recorded object {}",
                    r.id,
                    r.role,
                    wrong.join(" and ")
                ));
            }
        }
        Ok(problems)
    }

    /// The problems with the entries of tree `t` ([`tree_problems`]), against the
    /// records seen so far.
    pub(crate) fn tree(&self, t: &Tree) -> Result<Vec<String>> {
        tree_problems(t, &|id| {
            Ok(self.get(id)?.map(|(o, _)| Record {
                kind: o.kind,
                size: o.size,
                sha256: Some(o.sha256),
            }))
        })
    }
}

/// What a journal records about one object, as a tree's entry is held to it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    pub kind: ObjKind,
    pub size: u64,
    /// `None` when the recorded text is not a digest (itself a finding elsewhere).
    pub sha256: Option<crate::id::Sha256Digest>,
}

/// The problems with the entries of tree `t`: each file or folder must be a recorded
/// object (`recorded` says what is) of its kind, size and SHA-256.
pub(crate) fn tree_problems(
    t: &Tree,
    recorded: &dyn Fn(&ObjectId) -> Result<Option<Record>>,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for entry in &t.entries {
        let want = match entry.kind {
            Kind::File => ObjKind::Blob,
            Kind::Dir => ObjKind::Tree,
            _ => continue,
        };
        let name = String::from_utf8_lossy(&entry.name);
        let Some(id) = entry.object else {
            problems.push(format!("entry `{name}` names no object"));
            continue;
        };
        match recorded(&id)? {
            None => problems.push(format!(
                "entry `{name}` names object {id}, which no event records"
            )),
            Some(r)
                if r.kind != want
                    || r.size != entry.size
                    || (entry.sha256.is_some() && entry.sha256 != r.sha256) =>
            {
                problems.push(format!(
                    "entry `{name}` is a {} of {} bytes, but its object {id} is recorded as a {} of {} bytes",
                    want.as_str(),
                    entry.size,
                    r.kind.as_str(),
                    r.size
                ))
            }
            Some(_) => {}
        }
    }
    Ok(problems)
}

fn describe(o: &ObjRec) -> String {
    format!(
        "a {} of {} bytes with SHA-256 {}",
        o.kind.as_str(),
        o.size,
        o.sha256
    )
}

fn by(seq: u64) -> String {
    match seq {
        0 => "this ledger".to_string(),
        n => format!("event {n}"),
    }
}

/// An object an event names outside its object records, with what the event says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    pub id: ObjectId,
    /// What the event names it as, for messages (`the admitted file`).
    pub role: &'static str,
    pub kind: Option<ObjKind>,
    pub sha256: Option<Sha256Digest>,
    pub size: Option<u64>,
}

impl Reference {
    fn to(id: ObjectId, role: &'static str, kind: Option<ObjKind>) -> Reference {
        Reference {
            id,
            role,
            kind,
            sha256: None,
            size: None,
        }
    }
}

impl Body {
    /// Every object the event names in its fields (not its object records): each must be
    /// recorded by this event or one before it, as what the field says it is.
    pub fn references(&self) -> Vec<Reference> {
        use ObjKind::{Blob, Tree};
        let r = Reference::to;
        let mut out = Vec::new();
        match self {
            Body::Init { .. }
            | Body::Revocation(_)
            | Body::Key(_)
            | Body::KeyRevocation(_)
            | Body::Witness(_)
            | Body::ModelAdmission(_) => {}
            Body::Ingest(i) => out.extend(
                i.items
                    .iter()
                    .map(|it| r(it.object, "an ingested item", Some(it.kind))),
            ),
            Body::Source(s) => source_references(s, &mut out),
            Body::Admission(a) => {
                out.push(Reference {
                    sha256: Some(a.sha256),
                    size: Some(a.size),
                    ..r(a.object, "the admitted file", Some(Blob))
                });
                out.extend(
                    a.allowed_modified
                        .iter()
                        .filter_map(|c| c.object)
                        .map(|o| r(o, "an allowed change", None)),
                );
            }
            Body::Refusal(f) => {
                out.extend(f.object.map(|o| Reference {
                    sha256: f.sha256,
                    ..r(o, "the refused file", Some(Blob))
                }));
                if let Some(s) = &f.source {
                    source_references(s, &mut out);
                }
            }
            Body::RunStart(x) => {
                out.push(r(x.fixture_tree, "the fixture's tree", Some(Tree)));
                out.push(r(x.provider_object, "the provider", Some(Blob)));
                out.extend(x.script.map(|o| r(o, "the model's script", Some(Blob))));
            }
            Body::Run(x) => {
                let files = [
                    (x.provider_object, "the provider"),
                    (x.config_object, "the run's config.json"),
                    (x.report_object, "the run's report.json"),
                ];
                out.extend(
                    files
                        .into_iter()
                        .filter_map(|(o, role)| Some(r(o?, role, Some(Blob)))),
                );
                out.push(r(x.tree_object, "the run folder's tree", Some(Tree)));
                out.extend(
                    x.artifacts
                        .iter()
                        .map(|a| r(a.object, "a run artifact", None)),
                );
            }
            Body::Build(b) => build_references(b, &mut out),
            Body::Policy(p) => out.extend(p.object.map(|o| Reference {
                sha256: p.sha256,
                size: p.size,
                ..r(o, "the policy", Some(Blob))
            })),
        }
        let decided = match self {
            Body::Admission(a) => &a.policies[..],
            Body::Refusal(f) => &f.policies[..],
            Body::Run(x) => &x.policies[..],
            _ => &[],
        };
        out.extend(decided.iter().filter_map(|d| {
            Some(Reference {
                sha256: Some(d.input),
                ..r(d.input_object?, "a policy's input document", Some(Blob))
            })
        }));
        out
    }
}

fn source_references(s: &SourceRec, out: &mut Vec<Reference>) {
    out.push(Reference::to(
        s.snapshot,
        "the clone's snapshot",
        Some(ObjKind::Tree),
    ));
    out.extend(
        s.changes
            .iter()
            .filter_map(|c| c.object)
            .map(|o| Reference::to(o, "a changed path's contents", None)),
    );
}

fn build_references(b: &BuildRec, out: &mut Vec<Reference>) {
    let r = Reference::to;
    let logs = [
        (b.stdout, "the build's stdout"),
        (b.stderr, "the build's stderr"),
    ];
    out.extend(
        logs.into_iter()
            .filter_map(|(o, role)| Some(r(o?, role, Some(ObjKind::Blob)))),
    );
    out.extend(b.outputs.iter().map(|o| Reference {
        sha256: Some(o.sha256),
        size: Some(o.size),
        ..r(o.object, "a build output", Some(o.kind))
    }));
    for m in &b.modified {
        let both = [m.old_object, m.new_object];
        out.extend(
            both.into_iter()
                .flatten()
                .map(|o| r(o, "a file the build modified", None)),
        );
    }
    for c in b.check.iter().flat_map(|c| c.outputs.iter()) {
        let both = [c.original, c.rebuilt];
        out.extend(
            both.into_iter()
                .flatten()
                .map(|o| r(o, "a checked output", None)),
        );
    }
}
