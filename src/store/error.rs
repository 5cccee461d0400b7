//! What went wrong in the store, typed so the engine acts on it: retry a
//! transient failure, reload after a conflict, refuse to load corruption.

/// The kind of a store failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// Trying again may work: the database was busy or locked, the disk
    /// hiccupped or was full, the network dropped.
    Transient,
    /// The store was changed by another writer since this process read it
    /// (a commit's expected sequence did not match): memory is stale and
    /// must be reloaded, never written over the other writer's work.
    Conflict,
    /// The store holds something this program cannot read as it is.
    Corrupt,
    /// Anything else: it cannot be used now (cannot be opened, shutting
    /// down, falling behind, refusing writes until a reload).
    Unavailable,
}

/// A store failure. The message says what to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store: {message}")]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub message: String,
    /// A conflict's hall: the one another node moved first (the others of
    /// the group can still be written).
    pub hall: Option<String>,
    /// The connection broke while the commit was sent: it may have taken
    /// effect or not. Retried until the store says which (the commit can
    /// recognise itself, `pg_backend`), never answered as a refusal while
    /// it may have happened.
    pub ambiguous: bool,
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> StoreError {
        StoreError {
            kind,
            message: message.into(),
            hall: None,
            ambiguous: false,
        }
    }

    /// The error of `hall`, as a conflict names it.
    pub fn in_hall(mut self, hall: &str) -> StoreError {
        self.hall = Some(hall.to_string());
        self
    }

    pub fn transient(message: impl Into<String>) -> StoreError {
        Self::new(StoreErrorKind::Transient, message)
    }

    pub fn conflict(message: impl Into<String>) -> StoreError {
        Self::new(StoreErrorKind::Conflict, message)
    }

    pub fn corrupt(message: impl Into<String>) -> StoreError {
        Self::new(StoreErrorKind::Corrupt, message)
    }

    pub fn unavailable(message: impl Into<String>) -> StoreError {
        Self::new(StoreErrorKind::Unavailable, message)
    }

    /// Trying the same thing again may work.
    pub fn is_transient(&self) -> bool {
        self.kind == StoreErrorKind::Transient
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::*;
        let kind = match e.sqlite_error_code() {
            Some(DatabaseBusy | DatabaseLocked | SystemIoFailure | DiskFull) => {
                StoreErrorKind::Transient
            }
            Some(DatabaseCorrupt | NotADatabase) => StoreErrorKind::Corrupt,
            _ => StoreErrorKind::Unavailable,
        };
        StoreError::new(kind, e.to_string())
    }
}
