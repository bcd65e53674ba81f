//! A C2SP `tlog-witness`: `POST /add-checkpoint` with the size the caller believes the
//! witness last cosigned, a consistency proof from it, and a new checkpoint. The witness
//! checks the log's signature and the proof against the size and root it recorded for
//! that log, records the new ones and answers with a `cosignature/v1` line; a caller
//! behind it gets 409 and the size. What it recorded lives in its own SQLite file, read,
//! checked and replaced in one `BEGIN IMMEDIATE` transaction committed (synchronously)
//! before the answer: a kill never makes it forget a size it cosigned, and two requests at
//! once (from threads or processes) never both win.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rusqlite::{params, OptionalExtension as _};

use crate::error::{Error, Result};
use crate::sign::cosig;
use crate::sign::keys::{PublicKey, SecretKey};
use crate::sign::merkle::{self, Hash};
use crate::sign::note::SignedNote;

pub(crate) mod client;

const MAX_HEADER: usize = 16 * 1024;
/// An old size line, at most 63 proof lines and a checkpoint with a few signatures.
const MAX_BODY: usize = 64 * 1024;
const MAX_PROOF: usize = 63;
/// How long one request may take to arrive, whole.
const REQUEST_TIME: Duration = Duration::from_secs(15);
/// Connections read at once; more get 503.
const MAX_CONNECTIONS: usize = 32;
pub(crate) const SIZE_TYPE: &str = "text/x.tlog.size";

/// What a witness is: its name and key, the logs it follows, its state file.
pub(crate) struct Witness {
    pub name: String,
    pub key: SecretKey,
    pub logs: BTreeMap<String, PublicKey>,
    db: rusqlite::Connection,
}

