//! Every environment variable cto-ledger reads, in one place. [`VARS`] says what each is
//! for (docs/environment.md shows the same table, and a test keeps the two equal); the
//! functions here are the only code that reads the environment (a test greps `src/` for
//! any other). Test hooks are named `CTO_LEDGER_TEST_*` and do nothing unless set.

use std::ffi::OsString;

/// Who a variable is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    /// Where things are: the ledger home, the signing key.
    Location,
    /// The Stage 2 harness's interface (the seed report's variable names).
    Harness,
    /// Credentials and settings of the S3 remote (read by `object_store` as well).
    Remote,
    /// Standard variables of the system.
    System,
    /// Fault injection and pinning for the test suite only.
    TestHook,
}

pub(crate) struct Var {
    pub name: &'static str,
    pub audience: Audience,
    pub purpose: &'static str,
}

const fn var(name: &'static str, audience: Audience, purpose: &'static str) -> Var {
    Var {
        name,
        audience,
        purpose,
    }
}

use Audience::*;

/// Every variable read by name. Two families are read by names the user gives: the
/// variables `CTO_HARNESS_PASS_ENV` names (passed to the provider) and those a build
/// records (`build --env NAME` and the list in `build/`); see [`passed`].
pub(crate) const VARS: &[Var] = &[
    var("CTO_LEDGER_DIR", Location, "the ledger home (after --ledger)"),
    var("XDG_DATA_HOME", Location, "the ledger home is $XDG_DATA_HOME/cto-ledger when CTO_LEDGER_DIR is unset"),
    var("HOME", Location, "~/.local/share/cto-ledger and ~/.config/cto-ledger/signing-key when nothing else is set; a tool prefix under it is never opened to the sandbox"),
    var("CTO_LEDGER_KEY", Location, "the private signing key file"),
    var("XDG_CONFIG_HOME", Location, "the signing key is $XDG_CONFIG_HOME/cto-ledger/signing-key when CTO_LEDGER_KEY is unset"),
    var("CTO_HARNESS_CASE_BIN", Harness, "the real Case `ca` executable; setting it selects the case lane"),
    var("CTO_HARNESS_CASE_TIMEOUT_SECONDS", Harness, "the provider's time limit (after --timeout; default 900)"),
    var("CTO_HARNESS_CASE_MODEL_PROVIDER", Harness, "the model's provider half (PROVIDER/MODEL); required on the case lane"),
    var("CTO_HARNESS_CASE_MODEL", Harness, "the model's name half (PROVIDER/MODEL); required on the case lane"),
    var("CTO_HARNESS_PASS_ENV", Harness, "comma-separated names of variables passed to the provider (its credentials); nothing else of the caller's environment reaches it"),
    var("CTO_FAKE_CA_ESCAPE_LEDGER", Harness, "(and every other CTO_FAKE_CA_ESCAPE_* variable) targets handed to the fake provider's hostile `escape` behaviour"),
    var("AWS_ACCESS_KEY_ID", Remote, "S3 credentials (with AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, which object_store reads)"),
    var("AWS_WEB_IDENTITY_TOKEN_FILE", Remote, "S3 credentials from a web identity token"),
    var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", Remote, "S3 credentials from a container credentials endpoint"),
    var("AWS_CONTAINER_CREDENTIALS_FULL_URI", Remote, "S3 credentials from a container credentials endpoint"),
    var("AWS_ENDPOINT_URL", Remote, "the S3 endpoint when a remote records none"),
    var("AWS_ENDPOINT", Remote, "the S3 endpoint when neither the remote nor AWS_ENDPOINT_URL gives one"),
    var("AWS_REGION", Remote, "the S3 region when a remote records none"),
    var("AWS_DEFAULT_REGION", Remote, "the S3 region when neither the remote nor AWS_REGION gives one"),
    var("CTO_LEDGER_REMOTE_STALL_SECONDS", Remote, "a remote read that moves less than 1 KiB/s over this many seconds (or sends no reply in them) fails, naming the key (default 30)"),
    var("PATH", System, "where tools are found; its absolute entries are passed to the provider and the tests"),
    var("USER", System, "the actor recorded in every event (else LOGNAME, else the passwd name of the uid)"),
    var("LOGNAME", System, "the actor when USER is unset"),
    var("CTO_LEDGER_TEST_NOW", TestHook, "pins every recorded time to this RFC 3339 value, so outputs compare"),
    var("CTO_LEDGER_TEST_DISK_FULL_AFTER", TestHook, "every object write fails with ENOSPC after this many bytes, as a full disk would"),
    var("CTO_LEDGER_TEST_SANDBOX_ABI", TestHook, "uses at most this Landlock ABI, as on an older kernel (0: none); can only take rules away"),
    var("CTO_LEDGER_TEST_PULL_BATCH", TestHook, "events per pull transaction (default 1000), so tests cross batch boundaries"),
    var("CTO_LEDGER_TEST_CRASH_AT", TestHook, "dies (SIGKILL) at this named step, as a kill at that moment would: key-rotate-stored, key-rotate-recorded, repack-packed, run-blocked"),
    var("CTO_LEDGER_TEST_SYNC_DELAY_MS", TestHook, "waits this long before the store's sync that precedes each journal commit, as a slow command would"),
    var("CTO_LEDGER_TEST_WALKED", TestHook, "an ingest creates this file once its walk has listed the folder and waits (at most 60 s) until it is removed, so a test can change the folder between the walk and the reads"),
    var("CTO_LEDGER_TEST_NO_OPENAT2", TestHook, "opens the folders and files of an ingest one path component at a time, as on a kernel without openat2"),
    var("CTO_LEDGER_TEST_POWER_CUT", TestHook, "after every journal commit, deletes each object written but not yet synced, as a power cut would lose it"),
];

