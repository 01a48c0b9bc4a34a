//! Errors of the load generator. Server-side failures of individual requests are not
//! errors of the run: they are counted by code in the results (see [`crate::client`]).

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("dataset: {0}")]
    Dataset(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("invalid option: {0}")]
    Option(String),
    #[error("{phase} failed: {source}")]
    Phase { phase: &'static str, source: crate::client::ClientError },
    #[error("cannot connect to {uri}: {reason}")]
    Connect { uri: String, reason: String },
}

impl LoadError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        LoadError::Io { path: path.display().to_string(), source }
    }
}

pub type Result<T, E = LoadError> = std::result::Result<T, E>;

/// Adds the phase name to a client error.
pub trait PhaseContext<T> {
    fn phase(self, phase: &'static str) -> Result<T>;
}

impl<T> PhaseContext<T> for std::result::Result<T, crate::client::ClientError> {
    fn phase(self, phase: &'static str) -> Result<T> {
        self.map_err(|source| LoadError::Phase { phase, source })
    }
}
