//! The journal's event vocabulary. An event is serialised as canonical JSON
//! (RFC 8785); the relational tables are projections of these records.

use serde::{Deserialize, Serialize};

use crate::id::{ObjectId, ObjectMeta, Sha256Digest};
use crate::store::tree::ObjKind;

/// Who wrote an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user: String,
    pub uid: u32,
    pub host: String,
}

impl Actor {
    pub fn current() -> Actor {
        let uid = rustix::process::getuid().as_raw();
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| format!("uid{uid}"));
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Actor { user, uid, host }
    }

    pub fn display(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub time: String,
    pub actor: Actor,
    #[serde(flatten)]
    pub body: Body,
}

/// An object the event names, with both digests, so the `objects` table can be
/// rebuilt from the journal alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjRec {
    pub id: ObjectId,
    pub sha256: Sha256Digest,
    pub size: u64,
    pub kind: ObjKind,
}

impl ObjRec {
    pub fn new(m: ObjectMeta, kind: ObjKind) -> Self {
        ObjRec {
            id: m.id,
            sha256: m.sha256,
            size: m.size,
            kind,
        }
    }
    pub fn meta(&self) -> ObjectMeta {
        ObjectMeta {
            id: self.id,
            sha256: self.sha256,
            size: self.size,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    Init { format: u32 },
    Ingest(IngestRec),
    Source(SourceRec),
    Admission(AdmissionRec),
    Refusal(RefusalRec),
    ModelAdmission(ModelAdmissionRec),
    Revocation(RevocationRec),
    Run(RunRec),
    Build(BuildRec),
}

impl Body {
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Init { .. } => "init",
            Body::Ingest(_) => "ingest",
            Body::Source(_) => "source",
            Body::Admission(_) => "admission",
            Body::Refusal(_) => "refusal",
            Body::ModelAdmission(_) => "model_admission",
            Body::Revocation(_) => "revocation",
            Body::Run(_) => "run",
            Body::Build(_) => "build",
        }
    }

    /// Every object record the event carries: together, the records of a whole journal
    /// name every object it needs (an event lists the objects that were new to it).
    pub fn objects(&self) -> Vec<&ObjRec> {
        match self {
            Body::Init { .. } | Body::ModelAdmission(_) | Body::Revocation(_) => Vec::new(),
            Body::Ingest(r) => r.objects.iter().collect(),
            Body::Source(s) => s.objects.iter().collect(),
            Body::Admission(a) => a.objects.iter().collect(),
            Body::Refusal(r) => r
                .objects
                .iter()
                .chain(r.source.iter().flat_map(|s| s.objects.iter()))
                .collect(),
            Body::Run(r) => r.objects.iter().collect(),
            Body::Build(b) => b.objects.iter().collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestItem {
    pub path: String,
    pub object: ObjectId,
    pub kind: ObjKind,
    /// What the user says it is (`--kind`: source, binary, config, run-artifact, ...).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub artifact_kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestRec {
    pub items: Vec<IngestItem>,
    pub objects: Vec<ObjRec>,
}

/// A path in a clone that differs from its commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRec {
    pub path: String,
    /// `modified`, `deleted`, `typechange`, `renamed`, `added` (staged new file) or `untracked`.
    pub status: String,
    /// Contents on disk when recorded, when there are any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object: Option<ObjectId>,
}

impl ChangeRec {
    /// Untracked files do not change what the commit means; everything else does.
    pub fn is_tracked_change(&self) -> bool {
        self.status != "untracked"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRec {
    pub id: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub url: Option<String>,
    pub commit: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub branch: Option<String>,
    pub tree: String,
    pub snapshot: ObjectId,
    pub changes: Vec<ChangeRec>,
    pub objects: Vec<ObjRec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionRec {
    pub id: String,
    pub name: String,
    pub object: ObjectId,
    pub sha256: Sha256Digest,
    pub size: u64,
    pub path: String,
    /// The pin exactly as typed, the commit it resolved to and the recorded source.
    /// Absent only for the fake provider shipped with cto-ledger (scope `fake-lane`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source: Option<String>,
    /// `any`, or `fake-lane` for an admission that only the fake Stage 2 lane may use.
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub build: Option<String>,
    pub allowed_modified: Vec<ChangeRec>,
    pub decisions: Vec<String>,
    pub objects: Vec<ObjRec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalRec {
    pub id: String,
    /// What was refused: `admission` or `model_admission`.
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object: Option<ObjectId>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<Sha256Digest>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pin: Option<String>,
    /// The clone as it was when the admission was refused, recorded with the refusal.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source: Option<SourceRec>,
    /// A stable code (`pin_not_head`, `pin_unknown`, `pin_ambiguous`, `source_modified`, ...).
    pub reason: String,
    pub message: String,
    pub objects: Vec<ObjRec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelAdmissionRec {
    pub id: String,
    pub provider: String,
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRec {
    pub id: String,
    pub target: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRec {
    pub path: String,
    pub object: ObjectId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRec {
    pub id: String,
    pub run_kind: String,
    pub fixture: String,
    pub lane: String,
    /// The report's final status (`passed`, `failed`, `blocked`, `provider_timeout`, ...).
    pub status: String,
    /// `pass` or `fail`: only a fixture test pass is a pass.
    pub verdict: String,
    /// Whether the provider process was (about to be) started: every gate had passed.
    pub provider_started: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub provider_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub provider_object: Option<ObjectId>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub provider_admission: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub model_admission: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub config_object: Option<ObjectId>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub report_object: Option<ObjectId>,
    pub tree_object: ObjectId,
    pub run_dir: String,
    pub started: String,
    pub finished: String,
    pub artifacts: Vec<ArtifactRec>,
    pub objects: Vec<ObjRec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRec {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvRec {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRec {
    /// Absolute path where the build wrote it.
    pub path: String,
    pub object: ObjectId,
    pub sha256: Sha256Digest,
    pub size: u64,
    pub kind: ObjKind,
    pub inside_source: bool,
    pub ignored: bool,
}

/// A tracked file the build changed, with its contents before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModifiedRec {
    pub path: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub old_object: Option<ObjectId>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub new_object: Option<ObjectId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutputRec {
    /// Path relative to the source root.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub original: Option<ObjectId>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rebuilt: Option<ObjectId>,
    /// `same`, `differs`, `missing` (not produced by the rebuild) or `not_checked` (outside the source tree).
    pub result: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRec {
    /// The build that was re-run.
    pub of: String,
    /// `reproduces`, `diverges` or `failed` (the rebuild itself failed).
    pub result: String,
    pub outputs: Vec<CheckOutputRec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRec {
    pub id: String,
    /// What the build makes, as the user named it (`--name ca`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    /// `succeeded`, `failed` or `interrupted`. Only a succeeded build has outputs.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_after: Option<String>,
    pub commit: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub url: Option<String>,
    pub argv: Vec<String>,
    pub cwd: String,
    pub started: String,
    pub finished: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub signal: Option<i32>,
    pub tools: Vec<ToolRec>,
    pub env: Vec<EnvRec>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stdout: Option<ObjectId>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stderr: Option<ObjectId>,
    pub outputs: Vec<OutputRec>,
    pub modified: Vec<ModifiedRec>,
    pub created: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub check: Option<CheckRec>,
    pub objects: Vec<ObjRec>,
}

/// A fresh node id: `prefix_` and 16 hex digits that no two calls share.
pub fn new_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = blake3::Hasher::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.update(&now.as_nanos().to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let mut rnd = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut rnd);
    }
    h.update(&rnd);
    format!("{prefix}_{}", &h.finalize().to_hex()[..16])
}
