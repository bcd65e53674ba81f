//! The gates a run passes before its provider starts, in order: the provider is there,
//! its exact bytes are admitted, its model is admitted, the kernel can sandbox it, and
//! every policy in force allows it ([`super::policies`]).
//! Each gate returns one outcome ([`Gated`]): passed (and said so in the report), or
//! [`Stop::Blocked`] naming the gate, whose file under `backend/` says why.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{model, shipped_fake, Lane, Run};
use crate::error::{Error, Result};
use crate::id::{AdmissionId, ObjectId, ObjectMeta};
use crate::ledger::events::{AdmissionRec, Body, ModelAdmissionRec, ObjRec};
use crate::ledger::AdmissionView;
use crate::model::{Endpoint, SCRIPTED};
use crate::report::Model;
use crate::sandbox::{Net, Prepared, SandboxReport, Unavailable};
use crate::state::AdmissionScope;
use crate::store::tree::ObjKind;

/// What the fake lane's model is called: the fake provider calls none.
const FAKE_MODEL: (&str, &str) = ("fake", "fake-model");
/// What a hosted model's API needs: HTTPS.
const HOSTED_MODEL_PORT: u16 = 443;

/// A gate of Stage 2: its name in the report and the file it writes when it blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gate {
    ProviderAvailable,
    ProviderAdmitted,
    ProviderBytesVerified,
    ModelAdmitted,
    ProviderSandboxed,
    PolicyAllowed,
}

impl Gate {
    pub(super) fn name(self) -> &'static str {
        match self {
            Gate::ProviderAvailable => "provider_available",
            Gate::ProviderAdmitted => "provider_admitted",
            Gate::ProviderBytesVerified => "provider_bytes_verified",
            Gate::ModelAdmitted => "model_admitted",
            Gate::ProviderSandboxed => "provider_sandboxed",
            Gate::PolicyAllowed => "policy_allowed",
        }
    }

    /// The file under `backend/` a block of this gate writes (the seed report's names).
    pub(super) fn file(self) -> &'static str {
        match self {
            Gate::ProviderAvailable => "provider-unavailable.txt",
            Gate::ProviderAdmitted | Gate::ProviderBytesVerified => "provider-not-admitted.txt",
            Gate::ModelAdmitted => "provider-model-not-admitted.txt",
            Gate::ProviderSandboxed => "provider-sandbox-unavailable.txt",
            Gate::PolicyAllowed => "provider-policy-denied.txt",
        }
    }
}

/// A gate that stopped the run before the provider started.
pub(super) struct Blocked {
    pub gate: Gate,
    pub message: String,
}

/// Why a run went no further: a gate blocked it (evidence, a `blocked` report), or the
/// harness itself failed.
pub(super) enum Stop {
    Blocked(Blocked),
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failed(e)
    }
}

pub(super) type Gated<T> = std::result::Result<T, Stop>;

pub(super) fn blocked<T>(gate: Gate, message: impl Into<String>) -> Gated<T> {
    Err(Stop::Blocked(Blocked {
        gate,
        message: message.into(),
    }))
}

