//! The states and verdicts the journal and reports record, as enums. Each keeps the exact
//! text it has always been written as, so journals and reports stay byte-identical.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An enum written as fixed strings: `as_str`, `parse`, `ALL` (for "valid values are ...").
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The valid values, for messages: `a, b, c`.
            pub fn names() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

text_enum!(
    /// How a build ended. Only a succeeded build has outputs.
    BuildStatus {
        Succeeded = "succeeded",
        Failed = "failed",
        Interrupted = "interrupted",
    }
);

text_enum!(
    /// What a `build --check` found.
    CheckResult {
        Reproduces = "reproduces",
        Diverges = "diverges",
        /// The rebuild itself failed.
        Failed = "failed",
    }
);

text_enum!(
    /// One output of a `build --check`.
    OutputCheck {
        Same = "same",
        Differs = "differs",
        /// Not produced by the rebuild.
        Missing = "missing",
        /// Outside the source tree, so not rebuilt.
        NotChecked = "not_checked",
    }
);

text_enum!(
    /// A Stage 2 run's status (`report.json` and the `runs` table).
    RunStatus {
        Started = "started",
        Blocked = "blocked",
        Passed = "passed",
        Failed = "failed",
        ProviderTimeout = "provider_timeout",
        /// The provider was killed for writing, printing or starting more than its limits.
        ProviderOutputLimit = "provider_output_limit",
        Interrupted = "interrupted",
        Error = "error",
        /// Only in `runs`: an attempt a `run_start` registered and no `run` event ended
        /// (a harness killed, an attempt hidden); `recover` records it if its folder is left.
        Unfinished = "unfinished",
    }
);

text_enum!(
    /// `pass` only when the fixture's tests passed; never from the provider's exit code.
    Verdict {
        Pass = "pass",
        Fail = "fail",
    }
);

text_enum!(
    /// How the fixture's tests ended.
    TestResult {
        Passed = "passed",
        Failed = "failed",
        Timeout = "timeout",
        Error = "error",
    }
);

text_enum!(
    /// Which Stage 2 runs may use an admission.
    AdmissionScope {
        Any = "any",
        /// The fake provider shipped with cto-ledger: never valid for the real lane.
        FakeLane = "fake-lane",
    }
);

text_enum!(
    /// The Stage 2 lane: the shipped fake `ca`, or the real WorkOS Case.
    Lane {
        Fake = "fake",
        Case = "case",
    }
);

text_enum!(
    /// Why an admission was refused (a stable code in the journal).
    RefusalReason {
        NoSource = "no_source",
        PinUnknown = "pin_unknown",
        PinAmbiguous = "pin_ambiguous",
        PinNotHead = "pin_not_head",
        AllowModifiedNotModified = "allow_modified_not_modified",
        SourceModified = "source_modified",
        NotReproducible = "not_reproducible",
        /// A policy in force denied it (or could not decide).
        PolicyDenied = "policy_denied",
    }
);

text_enum!(
    /// Where a policy is evaluated.
    PolicyPoint {
        /// `admit`, before the admission is recorded.
        Admit = "admit",
        /// `run stage2`, at the `policy` gate before the provider starts.
        Run = "run",
    }
);

text_enum!(
    /// What one policy decided: `allowed` only when `allow` is true and `deny` is empty.
    PolicyResult {
        Allowed = "allowed",
        Denied = "denied",
        /// It could not be evaluated (an error, a bound): it allows nothing.
        Failed = "failed",
    }
);

text_enum!(
    /// What a refusal refused.
    RefusalSubject {
        Admission = "admission",
        ModelAdmission = "model_admission",
    }
);

text_enum!(
    /// How a path in a clone differs from its commit (or, for a build, what the build did to it).
    ChangeStatus {
        Modified = "modified",
        Deleted = "deleted",
        Typechange = "typechange",
        Renamed = "renamed",
        /// A staged new file.
        Added = "added",
        Untracked = "untracked",
        /// Both sides of a merge changed it.
        Conflicted = "conflicted",
        /// A build put a modified file back as its commit has it.
        Restored = "restored",
    }
);

impl ChangeStatus {
    /// Untracked files do not change what the commit means; everything else does.
    pub fn is_tracked(self) -> bool {
        self != ChangeStatus::Untracked
    }
}

text_enum!(
    /// The part of an audit a finding comes from.
    AuditCheck {
        Journal = "journal",
        Checkpoint = "checkpoint",
        Projection = "projection",
        Object = "object",
        Store = "store",
        Run = "run",
        Home = "home",
        Key = "key",
        RemoteJournal = "remote journal",
        RemoteObject = "remote object",
        RemoteStore = "remote store",
        RemoteCheckpoint = "remote checkpoint",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_serialise_as_their_text_and_parse_back() {
        for s in RunStatus::ALL {
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
            assert_eq!(RunStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(AdmissionScope::FakeLane.as_str(), "fake-lane");
        assert_eq!(AuditCheck::RemoteObject.to_string(), "remote object");
        assert!(serde_json::from_str::<Verdict>("\"passed\"").is_err());
        assert_eq!(CheckResult::names(), "reproduces, diverges, failed");
    }
}
