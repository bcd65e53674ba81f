//! `serve --bundle FILE --key PEM`: one evidence bundle as the run page shows a run,
//! with no ledger. The bundle is read and checked once at start, exactly as
//! `verify-bundle` checks it; the page says first whether it verified and, when it did
//! not, every problem, and that nothing below it is proven. Only members whose bytes
//! match the manifest are shown or downloaded, re-hashed on the way out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::html::{badge, bundle_page, esc, fields, link, pre, table, val};
use super::pages::short;
use super::Reply;
use crate::bundle::verify::{self, BundleCheck};
use crate::bundle::{evidence_member, Member, CHECKPOINT, DIFF, REPORT};
use crate::error::{Error, Result};
use crate::id::Sha256Digest;
use crate::sign::keys::PublicKey;

/// The most of one member (a log, the diff, the transcript) rendered into a page: HTML
/// escaping makes text up to 5 times larger, and a page is built whole in memory.
const SHOWN_MAX: usize = 4 << 20;

/// A bundle as checked at start.
pub(crate) struct View {
    file: PathBuf,
    check: BundleCheck,
    manifest: BTreeMap<String, Member>,
    /// Members whose bytes matched the manifest, shared by every download.
    good: BTreeMap<String, Arc<[u8]>>,
}

impl View {
    /// Reads and checks `file` against `key` (and the witnesses asked for); `Err` only
    /// when it cannot be read. A bundle that fails its checks is still shown, as failed.
    pub(crate) fn open(
        file: &Path,
        key: &PublicKey,
        witnessed: &dyn Fn(&str) -> Result<Vec<String>>,
    ) -> Result<View> {
        let c = verify::verify_keeping(file, key, witnessed)?;
        Ok(View {
            file: file.to_path_buf(),
            check: c.check,
            manifest: c.manifest,
            good: c.good.into_iter().map(|(k, v)| (k, v.into())).collect(),
        })
    }

    pub(crate) fn verified(&self) -> bool {
        self.check.ok
    }

    /// The report, when the bundle holds one that reads as JSON.
    fn report(&self) -> Option<Value> {
        serde_json::from_slice(self.good.get(REPORT)?).ok()
    }

    /// A run-folder file by its path in the report.
    fn evidence(&self, path: &str) -> Option<&[u8]> {
        self.shown(&evidence_member(path))
    }

    /// A member's bytes to render in a page, or, beyond [`SHOWN_MAX`], a line saying so.
    fn shown(&self, member: &str) -> Option<&[u8]> {
        let b = self.good.get(member)?;
        Some(match b.len() > SHOWN_MAX {
            true => b"(too large to show here: download it from the members below)",
            false => b,
        })
    }
}

pub(super) fn route(v: &View, path: &str) -> Result<Reply> {
    // The subject is the manifest's word, which nobody signs: a title only once verified.
    let title = match v.verified() {
        true => format!("Bundle of {}", v.check.subject.as_deref().unwrap_or("?")),
        false => "A bundle that did not verify".to_string(),
    };
    match path {
        "/" => Ok(Reply::html(200, bundle_page(&title, &summary(v)?))),
        "/transcript" => {
            let member = evidence_member(crate::stage2::model::TRANSCRIPT);
            let body = match v.good.get(&member) {
                Some(t) if t.len() > SHOWN_MAX => format!(
                    "{}<p>The transcript is {} bytes, more than a page shows: download {} from the members.</p>",
                    banner(v),
                    t.len(),
                    esc(&member)
                ),
                Some(t) => format!("{}{}", banner(v), super::transcript::render(t)),
                None => "<p>This bundle holds no model transcript (the run called no model, or it was withheld).</p>".into(),
            };
            Ok(Reply::html(200, bundle_page(&title, &body)))
        }
        _ => match path.strip_prefix("/member/") {
            Some(m) => download(v, m),
            None => Err(Error::bad_input(
                format!("no page at {path}"),
                "this view shows one bundle: start at /",
            )),
        },
    }
}

pub(super) fn error_page(status: u16, e: &Error) -> Reply {
    let body = format!(
        r#"<p class="error">{}</p><p>{}</p>"#,
        esc(&e.to_string()),
        link("/", "back to the bundle")
    );
    Reply::html(status, bundle_page("Not shown", &body))
}

/// Whether the bundle verified, first on every page.
fn banner(v: &View) -> String {
    match v.verified() {
        true => format!(
            "<p>{} with key {}: every piece below is bound to the signed checkpoint.</p>",
            badge("verified"),
            esc(&v.check.keyid[..16])
        ),
        false => format!(
            r#"<p class="error">{} this bundle did not verify with key {}: nothing below is proven; it is shown so that you can see what it claims.</p>"#,
            badge("failed"),
            esc(&v.check.keyid[..16])
        ),
    }
}

