//! The task that consumes one vchannel (Milvus' data node flowgraph).
//!
//! It reads the vchannel's records and its pchannel's time ticks from the checkpoint on,
//! buffers inserts per segment, routes deletes, and flushes a sealed segment once a
//! time tick reaches the segment's seal timestamp (no row of it can follow). After each
//! flush it reports the binlog paths together with the new checkpoint, so a restart
//! replays exactly what is not persisted yet.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use fv_common::channel::{pchannel_of, tick_subject, vchannel_subject};
use fv_common::pk::PkColumn;
use fv_common::schema::Schema;
use fv_common::{CollectionId, FvError, FvResult, SegmentId, Timestamp};
use fv_logbroker::{LogStream, SeekFrom, SubjectFilter};
use fv_proto::common::SegmentState;
use fv_proto::fv::datacoord::{
    ReportDataNodeStatsRequest, SaveBinlogPathsRequest, SegmentStats, UpdateChannelCheckpointRequest,
};
use fv_proto::fv::datanode::WatchDmChannelRequest;
use fv_proto::fv::meta::SegmentInfo;
use fv_proto::fv::msg::{DmlMessage, MsgPosition, dml_message::Body};
use fv_proto::fv::rootcoord::{AllocIdRequest, SyncTimeTickRequest};
use fv_runtime::Clients;
use fv_runtime::{RoleContext, Shutdown};
use fv_storage::SegmentData;
use fv_storage::binlog::decode_stats_log;
use prost::Message;
use tokio::sync::mpsc;

use crate::buffer::{ChannelBuffer, FlushedSegment, PendingDeletes};
use crate::flush;

#[cfg(test)]
mod tests;

const RPC_DEADLINE: Duration = Duration::from_secs(10);

/// Commands from the data node actor to a pipeline.
#[derive(Debug)]
pub enum Command {
    /// Flush these segments once the time tick reaches `seal_ts`; with `flush_deletes`,
    /// also write out buffered deletes then.
    Flush { segment_ids: Vec<SegmentId>, seal_ts: Timestamp, flush_deletes: bool },
    /// Forget these segments: their partition or collection was dropped.
    Discard { segment_ids: Vec<SegmentId> },
}

pub struct Pipeline {
    ctx: RoleContext,
    collection: CollectionId,
    vchannel: String,
    pchannel: String,
    buffer: ChannelBuffer,
    /// Segment -> seal timestamp, for sealed segments awaiting their flush.
    pending_seals: BTreeMap<SegmentId, Timestamp>,
    /// Write out deletes once the tick reaches this.
    pending_delete_flush: Option<Timestamp>,
    tick: Timestamp,
    last_seq: u64,
    reported_checkpoint: u64,
    last_delete_flush: Instant,
    sync_requested_for: Timestamp,
}

/// A running pipeline.
pub struct PipelineHandle {
    pub commands: mpsc::UnboundedSender<Command>,
    pub stop: Shutdown,
}

fn schema_of(req: &WatchDmChannelRequest) -> FvResult<Schema> {
    let info = req.collection.as_ref().ok_or_else(|| FvError::invalid_parameter("watch without collection info"))?;
    Schema::from_proto(info.schema.as_ref().ok_or_else(|| FvError::invalid_parameter("collection without schema"))?)
}

impl Pipeline {
    /// Prepares a pipeline from a watch request: loads the bloom filters of flushed
    /// segments and remembers pending seals.
    pub async fn prepare(ctx: RoleContext, req: &WatchDmChannelRequest) -> FvResult<Pipeline> {
        let channel = req.channel.clone().ok_or_else(|| FvError::invalid_parameter("watch without channel info"))?;
        let schema = schema_of(req)?;
        let mut buffer = ChannelBuffer::new(schema);
        let mut pending_seals = BTreeMap::new();
        for s in &req.segments {
            if s.state == SegmentState::Flushed as i32 {
                let stats = load_stats(&ctx, s).await?;
                buffer.flushed.insert(
                    s.id,
                    FlushedSegment { partition_id: s.partition_id, stats, deletes: PendingDeletes::default() },
                );
            } else if s.state == SegmentState::Sealed as i32 {
                pending_seals.insert(s.id, s.seal_ts);
            }
        }
        buffer.skip.extend(channel.dropped_segment_ids.iter().copied());
        let last_seq = channel.seek_position.as_ref().map(|p| p.seq).unwrap_or(0);
        Ok(Pipeline {
            ctx,
            collection: channel.collection_id,
            pchannel: pchannel_of(&channel.vchannel).to_string(),
            vchannel: channel.vchannel,
            buffer,
            pending_seals,
            pending_delete_flush: None,
            tick: 0,
            last_seq,
            reported_checkpoint: last_seq,
            last_delete_flush: Instant::now(),
            sync_requested_for: 0,
        })
    }

