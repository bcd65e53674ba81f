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

    /// Every limit by name, as a run records what it was held to.
    pub(crate) fn named(&self) -> Vec<crate::ledger::events::LimitRec> {
        let all = [
            ("stdout_bytes", self.stdout_bytes),
            ("stderr_bytes", self.stderr_bytes),
            ("folder_bytes", self.folder_bytes),
            ("folder_entries", self.folder_entries),
            ("processes", self.processes),
            ("memory_bytes", self.memory_bytes),
            ("model_response_bytes", self.model_response_bytes),
        ];
        all.into_iter()
            .map(|(name, value)| crate::ledger::events::LimitRec {
                name: name.into(),
                value,
            })
            .collect()
    }

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

/// What `folders` hold right now (bytes in regular files and link targets, entries, and
/// the `largest` biggest files), without following links; stops counting past
/// `cap_entries`, or at the first thing it cannot walk.
pub(crate) fn usage(folders: &[PathBuf], cap_entries: u64, largest: usize) -> Usage {
    let mut u = Usage::default();
    let mut top = std::collections::BinaryHeap::new();
    for f in folders {
        for e in walkdir::WalkDir::new(f).follow_links(false).min_depth(1) {
            let e = match e {
                Ok(e) => e,
                // Removed while being counted: gone, so nothing to count.
                Err(err)
                    if err
                        .io_error()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) =>
                {
                    continue
                }
                // What cannot be walked (a path past PATH_MAX, a folder it made
                // unreadable) cannot be counted: it must not hide what it holds.
                Err(err) => {
                    let why = match err.io_error() {
                        Some(io) => format!("a path under {} cannot be walked: {io}", f.display()),
                        None => format!("a link loop under {}", f.display()),
                    };
                    u.unmeasured.get_or_insert(why);
                    break;
                }
            };
            u.entries += 1;
            // A file's bytes, and a link's target (which the record stores as well).
            if e.file_type().is_file() || e.file_type().is_symlink() {
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                u.bytes += len;
                if largest > 0 {
                    // Of files the same size, the first by name.
                    top.push(std::cmp::Reverse((len, std::cmp::Reverse(e.into_path()))));
                    if top.len() > largest {
                        top.pop();
                    }
                }
            }
            if u.entries > cap_entries {
                break;
            }
        }
        if u.entries > cap_entries || u.unmeasured.is_some() {
            break;
        }
    }
    u.largest = top
        .into_sorted_vec()
        .into_iter()
        .map(|std::cmp::Reverse((len, std::cmp::Reverse(p)))| (len, p))
        .collect();
    u
}

/// What the provider's folders hold, as far as they could be walked.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    pub bytes: u64,
    pub entries: u64,
    /// Why part of them could not be walked (and so was not counted).
    pub unmeasured: Option<String>,
    /// The biggest files (and links) counted, biggest first, when asked for.
    pub largest: Vec<(u64, PathBuf)>,
}

/// `Some(why)` when `folders` hold more than the limits allow, or hold what cannot be
/// measured.
pub(crate) fn over(folders: &[PathBuf], l: &RunLimits) -> Option<String> {
    let Usage {
        bytes,
        entries,
        unmeasured,
        ..
    } = usage(folders, l.folder_entries, 0);
    if let Some(why) = unmeasured {
        Some(format!(
            "its folders hold what the harness cannot measure ({why}), so they may be past folder_bytes and folder_entries"
        ))
    } else if bytes > l.folder_bytes {
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

/// The model server's limits, for a run whose provider was given one: one answer, and
/// the whole transcript (held to `folder_bytes`: it is a file of the run folder too).
pub(crate) fn model_limits(l: &RunLimits, cut: bool, full: bool) -> [crate::report::Limit; 2] {
    [
        crate::report::Limit {
            name: "model_response_bytes".into(),
            value: l.model_response_bytes,
            by: "the recording proxy relays and keeps no more of one answer, and ends every exchange at the run's deadline".into(),
            enforced: true,
            hit: cut,
            detail: cut.then(|| "an answer was cut at the limit (see the transcript's `cut`)".into()),
        },
        crate::report::Limit {
            name: "model_transcript_bytes".into(),
            value: l.folder_bytes,
            by: "the model server serves no exchange the transcript could not hold whole (the run's folder_bytes)".into(),
            enforced: true,
            hit: full,
            detail: full.then(|| "an exchange was refused: the transcript was full".into()),
        },
    ]
}
