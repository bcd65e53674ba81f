//! What bounds a run besides its timeout: how much the provider may print, leave in its
//! folders, start and use, and how much one model answer may be. Defaults, over them the
//! fixture's `limits`, over those the command line; every limit is reported with what
//! enforced it and whether it was hit.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::fixture::LimitsSpec;
use crate::sandbox::Limits;

const MIB: u64 = 1 << 20;

/// The limits one run is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunLimits {
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub folder_bytes: u64,
    pub folder_entries: u64,
    pub processes: u64,
    pub memory_bytes: u64,
    pub model_response_bytes: u64,
}

impl RunLimits {
    pub(crate) const DEFAULT: RunLimits = RunLimits {
        stdout_bytes: 16 * MIB,
        stderr_bytes: 16 * MIB,
        folder_bytes: 1024 * MIB,
        folder_entries: 100_000,
        processes: 1024,
        memory_bytes: 4096 * MIB,
        model_response_bytes: 16 * MIB,
    };

    /// The defaults, then `fixture`'s, then `flags`' (each only where set).
    pub(crate) fn resolve(fixture: &LimitsSpec, flags: &LimitsSpec) -> RunLimits {
        let d = RunLimits::DEFAULT;
        let pick = |f: Option<u64>, x: Option<u64>, d: u64| x.or(f).unwrap_or(d);
        RunLimits {
            stdout_bytes: pick(fixture.stdout_bytes, flags.stdout_bytes, d.stdout_bytes),
            stderr_bytes: pick(fixture.stderr_bytes, flags.stderr_bytes, d.stderr_bytes),
            folder_bytes: pick(fixture.folder_bytes, flags.folder_bytes, d.folder_bytes),
            folder_entries: pick(
                fixture.folder_entries,
                flags.folder_entries,
                d.folder_entries,
            ),
            processes: pick(fixture.processes, flags.processes, d.processes),
            memory_bytes: pick(fixture.memory_bytes, flags.memory_bytes, d.memory_bytes),
            model_response_bytes: pick(
                fixture.model_response_bytes,
                flags.model_response_bytes,
                d.model_response_bytes,
            ),
        }
    }

    /// What the kernel enforces through the sandbox.
    pub(crate) fn sandbox(&self) -> Limits {
        Limits {
            processes: self.processes,
            memory_bytes: self.memory_bytes,
            file_bytes: self.folder_bytes,
        }
    }
}

/// What `folders` hold right now: (bytes in regular files, entries), without following
/// links; stops counting past `cap_entries`.
pub(crate) fn usage(folders: &[PathBuf], cap_entries: u64) -> (u64, u64) {
    let (mut bytes, mut entries) = (0u64, 0u64);
    for f in folders {
        for e in walkdir::WalkDir::new(f)
            .follow_links(false)
            .min_depth(1)
            .into_iter()
            .flatten()
        {
            entries += 1;
            if e.file_type().is_file() {
                bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
            if entries > cap_entries {
                return (bytes, entries);
            }
        }
    }
    (bytes, entries)
}

/// `Some(why)` when `folders` hold more than the limits allow.
pub(crate) fn over(folders: &[PathBuf], l: &RunLimits) -> Option<String> {
    let (bytes, entries) = usage(folders, l.folder_entries);
    if bytes > l.folder_bytes {
        Some(format!(
            "its folders hold {bytes} bytes, over the limit of {} (folder_bytes)",
            l.folder_bytes
        ))
    } else if entries > l.folder_entries {
        Some(format!(
            "its folders hold more than {} entries (folder_entries)",
            l.folder_entries
        ))
    } else {
        None
    }
}

/// Every limit with what enforced it and whether it was hit, for the report.
pub(crate) fn report(
    l: &RunLimits,
    o: &crate::runner::Outcome,
    output: &crate::report::Output,
    sandbox: Option<&crate::sandbox::SandboxReport>,
) -> Vec<crate::report::Limit> {
    let rule = |name: &str| sandbox.and_then(|s| s.rules.iter().find(|r| r.rule == name));
    let by_rule = |name: &str| match rule(name) {
        Some(r) => (r.enforced, r.by.clone()),
        None => (
            false,
            "not enforced: the provider ran without the sandbox".into(),
        ),
    };
    let usage = o.usage.unwrap_or_default();
    let limit = |name: &str,
                 value: u64,
                 (enforced, by): (bool, String),
                 hit: bool,
                 detail: Option<String>| crate::report::Limit {
        name: name.into(),
        value,
        by,
        enforced,
        hit,
        detail,
    };
    let harness = |what: &str| (true, what.to_string());
    let folder_hit = o.limited.as_deref().map(str::to_string);
    vec![
        limit("stdout_bytes", l.stdout_bytes, harness("the harness keeps the first and last halves"), output.stdout.dropped > 0, (output.stdout.dropped > 0).then(|| format!("{} of {} bytes dropped", output.stdout.dropped, output.stdout.bytes))),
        limit("stderr_bytes", l.stderr_bytes, harness("the harness keeps the first and last halves"), output.stderr.dropped > 0, (output.stderr.dropped > 0).then(|| format!("{} of {} bytes dropped", output.stderr.dropped, output.stderr.bytes))),
        limit("folder_bytes", l.folder_bytes, harness("the harness measures the workspace, home, temp and Case data folders four times a second and kills past it (and RLIMIT_FSIZE per file)"), folder_hit.as_deref().is_some_and(|w| w.contains("folder_bytes")), folder_hit.clone().filter(|w| w.contains("folder_bytes"))),
        limit("folder_entries", l.folder_entries, harness("the harness counts the entries in those folders four times a second and kills past it"), folder_hit.as_deref().is_some_and(|w| w.contains("folder_entries")), folder_hit.filter(|w| w.contains("folder_entries"))),
        limit("processes", l.processes, by_rule("processes"), usage.processes_refused > 0, (usage.processes_refused > 0).then(|| format!("{} forks refused", usage.processes_refused))),
        limit("memory_bytes", l.memory_bytes, by_rule("memory"), usage.memory_hits > 0 || usage.oom_kills > 0, usage.memory_peak.map(|p| format!("peak {p} bytes; {} OOM kills", usage.oom_kills))),
    ]
}

/// The model answer limit, for a run whose provider was given a model server.
pub(crate) fn model_limit(l: &RunLimits, cut: bool) -> crate::report::Limit {
    crate::report::Limit {
        name: "model_response_bytes".into(),
        value: l.model_response_bytes,
        by: "the recording proxy relays and keeps no more of one answer, and ends every exchange at the run's deadline".into(),
        enforced: true,
        hit: cut,
        detail: cut.then(|| "an answer was cut at the limit (see the transcript's `cut`)".into()),
    }
}
