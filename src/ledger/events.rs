//! The journal's event vocabulary. An event is serialised as canonical JSON
//! (RFC 8785); the relational tables are projections of these records.

use serde::{Deserialize, Serialize};

use crate::id::{
    AdmissionId, BuildId, CommitId, ModelAdmissionId, ObjectId, ObjectMeta, RefusalId, Revocable,
    RevocationId, RunId, Sha256Digest, SourceId,
};
use crate::state::{
    AdmissionScope, BuildStatus, ChangeStatus, CheckResult, Lane, OutputCheck, PolicyPoint,
    PolicyResult, RefusalReason, RefusalSubject, RunStatus, Verdict,
};
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
        let user = crate::env::get("USER")
            .or_else(|| crate::env::get("LOGNAME"))
            .or_else(|| passwd_name(uid))
            .unwrap_or_else(|| format!("uid{uid}"));
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Actor { user, uid, host }
    }

    pub fn display(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }
}

/// The user name `/etc/passwd` gives `uid` (what `id -un` prints).
/// The user database's name for `uid`, through NSS (`getpwuid_r`: /etc/passwd, LDAP,
/// systemd-userdb alike).
fn passwd_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 16 << 10];
    // SAFETY: an all-zero `passwd` is a valid value for getpwuid_r to fill.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: `pw`, `buf` (with its length) and `found` outlive the call; on success
    // `found` points at `pw`, whose strings point into `buf`.
    let rc =
        unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() || pw.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name is a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
    Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty())
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
    RunStart(RunStartRec),
    Run(RunRec),
    Build(BuildRec),
    Key(KeyRec),
    KeyRevocation(KeyRevocationRec),
    Witness(WitnessRec),
    Policy(PolicyRec),
}

impl Body {
    /// What a revocation of this event's subject targets: an admission or a model
    /// admission (nothing else is revocable).
    pub fn revocable(&self) -> Option<Revocable> {
        match self {
            Body::Admission(a) => Some(Revocable::Admission(a.id.clone())),
            Body::ModelAdmission(m) => Some(Revocable::Model(m.id.clone())),
            _ => None,
        }
    }

