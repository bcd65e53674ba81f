//! The ledger home: `objects/`, `ledger.db` and `runs/`, found by `--ledger`,
//! then `CTO_LEDGER_DIR`, then `$XDG_DATA_HOME/cto-ledger`, then `~/.local/share/cto-ledger`.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::ledger::events::{Body, Event};
use crate::ledger::{Ledger, Mode};
use crate::store::{LocalBackend, Store};

/// The ledger home, always as an absolute path: the harness runs providers in other
/// working directories, so a relative home would stop naming the same place.
pub(crate) fn locate(flag: Option<&Path>) -> Result<PathBuf> {
    let dir = locate_as_given(flag)?;
    std::path::absolute(&dir).map_err(Error::io("resolve the ledger home", &dir))
}

fn locate_as_given(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    let non_empty = |k: &str| crate::env::get_os(k).map(PathBuf::from);
    if let Some(p) = non_empty("CTO_LEDGER_DIR") {
        return Ok(p);
    }
    if let Some(p) = non_empty("XDG_DATA_HOME") {
        return Ok(p.join("cto-ledger"));
    }
    if let Some(h) = non_empty("HOME") {
        return Ok(h.join(".local/share/cto-ledger"));
    }
    Err(Error::bad_input(
        "cannot find a ledger home: none of --ledger, CTO_LEDGER_DIR, XDG_DATA_HOME or HOME is set",
        "pass --ledger DIR",
    ))
}

/// An open ledger home: the store, the ledger, and the one door into the journal.
pub struct Home {
    pub dir: PathBuf,
    pub store: Store,
    pub ledger: Ledger,
}

impl Home {
    pub fn open(dir: &Path, mode: Mode) -> Result<Home> {
        match fs::symlink_metadata(dir) {
            Ok(m) if !m.is_dir() => {
                return Err(Error::bad_input(format!("ledger home {} is not a directory", dir.display()), "point --ledger at a directory"))
            }
            Ok(_) => {}
            Err(_) if mode == Mode::ReadOnly => {
                return Err(Error::Ledger {
                    path: dir.to_path_buf(),
                    message: "no ledger here".into(),
                    hint: Some("run `cto-ledger init` first, or point --ledger / CTO_LEDGER_DIR at an existing ledger".into()),
                })
            }
            Err(_) => {
                fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(Error::io("create ledger home", dir))?;
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(Error::io("chmod", dir))?;
            }
        }
        // The database first: a damaged or newer ledger is refused before anything is created.
        let ledger = Ledger::open(&dir.join("ledger.db"), mode)?;
        let objects = dir.join("objects");
        let store = Store::new(Box::new(LocalBackend::open(
            &objects,
            mode == Mode::ReadWrite,
        )?));
        Ok(Home {
            dir: dir.to_path_buf(),
            store,
            ledger,
        })
    }

    /// Commits journal events, after making every object they may name durable. The
    /// journal has no other door: [`Ledger::commit`] takes the proof of a store sync.
    pub fn commit(&mut self, bodies: Vec<Body>) -> Result<Vec<Event>> {
        let synced = self.store.sync()?;
        self.ledger.commit(synced, bodies)
    }

    /// As [`Home::commit`], unless `already` (asked inside the write transaction) says
    /// the events are not needed: then nothing is written and `None` is returned.
    pub(crate) fn commit_unless(
        &mut self,
        already: impl FnOnce(&Ledger) -> Result<bool>,
        bodies: Vec<Body>,
    ) -> Result<Option<Vec<Event>>> {
        let synced = self.store.sync()?;
        self.ledger.commit_unless(synced, already, bodies)
    }

    /// Records the journal's first event (`init`) if it has none; whether it did.
    pub(crate) fn init(&mut self) -> Result<bool> {
        let created = self
            .commit_unless(|l| Ok(l.head()?.seq > 0), vec![Body::Init { format: 1 }])?
            .is_some();
        Ok(created)
    }

    /// Resolves a REF; a REF that is a file path is hashed and looked up by digest.
    pub(crate) fn resolve(&self, r: &str) -> Result<crate::ledger::query::Node> {
        self.ledger.resolve(r, &|p| crate::store::hash_file(p))
    }

    /// Resolves a REF that must name an object.
    pub(crate) fn resolve_object(&self, r: &str) -> Result<crate::id::ObjectId> {
        match self.resolve(r)? {
            crate::ledger::query::Node::Object(id) => Ok(id),
            other => Err(Error::bad_input(
                format!("{r} names {}, not an object", other.label()),
                "give an object digest",
            )),
        }
    }

    pub(crate) fn runs_dir(&self) -> PathBuf {
        self.dir.join("runs")
    }

    /// Removes `dir`, a scratch folder in the home, without waiting for it: renamed to
    /// `trash-*` at once (so it is never taken for the scratch it was), then deleted by a
    /// detached process along with any trash a killed one left. A `build --check` clone
    /// with its `node_modules` is ~17,000 files: deleting it took 1.8 s of a 5.7 s check.
    pub(crate) fn discard(&self, dir: tempfile::TempDir) {
        let path = dir.keep();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if fs::rename(&path, self.dir.join(format!("{TRASH_PREFIX}{name}"))).is_err() {
            let _ = fs::remove_dir_all(&path);
            return;
        }
        let trash: Vec<PathBuf> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .as_encoded_bytes()
                    .starts_with(TRASH_PREFIX.as_bytes())
            })
            .map(|e| e.path())
            .collect();
        // Write permission first: a folder a build made read-only keeps `rm` out of it.
        // Its own process group, so a Ctrl-C at the terminal after we exit spares it.
        let _ = std::process::Command::new("/bin/sh")
            .args([
                "-c",
                r#"chmod -R u+rwx -- "$@" 2>/dev/null; exec rm -rf -- "$@""#,
                "sh",
            ])
            .args(&trash)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|_| {
                for t in &trash {
                    let _ = fs::remove_dir_all(t);
                }
            });
    }
}

/// Folders in the home waiting for [`Home::discard`]'s background deletion.
pub(crate) const TRASH_PREFIX: &str = "trash-";
