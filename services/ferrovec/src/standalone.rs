//! Running roles in this process: `ferrovec run standalone` (all of them, the way
//! Milvus standalone does) or a chosen set.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fv_common::FvResult;
use fv_config::Config;
use fv_proxy::Proxy;
use fv_proxy::service::MilvusApi;
use fv_runtime::rpc::Role;
use fv_runtime::{RoleContext, RpcClient, RpcServer, Shutdown, session};

use crate::backends::{self, Backends};
use crate::{roles, server};

/// Timeout of requests between roles.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// Roles running in this process.
pub struct Standalone {
    pub ctx: RoleContext,
    pub backends: Backends,
    pub proxy: Option<Arc<Proxy>>,
    pub grpc_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    ready: Arc<AtomicBool>,
}

impl Standalone {
    /// Every role, without network servers (tests drive the proxy directly).
    pub async fn start(config: Config) -> FvResult<Standalone> {
        Self::start_roles(config, &roles::START_ORDER, false).await
    }

    /// Opens the backends and starts `roles`; with `serve`, also the Milvus API (when
    /// the proxy runs here) and the health endpoint. Must run inside an actix system.
    pub async fn start_roles(config: Config, roles_to_start: &[Role], serve: bool) -> FvResult<Standalone> {
        let backends = backends::open(&config).await?;
        Self::start_on(config, backends, roles_to_start, serve).await
    }

    /// Starts `roles` on backends that are already open, as one more node of the same
    /// cluster with its own node id, session and shutdown: tests use it to run a second
    /// index or query node beside a standalone one and to stop it on its own.
    pub async fn start_on(
        config: Config,
        backends: Backends,
        roles_to_start: &[Role],
        serve: bool,
    ) -> FvResult<Standalone> {
        let config = Arc::new(config);
        let node_id =
            if config.node_id > 0 { config.node_id } else { session::allocate_node_id(&backends.meta).await? };
        let shutdown = Shutdown::new();
        let ctx = RoleContext {
            config: config.clone(),
            broker: backends.broker.clone(),
            meta: backends.meta.clone(),
            objects: backends.objects.clone(),
            node_id,
            rpc: RpcClient::new(backends.broker.clone(), RPC_TIMEOUT),
            server: RpcServer::new(backends.broker.clone(), shutdown.clone()),
            shutdown: shutdown.clone(),
        };
        let ready = Arc::new(AtomicBool::new(false));
        let http_addr = if serve {
            Some(server::serve_http(&config.http.host, config.http.port, ready.clone(), shutdown.clone()).await?)
        } else {
            None
        };
        let names: Vec<&str> = roles_to_start.iter().map(|r| r.name()).collect();
        tracing::info!(node_id, roles = ?names, data_dir = %config.data_dir.display(), "starting roles");
        let proxy = roles::start(&ctx, roles_to_start).await?;
        let grpc_addr = match (&proxy, serve) {
            (Some(p), true) => Some(
                server::serve_grpc(
                    MilvusApi::new(p.clone()),
                    &config.proxy.host,
                    config.proxy.port,
                    config.proxy.max_request_bytes,
                    shutdown.clone(),
                )
                .await?,
            ),
            _ => None,
        };
        ready.store(true, Ordering::Release);
        Ok(Standalone { ctx, backends, proxy, grpc_addr, http_addr, ready })
    }

    /// The Milvus API of the local proxy.
    pub fn api(&self) -> Option<MilvusApi> {
        self.proxy.clone().map(MilvusApi::new)
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Stops every role's tasks and revokes their sessions.
    pub async fn stop(self) {
        self.ready.store(false, Ordering::Release);
        self.ctx.shutdown.trigger();
        // Give tasks a moment to observe the signal and sessions to be revoked.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