impl Run<'_> {
    /// Provider available, admitted, not revoked: returns the admitted object.
    pub(super) fn provider_gates(&mut self) -> Gated<ObjectMeta> {
        let path = self.provider_available()?;
        // The bytes offered are evidence whether or not they are admitted. Hashed first:
        // a known provider (every run but the first) is not written out again.
        let m = self.offered_digest(&path)?;
        if !self.dry && !self.home.store.has(&m.id)? && self.home.store.put_file(&path)?.id != m.id
        {
            return Err(Error::Integrity {
                message: format!(
                    "provider {} changed while it was being read; run again",
                    path.display()
                ),
            }
            .into());
        }
        self.evidence.push((m, ObjKind::Blob));
        self.report.provider.sha256 = Some(m.sha256);
        self.report.provider.blake3 = Some(m.id);
        let lane = self.opts.lane;
        let mut adm = self.home.ledger.live_admission(&m.id, lane == Lane::Case)?;
        let is_shipped_fake = self.opts.runs_shipped_fake();
        if adm.is_none() && is_shipped_fake && !self.any_admission(&m.id)? {
            if self.dry {
                let detail = format!("{} is the fake shipped with cto-ledger: a run admits it for the fake lane first", m.sha256);
                self.gate_pass(Gate::ProviderAdmitted, detail);
                return Ok(m);
            }
            adm = self.admit_shipped_fake(&path, m)?;
        }
        let Some(adm) = adm else {
            let message = self.not_admitted_message(&path, &m)?;
            return blocked(Gate::ProviderAdmitted, message);
        };
        let a = &adm.admission;
        let p = &mut self.report.provider;
        p.admission = Some(a.id.clone());
        p.admission_name = Some(a.name.clone());
        p.source_pin = a.pin.clone();
        p.source_commit = a.commit_id.clone();
        p.source_url = adm.url.clone();
        p.build = a.build_id.clone();
        let detail = format!("{} is admitted as {} ({})", m.sha256, a.id, a.scope);
        self.gate_pass(Gate::ProviderAdmitted, detail);
        Ok(m)
    }

    /// The provider offered: a regular, executable file.
    fn provider_available(&mut self) -> Gated<PathBuf> {
        let given = match (&self.opts.provider_bin, self.opts.lane) {
            (Some(p), _) => Some(p.clone()),
            (None, Lane::Fake) => shipped_fake(),
            (None, Lane::Case) => None,
        };
        self.report.provider.path_given = given.as_ref().map(|p| p.display().to_string());
        let Some(path) = given else {
            return blocked(Gate::ProviderAvailable, "the real Case lane needs a provider: CTO_HARNESS_CASE_BIN is not set and no --provider-bin was given");
        };
        let unavailable = match fs::metadata(&path) {
            Err(e) if path.is_relative() => Some(format!(
                "provider {} is unavailable: {e} (a relative path is taken from the current folder, {}; give an absolute path)",
                path.display(),
                crate::paths::lossy(&crate::paths::abs(Path::new(".")))
            )),
            Err(e) => Some(format!("provider {} is unavailable: {e}", path.display())),
            Ok(m) if !m.is_file() => {
                Some(format!("provider {} is not a regular file", path.display()))
            }
            Ok(m) if m.permissions().mode() & 0o111 == 0 => {
                Some(format!("provider {} is not executable", path.display()))
            }
            Ok(_) => None,
        };
        if let Some(message) = unavailable {
            return blocked(Gate::ProviderAvailable, message);
        }
        self.gate_pass(
            Gate::ProviderAvailable,
            format!("{} exists and is executable", path.display()),
        );
        Ok(path)
    }

    /// The offered file's digests: from the ledger's file digests when its (device,
    /// inode, size, mtime, ctime, mode) are those recorded (as `ingest` and git's index
    /// trust them), else hashed and then recorded. This only names what was offered: what
    /// runs is the admitted object's own executable, re-hashed before every run.
    fn offered_digest(&mut self, path: &Path) -> Result<ObjectMeta> {
        let abs = fs::canonicalize(path).map_err(Error::io("resolve", path))?;
        self.home.ledger.file_digest(&abs, !self.dry)
    }

    fn any_admission(&self, id: &ObjectId) -> Result<bool> {
        Ok(self.home.ledger.latest_admission_of_object(id)?.is_some())
    }

    /// The fake shipped with cto-ledger is admitted for the fake lane on first use,
    /// as a recorded event, so a fresh ledger can run the default job.
    fn admit_shipped_fake(&mut self, path: &Path, m: ObjectMeta) -> Result<Option<AdmissionView>> {
        let stored = self.home.store.put_file(path)?;
        if stored.id != m.id {
            return Err(Error::Integrity {
                message: format!("{} changed while it was being admitted", path.display()),
            });
        }
        let rec = AdmissionRec {
            id: AdmissionId::new(),
            name: "fake-ca".into(),
            object: m.id,
            sha256: m.sha256,
            size: m.size,
            path: path.display().to_string(),
            pin: None,
            commit: None,
            source: None,
            scope: AdmissionScope::FakeLane,
            build: None,
            allowed_modified: Vec::new(),
            policies: Vec::new(),
            decisions: vec![format!(
                "fake provider shipped with cto-ledger {} beside the running executable; admitted for the fake Stage 2 lane only",
                env!("CARGO_PKG_VERSION")
            )],
            objects: vec![ObjRec::new(m, ObjKind::Blob)],
        };
        // Several first runs at once must not each admit it: ask inside the write.
        let object = m.id;
        self.home.commit_unless(
            |l| Ok(l.latest_admission_of_object(&object)?.is_some()),
            vec![Body::Admission(rec)],
        )?;
        // Ours, or the one another first run recorded a moment before.
        self.home.ledger.live_admission(&object, false)
    }

    fn not_admitted_message(&self, path: &Path, m: &ObjectMeta) -> Result<String> {
        let l = &self.home.ledger;
        if let Some((adm, rev)) = l.revoked_admission_of_object(&m.id)? {
            return Ok(format!(
                "provider {} ({}) was admitted as {adm} but that admission was revoked by {}: {}",
                path.display(),
                m.sha256,
                rev.id,
                rev.reason
            ));
        }
        if self.opts.lane == Lane::Case && self.any_admission(&m.id)? {
            return Ok(format!("provider {} ({}) is admitted for the fake lane only; the real lane needs an admission with a source pin", path.display(), m.sha256));
        }
        let abs = crate::paths::lossy(&crate::paths::abs(path));
        if let Some(e) = l.latest_admission_at_path(&abs)? {
            return Ok(format!(
                "provider {} now hashes to {}, but it was admitted as {} ({}): the file changed since admission, so it is not admitted",
                path.display(),
                m.sha256,
                e.sha256,
                e.id
            ));
        }
        Ok(format!(
            "provider {} ({}) is not admitted; admit it first: cto-ledger admit {} --source-pin <commit it was built from>",
            path.display(),
            m.sha256,
            path.display()
        ))
    }

    /// The model the run may use: the fake lane's none, or an admitted PROVIDER/MODEL
    /// (a scripted model by its script's digest, an endpoint behind the recording proxy).
    pub(super) fn model_gate(&mut self) -> Gated<Model> {
        let (p, m) = match (&self.opts.model_provider, &self.opts.model, self.opts.lane) {
            (None, None, Lane::Fake) => {
                let (p, m) = FAKE_MODEL;
                self.gate_pass(
                    Gate::ModelAdmitted,
                    "fake lane: the fake provider calls no model".into(),
                );
                let model = Model::named(p, m, None);
                self.report.model = Some(model.clone());
                return Ok(model);
            }
            (Some(p), Some(m), _) => (p.clone(), m.clone()),
            (p, m, _) => {
                let missing: Vec<&str> = [
                    ("CTO_HARNESS_CASE_MODEL_PROVIDER", p),
                    ("CTO_HARNESS_CASE_MODEL", m),
                ]
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| *k)
                .collect();
                return blocked(Gate::ModelAdmitted, format!(
                    "{} not set: without an explicit model Case falls back to its built-in default model, which nobody admitted. Set both (or give --model PROVIDER/MODEL) and admit the pair with `cto-ledger admit --model PROVIDER/MODEL`",
                    missing.join(" and ")
                ));
            }
        };
        self.report.model = Some(Model::named(&p, &m, None));
        if ModelAdmissionRec::parse_pair(&format!("{p}/{m}")).is_err() {
            return blocked(
                Gate::ModelAdmitted,
                format!("model `{p}/{m}` is not a valid PROVIDER/MODEL pair"),
            );
        }
        if p == SCRIPTED {
            return self.scripted_gate(&m);
        }
        let Some(a) = self.home.ledger.model_admission_of(&p, &m, true)? else {
            return blocked(Gate::ModelAdmitted, format!("model {p}/{m} is not admitted (or its admission was revoked); admit it with `cto-ledger admit --model {p}/{m}`"));
        };
        let mut model = Model::named(&p, &m, Some(a.id.clone()));
        let at = match &a.endpoint {
            Some(e) => {
                let up = Endpoint::parse(e).ok_or_else(|| Error::Integrity {
                    message: format!(
                        "model admission {} records endpoint `{e}`, which is not a URL",
                        a.id
                    ),
                })?;
                self.serve = Some(model::Backend::Forward(up));
                model.endpoint = Some(e.clone());
                format!(", served at {e} (recorded through a loopback proxy)")
            }
            None => String::new(),
        };
        self.gate_pass(
            Gate::ModelAdmitted,
            format!("{p}/{m} is admitted as {}{at}", a.id),
        );
        self.report.model = Some(model.clone());
        Ok(model)
    }

    /// `scripted/NAME`: the fixture's `model-scripts/NAME.json`, whose exact digest must be
    /// admitted. Its bytes go into the store as the run's evidence of what was served.
    fn scripted_gate(&mut self, name: &str) -> Gated<Model> {
        let spec = format!("{SCRIPTED}/{name}");
        let origin = self.fixture.origin.clone();
        let Some(bytes) = self.fixture.script(name).map(<[u8]>::to_vec) else {
            return blocked(
                Gate::ModelAdmitted,
                format!(
                    "model {spec} names model-scripts/{name}.json, which fixture {origin} does not have"
                ),
            );
        };
        let script =
            crate::model::parse_script(&format!("{origin} model-scripts/{name}.json"), &bytes)?;
        let meta = match self.dry {
            true => crate::store::hash_bytes(&bytes),
            false => self.home.store.put_bytes(&bytes)?,
        };
        self.evidence.push((meta, ObjKind::Blob));
        let mut m = Model::named(SCRIPTED, name, None);
        m.script_sha256 = Some(meta.sha256);
        self.report.model = Some(m.clone());
        let Some(a) = self.home.ledger.scripted_admission(name, &meta.id)? else {
            let admitted = self.home.ledger.model_admission_of(SCRIPTED, name, true)?;
            return blocked(Gate::ModelAdmitted, match admitted {
                Some(a) => format!(
                    "model script model-scripts/{name}.json of fixture {origin} hashes to {}, but {spec} was admitted ({}) with {}: the script was edited since, so it is not admitted; admit it again with `cto-ledger admit --model {spec}` if the change is intended",
                    meta.sha256,
                    a.id,
                    a.script_object.map_or("no script".into(), |o| o.to_string())
                ),
                None => format!("model {spec} is not admitted (or its admission was revoked); admit its script with `cto-ledger admit --model {spec}`"),
            });
        };
        self.gate_pass(
            Gate::ModelAdmitted,
            format!("{spec} is admitted as {} with script {}", a.id, meta.sha256),
        );
        m.admission = Some(a.id);
        self.report.model = Some(m.clone());
        self.serve = Some(model::Backend::Scripted(script));
        Ok(m)
    }

    /// The provider runs in the kernel sandbox, or the run is blocked before it starts;
    /// `--no-sandbox` runs it unconfined and says so in the report and the journal.
    pub(super) fn sandbox_gate(
        &mut self,
        exe: &Path,
        model_port: Option<u16>,
    ) -> Gated<Option<Prepared>> {
        if self.opts.no_sandbox {
            self.report.sandbox = Some(SandboxReport::waived("--no-sandbox"));
            self.gate_pass(
                Gate::ProviderSandboxed,
                "not sandboxed: --no-sandbox was given, so the provider runs unconfined with the invoking user's access".into(),
            );
            return Ok(None);
        }
        let mut extra = vec![exe.to_path_buf()];
        if self.opts.runs_shipped_fake() {
            extra.push(self.backend().join("fake-solution"));
        }
        // The model's port: the loopback server's, or HTTPS for a hosted model.
        let model_port = match (model_port, self.opts.lane) {
            (Some(p), _) => Some(p),
            (None, Lane::Case) => Some(HOSTED_MODEL_PORT),
            (None, Lane::Fake) => None,
        };
        let mut ports: Vec<u16> = model_port.into_iter().collect();
        ports.extend(self.opts.allow_net.iter().copied());
        ports.sort_unstable();
        ports.dedup();
        let net = if ports.is_empty() {
            Net::None
        } else {
            Net::Tcp(ports)
        };
        let policy = self.policy(&extra, &self.provider_folders(), net);
        match crate::sandbox::prepare(&policy) {
            Ok(p) => {
                self.report.sandbox = Some(p.report.clone());
                self.gate_pass(Gate::ProviderSandboxed, p.report.summary());
                Ok(Some(p))
            }
            Err(Unavailable(message)) => {
                self.report.sandbox = None;
                blocked(Gate::ProviderSandboxed, message)
            }
        }
    }
}
