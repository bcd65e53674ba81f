//! Asking witnesses to cosign a checkpoint (`checkpoint --sign --witness URL`): each gets
//! the checkpoint with a consistency proof from the size it says it last cosigned (a
//! first request from 0; a 409 names the size, and the request is made once more from
//! there). Answers are bounded in size and time (one deadline for the whole exchange),
//! and a cosignature is kept only when it verifies under the key the caller named for
//! that witness: a witness can add nothing else to the note.

use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::sign::cosig::Witness;
use crate::sign::merkle;
use crate::sign::note::SignedNote;

const MAX_ANSWER: usize = 16 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

/// What one witness answered.
#[derive(Debug, Serialize)]
pub(crate) struct Asked {
    pub url: String,
    /// The cosignature line it returned, when it cosigned.
    pub cosignature: Option<String>,
    pub refused: Option<String>,
}

/// POSTs `body` to `url`; (status, content type, body), the body at most `MAX_ANSWER`.
fn post(url: &str, body: String) -> std::result::Result<(u16, String), String> {
    let rt = crate::net::runtime().map_err(|e| e.to_string())?;
    let exchange = async {
        let send = crate::net::http()
            .post(url)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body)
            .send();
        let mut resp = tokio::time::timeout(TIMEOUT, send)
            .await
            .map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))?
            .map_err(|e| format!("cannot reach it: {e}"))?;
        let status = resp.status().as_u16();
        let mut out = Vec::new();
        loop {
            let chunk = tokio::time::timeout(TIMEOUT, resp.chunk())
                .await
                .map_err(|_| "its answer stalled".to_string())?
                .map_err(|e| format!("its answer broke off: {e}"))?;
            let Some(c) = chunk else { break };
            if out.len() + c.len() > MAX_ANSWER {
                return Err(format!("its answer is larger than {MAX_ANSWER} bytes"));
            }
            out.extend_from_slice(&c);
        }
        Ok((status, String::from_utf8_lossy(&out).into_owned()))
    };
    rt.block_on(async {
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no whole answer within {} s", TIMEOUT.as_secs()))?
    })
}

/// A witness to ask: its verifier key and its submission prefix, given as `VKEY@URL`.
pub(crate) struct Asking {
    pub witness: Witness,
    pub url: String,
}

impl Asking {
    /// The witnesses recorded for this log (`witness add VKEY@URL`) that can be asked.
    pub(crate) fn recorded(home: &crate::home::Home) -> Result<Vec<Asking>> {
        let mut out = Vec::new();
        for w in home.ledger.witnesses()? {
            let Some(url) = w.url else { continue };
            out.push(Asking::parse(&format!("{}@{url}", w.vkey))?);
        }
        Ok(out)
    }

    pub(crate) fn parse(s: &str) -> Result<Asking> {
        let bad = |why: String| {
            Error::bad_input(
                format!("--witness {}: {why}", crate::commands::text::shown(s)),
                "give the witness's verifier key and URL as VKEY@URL (the vkey `witness serve` prints)",
            )
        };
        let (vkey, url) = s
            .split_once('@')
            .ok_or_else(|| bad("not VKEY@URL".into()))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(bad(format!("{url} is not an http(s) URL")));
        }
        Ok(Asking {
            witness: Witness::parse_vkey(vkey).map_err(bad)?,
            url: url.to_string(),
        })
    }
}

/// Asks the witness at `base` (its submission prefix) to cosign `note`, the checkpoint
/// of the first `size` leaves of `tree`; keeps its answer only if it is `witness`'s valid
/// cosignature.
pub(crate) fn ask(
    base: &str,
    witness: &Witness,
    note: &str,
    tree: &dyn merkle::Subtrees,
    size: u64,
) -> Asked {
    let url = format!("{}/add-checkpoint", base.trim_end_matches('/'));
    let refused = |why: String| Asked {
        url: base.to_string(),
        cosignature: None,
        refused: Some(why),
    };
    let mut old = 0u64;
    for _ in 0..2 {
        let proof = if old == 0 || old == size {
            Vec::new()
        } else {
            match merkle::consistency_proof_in(tree, size as usize, old as usize) {
                Ok(p) => p,
                Err(e) => return refused(format!("no consistency proof from size {old}: {e}")),
            }
        };
        let (status, answer) = match post(&url, super::body(old, &proof, note)) {
            Ok(a) => a,
            Err(e) => return refused(e),
        };
        match status {
            200 => return checked(base, witness, note, answer),
            409 => match answer.trim().parse::<u64>() {
                Ok(n) if n > size => {
                    return refused(format!(
                        "it has cosigned a larger tree of this log (size {n}) than this checkpoint ({size})"
                    ))
                }
                Ok(n) if n != old => old = n,
                _ => return refused(format!("HTTP 409: {}", crate::commands::text::shown(answer.trim()))),
            },
            _ => return refused(format!("HTTP {status}: {}", crate::commands::text::shown(answer.trim()))),
        }
    }
    refused("it kept answering 409".into())
}

/// The answer's first line, kept when it is `witness`'s valid cosignature of `note`.
fn checked(base: &str, witness: &Witness, note: &str, answer: String) -> Asked {
    let line = answer.lines().next().unwrap_or_default().to_string() + "\n";
    // `note` carries no line of this witness (`collect` asks with the log's note), so a
    // valid cosignature of it once `line` is added can only be `line`.
    let valid =
        SignedNote::parse(&format!("{note}{line}")).is_ok_and(|n| witness.cosigned(&n) == Ok(true));
    Asked {
        url: base.to_string(),
        cosignature: valid.then_some(line),
        refused: (!valid).then(|| {
            format!(
                "its answer is not a valid cosignature by {}",
                crate::commands::text::shown(&witness.name)
            )
        }),
    }
}

/// Has `witnesses` cosign the checkpoint `row` kept in `home`'s ledger: the note with
/// the valid cosignatures replaces the kept one and `row`'s; each answer is returned.
pub(crate) fn cosign_kept(
    home: &crate::home::Home,
    row: &mut crate::ledger::tlog::CheckpointRow,
    witnesses: &[Asking],
) -> Result<Vec<Asked>> {
    if witnesses.is_empty() {
        return Ok(Vec::new());
    }
    let tree = crate::tlog::tree(&home.ledger);
    let (note, asked) = collect(&row.note, &tree, row.size, witnesses)?;
    home.ledger
        .update_checkpoint_note(row.size, &row.keyid, &note)?;
    row.note = note;
    Ok(asked)
}

/// Asks every witness; the note with the cosignatures collected, and each answer.
pub(crate) fn collect(
    note: &str,
    tree: &dyn merkle::Subtrees,
    size: u64,
    witnesses: &[Asking],
) -> Result<(String, Vec<Asked>)> {
    if SignedNote::parse(note).is_err() {
        return Err(Error::Integrity {
            message: "the kept checkpoint is not a signed note".into(),
        });
    }
    let asked: Vec<Asked> = witnesses
        .iter()
        .map(|w| ask(&w.url, &w.witness, note, tree, size))
        .collect();
    let mut out = note.to_string();
    for a in &asked {
        if let Some(c) = &a.cosignature {
            out.push_str(c);
        }
    }
    Ok((out, asked))
}
