//! The policies a remote requires: its `config/policies.json`, so every host that shares
//! the remote applies the same ones. `policy require` writes it; `pull` and `push` read
//! it (hostile input: bounded, every field checked) and keep it in `remote_policies`;
//! `admit` and `run stage2` refuse while one is not in force here as required, and
//! `push` publishes nothing from a ledger that does not hold them.

use serde::{Deserialize, Serialize};

use super::Remote;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::policy::in_force;
use crate::policy::required::Required;

/// Where a remote keeps what it requires.
pub(crate) const CONFIG_KEY: &str = "config/policies.json";
/// The most a remote's policy configuration may hold (a few hundred entries).
const CONFIG_MAX: u64 = 64 << 10;
const REQUIRED_MAX: usize = 100;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RemotePolicies {
    pub required: Vec<Required>,
}

/// The remote's configuration, checked: absent is no requirement.
pub(crate) fn fetch(remote: &Remote) -> Result<RemotePolicies> {
    let bad = |why: String| Error::Remote {
        remote: remote.url().into(),
        message: format!("{CONFIG_KEY}: {why}"),
        hint: Some("set what the remote requires with `cto-ledger policy require`".into()),
    };
    let Some(bytes) = remote.s3.get_at_most(CONFIG_KEY, CONFIG_MAX)? else {
        return Ok(RemotePolicies::default());
    };
    if bytes.len() as u64 > CONFIG_MAX {
        return Err(bad(format!("more than {CONFIG_MAX} bytes")));
    }
    let c: RemotePolicies = serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("not a policy configuration: {e}")))?;
    if c.required.len() > REQUIRED_MAX {
        return Err(bad(format!("more than {REQUIRED_MAX} required policies")));
    }
    for r in &c.required {
        crate::admission::check_name(&r.name)
            .map_err(|_| bad("a required policy's name is not a valid policy name".into()))?;
        if r.on.is_empty() {
            return Err(bad(format!("required policy {} applies nowhere", r.name)));
        }
        if c.required.iter().filter(|x| x.name == r.name).count() > 1 {
            return Err(bad(format!("policy {} is required more than once", r.name)));
        }
    }
    Ok(c)
}

/// Reads the remote's configuration and keeps it as this host's view of it; says how
/// it changed since it was last read here (a requirement dropped is as visible as one
/// added: anyone who may write the remote may change it).
pub(crate) fn take(home: &mut Home, remote: &Remote) -> Result<Vec<String>> {
    let c = fetch(remote)?;
    let before = crate::policy::required::of(&home.ledger, &remote.row.name)?;
    let line = |sign: char, r: &Required| {
        let on = crate::policy::points(&r.on);
        format!("{sign} policy {} ({}) at {on}", r.name, r.sha256)
    };
    let mut changes: Vec<String> = before
        .iter()
        .filter(|r| !c.required.contains(r))
        .map(|r| line('-', r))
        .collect();
    changes.extend(
        c.required
            .iter()
            .filter(|r| !before.contains(r))
            .map(|r| line('+', r)),
    );
    crate::policy::required::save(&mut home.ledger, &remote.row.name, &c.required)?;
    Ok(changes)
}

/// Refuses a push from a ledger whose policies in force do not meet what the remote
/// required when it was last read (every pull reads it), or that would publish an
/// admission, or a run that started its provider, not decided by every policy the
/// remote requires there (made while the requirement was out of force here, however).
pub(crate) fn check_push(home: &Home, remote: &Remote) -> Result<()> {
    let here = in_force(&home.ledger)?;
    let required = crate::policy::required::of(&home.ledger, &remote.row.name)?;
    let mut unmet: Vec<String> = required
        .iter()
        .filter_map(|r| r.unmet(&here, &remote.row.name))
        .collect();
    if unmet.is_empty() && !required.is_empty() {
        unmet.extend(undecided(home, remote, &required)?.into_iter().take(5));
    }
    if unmet.is_empty() {
        return Ok(());
    }
    Err(Error::Remote {
        remote: remote.url().into(),
        message: format!("nothing pushed: {}", unmet.join("; ")),
        hint: Some(
            "put the required policies in force (`cto-ledger policy add FILE --on ...`), then push; an admission or run made without them is never published to this remote (the remote's owner may lift the requirement with `cto-ledger policy require --none`)"
                .into(),
        ),
    })
}

/// `policy require`: the remote requires exactly `names`, each as it is in force here.
pub(crate) fn require(
    home: &mut Home,
    remote: &Remote,
    names: &[String],
) -> Result<RemotePolicies> {
    let here = in_force(&home.ledger)?;
    let mut required = Vec::new();
    for n in names {
        let Some(p) = here.iter().find(|p| &p.name == n) else {
            return Err(Error::bad_input(
                format!("policy {} is not in force here", crate::commands::text::shown(n)),
                "a remote can require only a policy in force in this ledger: `cto-ledger policy add` it first",
            ));
        };
        required.push(Required {
            name: p.name.clone(),
            sha256: p.sha256,
            on: p.applies.clone(),
        });
    }
    required.sort_by(|a, b| a.name.cmp(&b.name));
    required.dedup();
    let c = RemotePolicies { required };
    let bytes = serde_json::to_vec_pretty(&c).expect("a configuration serialises");
    remote.s3.put_replace(CONFIG_KEY, bytes)?;
    crate::policy::required::save(&mut home.ledger, &remote.row.name, &c.required)?;
    Ok(c)
}

/// The pending events a required policy did not decide, one line each.
fn undecided(home: &Home, remote: &Remote, required: &[Required]) -> Result<Vec<String>> {
    use crate::ledger::events::{Body, PolicyDecisionRec};
    use crate::state::PolicyPoint;
    let decided_by = |d: &[PolicyDecisionRec], r: &Required| {
        d.iter().any(|d| d.policy == r.name && d.sha256 == r.sha256)
    };
    let mut out = Vec::new();
    for row in home.ledger.rows_after(remote.row.synced.seq)? {
        let (point, what, decisions) = match row.decode()?.body {
            // The shipped fake's first-run admission is for the fake lane only; its runs
            // are held to the run policies like any other.
            Body::Admission(a) if a.scope == crate::state::AdmissionScope::FakeLane => continue,
            Body::Admission(a) => (
                PolicyPoint::Admit,
                format!("admission {}", a.id),
                a.policies,
            ),
            // Registered (`run_start`): its provider was started, whatever its report says.
            Body::Run(x) if x.provider_started || x.start.is_some() => {
                (PolicyPoint::Run, format!("run:{}", x.id), x.policies)
            }
            _ => continue,
        };
        for r in required.iter().filter(|r| r.on.contains(&point)) {
            if !decided_by(&decisions, r) {
                out.push(format!(
                    "event {} ({what}) was recorded without policy {} ({}) that remote {} requires at {point}",
                    row.seq, r.name, r.sha256, remote.row.name
                ));
            }
        }
    }
    Ok(out)
}
