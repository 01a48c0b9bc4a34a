//! The snapshot: `meta.snap`, `"FVMSNAP1" | payload length u64 | crc32 u32 | payload`,
//! payload = format version, log generation to replay next, revision, next lease id, the
//! leases (id, TTL) and every key with its value, create/mod revision, version and lease.
//! It is replaced atomically ([`fv_wal::replace_file`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use tokio::time::Instant;

use super::codec::{Decoder, put_bytes, put_duration, put_len};
use super::state::{Entry, Lease, State};
use super::{EmbeddedMetaKvConfig, corrupt};
use crate::{LeaseId, MetaError, Result};

pub(super) const SNAPSHOT_FILE: &str = "meta.snap";
/// Where [`fv_wal::replace_file`] writes the next snapshot before renaming it.
pub(super) const SNAPSHOT_TMP_FILE: &str = "meta.snap.tmp";
const SNAPSHOT_MAGIC: &[u8; 8] = b"FVMSNAP1";
const SNAPSHOT_FORMAT_VERSION: u32 = 1;
/// magic 8 + length 8 + crc 4.
const SNAPSHOT_HEADER_LEN: usize = 20;

/// The snapshot file of `state`, naming the log `generation` to replay after it.
pub(super) fn encode_snapshot(state: &State, generation: u64) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.put_u32_le(SNAPSHOT_FORMAT_VERSION);
    payload.put_u64_le(generation);
    payload.put_i64_le(state.revision);
    payload.put_i64_le(state.next_lease_id);
    let leases: BTreeMap<LeaseId, Duration> = state.leases.iter().map(|(&id, lease)| (id, lease.ttl)).collect();
    put_len(&mut payload, leases.len());
    for (id, ttl) in leases {
        payload.put_i64_le(id);
        put_duration(&mut payload, ttl);
    }
    payload.put_u64_le(state.kvs.len() as u64);
    for (key, entry) in &state.kvs {
        put_bytes(&mut payload, key.as_bytes());
        put_bytes(&mut payload, &entry.value);
        payload.put_i64_le(entry.create_revision);
        payload.put_i64_le(entry.mod_revision);
        payload.put_i64_le(entry.version);
        payload.put_i64_le(entry.lease);
    }
    let mut out = Vec::with_capacity(payload.len() + SNAPSHOT_HEADER_LEN);
    out.put_slice(SNAPSHOT_MAGIC);
    out.put_u64_le(payload.len() as u64);
    out.put_u32_le(crc32fast::hash(&payload));
    out.put_slice(&payload);
    out
}

/// Reads the snapshot, if there is one: the state and the log generation to replay.
pub(super) fn read_snapshot(path: &Path, config: &EmbeddedMetaKvConfig, now: Instant) -> Result<Option<(State, u64)>> {
    let data = match fs::read(path) {
        Ok(data) => data,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(MetaError::Io { path: path.to_owned(), source }),
    };
    if data.len() < SNAPSHOT_HEADER_LEN || data[..8] != SNAPSHOT_MAGIC[..] {
        return Err(corrupt(path, 0, "bad snapshot header"));
    }
    let mut header = &data[8..SNAPSHOT_HEADER_LEN];
    let len = header.get_u64_le();
    let crc = header.get_u32_le();
    let payload = &data[SNAPSHOT_HEADER_LEN..];
    if payload.len() as u64 != len || crc32fast::hash(payload) != crc {
        return Err(corrupt(path, 0, "snapshot checksum or length mismatch"));
    }
    decode_snapshot(payload, config, now).map(Some).map_err(|reason| corrupt(path, SNAPSHOT_HEADER_LEN as u64, reason))
}

fn decode_snapshot(
    payload: &[u8],
    config: &EmbeddedMetaKvConfig,
    now: Instant,
) -> std::result::Result<(State, u64), String> {
    let mut dec = Decoder::new(payload);
    let version = dec.u32()?;
    if version != SNAPSHOT_FORMAT_VERSION {
        return Err(format!("unsupported snapshot format version {version}"));
    }
    let generation = dec.u64()?;
    let mut state = State::new(config);
    state.revision = dec.i64()?;
    state.oldest_history = state.revision + 1;
    state.next_lease_id = dec.i64()?;
    for _ in 0..dec.u32()? {
        let id = dec.i64()?;
        let ttl = dec.duration()?;
        state.leases.insert(id, Lease { ttl, deadline: now + ttl, keys: BTreeSet::new() });
    }
    for _ in 0..dec.u64()? {
        let key = dec.string()?;
        let value = Bytes::copy_from_slice(dec.bytes()?);
        let entry = Entry {
            value,
            create_revision: dec.i64()?,
            mod_revision: dec.i64()?,
            version: dec.i64()?,
            lease: dec.i64()?,
        };
        if entry.lease != 0 {
            let lease = state
                .leases
                .get_mut(&entry.lease)
                .ok_or_else(|| format!("key {key:?} has unknown lease {}", entry.lease))?;
            lease.keys.insert(key.clone());
        }
        state.kvs.insert(key, entry);
    }
    dec.finish()?;
    Ok((state, generation))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::{EmbeddedMetaKv, EmbeddedMetaKvConfig};
    use super::*;
    use crate::MetaKv;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn corrupt_snapshot_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = EmbeddedMetaKvConfig { snapshot_log_bytes: 256, ..EmbeddedMetaKvConfig::default() };
        let kv = EmbeddedMetaKv::open_with_config(dir.path(), config.clone()).expect("open");
        for i in 0..20 {
            kv.put(&format!("k{i}"), Bytes::from(vec![1u8; 64]), 0).await.expect("put");
        }
        drop(kv);
        let snapshot = dir.path().join(SNAPSHOT_FILE);
        let mut data = fs::read(&snapshot).expect("read snapshot");
        let last = data.len() - 1;
        data[last] ^= 0x01;
        fs::write(&snapshot, &data).expect("write snapshot");
        assert!(matches!(EmbeddedMetaKv::open_with_config(dir.path(), config), Err(MetaError::Corrupt { .. })));
    }
}
