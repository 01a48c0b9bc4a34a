//! Publishing DML, one actor per pchannel.
//!
//! A `ChannelProducer` handles one request at a time: it allocates the timestamp, asks
//! datacoord for segments, and appends the messages, returning once the log has them
//! durably. Because of that order, when rootcoord asks this proxy to confirm a time
//! tick T (allocated before the request), waiting for each producer's queue to reach
//! the confirmation is enough: every DML stamped below T is stored by then, and every
//! later one gets a timestamp above T.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;
use fv_common::channel::vchannel_subject;
use fv_common::pk::PkColumn;
use fv_common::schema::Schema;
use fv_common::{CollectionId, FvError, FvResult, PartitionId, Timestamp};
use fv_logbroker::{LogBrokerRef, OutgoingMessage};
use fv_proto::fv::datacoord::{AssignSegmentRequest, SegmentIdRequest};
use fv_proto::fv::msg::{DeleteMsg, DmlMessage, InsertMsg, dml_message::Body};
use fv_proto::fv::rootcoord::AllocTimestampRequest;
use fv_runtime::Clients;
use fv_runtime::RpcClient;
use fv_runtime::actor::mailbox_error;
use fv_storage::Column;
use parking_lot::Mutex;
use prost::Message as _;
use tracing::Instrument;

use crate::{COORD_DEADLINE, QUICK_ATTEMPT};

/// Rows for one vchannel (normalised columns, one per schema field).
pub struct InsertBatch {
    pub collection_id: CollectionId,
    pub partition_id: PartitionId,
    pub schema: Arc<Schema>,
    pub columns: Vec<Column>,
    pub num_rows: usize,
    pub row_bytes: u64,
}

/// Keys to delete on one vchannel.
pub struct DeleteBatch {
    pub collection_id: CollectionId,
    /// A partition, or `ALL_PARTITIONS`.
    pub partition_id: PartitionId,
    pub keys: PkColumn,
}

/// Publishes deletes then inserts on `vchannel` under one timestamp.
pub struct Produce {
    pub vchannel: String,
    pub deletes: Option<DeleteBatch>,
    pub inserts: Option<InsertBatch>,
}

/// A [`Produce`] with the trace context of the request that asked for it: the actor runs
/// it outside the request's span, so the context travels in the message and from there
/// into the headers of the records it appends.
struct Traced {
    produce: Produce,
    /// The request's span when it is part of an exported trace.
    parent: Option<tracing::Span>,
}

impl Message for Traced {
    type Result = FvResult<Timestamp>;
}

/// Answers once every earlier `Produce` of this producer finished.
pub struct Confirm;

impl Message for Confirm {
    type Result = ();
}

pub struct ChannelProducer {
    pchannel: String,
    rpc: RpcClient,
    broker: LogBrokerRef,
    max_bytes: usize,
}

impl Actor for ChannelProducer {
    type Context = Context<Self>;
}

impl Handler<Confirm> for ChannelProducer {
    type Result = ();
    fn handle(&mut self, _: Confirm, _: &mut Context<Self>) {}
}

impl Handler<Traced> for ChannelProducer {
    type Result = AtomicResponse<Self, FvResult<Timestamp>>;

    fn handle(&mut self, msg: Traced, _: &mut Context<Self>) -> Self::Result {
        let (pchannel, rpc, broker, max_bytes) =
            (self.pchannel.clone(), self.rpc.clone(), self.broker.clone(), self.max_bytes);
        let span = match &msg.parent {
            Some(parent) => tracing::info_span!(parent: parent, "produce", pchannel = %pchannel),
            None => tracing::Span::none(),
        };
        AtomicResponse::new(Box::pin(
            async move { produce(pchannel, rpc, broker, max_bytes, msg.produce).await }
                .instrument(span)
                .into_actor(self),
        ))
    }
}

async fn produce(
    pchannel: String,
    rpc: RpcClient,
    broker: LogBrokerRef,
    max_bytes: usize,
    msg: Produce,
) -> FvResult<Timestamp> {
    let ts = rpc
        .rootcoord()
        .alloc_timestamp(&AllocTimestampRequest { count: 1 })
        .retry(COORD_DEADLINE)
        .timeout(QUICK_ATTEMPT)
        .await?
        .timestamp;
    let assignments = match &msg.inserts {
        Some(b) if b.num_rows > 0 => {
            let req = AssignSegmentRequest {
                requests: vec![SegmentIdRequest {
                    collection_id: b.collection_id,
                    partition_id: b.partition_id,
                    vchannel: msg.vchannel.clone(),
                    count: b.num_rows as u32,
                    timestamp: ts,
                    row_bytes: b.row_bytes,
                }],
            };
            rpc.datacoord().assign_segment(&req).retry(COORD_DEADLINE).timeout(QUICK_ATTEMPT).await?.assignments
        }
        _ => vec![],
    };
    let subject = vchannel_subject(&msg.vchannel);
    let vchannel = msg.vchannel.clone();
    let inserted = msg.inserts.as_ref().map_or(0, |b| b.num_rows as u64);
    let deleted = msg.deletes.as_ref().map_or(0, |d| d.keys.len() as u64);
    // Encoding is CPU work: keep it off the actor thread.
    let mut messages =
        tokio::task::spawn_blocking(move || encode(&vchannel, &subject, ts, msg, &assignments, max_bytes))
            .await
            .map_err(|e| FvError::internal(format!("encoding task failed: {e}")))??;
    // The request's trace context rides on each record, so a consumer can link what it
    // applies to the write that produced it.
    let trace = fv_runtime::telemetry::current_headers();
    if !trace.is_empty() {
        for m in &mut messages {
            m.headers.extend(trace.iter().cloned());
        }
    }
    broker
        .produce(&pchannel, messages)
        .await
        .map_err(|e| FvError::unavailable(format!("log broker: {e}")).retriable(e.is_retriable()))?;
    let m = fv_runtime::metrics::metrics();
    m.rows_inserted.inc_by(inserted);
    m.rows_deleted.inc_by(deleted);
    Ok(ts)
}