/// An answer: status, content type, body.
type Answer = (u16, &'static str, Vec<u8>);

fn text(status: u16, body: impl Into<String>) -> Answer {
    let mut b = body.into().into_bytes();
    b.push(b'\n');
    (status, "text/plain; charset=utf-8", b)
}

impl Witness {
    pub(crate) fn open(
        name: String,
        key: SecretKey,
        logs: BTreeMap<String, PublicKey>,
        state: &Path,
    ) -> Result<Witness> {
        let sql = |e| Error::sql("open the witness state")(e);
        let db = rusqlite::Connection::open(state).map_err(sql)?;
        db.busy_timeout(Duration::from_secs(10)).map_err(sql)?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS logs (
                 origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL,
                 note TEXT NOT NULL, time TEXT NOT NULL) STRICT;",
        )
        .map_err(sql)?;
        Ok(Witness {
            name,
            key,
            logs,
            db,
        })
    }

    /// The witness's verifier key, for the logs' clients.
    pub(crate) fn vkey(&self) -> String {
        cosig::Witness {
            name: self.name.clone(),
            key: self.key.public(),
        }
        .vkey()
    }

    /// Serves until the process is stopped: each connection is read on a thread of its
    /// own (at most [`MAX_CONNECTIONS`] at once, each with 10-second socket timeouts, so a
    /// client that sends nothing holds up no one), and requests are checked and recorded
    /// one at a time.
    pub(crate) fn serve(self, listener: TcpListener) -> Result<()> {
        let me = std::sync::Arc::new(std::sync::Mutex::new(self));
        let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            use std::sync::atomic::Ordering::SeqCst;
            if open.fetch_add(1, SeqCst) >= MAX_CONNECTIONS {
                open.fetch_sub(1, SeqCst);
                crate::net::respond(
                    &conn,
                    503,
                    "text/plain; charset=utf-8",
                    b"too many connections at once\n",
                );
                continue;
            }
            let (me, open) = (me.clone(), open.clone());
            std::thread::spawn(move || {
                Witness::one(&me, &conn);
                open.fetch_sub(1, SeqCst);
            });
        }
        Ok(())
    }

    fn one(me: &std::sync::Mutex<Witness>, conn: &TcpStream) {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
        let (status, ctype, body) =
            match crate::net::read_request(conn, MAX_HEADER, MAX_BODY, REQUEST_TIME) {
                Ok(r) if r.method != "POST" => text(405, "only POST /add-checkpoint"),
                Ok(r) if r.path.split('?').next() != Some("/add-checkpoint") => {
                    text(404, "no such endpoint: POST /add-checkpoint")
                }
                Ok(r) => me
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .add_checkpoint(&r.body),
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => text(
                    413,
                    format!("request refused: {e} (at most {MAX_BODY} bytes)"),
                ),
                Err(_) => return,
            };
        crate::net::respond(conn, status, ctype, &body);
    }

    /// The `add-checkpoint` call: every check of the spec, in its order.
    pub(crate) fn add_checkpoint(&mut self, body: &[u8]) -> Answer {
        let req = match parse(body) {
            Ok(r) => r,
            Err(e) => return text(400, e),
        };
        let note = match SignedNote::parse(&req.note) {
            Ok(n) => n,
            Err(e) => return text(400, format!("the checkpoint is not a signed note: {e}")),
        };
        let cp = &note.checkpoint;
        let Some(log_key) = self.logs.get(&cp.origin) else {
            return text(
                404,
                format!("this witness does not follow log {}", cp.origin),
            );
        };
        if let Err(e) = note.verify(log_key) {
            return text(
                403,
                format!("the checkpoint is not signed by the log's key: {e}"),
            );
        }
        if req.old > cp.size {
            return text(
                400,
                format!(
                    "old size {} is larger than the checkpoint's {}",
                    req.old, cp.size
                ),
            );
        }
        match self.advance(&req, &note) {
            Ok(Ok(())) => {}
            Ok(Err(answer)) => return answer,
            Err(e) => return text(500, format!("the witness could not record it: {e}")),
        }
        let time = chrono::Utc::now().timestamp().max(0) as u64;
        let line = cosig::cosign(&note.text, &self.name, &self.key, time);
        (200, "text/plain; charset=utf-8", line.into_bytes())
    }

    /// Checks the request against what was recorded for the log and records the new
    /// size and root, in one immediate transaction.
    fn advance(
        &mut self,
        req: &Request,
        note: &SignedNote,
    ) -> rusqlite::Result<std::result::Result<(), Answer>> {
        let cp = &note.checkpoint;
        let tx = self
            .db
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let known: Option<(i64, Vec<u8>)> = tx
            .query_row(
                "SELECT size, root FROM logs WHERE origin = ?1",
                [&cp.origin],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (size, root) = known.map_or((0, None), |(s, r)| (s as u64, Some(r)));
        if req.old != size {
            let mut b = format!("{size}\n").into_bytes();
            b.truncate(32);
            return Ok(Err((409, SIZE_TYPE, b)));
        }
        let consistent = match &root {
            None => req.proof.is_empty(),
            Some(old_root) if req.old == cp.size => {
                req.proof.is_empty() && old_root.as_slice() == cp.root.as_slice()
            }
            Some(old_root) => {
                let old_root: Hash = old_root.as_slice().try_into().unwrap_or([0; 32]);
                merkle::verify_consistency(req.old, cp.size, &old_root, &cp.root, &req.proof)
                    .is_ok()
            }
        };
        if !consistent {
            let same_size = root.is_some() && req.old == cp.size;
            return Ok(Err(if same_size {
                text(
                    409,
                    format!("a different tree of size {} was cosigned before", cp.size),
                )
            } else {
                text(
                    422,
                    format!(
                        "the consistency proof from size {} does not verify",
                        req.old
                    ),
                )
            }));
        }
        tx.execute(
            "INSERT INTO logs (origin, size, root, note, time) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (origin) DO UPDATE SET size = ?2, root = ?3, note = ?4, time = ?5",
            params![
                cp.origin,
                cp.size as i64,
                cp.root.to_vec(),
                note.text,
                crate::ledger::now()
            ],
        )?;
        tx.commit()?;
        Ok(Ok(()))
    }
}

