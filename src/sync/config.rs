//! Remotes as this ledger records them: their names, `remote add`, the one to use when
//! none is named, and `remote status`.

use serde::Serialize;

use super::{seq_name, Remote};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::ledger::replica::RemoteRow;
use crate::ledger::Head;
use crate::store::s3::RemoteSpec;

/// Names a remote may have: like git's, short and safe in messages.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::bad_input(
            format!("remote name `{name}` is not valid"),
            "use letters, digits, `-`, `_` and `.` (e.g. `origin`)",
        ))
    }
}

/// `remote add`: checks the URL and records it; the remote is not contacted.
pub(crate) fn add(
    home: &mut Home,
    name: &str,
    url: &str,
    endpoint: Option<&str>,
    region: Option<&str>,
) -> Result<RemoteRow> {
    check_name(name)?;
    RemoteSpec::bucket_and_prefix(url)?;
    if let Some(e) = endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(Error::bad_input(
                format!("endpoint `{e}` is not an http:// or https:// URL"),
                "give it as http://HOST:PORT (e.g. a local MinIO or s3s-fs) or https://HOST",
            ));
        }
    }
    home.ledger.remote_add(name, url, endpoint, region)?;
    home.ledger.remote(name)
}

/// The one remote to use when the user named none.
pub(crate) fn pick(home: &Home, name: Option<&str>) -> Result<RemoteRow> {
    if let Some(n) = name {
        return home.ledger.remote(n);
    }
    let mut all = home.ledger.remotes()?;
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => Err(Error::bad_input(
            "no remote is configured",
            "add one with `cto-ledger remote add NAME s3://BUCKET/PREFIX [--endpoint URL]`",
        )),
        _ => Err(Error::bad_input(
            format!(
                "{} remotes are configured ({}); say which",
                all.len(),
                all.iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "name the remote, e.g. `cto-ledger push origin`",
        )),
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct StatusOut {
    pub remote: String,
    pub url: String,
    pub endpoint: Option<String>,
    pub synced: Head,
    pub local_head: Head,
    /// The remote's head, reached by checking every entry after the last event this
    /// host and the remote agree on: each entry's hash and its chaining.
    pub remote_head: Option<Head>,
    pub ahead: u64,
    /// Events the remote holds after the last one this host and it agree on.
    pub behind: Option<u64>,
    /// The remote no longer holds events this host saw there (`pull` re-appends them).
    pub replaced: bool,
    pub error: Option<String>,
    /// `unreachable` (exit 4) or `integrity` (exit 3): what kind of failure `error` is.
    pub error_kind: Option<&'static str>,
}

fn status(home: &Home, row: RemoteRow, contact: bool) -> Result<StatusOut> {
    let local_head = home.ledger.head()?;
    let mut out = StatusOut {
        remote: row.name.clone(),
        url: row.url.clone(),
        endpoint: row.endpoint.clone(),
        synced: row.synced.clone(),
        ahead: local_head.seq - row.synced.seq,
        local_head,
        remote_head: None,
        behind: None,
        replaced: false,
        error: None,
        error_kind: None,
    };
    if !contact {
        return Ok(out);
    }
    let found = Remote::connect(row).and_then(|r| verified_head(home, &r));
    match found {
        Ok((head, behind, replaced)) => {
            out.remote_head = Some(head);
            out.behind = Some(behind);
            out.replaced = replaced;
        }
        Err(e) => {
            out.error_kind = Some(match e {
                Error::Integrity { .. } => "integrity",
                _ => "unreachable",
            });
            out.error = Some(e.to_string());
        }
    }
    Ok(out)
}

/// The remote's head, every entry after the common base checked and chained as `pull`
/// checks them (without their objects); with how many there are.
fn verified_head(home: &Home, r: &Remote) -> Result<(Head, u64, bool)> {
    let (mut head, replaced) = r.common_base(home)?;
    let keys = r.s3.list("journal", Some(&seq_name(head.seq)))?;
    let mut rest = &keys[..];
    while !rest.is_empty() {
        let (batch, tail) = rest.split_at(super::batch_len(rest, 1000));
        rest = tail;
        if let Some(last) = r.entries(batch, &head)?.last() {
            head = last.head()?;
        }
    }
    Ok((head, keys.len() as u64, replaced))
}

pub(crate) fn statuses(home: &Home, name: Option<&str>, contact: bool) -> Result<Vec<StatusOut>> {
    let rows = match name {
        Some(n) => vec![home.ledger.remote(n)?],
        None => home.ledger.remotes()?,
    };
    rows.into_iter().map(|r| status(home, r, contact)).collect()
}
