//! One error type for the library. Each variant carries the input it is about and,
//! where there is one, what the user should do; `cli` turns them into exit codes.

use std::io;
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user gave something we cannot act on. Nothing was changed.
    #[error("{message}")]
    BadInput {
        message: String,
        hint: Option<String>,
    },

    /// An admission was refused; the refusal itself was recorded in the journal.
    #[error("admission refused: {message}")]
    Refused {
        message: String,
        hint: Option<String>,
        refusal: String,
    },

    /// A reference matched nothing.
    #[error("{what} `{input}` matches nothing in the ledger")]
    NotFound {
        what: &'static str,
        input: String,
        hint: Option<String>,
    },

    /// A reference matched more than one thing.
    #[error("`{input}` is ambiguous; it matches:\n{}", candidates.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n"))]
    Ambiguous {
        input: String,
        candidates: Vec<String>,
    },

    /// The ledger database cannot be used (corrupt, not SQLite, from a newer version).
    #[error("ledger database {path}: {message}")]
    Ledger {
        path: PathBuf,
        message: String,
        hint: Option<String>,
    },

    /// Stored bytes do not match their name: the store is damaged.
    #[error("integrity failure: {message}")]
    Integrity { message: String },

    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    #[error("ledger database: {action}: {source}")]
    Sql {
        action: &'static str,
        source: rusqlite::Error,
    },

    #[error("git: {action} in {}: {message}", path.display())]
    Git {
        action: &'static str,
        path: PathBuf,
        message: String,
    },

    /// The remote (S3-compatible object storage) could not be reached or refused a request.
    #[error("remote {remote}: {message}")]
    Remote {
        remote: String,
        message: String,
        hint: Option<String>,
    },

    #[error("interrupted")]
    Interrupted,

    /// The disk holding the ledger is full: the failure, and where and how full the disk is.
    #[error("{source}\n(no space: the disk holding {}, mounted at {}, has {free} bytes free)", home.display(), mount.display())]
    DiskFull {
        home: PathBuf,
        mount: PathBuf,
        free: u64,
        source: Box<Error>,
    },

    /// A command that stopped after committing part of its work: why it stopped, and
    /// what it had committed.
    #[error("{source}\n({committed})")]
    AfterCommit {
        committed: String,
        source: Box<Error>,
    },
}

impl Error {
    pub fn bad_input(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::BadInput {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// The error of `action` on `path`, made only if it happens: the path is copied then,
    /// not on every call (`read_one` calls this per directory entry).
    pub fn io(action: &'static str, path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io {
            action,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// As [`Error::io`] on a directory entry's path, joined only if the error happens
    /// (`ent.path()` as an argument would join it for every entry listed).
    pub fn io_entry<'e>(
        action: &'static str,
        ent: &'e std::fs::DirEntry,
    ) -> impl FnOnce(io::Error) -> Error + 'e {
        move |source| Error::Io {
            action,
            path: ent.path(),
            source,
        }
    }

    pub fn sql(action: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
        move |source| Error::Sql { action, source }
    }

    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::BadInput { hint, .. }
            | Error::Refused { hint, .. }
            | Error::NotFound { hint, .. }
            | Error::Ledger { hint, .. }
            | Error::Remote { hint, .. } => hint.as_deref(),
            Error::Ambiguous { .. } => Some("give a longer prefix or a full digest"),
            Error::AfterCommit { source, .. } => source.hint(),
            Error::DiskFull { .. } => Some("free at least 1 MiB there, plus the size of what is being recorded, then run the command again; a command stopped by a full disk commits nothing it had not finished"),
            Error::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull => {
                Some("free disk space and run the command again")
            }
            _ => None,
        }
    }

    /// Whether the failure is the disk's being full (or SQLite's I/O error, which on a
    /// full disk is what creating its files gives).
    pub fn is_disk_full(&self) -> bool {
        use rusqlite::ErrorCode::{DiskFull, SystemIoFailure};
        match self {
            Error::Io { source, .. } => source.kind() == io::ErrorKind::StorageFull,
            Error::Sql { source, .. } => {
                matches!(source.sqlite_error_code(), Some(DiskFull | SystemIoFailure))
            }
            Error::AfterCommit { source, .. } => source.is_disk_full(),
            Error::Git { message, .. } => message.contains("No space left on device"),
            _ => false,
        }
    }

    /// A disk-full failure with the disk holding `home` named, when it is one and that
    /// disk is indeed (under 1 MiB free); else the error as it is.
    pub fn on_disk_of(self, home: &Path) -> Error {
        if !self.is_disk_full() {
            return self;
        }
        let Some((mount, free)) = disk_of(home) else {
            return self;
        };
        if free >= 1 << 20 {
            // Room to spare: a quota, another disk, or SQLite's I/O error for another cause.
            return self;
        }
        Error::DiskFull {
            home: home.to_path_buf(),
            mount,
            free,
            source: Box::new(self),
        }
    }

    /// The documented exit code (README "Exit codes").
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::BadInput { .. }
            | Error::Refused { .. }
            | Error::NotFound { .. }
            | Error::Ambiguous { .. }
            | Error::Ledger { .. } => 2,
            Error::Integrity { .. } => 3,
            Error::Io { .. } | Error::Sql { .. } | Error::Git { .. } | Error::Remote { .. } => 4,
            Error::Interrupted => 130,
            Error::AfterCommit { source, .. } => source.exit_code(),
            Error::DiskFull { .. } => 4,
        }
    }
}

/// The mount point of the filesystem holding `path` (or its nearest existing parent),
/// and the bytes free there for an ordinary user.
fn disk_of(path: &Path) -> Option<(PathBuf, u64)> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let st = rustix::fs::statvfs(existing).ok()?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    let real = std::fs::canonicalize(existing).ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // Field 5 of each line is the mount point; the longest that contains `real` holds it.
    let mount = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| real.starts_with(m))
        .max_by_key(|m| m.as_os_str().len())
        .unwrap_or_else(|| PathBuf::from("/"));
    Some((mount, free))
}
