//! Registering an attempt: the `run_start` event, committed before the provider process
//! starts, so no attempt can vanish from the signed history however it ends (killed,
//! its folder removed, its `run_folders` row deleted). The `run` event that ends it
//! names it by digest.

use super::Run;
use crate::error::{Error, Result};
use crate::id::ObjectMeta;
use crate::ledger::events::{Body, RunStartRec};

impl Run<'_> {
    /// Commits the attempt's `run_start`: what will run (the provider's bytes and
    /// admission, the model and its script), on what (the fixture's tree, the protected
    /// tests and the tampering policy), how confined and for how long.
    pub(super) fn register(&mut self, provider: &ObjectMeta) -> Result<()> {
        let Some(fixture_tree) = self.fixture_tree else {
            return Err(Error::Integrity {
                message: "the fixture was not stored before the run was registered".into(),
            });
        };
        let m = &self.fixture.manifest;
        let mut protected: Vec<String> = self
            .fixture
            .repo_files
            .iter()
            .map(|(p, _)| p.clone())
            .filter(|p| self.fixture.is_protected(p))
            .collect();
        protected.sort();
        let model = self.report.model.as_ref();
        let script = match model.and_then(|m| m.admission.as_ref()) {
            Some(id) => self
                .home
                .ledger
                .model_admission(id)?
                .and_then(|a| a.script_object),
            None => None,
        };
        let rec = RunStartRec {
            id: self.report.run_id.clone(),
            run_kind: self.report.kind.clone(),
            fixture: m.name.clone(),
            fixture_tree: fixture_tree.id,
            lane: self.opts.lane,
            test_command: m.test_command.clone(),
            protected,
            tampering: m.tampering.as_str().into(),
            provider_object: provider.id,
            provider_admission: self.report.provider.admission.clone(),
            model: model.map(|m| format!("{}/{}", m.provider, m.model)),
            model_admission: model.and_then(|m| m.admission.clone()),
            script,
            sandbox: self
                .report
                .sandbox
                .as_ref()
                .map_or("off (--no-sandbox)".into(), |s| s.summary()),
            limits: self.limits.named(),
            timeout_ms: (self.opts.timeout_seconds * 1000.0).round() as u64,
            harness: format!("cto-ledger {}", env!("CARGO_PKG_VERSION")),
            run_dir: self.dir.display().to_string(),
            objects: crate::source::new_objects(self.home, &self.evidence)?,
        };
        self.home.commit(vec![Body::RunStart(rec)])?;
        Ok(())
    }
}