    /// Every event kind, as `kind` returns them.
    pub const KINDS: &'static [&'static str] = &[
        "init",
        "ingest",
        "source",
        "admission",
        "refusal",
        "model_admission",
        "revocation",
        "run_start",
        "run",
        "build",
        "key",
        "key_revocation",
        "witness",
        "policy",
    ];

    pub fn kind(&self) -> &'static str {
        match self {
            Body::Init { .. } => "init",
            Body::Ingest(_) => "ingest",
            Body::Source(_) => "source",
            Body::Admission(_) => "admission",
            Body::Refusal(_) => "refusal",
            Body::ModelAdmission(_) => "model_admission",
            Body::Revocation(_) => "revocation",
            Body::RunStart(_) => "run_start",
            Body::Run(_) => "run",
            Body::Build(_) => "build",
            Body::Key(_) => "key",
            Body::KeyRevocation(_) => "key_revocation",
            Body::Witness(_) => "witness",
            Body::Policy(_) => "policy",
        }
    }

    /// Every object record the event carries: together, the records of a whole journal
    /// name every object it needs (an event lists the objects that were new to it).
    pub fn objects(&self) -> Vec<&ObjRec> {
        match self {
            Body::Init { .. }
            | Body::Revocation(_)
            | Body::Key(_)
            | Body::KeyRevocation(_)
            | Body::Witness(_) => Vec::new(),
            Body::Ingest(r) => r.objects.iter().collect(),
            Body::Source(s) => s.objects.iter().collect(),
            Body::Admission(a) => a.objects.iter().collect(),
            Body::Refusal(r) => r
                .objects
                .iter()
                .chain(r.source.iter().flat_map(|s| s.objects.iter()))
                .collect(),
            Body::RunStart(r) => r.objects.iter().collect(),
            Body::Run(r) => r.objects.iter().collect(),
            Body::ModelAdmission(m) => m.script.iter().collect(),
            Body::Build(b) => b.objects.iter().collect(),
            Body::Policy(p) => p.objects.iter().collect(),
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
    pub status: ChangeStatus,
    /// Contents on disk when recorded, when there are any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object: Option<ObjectId>,
}

impl ChangeRec {
    /// Untracked files do not change what the commit means; everything else does.
    pub fn is_tracked_change(&self) -> bool {
        self.status.is_tracked()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRec {
    pub id: SourceId,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub url: Option<String>,
    pub commit: CommitId,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub branch: Option<String>,
    pub tree: String,
    pub snapshot: ObjectId,
    pub changes: Vec<ChangeRec>,
    /// Tracked paths whose index flags (`assume-unchanged`, `skip-worktree`) tell git not
    /// to look at them; their contents were compared all the same.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub index_flags: Vec<IndexFlagRec>,
    pub objects: Vec<ObjRec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFlagRec {
    pub path: String,
    pub flag: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionRec {
    pub id: AdmissionId,
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
    pub commit: Option<CommitId>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source: Option<SourceId>,
    pub scope: AdmissionScope,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub build: Option<BuildId>,
    pub allowed_modified: Vec<ChangeRec>,
    pub decisions: Vec<String>,
    /// Every policy evaluated before it was recorded (absent before policies existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyDecisionRec>,
    pub objects: Vec<ObjRec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalRec {
    pub id: RefusalId,
    pub subject: RefusalSubject,
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
    pub reason: RefusalReason,
    pub message: String,
    /// The policies evaluated, when a policy refused it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyDecisionRec>,
    pub objects: Vec<ObjRec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelAdmissionRec {
    pub id: ModelAdmissionId,
    pub provider: String,
    pub model: String,
    /// The URL the model is served at (absent: the provider's hosted API).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub endpoint: Option<String>,
    /// The API spoken at `endpoint` (`openai-completions`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub api: Option<String>,
    /// The scripted model's script: its digest is what is admitted.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub script: Option<ObjRec>,
    /// Where the script came from (`builtin:r1-string-slugify/model-scripts/NAME.json`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub script_path: Option<String>,
}

impl ModelAdmissionRec {
    /// Splits `PROVIDER/MODEL`, each part 1 to 128 of letters, digits and `._-:@`.
    pub fn parse_pair(s: &str) -> crate::error::Result<(String, String)> {
        let ok_part = |p: &str| {
            !p.is_empty()
                && p.len() <= 128
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-:@".contains(&b))
        };
        match s.split_once('/') {
            Some((p, m)) if ok_part(p) && ok_part(m) => Ok((p.to_string(), m.to_string())),
            _ => Err(crate::error::Error::bad_input(
                format!("model `{s}` is not PROVIDER/MODEL"),
                "write it as provider/model, e.g. --model anthropic/claude-sonnet-4-6",
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRec {
    pub id: RevocationId,
    pub target: Revocable,
    pub reason: String,
}

/// A signing key's public half, recorded when it is generated or rotated in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRec {
    /// Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo.
    pub keyid: String,
    pub algorithm: String,
    /// The raw public key, base64.
    pub public_key: String,
    /// The key this one took over from (`key rotate`); that key is retired, and still
    /// verifies what it signed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub replaces: Option<String>,
}

/// A C2SP tlog-witness this log's checkpoints are to be cosigned by (`witness add`), or
/// no longer (`witness remove`): its verifier key, and where it takes checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessRec {
    /// The key name, as the witness's cosignature lines name it.
    pub name: String,
    /// The verifier key, `NAME+KEYHASH+KEY` (C2SP signed-note).
    pub vkey: String,
    /// Its submission prefix (`POST <url>/add-checkpoint`); without one it is only
    /// counted, never asked.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub removed: bool,
}

/// A Rego policy added (`policy add`: its file, by digest, and where it applies), or
/// removed (`policy remove`: `removed`, nothing else). Policies in force are each
/// name's newest event that is not a removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRec {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object: Option<ObjectId>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<Sha256Digest>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub size: Option<u64>,
    /// The Rego package (`data.cto.team`): `allow` and `deny` are read there.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub package: Option<String>,
    /// Where it is evaluated: `admit`, `run`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub applies: Vec<PolicyPoint>,
    /// The file it was added from.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub removed: bool,
    pub objects: Vec<ObjRec>,
}

/// One evaluation of one policy: which policy (by digest), over which input document
/// (by digest, and stored), and what it decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDecisionRec {
    pub policy: String,
    pub sha256: Sha256Digest,
    /// SHA-256 of the input document's canonical JSON (RFC 8785).
    pub input: Sha256Digest,
    /// The input document as stored (absent for `--check`, which stores nothing).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub input_object: Option<ObjectId>,
    pub result: PolicyResult,
    /// The policy's `deny` messages, or why it could not decide.
    pub messages: Vec<String>,
}

/// A key withdrawn: nothing more is signed with it, and what it signed is suspect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRevocationRec {
    pub keyid: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRec {
    pub path: String,
    pub object: ObjectId,
}

/// A Stage 2 attempt, registered before its provider starts: what will run, on what,
/// judged how. The `run` event that ends it names it by [`RunStartRec::digest`]; one that
/// never comes is an attempt that did not finish (`audit`, `runs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStartRec {
    pub id: RunId,
    pub run_kind: String,
    pub fixture: String,
    /// The fixture's repository as stored: what the tests come from.
    pub fixture_tree: ObjectId,
    pub lane: Lane,
    pub test_command: Vec<String>,
    /// The paths the provider may not change, and what tampering with them does.
    pub protected: Vec<String>,
    pub tampering: String,
    pub provider_object: ObjectId,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub provider_admission: Option<AdmissionId>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub model_admission: Option<ModelAdmissionId>,
    /// The scripted model's script, by object.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub script: Option<ObjectId>,
    /// The sandbox as prepared, in one line (`off (--no-sandbox)` when waived).
    pub sandbox: String,
    /// Every limit the run is held to, by name.
    pub limits: Vec<LimitRec>,
    pub timeout_ms: u64,
    /// The harness that ran it: `cto-ledger <version>`.
    pub harness: String,
    pub run_dir: String,
    pub objects: Vec<ObjRec>,
}

impl RunStartRec {
    /// `sha256:` of the body's canonical JSON (its kind and fields, not its number, time
    /// or actor): what the `run` event that ends the attempt names, unchanged when the
    /// event is re-appended with another number.
    pub fn digest(&self) -> String {
        let body = serde_jcs::to_vec(&Body::RunStart(self.clone())).expect("events serialise");
        crate::id::Sha256Digest::of(&body).to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitRec {
    pub name: String,
    pub value: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRec {
    pub id: RunId,
    pub run_kind: String,
    pub fixture: String,
    pub lane: Lane,
    /// The report's final status.
    pub status: RunStatus,
    pub verdict: Verdict,
    /// Whether the provider process was (about to be) started: every gate had passed.
    pub provider_started: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub provider_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub provider_object: Option<ObjectId>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub provider_admission: Option<AdmissionId>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub model_admission: Option<ModelAdmissionId>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub config_object: Option<ObjectId>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub report_object: Option<ObjectId>,
    pub tree_object: ObjectId,
    pub run_dir: String,
    pub started: String,
    pub finished: String,
    /// The sandbox the provider ran in, as one line (`off (--no-sandbox)` when waived);
    /// absent when the provider never started, and in runs recorded before sandboxes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sandbox: Option<String>,
    /// The digest of the `run_start` event that registered this attempt (absent when
    /// the provider never started, and in runs recorded before attempts were registered).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub start: Option<String>,
    /// The policies evaluated at the `policy` gate (absent when none applied).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyDecisionRec>,
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
    /// SHA-256 of the executable at `path` (absent in builds recorded before it was).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<Sha256Digest>,
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
    pub status: ChangeStatus,
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
    pub result: OutputCheck,
    /// Where a differing file output differs (absent for events before it was recorded).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub difference: Option<DifferenceRec>,
}

/// Where two versions of one output differ, and what that looks like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DifferenceRec {
    pub original_size: u64,
    pub rebuilt_size: u64,
    /// The first byte offset at which they differ (the shorter one's end, if one is a
    /// prefix of the other).
    pub first_difference_offset: u64,
    /// The last differing offset within the common length, if any differs there.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_difference_offset: Option<u64>,
    /// Bytes that differ at the same offset, plus the size difference.
    pub differing_bytes: u64,
    pub hints: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRec {
    /// The build that was re-run.
    pub of: BuildId,
    pub result: CheckResult,
    pub outputs: Vec<CheckOutputRec>,
    /// Whether the rebuild ran at the original source path (mounted over it in a private
    /// mount namespace); `false` when namespaces were unavailable and it ran in a
    /// temporary folder. Absent in checks recorded before this was.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub same_path: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRec {
    pub id: BuildId,
    /// What the build makes, as the user named it (`--name ca`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    pub status: BuildStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    pub source: SourceId,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_after: Option<SourceId>,
    pub commit: CommitId,
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
