//! Errors of the WAL primitives.

use std::io;
use std::path::PathBuf;

/// An error of a WAL primitive. The stores map it onto their own error types.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file operation failed; the store treats it as a system error.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Damage that is not a torn tail (it is followed by valid data, or it is not in the
    /// last file, or the caller's own checks refused a frame): opening must stop rather
    /// than lose acknowledged data.
    #[error("corrupt log {path} at offset {offset}: {reason}")]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    /// Another open store (in this process or another) holds the directory's `LOCK`.
    #[error("{path} is held by another open store")]
    Locked { path: PathBuf },
    /// A frame body does not fit the 32-bit length field.
    #[error("frame body of {len} bytes does not fit a frame")]
    FrameTooLarge { len: usize },
}

impl WalError {
    /// An [`WalError::Io`] on `path`, for `map_err`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> WalError {
        let path = path.into();
        move |source| WalError::Io { path, source }
    }
}

/// Why the bytes at some offset are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("incomplete frame header ({available} of {needed} bytes)")]
    IncompleteHeader { available: u64, needed: usize },
    #[error("bad frame magic")]
    BadMagic,
    /// The length field is above the format's limit: garbage rather than a frame.
    #[error("frame body length {len} exceeds the limit of {max} bytes")]
    TooLong { len: u32, max: u32 },
    #[error("frame of {frame_len} bytes runs past the end of the data ({available} bytes left)")]
    Incomplete { frame_len: u64, available: u64 },
    #[error("checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum { stored: u32, computed: u32 },
}
