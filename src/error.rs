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
}

impl Error {
    pub fn bad_input(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::BadInput {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn io(action: &'static str, path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> Error {
        let path = path.as_ref().to_path_buf();
        move |source| Error::Io {
            action,
            path,
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
            Error::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull => {
                Some("free disk space and run the command again; nothing was committed")
            }
            _ => None,
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
        }
    }
}
