//! Fixtures for the roles' unit tests (feature `testing`): a [`RoleContext`] over the
//! embedded backends in a temporary directory, so a test can run one role's core
//! against fake peers served on the same in-process bus (a fake is an implementation
//! of the peer's generated handler trait, served with [`RpcServer::serve`]).

use std::sync::Arc;
use std::time::Duration;

use fv_config::Config;
use fv_logbroker::embedded::{EmbeddedBroker, EmbeddedBrokerConfig};
use fv_metastore::embedded::EmbeddedMetaKv;
use fv_objectstore::local::LocalObjectStore;

use crate::context::RoleContext;
use crate::rpc::{Route, RpcClient, RpcServer, Target};
use crate::shutdown::Shutdown;

/// Bound of a request between the test's roles.
const TEST_RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Embedded backends in a temporary directory and a context for node 1 on them. Its
/// shutdown fires when it is dropped.
pub struct TestContext {
    pub ctx: RoleContext,
    dir: tempfile::TempDir,
}

impl TestContext {
    /// With the default configuration.
    pub fn new() -> TestContext {
        Self::with_config(Config::default())
    }

    pub fn with_config(mut config: Config) -> TestContext {
        let dir = tempfile::tempdir().expect("a temporary directory for the test's backends");
        config.data_dir = dir.path().to_path_buf();
        let broker = EmbeddedBroker::open(&dir.path().join("log"), EmbeddedBrokerConfig::default())
            .expect("the embedded log opens in a fresh directory");
        let meta = EmbeddedMetaKv::open(&dir.path().join("meta")).expect("the embedded meta store opens");
        let objects = LocalObjectStore::open(&dir.path().join("objects")).expect("local object storage opens");
        let shutdown = Shutdown::new();
        let ctx = RoleContext {
            config: Arc::new(config),
            broker: broker.clone(),
            meta,
            objects,
            node_id: 1,
            rpc: RpcClient::new(broker.clone(), TEST_RPC_TIMEOUT),
            server: RpcServer::new(broker, shutdown.clone()),
            shutdown,
        };
        TestContext { ctx, dir }
    }

    /// Where the backends live (e.g. to reopen them as after a restart).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A context for another node on the same backends, with a shutdown of its own
    /// (stopping it is how a test takes that node away).
    pub fn node(&self, node_id: i64) -> RoleContext {
        let shutdown = Shutdown::new();
        RoleContext {
            node_id,
            server: RpcServer::new(self.ctx.broker.clone(), shutdown.clone()),
            shutdown,
            ..self.ctx.clone()
        }
    }

    /// Serves a (fake) service's routes on the test's bus for `target`.
    pub async fn serve(&self, target: Target, routes: Vec<Route>) {
        self.ctx.server.serve(target, routes).await.expect("a test service can subscribe");
    }
}

impl Default for TestContext {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestContext {
    fn drop(&mut self) {
        self.ctx.shutdown.trigger();
    }
}