fn listed(name: &str) -> bool {
    VARS.iter().any(|v| v.name == name)
}

/// A listed variable's value, when it is set and not empty.
pub(crate) fn get(name: &str) -> Option<String> {
    debug_assert!(listed(name), "{name} is not in env::VARS");
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// As [`get`], for values that may not be UTF-8 (paths).
pub(crate) fn get_os(name: &str) -> Option<OsString> {
    debug_assert!(listed(name), "{name} is not in env::VARS");
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// A variable read because the user named it (`CTO_HARNESS_PASS_ENV`, `build --env`),
/// or one a build records as it was: set at all, even empty.
pub(crate) fn passed(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The names `CTO_HARNESS_PASS_ENV` lists (comma-separated).
pub(crate) fn pass_env_names() -> Vec<String> {
    get("CTO_HARNESS_PASS_ENV")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect()
}

/// Every variable whose name starts with `prefix` (the fake's escape targets).
pub(crate) fn with_prefix(prefix: &str) -> Vec<(String, String)> {
    debug_assert!(VARS.iter().any(|v| v.name.starts_with(prefix)));
    std::env::vars()
        .filter(|(k, _)| k.starts_with(prefix))
        .collect()
}

/// A setting given as a positive whole number: `Ok(None)` when unset, an error naming the
/// variable when it is set to anything else.
pub(crate) fn positive(name: &str) -> crate::error::Result<Option<u64>> {
    let Some(v) = get(name) else {
        return Ok(None);
    };
    match v.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(crate::error::Error::bad_input(
            format!("{name}={v} is not a positive whole number"),
            format!("set {name} to a number such as 30, or unset it for the default"),
        )),
    }
}

/// Dies by SIGKILL here when `CTO_LEDGER_TEST_CRASH_AT` names `step`: the moment a
/// kill could land, made exact for the tests.
pub(crate) fn crash_point(step: &str) {
    if get("CTO_LEDGER_TEST_CRASH_AT").as_deref() == Some(step) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}

/// `CTO_LEDGER_TEST_*` parsed as a number.
pub(crate) fn test_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    debug_assert!(name.starts_with("CTO_LEDGER_TEST_"));
    get(name)?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_is_listed_once_and_test_hooks_say_so() {
        let mut names: Vec<&str> = VARS.iter().map(|v| v.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a variable is listed twice");
        for v in VARS {
            assert_eq!(
                v.audience == TestHook,
                v.name.starts_with("CTO_LEDGER_TEST_"),
                "{} is a test hook exactly when it is named CTO_LEDGER_TEST_*",
                v.name
            );
            assert!(!v.purpose.is_empty());
        }
    }

    #[test]
    fn docs_list_exactly_these_variables() {
        let doc = include_str!("../docs/environment.md");
        let documented: Vec<&str> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
            .collect();
        let listed: Vec<&str> = VARS.iter().map(|v| v.name).collect();
        assert_eq!(
            documented, listed,
            "docs/environment.md and env::VARS differ"
        );
    }
}