fn encode(
    vchannel: &str,
    subject: &str,
    ts: Timestamp,
    msg: Produce,
    assignments: &[fv_proto::fv::datacoord::SegmentAssignment],
    max_bytes: usize,
) -> FvResult<Vec<OutgoingMessage>> {
    let mut out = Vec::new();
    let wrap = |body: Body| {
        OutgoingMessage::new(subject.to_string(), Bytes::from(DmlMessage { body: Some(body) }.encode_to_vec()))
    };
    if let Some(d) = msg.deletes {
        // Keys are small; split only very large deletes.
        let n = d.keys.len();
        let per = (max_bytes / 64).max(1);
        let mut start = 0;
        while start < n {
            let end = (start + per).min(n);
            let keys = match &d.keys {
                PkColumn::Int(v) => PkColumn::Int(v[start..end].to_vec()),
                PkColumn::Str(v) => PkColumn::Str(v[start..end].to_vec()),
            };
            out.push(wrap(Body::Delete(DeleteMsg {
                collection_id: d.collection_id,
                partition_id: d.partition_id,
                vchannel: vchannel.to_string(),
                timestamp: ts,
                num_rows: keys.len() as u64,
                primary_keys: Some(keys.to_ids()),
            })));
            start = end;
        }
    }
    if let Some(b) = msg.inserts {
        let assigned: u32 = assignments.iter().map(|a| a.count).sum();
        if assigned as usize != b.num_rows {
            return Err(FvError::internal(format!("datacoord assigned {assigned} of {} rows", b.num_rows)));
        }
        // Rows per message so that one message stays under the broker's limit.
        let per_row = (b.row_bytes as usize).max(1);
        let rows_per_msg = ((max_bytes * 3 / 4) / per_row).max(1);
        let mut row = 0usize;
        for a in assignments {
            let seg_end = row + a.count as usize;
            while row < seg_end {
                let end = (row + rows_per_msg).min(seg_end);
                let idx: Vec<usize> = (row..end).collect();
                let fields = b
                    .columns
                    .iter()
                    .map(|c| {
                        let f = b
                            .schema
                            .field_by_id(c.field_id)
                            .ok_or_else(|| FvError::internal("column of unknown field"))?;
                        Ok(c.take(&idx).to_field_data(f))
                    })
                    .collect::<FvResult<Vec<_>>>()?;
                out.push(wrap(Body::Insert(InsertMsg {
                    collection_id: b.collection_id,
                    partition_id: b.partition_id,
                    segment_id: a.segment_id,
                    vchannel: vchannel.to_string(),
                    timestamp: ts,
                    num_rows: idx.len() as u64,
                    fields,
                    schema_version: b.schema.version,
                })));
                row = end;
            }
        }
    }
    Ok(out)
}

/// The producers of one proxy, created on first use in the actix system's arbiter.
pub struct Producers {
    arbiter: ArbiterHandle,
    rpc: RpcClient,
    broker: LogBrokerRef,
    max_bytes: usize,
    map: Mutex<HashMap<String, Addr<ChannelProducer>>>,
}

impl Producers {
    /// Must be called inside the actix system (it remembers the current arbiter).
    pub fn new(rpc: RpcClient, broker: LogBrokerRef, max_bytes: usize) -> Producers {
        Producers { arbiter: Arbiter::current(), rpc, broker, max_bytes, map: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, pchannel: &str) -> Addr<ChannelProducer> {
        let mut map = self.map.lock();
        if let Some(a) = map.get(pchannel).filter(|a| a.connected()) {
            return a.clone();
        }
        let producer = ChannelProducer {
            pchannel: pchannel.to_string(),
            rpc: self.rpc.clone(),
            broker: self.broker.clone(),
            max_bytes: self.max_bytes,
        };
        // Registered before it handles anything, so a confirmation never misses it.
        let addr = ChannelProducer::start_in_arbiter(&self.arbiter, |_| producer);
        map.insert(pchannel.to_string(), addr.clone());
        addr
    }

    pub async fn produce(&self, pchannel: &str, req: Produce) -> FvResult<Timestamp> {
        let parent = fv_runtime::telemetry::in_trace().then(tracing::Span::current);
        let msg = Traced { produce: req, parent };
        self.get(pchannel).send(msg).await.map_err(mailbox_error)?
    }

    /// Waits until every producer has finished the DML it started before this call.
    pub async fn confirm_all(&self) {
        let addrs: Vec<_> = self.map.lock().values().cloned().collect();
        futures::future::join_all(addrs.iter().map(|a| a.send(Confirm))).await;
    }
}