fn summary(v: &View) -> Result<String> {
    let c = &v.check;
    let p = &c.proven;
    let opt = |s: &Option<String>| esc(s.as_deref().unwrap_or("-"));
    let mut out = banner(v);
    let problems: Vec<Vec<String>> = c
        .problems
        .iter()
        .map(|p| vec![esc(&p.piece), esc(&p.problem)])
        .collect();
    if !problems.is_empty() {
        out.push_str("<h2>Problems</h2>");
        out.push_str(&table("problems", &["piece", "problem"], &problems));
    }
    let report = v.report();
    let rep = report.as_ref().unwrap_or(&Value::Null);
    out.push_str(&fields(&[
        ("bundle", esc(&v.file.display().to_string())),
        ("verdict", badge(p.verdict.as_deref().unwrap_or("-"))),
        ("reason", opt(&p.reason)),
        ("fixture", esc(&val(&rep["fixture"]))),
        (
            "provider",
            esc(&format!(
                "{} {}",
                p.provider_name.as_deref().unwrap_or("-"),
                p.provider_sha256.as_deref().unwrap_or("")
            )),
        ),
        (
            "source",
            esc(&format!(
                "{} at commit {}",
                p.source_url.as_deref().unwrap_or("-"),
                p.source_commit.as_deref().unwrap_or("-")
            )),
        ),
        ("admission", opt(&p.admission)),
        (
            "model",
            esc(&format!(
                "{} ({})",
                p.model.as_deref().unwrap_or("-"),
                p.model_admission.as_deref().unwrap_or("not admitted")
            )),
        ),
        (
            "time",
            esc(&format!(
                "{} to {} ({})",
                val(&rep["started"]),
                val(&rep["finished"]),
                super::pages::duration(&val(&rep["started"]), &val(&rep["finished"]))
            )),
        ),
        ("transcript", link("/transcript", "the model conversation")),
    ]));
    if report.is_some() {
        super::run::gates(&mut out, rep);
        super::run::sandbox(&mut out, rep);
        super::run::tests(&mut out, rep, &|path| {
            Ok(v.evidence(path).map(<[u8]>::to_vec))
        })?;
        out.push_str("<h2>Changes</h2>");
        match v.shown(DIFF) {
            Some(d) => super::run::diff(&mut out, Ok(String::from_utf8_lossy(d).into_owned())),
            None => out.push_str(
                "<p>The bundle holds no diff (withheld, or no workspace tree was recorded).</p>",
            ),
        }
    }
    members(v, &mut out);
    signed_log(v, &mut out);
    Ok(out)
}

fn members(v: &View, out: &mut String) {
    let rows: Vec<Vec<String>> = v
        .manifest
        .values()
        .map(|m| {
            let state = match (m.withheld, v.good.contains_key(&m.path)) {
                (true, _) => "withheld: its digest is kept".to_string(),
                (false, true) => link(&format!("/member/{}", super::url_part(&m.path)), "download"),
                (false, false) => badge("failed"),
            };
            vec![
                esc(&m.path),
                esc(&format!("{:?}", m.role).to_lowercase()),
                esc(&m.size.to_string()),
                esc(&short(&m.sha256)),
                state,
            ]
        })
        .collect();
    out.push_str(r#"<h2 id="members">Members</h2>"#);
    out.push_str(&table(
        "artifacts",
        &["path", "role", "bytes", "sha256", ""],
        &rows,
    ));
}

fn signed_log(v: &View, out: &mut String) {
    let c = &v.check;
    out.push_str("<h2>Signed log</h2>");
    let at = |i: Option<u64>| i.map_or("-".into(), |i| i.to_string());
    out.push_str(&fields(&[
        (
            "checkpoint",
            esc(&format!(
                "{} of size {}",
                c.origin.as_deref().unwrap_or("?"),
                c.checkpoint_size.unwrap_or(0)
            )),
        ),
        ("registered at log index", esc(&at(c.proven.registered_at))),
        ("ended at log index", esc(&at(c.proven.ended_at))),
        ("admitted at log index", esc(&at(c.proven.admitted_at))),
        ("attestations", esc(&c.attestations.join(", "))),
        (
            "check it offline",
            format!(
                "<code>cto-ledger verify-bundle {} --key key.pem</code>",
                esc(&v.file.display().to_string())
            ),
        ),
    ]));
    if let Some(note) = v.shown(CHECKPOINT) {
        out.push_str(&pre("log", &String::from_utf8_lossy(note)));
    }
}

/// A member as an attachment, re-hashed against the manifest before it goes out.
fn download(v: &View, path: &str) -> Result<Reply> {
    let (Some(m), Some(bytes)) = (v.manifest.get(path), v.good.get(path)) else {
        return Err(Error::bad_input(
            format!("the bundle has no member {path} to download"),
            "download a member listed under Members, not withheld",
        ));
    };
    if Sha256Digest::of(bytes).to_string() != m.sha256 {
        return Err(Error::Integrity {
            message: format!("member {path} does not match its digest {}", m.sha256),
        });
    }
    let name = path.rsplit('/').next().unwrap_or("member");
    Ok(Reply {
        status: 200,
        headers: vec![
            ("Content-Type", "application/octet-stream".into()),
            ("Content-Disposition", super::pages::attachment(name)),
        ],
        body: super::Body::Shared(bytes.clone()),
    })
}
