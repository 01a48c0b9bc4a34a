//! What a data node holds in memory for one vchannel.

use std::collections::{BTreeMap, HashMap, HashSet};

use fv_common::pk::PkColumn;
use fv_common::schema::Schema;
use fv_common::{ALL_PARTITIONS, PartitionId, PrimaryKey, SegmentId, Timestamp};
use fv_storage::binlog::{DeltaData, PkStats};
use fv_storage::{SegmentData, StorageError};

/// Deletes waiting to be written, with the log position of the first one.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PendingDeletes {
    pub keys: Vec<PrimaryKey>,
    pub timestamps: Vec<Timestamp>,
    pub first_seq: Option<u64>,
}

impl PendingDeletes {
    pub fn push(&mut self, key: PrimaryKey, ts: Timestamp, seq: u64) {
        self.keys.push(key);
        self.timestamps.push(ts);
        self.first_seq.get_or_insert(seq);
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn to_delta(&self) -> Option<DeltaData> {
        Some(DeltaData { pks: PkColumn::from_keys(&self.keys)?, timestamps: self.timestamps.clone() })
    }
}

/// Rows of a segment not yet flushed.
#[derive(Debug)]
pub struct GrowingBuffer {
    pub partition_id: PartitionId,
    pub data: SegmentData,
    pub keys: HashSet<PrimaryKey>,
    /// Log position of the first insert of this segment seen by this node.
    pub first_seq: u64,
    pub deletes: PendingDeletes,
}

/// A flushed segment: its bloom filter routes later deletes to it.
#[derive(Debug)]
pub struct FlushedSegment {
    pub partition_id: PartitionId,
    pub stats: PkStats,
    pub deletes: PendingDeletes,
}

#[derive(Debug)]
pub struct ChannelBuffer {
    pub schema: Schema,
    pub growing: BTreeMap<SegmentId, GrowingBuffer>,
    pub flushed: HashMap<SegmentId, FlushedSegment>,
    /// Segments whose inserts are ignored (flushed before, or dropped).
    pub skip: HashSet<SegmentId>,
}

impl ChannelBuffer {
    pub fn new(schema: Schema) -> ChannelBuffer {
        ChannelBuffer { schema, growing: BTreeMap::new(), flushed: HashMap::new(), skip: HashSet::new() }
    }

    /// Buffers inserted rows; rows of skipped segments are ignored.
    pub fn insert(
        &mut self,
        segment: SegmentId,
        partition: PartitionId,
        rows: SegmentData,
        seq: u64,
    ) -> Result<(), StorageError> {
        if self.skip.contains(&segment) || self.flushed.contains_key(&segment) {
            return Ok(());
        }
        let pk_id = self.schema.pk().id;
        let keys: Vec<PrimaryKey> = match rows.column(pk_id) {
            Some(c) => (0..c.len()).filter_map(|i| c.pk(i)).collect(),
            None => return Err(StorageError::Invalid("insert without primary key column".into())),
        };
        let buf = match self.growing.entry(segment) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(GrowingBuffer {
                partition_id: partition,
                data: SegmentData::empty(&self.schema)?,
                keys: HashSet::new(),
                first_seq: seq,
                deletes: PendingDeletes::default(),
            }),
        };
        buf.data.append(&rows)?;
        buf.keys.extend(keys);
        Ok(())
    }

    /// Records deletes on every segment that may hold each key.
    pub fn delete(&mut self, partition: PartitionId, keys: &PkColumn, ts: Timestamp, seq: u64) -> usize {
        let mut routed = 0;
        for key in keys.iter() {
            let in_part = |p: PartitionId| partition == ALL_PARTITIONS || partition == p;
            for g in self.growing.values_mut() {
                if in_part(g.partition_id) && g.keys.contains(&key) {
                    g.deletes.push(key.clone(), ts, seq);
                    routed += 1;
                }
            }
            for f in self.flushed.values_mut() {
                if in_part(f.partition_id) && f.stats.may_contain(&key) {
                    f.deletes.push(key.clone(), ts, seq);
                    routed += 1;
                }
            }
        }
        routed
    }

    /// Resume position: just before the first record not yet persisted in binlogs, or
    /// `last_seq` when everything consumed is persisted.
    pub fn checkpoint_seq(&self, last_seq: u64) -> u64 {
        let earliest = self
            .growing
            .values()
            .map(|g| g.first_seq)
            .chain(self.flushed.values().filter_map(|f| f.deletes.first_seq))
            .min();
        match earliest {
            Some(first) => first.saturating_sub(1).min(last_seq),
            None => last_seq,
        }
    }

    pub fn buffered_rows(&self) -> Vec<(SegmentId, i64)> {
        self.growing.iter().map(|(id, g)| (*id, g.data.num_rows() as i64)).collect()
    }

    pub fn pending_delete_count(&self) -> usize {
        self.flushed.values().map(|f| f.deletes.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use fv_storage::testing;

    use super::*;

    fn schema() -> Schema {
        testing::schema(2)
    }

    fn rows(ids: &[i64], ts: u64) -> SegmentData {
        testing::rows(ids, ts, 2, |_, _| 0.5)
    }

    #[test]
    fn inserts_deletes_and_checkpoint() {
        let mut b = ChannelBuffer::new(schema());
        assert_eq!(b.checkpoint_seq(10), 10);
        b.insert(7, 1, rows(&[1, 2, 3], 5), 11).expect("insert");
        b.insert(7, 1, rows(&[4], 6), 12).expect("insert");
        b.skip.insert(8);
        b.insert(8, 1, rows(&[9], 6), 13).expect("skipped");
        assert_eq!(b.growing.len(), 1);
        assert_eq!(b.growing[&7].data.num_rows(), 4);
        assert_eq!(b.checkpoint_seq(13), 10);

        let stats = PkStats::build([PrimaryKey::Int(100), PrimaryKey::Int(101)].into_iter(), 0.001);
        b.flushed.insert(5, FlushedSegment { partition_id: 1, stats, deletes: PendingDeletes::default() });
        let routed = b.delete(ALL_PARTITIONS, &PkColumn::Int(vec![2, 100, 555]), 9, 14);
        assert_eq!(routed, 2);
        assert_eq!(b.growing[&7].deletes.keys, vec![PrimaryKey::Int(2)]);
        assert_eq!(b.flushed[&5].deletes.keys, vec![PrimaryKey::Int(100)]);
        // Deletes restricted to another partition touch nothing.
        assert_eq!(b.delete(2, &PkColumn::Int(vec![1]), 9, 15), 0);
        b.growing.clear();
        assert_eq!(b.checkpoint_seq(20), 13);
    }
}