/// An `add-checkpoint` request body, parsed.
pub(crate) struct Request {
    pub old: u64,
    pub proof: Vec<Hash>,
    pub note: String,
}

fn parse(body: &[u8]) -> std::result::Result<Request, String> {
    let body = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8")?;
    let (head, note) = body
        .split_once("\n\n")
        .ok_or("no empty line before the checkpoint")?;
    let mut lines = head.split('\n');
    let old = merkle::number_line(lines.next(), "old").ok_or("the first line is not `old N`")?;
    let proof = merkle::hash_lines(lines)?;
    if proof.len() > MAX_PROOF {
        return Err(format!("more than {MAX_PROOF} consistency proof lines"));
    }
    Ok(Request {
        old,
        proof,
        note: note.to_string(),
    })
}

/// The request body `add-checkpoint` takes.
pub(crate) fn body(old: u64, proof: &[Hash], note: &str) -> String {
    let mut out = format!("old {old}\n");
    for h in proof {
        out.push_str(&B64.encode(h));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(note);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::keys::test_key;
    use crate::sign::note::Checkpoint;

    fn leaves(n: u8) -> Vec<Hash> {
        (0..n).map(|i| merkle::leaf_hash(&[i])).collect()
    }

    #[test]
    fn every_refusal_of_the_spec_has_its_status() {
        let dir = tempfile::tempdir().unwrap();
        let log = test_key("810a1402d5146c8d84f2443330f54080ebf98ee17d9c74f6252fc5d5c7283173");
        let wkey = test_key("0101010101010101010101010101010101010101010101010101010101010101");
        let logs = BTreeMap::from([("example.com/log".to_string(), log.public())]);
        let mut w =
            Witness::open("w.example".into(), wkey, logs, &dir.path().join("w.db")).unwrap();
        let note = |n: u8| {
            let l = leaves(n);
            Checkpoint {
                origin: "example.com/log".into(),
                size: n as u64,
                root: merkle::root(&l),
            }
            .sign("example.com/log", &log)
        };
        let status = |w: &mut Witness, b: &str| w.add_checkpoint(b.as_bytes()).0;
        assert_eq!(status(&mut w, &body(0, &[], &note(4))), 200);
        // Behind the witness: 409 and its size.
        let (code, ctype, size) = w.add_checkpoint(body(0, &[], &note(6)).as_bytes());
        assert_eq!(
            (code, ctype, size.as_slice()),
            (409, SIZE_TYPE, b"4\n".as_slice())
        );
        assert_eq!(
            status(
                &mut w,
                &body(4, &merkle::consistency_proof(&leaves(6), 4), &note(6))
            ),
            200
        );
        // A wrong proof, an old size past the checkpoint, a malformed body, another log.
        assert_eq!(status(&mut w, &body(6, &[[0; 32]], &note(7))), 422);
        assert_eq!(status(&mut w, &body(9, &[], &note(7))), 400);
        assert_eq!(status(&mut w, &format!("old 06\n\n{}", note(7))), 400);
        assert_eq!(status(&mut w, &body(6, &vec![[0; 32]; 64], &note(7))), 400);
        let other = Checkpoint {
            origin: "other/log".into(),
            size: 1,
            root: [0; 32],
        }
        .sign("other/log", &log);
        assert_eq!(status(&mut w, &body(0, &[], &other)), 404);
        // Signed by another key: 403.
        let forged = Checkpoint {
            origin: "example.com/log".into(),
            size: 9,
            root: [1; 32],
        }
        .sign("example.com/log", &test_key(&"02".repeat(32)));
        assert_eq!(status(&mut w, &body(6, &[], &forged)), 403);
        // A different tree of the same size as the one cosigned: 409.
        let same = Checkpoint {
            origin: "example.com/log".into(),
            size: 6,
            root: [1; 32],
        }
        .sign("example.com/log", &log);
        assert_eq!(status(&mut w, &body(6, &[], &same)), 409);
    }
}
