//! The policies the remotes require (their `config/policies.json`, kept by `pull` and
//! `push` in `remote_policies`): `admit` and `run stage2` refuse while one is not in
//! force here as required.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::PolicyRow;
use crate::error::{Error, Result};
use crate::id::Sha256Digest;
use crate::ledger::Ledger;
use crate::state::PolicyPoint;

/// One policy a remote requires: by name, the SHA-256 of its file, where it applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Required {
    pub name: String,
    pub sha256: Sha256Digest,
    pub on: Vec<PolicyPoint>,
}

impl Required {
    /// Whether `p`, in force here, is what this requires: the same file, at least at
    /// the points required.
    pub(crate) fn met_by(&self, p: &PolicyRow) -> bool {
        p.name == self.name && p.sha256 == self.sha256 && self.on.iter().all(|o| p.applies_to(*o))
    }

    /// Why the policies in force here do not meet this (none: they do).
    pub(crate) fn unmet(&self, here: &[PolicyRow], remote: &str) -> Option<String> {
        let points = super::points(&self.on);
        let what = format!(
            "remote {remote} requires policy {} ({}) at {points}",
            self.name, self.sha256
        );
        match here.iter().find(|p| p.name == self.name) {
            Some(p) if self.met_by(p) => None,
            Some(p) if p.sha256 != self.sha256 => Some(format!(
                "{what}, but here {} is another file ({})",
                p.name, p.sha256
            )),
            Some(p) => Some(format!(
                "{what}, but here it applies only at {}",
                super::points(&p.applies)
            )),
            None => Some(format!("{what}, which is not in force here")),
        }
    }
}

/// Keeps `required` as what `remote` requires (replacing what it required before).
pub(crate) fn save(l: &mut Ledger, remote: &str, required: &[Required]) -> Result<()> {
    let tx = l
        .conn_mut()
        .transaction()
        .map_err(Error::sql("save a remote's policies"))?;
    tx.execute("DELETE FROM remote_policies WHERE remote = ?1", [remote])
        .map_err(Error::sql("save a remote's policies"))?;
    for r in required {
        tx.execute(
            "INSERT INTO remote_policies (remote, name, sha256, applies, fetched) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                remote,
                r.name,
                r.sha256.to_string(),
                serde_json::to_string(&r.on).expect("points serialise"),
                crate::ledger::now()
            ],
        )
        .map_err(Error::sql("save a remote's policies"))?;
    }
    tx.commit().map_err(Error::sql("save a remote's policies"))
}

/// Every remote's requirements as last read, by remote and name.
pub(crate) fn all(l: &Ledger) -> Result<Vec<(String, Required)>> {
    let mut st = l
        .conn()
        .prepare_cached(
            "SELECT remote, name, sha256, applies FROM remote_policies ORDER BY remote, name",
        )
        .map_err(Error::sql("read remote policies"))?;
    let rows = st
        .query_map([], |r| {
            let sha: String = r.get(2)?;
            let applies: String = r.get(3)?;
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, sha, applies))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(Error::sql("read remote policies"))?;
    rows.into_iter()
        .map(|(remote, name, sha, applies)| {
            let sha256 = sha.parse().map_err(|_| Error::Integrity {
                message: format!("remote_policies: {remote} {name} has sha256 `{sha}`"),
            })?;
            let on = serde_json::from_str(&applies).map_err(|_| Error::Integrity {
                message: format!("remote_policies: {remote} {name} has points `{applies}`"),
            })?;
            Ok((remote, Required { name, sha256, on }))
        })
        .collect()
}

/// What `remote` requires, as last read here.
pub(crate) fn of(l: &Ledger, remote: &str) -> Result<Vec<Required>> {
    Ok(all(l)?
        .into_iter()
        .filter(|(r, _)| r == remote)
        .map(|(_, r)| r)
        .collect())
}

/// Why the policies in force here do not meet what the remotes require at `point`.
pub(crate) fn unmet_at(
    l: &Ledger,
    here: &[PolicyRow],
    point: PolicyPoint,
) -> Result<Vec<(Required, String)>> {
    Ok(all(l)?
        .into_iter()
        .filter(|(_, r)| r.on.contains(&point))
        .filter_map(|(remote, r)| r.unmet(here, &remote).map(|why| (r, why)))
        .collect())
}
