//! Write-ahead-log primitives shared by Ferrovec's embedded stores: the file log of
//! `fv-logbroker` (`embedded`) and the meta store of `fv-metastore` (`embedded`).
//!
//! Both keep their data in append-only files of checksummed frames, fsynced by one writer
//! thread per file before anything is acknowledged, and both must come back after a crash
//! with every acknowledged write and without serving a half-written one. What they share
//! lives here, so there is one copy of each rule:
//!
//! - [`DirLock`]: one open store per directory (`LOCK`, held with an exclusive file lock).
//! - [`sync_dir`] and [`replace_file`]: making creations, renames and small-file
//!   replacements (temp file, fsync, rename, directory fsync) durable.
//! - [`FrameFormat`]: the frame codec,
//!   `magic | body length u32 | crc32 u32 | fixed fields | body`, all little-endian. Each
//!   store picks its magic, how many fixed fields follow the crc and whether the crc
//!   covers the length field, so both existing on-disk layouts are expressed exactly.
//! - [`recover`]: reads a file of frames back. Damage at the very end of the last file
//!   with nothing valid after it (a torn write) is cut off; any other damage is
//!   [`WalError::Corrupt`].
//! - [`GroupWriter`]: the writer thread. Appends queued while a group is being written
//!   form the next group: one write, one fdatasync under [`FsyncPolicy::Always`], and only
//!   then are the callers answered ([`GroupCommit`]).
//!
//! The crate knows nothing about what the frames hold; the stores encode their records
//! with `bytes::{Buf, BufMut}` inside the frame bodies.

mod dir;
mod error;
mod frame;
mod recovery;
mod writer;

use serde::{Deserialize, Serialize};

pub use dir::{DirLock, LOCK_FILE, ReplaceError, replace_file, sync_dir};
pub use error::{FrameError, WalError};
pub use frame::{FRAME_PREFIX_LEN, Frame, FrameFormat, FrameHeader, FrameStart};
pub use recovery::{Scan, TornTail, Truncated, recover};
pub use writer::{GroupCommit, GroupConfig, GroupSender, GroupWriter, Staged};

/// When appended data is forced to stable storage. In the configuration file it is
/// written in lower case (`fsync = "always"` / `"never"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// A write is acknowledged only after it is fdatasync'ed; concurrent writers share
    /// one fdatasync (group commit).
    #[default]
    Always,
    /// Leave flushing to the OS: survives a crash of the process, not a power loss.
    Never,
}

#[cfg(test)]
mod tests {
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as DeError, StrDeserializer};

    use super::*;

    #[test]
    fn fsync_policy_is_lower_case_and_defaults_to_always() {
        let parse = |s: &str| FsyncPolicy::deserialize::<StrDeserializer<'_, DeError>>(s.into_deserializer());
        assert_eq!(parse("always").expect("always"), FsyncPolicy::Always);
        assert_eq!(parse("never").expect("never"), FsyncPolicy::Never);
        assert!(parse("Never").is_err(), "the spelling is lower case");
        assert_eq!(FsyncPolicy::default(), FsyncPolicy::Always);
    }
}
