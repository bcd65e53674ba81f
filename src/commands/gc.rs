//! `cto-ledger gc`: remove objects no journal event names, and packs holding only such
//! objects, once nothing has written or relied on them for the grace period.

use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{text::R, Context, Output};
use crate::error::Result;
use crate::id::ObjectId;
use crate::ledger::Mode;
use crate::store::Backend as _;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// List what would be removed; remove nothing
    #[arg(long)]
    dry_run: bool,
    /// Keep anything written or used more recently than this (s, m, h or d; at least 2m)
    #[arg(long, default_value = "24h", value_parser = parse_grace, value_name = "AGE")]
    grace: Duration,
}

fn parse_grace(s: &str) -> std::result::Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not an age like 30m, 24h or 7d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{s}` is not an age like 30m, 24h or 7d")),
    };
    match n.checked_mul(secs) {
        None => Err(format!("`{s}` is too long")),
        // A command that relies on a stored object marks it at most once a minute.
        Some(t) if t < 120 => Err(format!(
            "`{s}` is shorter than the shortest grace period, 2m: objects a running command relies on are marked once a minute"
        )),
        Some(t) => Ok(Duration::from_secs(t)),
    }
}

#[derive(Serialize)]
struct Removed {
    path: String,
    kind: &'static str,
    objects: u64,
    bytes: u64,
}

#[derive(Serialize)]
pub(crate) struct GcOut {
    dry_run: bool,
    grace_seconds: u64,
    named: u64,
    removed: Vec<Removed>,
    bytes_freed: u64,
    /// Unnamed objects kept: younger than the grace period, or in a pack that also holds
    /// named ones.
    kept_unnamed: u64,
    temps_removed: usize,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let home = cx.open(Mode::ReadWrite)?;
    let local = super::repack::local_store(&home)?;
    // What the journal names, read from the journal itself (not a projection a damaged
    // database could have lost rows of): an event that cannot be decoded stops gc.
    let mut named: HashSet<ObjectId> = HashSet::new();
    for row in home.ledger.journal_rows()? {
        named.extend(row.decode()?.body.objects().into_iter().map(|o| o.id));
    }
    let cutoff = SystemTime::now() - a.grace;
    let mut out = GcOut {
        dry_run: a.dry_run,
        grace_seconds: a.grace.as_secs(),
        named: named.len() as u64,
        removed: Vec::new(),
        bytes_freed: 0,
        kept_unnamed: 0,
        temps_removed: 0,
    };
    let old = |t: SystemTime| t < cutoff;
    for l in local.loose()? {
        if named.contains(&l.id) {
            continue;
        }
        let gone = if a.dry_run {
            old(l.modified)
        } else {
            local.remove_if_unused(&l.path, cutoff)?
        };
        if gone {
            out.bytes_freed += l.size;
            out.removed.push(Removed {
                path: l.path.display().to_string(),
                kind: "object",
                objects: 1,
                bytes: l.size,
            });
        } else {
            out.kept_unnamed += 1;
        }
    }
    for p in local.pack_files()? {
        let unnamed = p.objects.iter().filter(|id| !named.contains(id)).count() as u64;
        if unnamed == 0 {
            continue;
        }
        if unnamed < p.objects.len() as u64 {
            out.kept_unnamed += unnamed;
            continue;
        }
        let gone = if a.dry_run {
            old(p.modified)
        } else {
            local.remove_if_unused(&p.path, cutoff)?
        };
        if gone {
            out.bytes_freed += p.size;
            out.removed.push(Removed {
                path: p.path.display().to_string(),
                kind: "pack",
                objects: unnamed,
                bytes: p.size,
            });
        } else {
            out.kept_unnamed += unnamed;
        }
    }
    if !a.dry_run {
        out.temps_removed = local.clean_temps(a.grace.max(Duration::from_secs(3600)))?;
        local.sync()?;
    }
    Ok(Output::doc(out, text))
}

fn text(w: &mut dyn Write, r: &GcOut) -> R {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    for x in &r.removed {
        writeln!(
            w,
            "{verb} {} {} ({} object(s), {} bytes)",
            x.kind, x.path, x.objects, x.bytes
        )?;
    }
    writeln!(
        w,
        "{verb} {} file(s), {} bytes; {} object(s) named by the journal kept; {} unnamed object(s) kept (used within {} s, or packed beside named ones)",
        r.removed.len(),
        r.bytes_freed,
        r.named,
        r.kept_unnamed,
        r.grace_seconds
    )
}
