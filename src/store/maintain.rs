//! Keeping the local store small: `repack` (loose small objects into packs) and the
//! removal `gc` does. Every step keeps every object readable: a pack is durable before
//! the loose copies it replaces go, and a file is removed only after it is renamed out of
//! the way and found still untouched (a command that relied on it meanwhile marked it).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use super::pack::{self, SMALL_MAX};
use super::{Backend, LocalBackend};
use crate::error::{Error, Result};
use crate::id::ObjectId;

/// A loose object file.
pub(crate) struct Loose {
    pub(crate) id: ObjectId,
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
    pub(crate) modified: SystemTime,
}

/// A pack file and the objects its index lists.
pub(crate) struct PackFile {
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
    pub(crate) modified: SystemTime,
    pub(crate) objects: Vec<ObjectId>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct RepackOut {
    pub(crate) moved: u64,
    pub(crate) bytes: u64,
    pub(crate) packs_before: u64,
    pub(crate) packs_after: u64,
    pub(crate) loose_left: u64,
    /// Loose files that did not hash to their name: left in place for `audit` to name.
    pub(crate) damaged: Vec<String>,
}

impl LocalBackend {
    /// Every loose object file with a valid name (anomalies are `list`'s to report).
    pub(crate) fn loose(&self) -> Result<Vec<Loose>> {
        let mut out = Vec::new();
        for i in 0..=255u8 {
            let fan = format!("{i:02x}");
            let dir = self.root().join(&fan);
            let Some(rd) = pack::read_dir_if_present(&dir)? else {
                continue;
            };
            for e in rd {
                let e = e.map_err(Error::io("list", &dir))?;
                let Ok(id) = ObjectId::parse(&format!("{fan}{}", e.file_name().to_string_lossy()))
                else {
                    continue;
                };
                let path = e.path();
                let Ok(m) = fs::symlink_metadata(&path) else {
                    continue;
                };
                if m.is_file() {
                    out.push(Loose {
                        id,
                        path,
                        size: m.len(),
                        modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Every well-formed pack file (damaged ones are `list`'s to report and are never
    /// removed by `gc`: they are evidence).
    pub(crate) fn pack_files(&self) -> Result<Vec<PackFile>> {
        let dir = self.root().join(pack::DIR);
        let Some(rd) = pack::read_dir_if_present(&dir)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(Error::io("list", &dir))?;
            let path = e.path();
            if !e.file_name().to_string_lossy().ends_with(".pack") {
                continue;
            }
            let Ok(f) = pack::open_pack(&path) else {
                continue;
            };
            let Ok(index) = pack::read_index(&f) else {
                continue;
            };
            let m = f.metadata().map_err(Error::io("stat", &path))?;
            out.push(PackFile {
                path,
                size: m.len(),
                modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                objects: index.entries.into_iter().map(|e| e.0).collect(),
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Moves every loose object smaller than a pack's limit into packs: the packs are
    /// written and made durable first, then the loose copies are removed. A kill at any
    /// moment leaves each object readable (in its file, its pack, or both); running again
    /// finishes the job.
    pub(crate) fn repack(&self) -> Result<RepackOut> {
        let mut out = RepackOut {
            packs_before: self.pack_files()?.len() as u64,
            ..Default::default()
        };
        let small: Vec<Loose> = self
            .loose()?
            .into_iter()
            .filter(|l| (l.size as usize) < SMALL_MAX)
            .collect();
        let mut moved = Vec::new();
        for l in small {
            let mut bytes = Vec::with_capacity(l.size as usize);
            let read = fs::File::open(&l.path)
                .and_then(|f| f.take(SMALL_MAX as u64).read_to_end(&mut bytes));
            if read.is_err() {
                continue; // removed meanwhile (another repack or gc): nothing to move
            }
            if blake3::hash(&bytes).as_bytes() != &l.id.0 {
                out.damaged.push(l.path.display().to_string());
                continue;
            }
            out.bytes += bytes.len() as u64;
            self.packs().add(&l.id, bytes)?;
            moved.push(l);
        }
        self.sync()?;
        crate::env::crash_point("repack-packed");
        for l in &moved {
            if self.packs().has(&l.id)? {
                match fs::remove_file(&l.path) {
                    Ok(()) => out.moved += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(Error::Io {
                            action: "remove the packed loose copy",
                            path: l.path.clone(),
                            source: e,
                        })
                    }
                }
            }
        }
        self.sync()?;
        out.packs_after = self.pack_files()?.len() as u64;
        out.loose_left = self.loose()?.len() as u64;
        Ok(out)
    }

    /// Removes the object file or pack at `path` unless something marked it at or after
    /// `cutoff`. It is first renamed to a temp name (never read as an object), then checked
    /// again: a command that relied on it between the first look and the rename marked it,
    /// and it is put back. A command that looks after the rename finds it absent and
    /// writes its own copy. Returns whether it was removed.
    pub(crate) fn remove_if_unused(&self, path: &Path, cutoff: SystemTime) -> Result<bool> {
        let untouched = |p: &Path| {
            fs::symlink_metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff)
        };
        if !untouched(path) {
            return Ok(false);
        }
        let dir = path.parent().expect("store files have a parent");
        let aside = dir.join(format!(
            "{}gc-{}",
            if dir.ends_with(pack::DIR) {
                pack::TEMP_PREFIX
            } else {
                super::local::TEMP_PREFIX
            },
            path.file_name()
                .expect("store files have a name")
                .to_string_lossy()
        ));
        match fs::rename(path, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => {
                return Err(Error::Io {
                    action: "move aside for removal",
                    path: path.to_path_buf(),
                    source: e,
                })
            }
        }
        if !untouched(&aside) {
            fs::rename(&aside, path).map_err(Error::io("put back", path))?;
            return Ok(false);
        }
        fs::remove_file(&aside).map_err(Error::io("remove", &aside))?;
        Ok(true)
    }
}