    async fn subscribe(&self) -> FvResult<LogStream> {
        let filter = SubjectFilter::Subjects(vec![vchannel_subject(&self.vchannel), tick_subject(&self.pchannel)]);
        self.ctx
            .broker
            .subscribe(&self.pchannel, filter, SeekFrom::After(self.last_seq))
            .await
            .map_err(|e| FvError::unavailable(format!("cannot consume {}: {e}", self.vchannel)))
    }

    /// Runs until `stop` fires.
    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>, stop: Shutdown) {
        tracing::info!(vchannel = %self.vchannel, from = self.last_seq, "data node pipeline started");
        let mut timer = tokio::time::interval(Duration::from_secs(1));
        let mut stream: Option<LogStream> = None;
        loop {
            if stream.is_none() {
                match self.subscribe().await {
                    Ok(s) => stream = Some(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "subscription failed; retrying");
                        tokio::select! {
                            _ = stop.wait() => break,
                            _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                        }
                    }
                }
            }
            let s = stream.as_mut().expect("subscribed above");
            tokio::select! {
                _ = stop.wait() => break,
                cmd = commands.recv() => match cmd {
                    Some(c) => self.command(c).await,
                    None => break,
                },
                item = s.next() => match item {
                    Some(Ok(msg)) => {
                        let seq = msg.position;
                        match DmlMessage::decode(msg.payload) {
                            Ok(m) => self.process(m, seq).await,
                            Err(e) => tracing::error!(error = %e, seq, vchannel = %self.vchannel, "undecodable log record skipped"),
                        }
                        self.last_seq = seq;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, vchannel = %self.vchannel, "log stream failed; resubscribing");
                        stream = None;
                    }
                    None => stream = None,
                },
                _ = timer.tick() => self.periodic().await,
            }
        }
        tracing::info!(vchannel = %self.vchannel, "data node pipeline stopped");
    }

    async fn command(&mut self, c: Command) {
        match c {
            Command::Flush { segment_ids, seal_ts, flush_deletes } => {
                for id in segment_ids {
                    let e = self.pending_seals.entry(id).or_insert(seal_ts);
                    *e = (*e).max(seal_ts);
                }
                if flush_deletes {
                    self.pending_delete_flush = Some(self.pending_delete_flush.unwrap_or(0).max(seal_ts));
                }
                self.flush_due().await;
            }
            Command::Discard { segment_ids } => {
                for id in segment_ids {
                    self.buffer.growing.remove(&id);
                    self.buffer.flushed.remove(&id);
                    self.pending_seals.remove(&id);
                    self.buffer.skip.insert(id);
                }
            }
        }
    }

    async fn process(&mut self, msg: DmlMessage, seq: u64) {
        match msg.body {
            Some(Body::Insert(ins)) => {
                if ins.vchannel != self.vchannel {
                    return;
                }
                let rows = match SegmentData::from_field_data(
                    &ins.fields,
                    &self.buffer.schema,
                    ins.num_rows as usize,
                    ins.timestamp,
                ) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, seq, "malformed insert record skipped");
                        return;
                    }
                };
                if let Err(e) = self.buffer.insert(ins.segment_id, ins.partition_id, rows, seq) {
                    tracing::error!(error = %e, seq, "insert record does not fit the schema; skipped");
                }
            }
            Some(Body::Delete(del)) => {
                if del.vchannel != self.vchannel {
                    return;
                }
                if let Some(ids) = &del.primary_keys {
                    let keys = PkColumn::from_ids(ids);
                    self.buffer.delete(del.partition_id, &keys, del.timestamp, seq);
                }
            }
            Some(Body::TimeTick(tt)) => {
                self.tick = self.tick.max(tt.timestamp);
                self.flush_due().await;
            }
            None => {}
        }
    }

    /// Flushes what the current tick allows.
    async fn flush_due(&mut self) {
        let due: Vec<SegmentId> =
            self.pending_seals.iter().filter(|(_, ts)| **ts <= self.tick).map(|(id, _)| *id).collect();
        for id in due {
            match self.flush_segment(id).await {
                Ok(()) => {
                    self.pending_seals.remove(&id);
                }
                Err(e) => {
                    tracing::warn!(error = %e, segment = id, "segment flush failed; will retry");
                    return;
                }
            }
        }
        if self.pending_delete_flush.is_some_and(|ts| ts <= self.tick) {
            match self.flush_deletes().await {
                Ok(()) => self.pending_delete_flush = None,
                Err(e) => tracing::warn!(error = %e, "delete flush failed; will retry"),
            }
        }
        // Waiting for a seal: ask for a tick now rather than at the next period.
        let waiting =
            self.pending_seals.values().copied().chain(self.pending_delete_flush).filter(|ts| *ts > self.tick).max();
        if let Some(ts) = waiting
            && ts > self.sync_requested_for
        {
            self.sync_requested_for = ts;
            let rpc = self.ctx.rpc.clone();
            let pchannel = self.pchannel.clone();
            tokio::spawn(async move {
                let req = SyncTimeTickRequest { pchannels: vec![pchannel], min_ts: ts };
                let _ = rpc.rootcoord().sync_time_tick(&req).retry(RPC_DEADLINE).await;
            });
        }
    }

    fn checkpoint(&self) -> MsgPosition {
        MsgPosition {
            pchannel: self.pchannel.clone(),
            seq: self.buffer.checkpoint_seq(self.last_seq),
            timestamp: self.tick,
        }
    }

    async fn alloc_ids(&self, count: u32) -> FvResult<i64> {
        Ok(self.ctx.rpc.rootcoord().alloc_id(&AllocIdRequest { count }).retry(RPC_DEADLINE).await?.id_begin)
    }

    async fn flush_segment(&mut self, id: SegmentId) -> FvResult<()> {
        let Some(buf) = self.buffer.growing.remove(&id) else {
            // Nothing buffered (the rows never came, or the segment was empty).
            let req = SaveBinlogPathsRequest {
                node_id: self.ctx.node_id,
                segment_id: id,
                collection_id: self.collection,
                vchannel: self.vchannel.clone(),
                flushed: true,
                num_rows: 0,
                checkpoint: Some(self.checkpoint()),
                ..Default::default()
            };
            self.ctx.rpc.datacoord().save_binlog_paths(&req).retry(RPC_DEADLINE).await?;
            self.buffer.skip.insert(id);
            return Ok(());
        };
        let result = async {
            let first = self.alloc_ids(flush::ids_needed(&self.buffer.schema, !buf.deletes.is_empty())).await?;
            flush::write_segment(&self.ctx.objects, &self.buffer.schema, self.collection, id, &buf, first).await
        }
        .await;
        let written = match result {
            Ok(w) => w,
            Err(e) => {
                self.buffer.growing.insert(id, buf);
                return Err(e);
            }
        };
        // The checkpoint without this segment's buffer: everything of it is now persisted.
        let checkpoint = self.checkpoint();
        let req = SaveBinlogPathsRequest {
            node_id: self.ctx.node_id,
            segment_id: id,
            collection_id: self.collection,
            partition_id: buf.partition_id,
            vchannel: self.vchannel.clone(),
            field_binlogs: written.field_binlogs.clone(),
            statslogs: written.statslogs.clone(),
            deltalogs: written.deltalogs.clone(),
            flushed: true,
            num_rows: written.num_rows,
            checkpoint: Some(checkpoint.clone()),
            deleted_rows: buf.deletes.len() as i64,
        };
        if let Err(e) = self.ctx.rpc.datacoord().save_binlog_paths(&req).retry(RPC_DEADLINE).await {
            self.buffer.growing.insert(id, buf);
            return Err(e);
        }
        tracing::info!(segment = id, rows = written.num_rows, vchannel = %self.vchannel, "segment flushed");
        self.reported_checkpoint = checkpoint.seq;
        if let Some(stats) = written.stats {
            self.buffer.flushed.insert(
                id,
                FlushedSegment { partition_id: buf.partition_id, stats, deletes: PendingDeletes::default() },
            );
        }
        Ok(())
    }

    /// Writes buffered deletes of flushed segments as delta logs.
    async fn flush_deletes(&mut self) -> FvResult<()> {
        let ids: Vec<SegmentId> =
            self.buffer.flushed.iter().filter(|(_, f)| !f.deletes.is_empty()).map(|(id, _)| *id).collect();
        if ids.is_empty() {
            self.last_delete_flush = Instant::now();
            return Ok(());
        }
        let first = self.alloc_ids(ids.len() as u32).await?;
        for (i, id) in ids.into_iter().enumerate() {
            let (partition, deletes) = {
                let f = &self.buffer.flushed[&id];
                (f.partition_id, f.deletes.clone())
            };
            let Some(log) =
                flush::write_delta(&self.ctx.objects, self.collection, partition, id, &deletes, first + i as i64)
                    .await?
            else {
                continue;
            };
            if let Some(f) = self.buffer.flushed.get_mut(&id) {
                f.deletes = PendingDeletes::default();
            }
            let checkpoint = self.checkpoint();
            let req = SaveBinlogPathsRequest {
                node_id: self.ctx.node_id,
                segment_id: id,
                collection_id: self.collection,
                partition_id: partition,
                vchannel: self.vchannel.clone(),
                deltalogs: vec![log],
                flushed: false,
                checkpoint: Some(checkpoint.clone()),
                deleted_rows: deletes.len() as i64,
                ..Default::default()
            };
            if let Err(e) = self.ctx.rpc.datacoord().save_binlog_paths(&req).retry(RPC_DEADLINE).await {
                // Put them back: the delta log file becomes garbage, the deletes are retried.
                if let Some(f) = self.buffer.flushed.get_mut(&id) {
                    let mut merged = deletes;
                    for (k, t) in f.deletes.keys.iter().zip(&f.deletes.timestamps) {
                        merged.push(k.clone(), *t, u64::MAX);
                    }
                    f.deletes = merged;
                }
                return Err(e);
            }
            self.reported_checkpoint = checkpoint.seq;
        }
        self.last_delete_flush = Instant::now();
        Ok(())
    }

    async fn periodic(&mut self) {
        let cfg = &self.ctx.config.datanode;
        let interval_due = self.last_delete_flush.elapsed() >= Duration::from_millis(cfg.delete_flush_interval_ms);
        if (interval_due || self.buffer.pending_delete_count() >= cfg.delete_buffer_rows)
            && self.buffer.pending_delete_count() > 0
            && let Err(e) = self.flush_deletes().await
        {
            tracing::warn!(error = %e, "delete flush failed; will retry");
        }
        self.flush_due().await;
        let cp = self.checkpoint();
        if cp.seq > self.reported_checkpoint {
            let req = UpdateChannelCheckpointRequest {
                node_id: self.ctx.node_id,
                vchannel: self.vchannel.clone(),
                position: Some(cp.clone()),
            };
            if self.ctx.rpc.datacoord().update_channel_checkpoint(&req).await.is_ok() {
                self.reported_checkpoint = cp.seq;
            }
        }
        let segments = self
            .buffer
            .buffered_rows()
            .into_iter()
            .map(|(segment_id, num_rows)| SegmentStats { segment_id, num_rows })
            .collect::<Vec<_>>();
        if !segments.is_empty() {
            let req =
                ReportDataNodeStatsRequest { node_id: self.ctx.node_id, vchannel: self.vchannel.clone(), segments };
            let _ = self.ctx.rpc.datacoord().report_data_node_stats(&req).await;
        }
    }
}

async fn load_stats(ctx: &RoleContext, s: &SegmentInfo) -> FvResult<fv_storage::binlog::PkStats> {
    let log =
        s.statslogs.last().ok_or_else(|| FvError::internal(format!("flushed segment {} has no stats log", s.id)))?;
    let bytes = ctx.objects.get(&log.log_path).await.map_err(|e| FvError::io(e.to_string()).retriable(true))?;
    let (_, stats) = decode_stats_log(&bytes, &log.log_path)?;
    Ok(stats)
}

/// Starts a pipeline task; returns its handle.
pub fn spawn(pipeline: Pipeline, parent: &Shutdown) -> Arc<PipelineHandle> {
    let (tx, rx) = mpsc::unbounded_channel();
    let stop = parent.child();
    let handle = Arc::new(PipelineHandle { commands: tx, stop: stop.clone() });
    tokio::spawn(pipeline.run(rx, stop));
    handle
}
