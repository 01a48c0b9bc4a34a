//! The data node's core owns its pipelines: it starts one per watched vchannel, stops
//! it on unwatch and forwards flush requests to it. Watch, unwatch and flush run one at
//! a time on the node's exclusive actor (see [`crate::service`]).

use std::collections::HashMap;
use std::sync::Arc;

use fv_common::{Code, FvError, FvResult};
use fv_proto::fv::datanode::{FlushSegmentsRequest, UnwatchDmChannelRequest, WatchDmChannelRequest};
use fv_runtime::RoleContext;
use parking_lot::Mutex;

use crate::pipeline::{self, Command, Pipeline, PipelineHandle};

pub struct Core {
    pub ctx: RoleContext,
    pub pipelines: Mutex<HashMap<String, Arc<PipelineHandle>>>,
}

impl Core {
    pub async fn watch(&self, req: WatchDmChannelRequest) -> FvResult<()> {
        let vchannel = req.channel.as_ref().map(|c| c.vchannel.clone()).unwrap_or_default();
        if self.pipelines.lock().contains_key(&vchannel) {
            return Ok(());
        }
        let p = Pipeline::prepare(self.ctx.clone(), &req).await?;
        let handle = pipeline::spawn(p, &self.ctx.shutdown);
        self.pipelines.lock().insert(vchannel, handle);
        Ok(())
    }

    pub async fn unwatch(&self, req: UnwatchDmChannelRequest) -> FvResult<()> {
        if let Some(h) = self.pipelines.lock().remove(&req.vchannel) {
            h.stop.trigger();
        }
        Ok(())
    }

    pub async fn flush(&self, req: FlushSegmentsRequest) -> FvResult<()> {
        let handle = self.pipelines.lock().get(&req.vchannel).cloned().ok_or_else(|| {
            FvError::new(Code::ChannelNotFound, format!("channel not found[channel={}]", req.vchannel))
        })?;
        let stopped = |_| FvError::unavailable(format!("pipeline of {} stopped", req.vchannel));
        if !req.dropped_segment_ids.is_empty() {
            handle.commands.send(Command::Discard { segment_ids: req.dropped_segment_ids.clone() }).map_err(stopped)?;
        }
        if !req.segment_ids.is_empty() || req.flush_deletes {
            handle
                .commands
                .send(Command::Flush {
                    segment_ids: req.segment_ids,
                    seal_ts: req.seal_ts,
                    flush_deletes: req.flush_deletes,
                })
                .map_err(stopped)?;
        }
        Ok(())
    }

    pub fn watched(&self) -> Vec<String> {
        let mut v: Vec<String> = self.pipelines.lock().keys().cloned().collect();
        v.sort();
        v
    }
}
