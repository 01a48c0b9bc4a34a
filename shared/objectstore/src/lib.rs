//! Object storage for binlogs, stats logs and index files.
//!
//! Keys are `/`-separated relative paths (`insert_log/<collection>/<partition>/...`);
//! objects are immutable once written (a put of an existing key replaces it whole).
//! Implementations: [`local::LocalObjectStore`] (a directory; standalone and tests) and
//! [`s3::S3ObjectStore`] (any S3-compatible service; tested against SeaweedFS, see
//! `scripts/deps.sh`). Every implementation must pass [`testsuite`].

pub mod error;
pub mod local;
pub mod s3;
#[cfg(any(test, feature = "testing"))]
pub mod testsuite;

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

pub use error::{ObjectStoreError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
}

#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Writes the whole object; when this returns Ok the object is durable and a
    /// concurrent reader sees either the old or the new content, never a mix.
    async fn put(&self, key: &str, data: Bytes) -> Result<()>;

    /// Reads the whole object; [`ObjectStoreError::NotFound`] when absent.
    async fn get(&self, key: &str) -> Result<Bytes>;

    /// Reads bytes `range` of the object. The range is clamped to the object's end;
    /// a start beyond the end is [`ObjectStoreError::InvalidRange`].
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes>;

    /// Size of the object, or None when absent.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>>;

    /// Every object whose key starts with `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Deletes an object; deleting an absent key succeeds.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Deletes every object under `prefix`; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64>;

    fn kind(&self) -> &'static str;
}

pub type ObjectStoreRef = Arc<dyn ObjectStore>;
