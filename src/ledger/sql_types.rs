//! How typed ids, digests and states are stored in SQLite columns: as the same text they
//! are written as in the journal, so projections read like the events they come from.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::id::{
    AdmissionId, BuildId, ChainHash, CommitId, ModelAdmissionId, ObjectId, RefusalId, Revocable,
    RevocationId, RunId, Sha256Digest, SourceId,
};
use crate::state::{
    AdmissionScope, BuildStatus, ChangeStatus, CheckResult, Lane, OutputCheck, RefusalReason,
    RefusalSubject, RunStatus, Verdict,
};
use crate::store::tree::ObjKind;

/// Parsed from their text form (`parse`), written with `Display`.
macro_rules! sql_text {
    ($($t:ty),+ $(,)?) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.to_string()))
            }
        }

        impl FromSql for $t {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = v.as_str()?;
                <$t>::parse(s).map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }
    )+};
}

sql_text!(
    ObjectId,
    Sha256Digest,
    AdmissionId,
    ModelAdmissionId,
    SourceId,
    RefusalId,
    RevocationId,
    BuildId,
    RunId,
    CommitId,
    Revocable,
    ChainHash,
);

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a known value of this column")]
struct UnknownState(String);

/// States: their fixed text.
macro_rules! sql_state {
    ($($t:ty),+ $(,)?) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $t {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = v.as_str()?;
                <$t>::parse(s).ok_or_else(|| FromSqlError::Other(Box::new(UnknownState(s.into()))))
            }
        }
    )+};
}

sql_state!(
    AdmissionScope,
    BuildStatus,
    ChangeStatus,
    CheckResult,
    Lane,
    OutputCheck,
    RefusalReason,
    RefusalSubject,
    RunStatus,
    Verdict,
    ObjKind,
);
