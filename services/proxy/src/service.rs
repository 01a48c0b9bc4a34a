//! The Milvus API (`milvus.proto.milvus.MilvusService`) on top of the proxy, and proxy
//! startup. Every outcome, errors included, is a normal response with a Milvus status:
//! SDKs retry transport errors for minutes, so failures are never reported as gRPC
//! errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use fv_common::{FvError, FvResult};
use fv_proto::api::milvus_service_server::MilvusService;
use fv_proto::api::*;
use fv_proto::common::{ServerInfo, Status};
use fv_proto::fv::proxy::{ConfirmTimeTickRequest, ConfirmTimeTickResponse, ProxyHandler, proxy_routes};
use fv_runtime::rpc::Role;
use fv_runtime::{RoleContext, Target, session};
use tonic::{Request, Response};
use tracing::Instrument;

use crate::meta_cache::MetaCache;
use crate::producer::Producers;
use crate::read::LeaderCache;
use crate::{Proxy, ddl, distribution, dml, read};

/// Version reported to clients: the Milvus API level this server implements.
pub const MILVUS_API_VERSION: &str = "v2.6.0";

/// Starts a proxy (inside the actix system).
pub async fn start(ctx: RoleContext) -> FvResult<Arc<Proxy>> {
    let proxy = Arc::new(Proxy {
        cache: MetaCache::new(ctx.rpc.clone()),
        producers: Producers::new(ctx.rpc.clone(), ctx.broker.clone(), ctx.config.broker.max_message_bytes),
        leaders: LeaderCache::default(),
        ctx: ctx.clone(),
    });
    // Served before the session exists: rootcoord only asks registered proxies.
    ctx.server.serve(Target::Node(ctx.node_id), proxy_routes(proxy.clone())).await?;
    follow_changes(&proxy).await?;
    session::register(
        ctx.meta.clone(),
        Role::Proxy,
        ctx.node_id,
        format!("{}:{}", ctx.config.proxy.host, ctx.config.proxy.port),
        Duration::from_millis(ctx.config.meta.session_ttl_ms),
        ctx.shutdown.clone(),
    )
    .await?;
    tracing::info!(node_id = ctx.node_id, "proxy started");
    Ok(proxy)
}

/// What the proxy serves on the bus (rootcoord's time-tick confirmations).
impl ProxyHandler for Proxy {
    type Error = FvError;

    async fn confirm_time_tick(&self, req: ConfirmTimeTickRequest) -> FvResult<ConfirmTimeTickResponse> {
        self.producers.confirm_all().await;
        Ok(ConfirmTimeTickResponse { status: Some(Default::default()), confirmed: req.timestamp })
    }
}

async fn follow_changes(proxy: &Arc<Proxy>) -> FvResult<()> {
    use futures::StreamExt;
    use prost::Message;
    let mut events = proxy
        .ctx
        .broker
        .listen(crate::meta_cache::COLLECTION_EVENT_SUBJECT)
        .await
        .map_err(|e| FvError::unavailable(format!("cannot listen for collection changes: {e}")))?;
    let p = proxy.clone();
    let shutdown = proxy.ctx.shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                ev = events.next() => match ev {
                    None => return,
                    Some(n) => if let Ok(ev) = fv_proto::fv::rootcoord::CollectionMetaChanged::decode(n.payload) {
                        p.cache.invalidate(&ev.db_name, &ev.collection_name);
                        p.cache.invalidate_id(ev.collection_id);
                        p.leaders.invalidate(ev.collection_id);
                    }
                }
            }
        }
    });
    Ok(())
}

/// The Milvus API served by a proxy.
#[derive(Clone)]
pub struct MilvusApi {
    pub proxy: Arc<Proxy>,
    next_identifier: Arc<AtomicI64>,
}

impl MilvusApi {
    pub fn new(proxy: Arc<Proxy>) -> MilvusApi {
        MilvusApi { proxy, next_identifier: Arc::new(AtomicI64::new(fv_common::ts::now_ms() as i64)) }
    }
}

/// A request that names its database. pymilvus 2.4+ sends the database of a call in the
/// `dbname` gRPC metadata rather than in the message, so an empty `db_name` field is
/// filled from that header before the request is served; an unknown database is then
/// refused (code 800) where the name is resolved, as Milvus does.
trait DbScoped {
    fn db_name_mut(&mut self) -> &mut String;
}

macro_rules! db_scoped {
    ($($t:ty),* $(,)?) => {
        $(impl DbScoped for $t {
            fn db_name_mut(&mut self) -> &mut String {
                &mut self.db_name
            }
        })*
    };
}

db_scoped!(
    CreateCollectionRequest,
    DropCollectionRequest,
    HasCollectionRequest,
    LoadCollectionRequest,
    ReleaseCollectionRequest,
    DescribeCollectionRequest,
    GetCollectionStatisticsRequest,
    ShowCollectionsRequest,
    RenameCollectionRequest,
    CreatePartitionRequest,
    DropPartitionRequest,
    HasPartitionRequest,
    LoadPartitionsRequest,
    ReleasePartitionsRequest,
    GetPartitionStatisticsRequest,
    ShowPartitionsRequest,
    GetLoadingProgressRequest,
    GetLoadStateRequest,
    ListAliasesRequest,
    CreateIndexRequest,
    DescribeIndexRequest,
    GetIndexStatisticsRequest,
    GetIndexStateRequest,
    GetIndexBuildProgressRequest,
    DropIndexRequest,
    InsertRequest,
    DeleteRequest,
    UpsertRequest,
    SearchRequest,
    FlushRequest,
    QueryRequest,
    GetFlushStateRequest,
    GetQuerySegmentInfoRequest,
    GetReplicasRequest
);

/// The gRPC metadata key pymilvus puts the database name in.
const DB_NAME_HEADER: &str = "dbname";

fn scoped<T: DbScoped>(req: Request<T>) -> T {
    let header = req.metadata().get(DB_NAME_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut body = req.into_inner();
    if let Some(db) = header.filter(|d| !d.is_empty())
        && body.db_name_mut().is_empty()
    {
        *body.db_name_mut() = db;
    }
    body
}

fn status<T>(r: &FvResult<T>) -> Status {
    fv_common::error::status_of(r)
}

type Reply<T> = Result<Response<T>, tonic::Status>;

/// Runs a request in its span and logs failures.
async fn traced<T>(
    method: &'static str,
    collection: &str,
    fut: impl std::future::Future<Output = FvResult<T>>,
) -> FvResult<T> {
    let span = tracing::info_span!("milvus", method, collection = %collection);
    let r = fut.instrument(span.clone()).await;
    if let Err(e) = &r {
        let _g = span.enter();
        tracing::debug!(code = e.code as i32, error = %e, "request failed");
    }
    r
}

macro_rules! with_status {
    ($ty:ident, $r:expr, |$v:ident| $ok:expr) => {{
        let r = $r;
        let st = status(&r);
        let mut out = match r {
            Ok($v) => $ok,
            Err(_) => $ty::default(),
        };
        out.status = Some(st);
        Ok(Response::new(out))
    }};
}

/// Why the deployment cannot serve every request, as Milvus' CheckHealth reports it: a
/// role with no live session (a coordinator, or every data, query or index node gone)
/// means writes, reads or index builds stall; empty when all is well.
async fn unhealthy_reasons(ctx: &RoleContext) -> Vec<String> {
    let mut reasons = Vec::new();
    for role in Role::ALL.into_iter().filter(|r| *r != Role::Proxy) {
        match session::list(&ctx.meta, role).await {
            Ok(live) if live.is_empty() => reasons.push(format!("no live {role}")),
            Ok(_) => {}
            Err(e) => {
                reasons.push(format!("meta store unreachable: {e}"));
                break;
            }
        }
    }
    reasons
}

fn unimplemented(what: &str) -> Status {
    FvError::unimplemented(what).to_status()
}

#[tonic::async_trait]
impl MilvusService for MilvusApi {
    async fn create_collection(&self, req: Request<CreateCollectionRequest>) -> Reply<Status> {
        let req = scoped(req);
        let name = req.collection_name.clone();
        Ok(Response::new(status(&traced("CreateCollection", &name, ddl::create_collection(&self.proxy, req)).await)))
    }

    async fn drop_collection(&self, req: Request<DropCollectionRequest>) -> Reply<Status> {
        let req = scoped(req);
        let name = req.collection_name.clone();
        Ok(Response::new(status(&traced("DropCollection", &name, ddl::drop_collection(&self.proxy, req)).await)))
    }

    async fn has_collection(&self, req: Request<HasCollectionRequest>) -> Reply<BoolResponse> {
        let r = scoped(req);
        with_status!(
            BoolResponse,
            traced(
                "HasCollection",
                &r.collection_name,
                ddl::has_collection(&self.proxy, &r.db_name, &r.collection_name)
            )
            .await,
            |v| BoolResponse { value: v, ..Default::default() }
        )
    }

    async fn load_collection(&self, req: Request<LoadCollectionRequest>) -> Reply<Status> {
        let r = scoped(req);
        Ok(Response::new(status(
            &traced(
                "LoadCollection",
                &r.collection_name,
                ddl::load_collection(&self.proxy, &r.db_name, &r.collection_name, r.replica_number),
            )
            .await,
        )))
    }

    async fn release_collection(&self, req: Request<ReleaseCollectionRequest>) -> Reply<Status> {
        let r = scoped(req);
        Ok(Response::new(status(
            &traced(
                "ReleaseCollection",
                &r.collection_name,
                ddl::release_collection(&self.proxy, &r.db_name, &r.collection_name),
            )
            .await,
        )))
    }

    async fn describe_collection(&self, req: Request<DescribeCollectionRequest>) -> Reply<DescribeCollectionResponse> {
        let r = scoped(req);
        let name = r.collection_name.clone();
        with_status!(
            DescribeCollectionResponse,
            traced("DescribeCollection", &name, ddl::describe_collection(&self.proxy, r)).await,
            |v| v
        )
    }

    async fn get_collection_statistics(
        &self,
        req: Request<GetCollectionStatisticsRequest>,
    ) -> Reply<GetCollectionStatisticsResponse> {
        let r = scoped(req);
        with_status!(
            GetCollectionStatisticsResponse,
            traced(
                "GetCollectionStatistics",
                &r.collection_name,
                ddl::row_count(&self.proxy, &r.db_name, &r.collection_name, &[])
            )
            .await,
            |n| GetCollectionStatisticsResponse {
                stats: vec![fv_proto::common::KeyValuePair { key: "row_count".into(), value: n.to_string() }],
                ..Default::default()
            }
        )
    }

    async fn show_collections(&self, req: Request<ShowCollectionsRequest>) -> Reply<ShowCollectionsResponse> {
        let r = scoped(req);
        with_status!(
            ShowCollectionsResponse,
            traced("ShowCollections", "", ddl::show_collections(&self.proxy, r)).await,
            |v| v
        )
    }

    async fn alter_collection(&self, _req: Request<AlterCollectionRequest>) -> Reply<Status> {
        Ok(Response::new(unimplemented("AlterCollection")))
    }

    async fn rename_collection(&self, req: Request<RenameCollectionRequest>) -> Reply<Status> {
        let r = scoped(req);
        let name = r.old_name.clone();
        Ok(Response::new(status(&traced("RenameCollection", &name, ddl::rename_collection(&self.proxy, r)).await)))
    }

    async fn create_partition(&self, req: Request<CreatePartitionRequest>) -> Reply<Status> {
        let r = scoped(req);
        Ok(Response::new(status(
            &traced(
                "CreatePartition",
                &r.collection_name,
                ddl::create_partition(&self.proxy, &r.db_name, &r.collection_name, &r.partition_name),
            )
            .await,
        )))
    }

    async fn drop_partition(&self, req: Request<DropPartitionRequest>) -> Reply<Status> {
        let r = scoped(req);
        Ok(Response::new(status(
            &traced(
                "DropPartition",
                &r.collection_name,
                ddl::drop_partition(&self.proxy, &r.db_name, &r.collection_name, &r.partition_name),
            )
            .await,
        )))
    }

    async fn has_partition(&self, req: Request<HasPartitionRequest>) -> Reply<BoolResponse> {
        let r = scoped(req);
        with_status!(
            BoolResponse,
            traced(
                "HasPartition",
                &r.collection_name,
                ddl::has_partition(&self.proxy, &r.db_name, &r.collection_name, &r.partition_name)
            )
            .await,
            |v| BoolResponse { value: v, ..Default::default() }
        )
    }

    async fn load_partitions(&self, req: Request<LoadPartitionsRequest>) -> Reply<Status> {
        let r = scoped(req);
        Ok(Response::new(status(
            &traced(
                "LoadPartitions",
                &r.collection_name,
                ddl::load_partitions(&self.proxy, &r.db_name, &r.collection_name, &r.partition_names, r.replica_number),
            )
            .await,
        )))
    }

    async fn release_partitions(&self, req: Request<ReleasePartitionsRequest>) -> Reply<Status> {
        let r = scoped(req);
        Ok(Response::new(status(
            &traced(
                "ReleasePartitions",
                &r.collection_name,
                ddl::release_partitions(&self.proxy, &r.db_name, &r.collection_name, &r.partition_names),
            )
            .await,
        )))
    }

    async fn get_partition_statistics(
        &self,
        req: Request<GetPartitionStatisticsRequest>,
    ) -> Reply<GetPartitionStatisticsResponse> {
        let r = scoped(req);
        let parts = vec![r.partition_name.clone()];
        with_status!(
            GetPartitionStatisticsResponse,
            traced(
                "GetPartitionStatistics",
                &r.collection_name,
                ddl::row_count(&self.proxy, &r.db_name, &r.collection_name, &parts)
            )
            .await,
            |n| GetPartitionStatisticsResponse {
                stats: vec![fv_proto::common::KeyValuePair { key: "row_count".into(), value: n.to_string() }],
                ..Default::default()
            }
        )
    }

    async fn show_partitions(&self, req: Request<ShowPartitionsRequest>) -> Reply<ShowPartitionsResponse> {
        let r = scoped(req);
        let name = r.collection_name.clone();
        with_status!(
            ShowPartitionsResponse,
            traced("ShowPartitions", &name, ddl::show_partitions(&self.proxy, r)).await,
            |v| v
        )
    }

    async fn get_loading_progress(&self, req: Request<GetLoadingProgressRequest>) -> Reply<GetLoadingProgressResponse> {
        let r = scoped(req);
        with_status!(
            GetLoadingProgressResponse,
            traced(
                "GetLoadingProgress",
                &r.collection_name,
                ddl::load_state(&self.proxy, &r.db_name, &r.collection_name, &r.partition_names)
            )
            .await,
            |s| GetLoadingProgressResponse { progress: s.progress, refresh_progress: s.progress, ..Default::default() }
        )
    }

    async fn get_load_state(&self, req: Request<GetLoadStateRequest>) -> Reply<GetLoadStateResponse> {
        let r = scoped(req);
        let res = traced(
            "GetLoadState",
            &r.collection_name,
            ddl::load_state(&self.proxy, &r.db_name, &r.collection_name, &r.partition_names),
        )
        .await;
        match res {
            // As in Milvus, a collection that does not exist is not an error here: the
            // answer is success with state NotExist.
            Err(e) if e.code == fv_common::Code::CollectionNotFound => Ok(Response::new(GetLoadStateResponse {
                status: Some(Default::default()),
                state: fv_proto::common::LoadState::NotExist as i32,
            })),
            Err(e) => Ok(Response::new(GetLoadStateResponse {
                status: Some(e.to_status()),
                state: fv_proto::common::LoadState::NotExist as i32,
            })),
            Ok(s) => Ok(Response::new(GetLoadStateResponse { status: Some(Default::default()), state: s.state })),
        }
    }

    async fn get_query_segment_info(
        &self,
        req: Request<GetQuerySegmentInfoRequest>,
    ) -> Reply<GetQuerySegmentInfoResponse> {
        let r = scoped(req);
        with_status!(
            GetQuerySegmentInfoResponse,
            traced(
                "GetQuerySegmentInfo",
                &r.collection_name,
                distribution::query_segment_info(&self.proxy, &r.db_name, &r.collection_name)
            )
            .await,
            |infos| GetQuerySegmentInfoResponse { infos, ..Default::default() }
        )
    }

    async fn get_replicas(&self, req: Request<GetReplicasRequest>) -> Reply<GetReplicasResponse> {
        let r = scoped(req);
        with_status!(
            GetReplicasResponse,
            traced(
                "GetReplicas",
                &r.collection_name,
                distribution::replicas(&self.proxy, &r.db_name, &r.collection_name, r.collection_id)
            )
            .await,
            |replicas| GetReplicasResponse { replicas, ..Default::default() }
        )
    }

    async fn create_alias(&self, _req: Request<CreateAliasRequest>) -> Reply<Status> {
        Ok(Response::new(unimplemented("CreateAlias")))
    }

    async fn drop_alias(&self, _req: Request<DropAliasRequest>) -> Reply<Status> {
        Ok(Response::new(unimplemented("DropAlias")))
    }

    async fn alter_alias(&self, _req: Request<AlterAliasRequest>) -> Reply<Status> {
        Ok(Response::new(unimplemented("AlterAlias")))
    }

    async fn describe_alias(&self, _req: Request<DescribeAliasRequest>) -> Reply<DescribeAliasResponse> {
        Ok(Response::new(DescribeAliasResponse { status: Some(unimplemented("DescribeAlias")), ..Default::default() }))
    }

    async fn list_aliases(&self, req: Request<ListAliasesRequest>) -> Reply<ListAliasesResponse> {
        // No aliases exist yet: an empty list for an existing collection.
        let r = scoped(req);
        let res = if r.collection_name.is_empty() {
            Ok(())
        } else {
            self.proxy.cache.get(&r.db_name, &r.collection_name).await.map(|_| ())
        };
        with_status!(ListAliasesResponse, res, |_v| ListAliasesResponse {
            db_name: crate::meta_cache::db_name(&r.db_name),
            collection_name: r.collection_name.clone(),
            ..Default::default()
        })
    }

    async fn create_index(&self, req: Request<CreateIndexRequest>) -> Reply<Status> {
        let r = scoped(req);
        let name = r.collection_name.clone();
        Ok(Response::new(status(&traced("CreateIndex", &name, ddl::create_index(&self.proxy, r)).await)))
    }

    async fn describe_index(&self, req: Request<DescribeIndexRequest>) -> Reply<DescribeIndexResponse> {
        let r = scoped(req);
        with_status!(
            DescribeIndexResponse,
            traced(
                "DescribeIndex",
                &r.collection_name,
                ddl::describe_index(&self.proxy, &r.db_name, &r.collection_name, &r.field_name, &r.index_name)
            )
            .await,
            |v| DescribeIndexResponse { index_descriptions: v, ..Default::default() }
        )
    }

    async fn get_index_statistics(&self, req: Request<GetIndexStatisticsRequest>) -> Reply<GetIndexStatisticsResponse> {
        let r = scoped(req);
        with_status!(
            GetIndexStatisticsResponse,
            traced(
                "GetIndexStatistics",
                &r.collection_name,
                ddl::describe_index(&self.proxy, &r.db_name, &r.collection_name, "", &r.index_name)
            )
            .await,
            |v| GetIndexStatisticsResponse { index_descriptions: v, ..Default::default() }
        )
    }

    async fn get_index_state(&self, req: Request<GetIndexStateRequest>) -> Reply<GetIndexStateResponse> {
        let r = scoped(req);
        with_status!(
            GetIndexStateResponse,
            traced(
                "GetIndexState",
                &r.collection_name,
                ddl::index_state(&self.proxy, &r.db_name, &r.collection_name, &r.field_name, &r.index_name)
            )
            .await,
            |v| GetIndexStateResponse { state: v.0, fail_reason: v.1, ..Default::default() }
        )
    }

    async fn get_index_build_progress(
        &self,
        req: Request<GetIndexBuildProgressRequest>,
    ) -> Reply<GetIndexBuildProgressResponse> {
        let r = scoped(req);
        with_status!(
            GetIndexBuildProgressResponse,
            traced(
                "GetIndexBuildProgress",
                &r.collection_name,
                ddl::index_state(&self.proxy, &r.db_name, &r.collection_name, &r.field_name, &r.index_name)
            )
            .await,
            |v| GetIndexBuildProgressResponse { indexed_rows: v.2, total_rows: v.3, ..Default::default() }
        )
    }

    async fn drop_index(&self, req: Request<DropIndexRequest>) -> Reply<Status> {
        let r = scoped(req);
        Ok(Response::new(status(
            &traced(
                "DropIndex",
                &r.collection_name,
                ddl::drop_index(&self.proxy, &r.db_name, &r.collection_name, &r.field_name, &r.index_name),
            )
            .await,
        )))
    }

    async fn insert(&self, req: Request<InsertRequest>) -> Reply<MutationResult> {
        let r = scoped(req);
        let name = r.collection_name.clone();
        with_status!(MutationResult, traced("Insert", &name, dml::insert(&self.proxy, r)).await, |v| v)
    }

    async fn delete(&self, req: Request<DeleteRequest>) -> Reply<MutationResult> {
        let r = scoped(req);
        let name = r.collection_name.clone();
        with_status!(MutationResult, traced("Delete", &name, dml::delete(&self.proxy, r)).await, |v| v)
    }

    async fn upsert(&self, req: Request<UpsertRequest>) -> Reply<MutationResult> {
        let r = scoped(req);
        let name = r.collection_name.clone();
        with_status!(MutationResult, traced("Upsert", &name, dml::upsert(&self.proxy, r)).await, |v| v)
    }

    async fn search(&self, req: Request<SearchRequest>) -> Reply<SearchResults> {
        let r = scoped(req);
        let name = r.collection_name.clone();
        with_status!(SearchResults, traced("Search", &name, read::search(&self.proxy, r)).await, |v| v)
    }

    async fn hybrid_search(&self, _req: Request<HybridSearchRequest>) -> Reply<SearchResults> {
        Ok(Response::new(SearchResults { status: Some(unimplemented("HybridSearch")), ..Default::default() }))
    }

    async fn flush(&self, req: Request<FlushRequest>) -> Reply<FlushResponse> {
        let r = scoped(req);
        with_status!(FlushResponse, traced("Flush", "", ddl::flush(&self.proxy, r)).await, |v| v)
    }

    async fn query(&self, req: Request<QueryRequest>) -> Reply<QueryResults> {
        let r = scoped(req);
        let name = r.collection_name.clone();
        with_status!(QueryResults, traced("Query", &name, read::query(&self.proxy, r)).await, |v| v)
    }

    async fn get_flush_state(&self, req: Request<GetFlushStateRequest>) -> Reply<GetFlushStateResponse> {
        let r = scoped(req);
        with_status!(GetFlushStateResponse, traced("GetFlushState", "", ddl::flush_state(&self.proxy, r)).await, |v| {
            GetFlushStateResponse { flushed: v, ..Default::default() }
        })
    }

    async fn get_version(&self, _req: Request<GetVersionRequest>) -> Reply<GetVersionResponse> {
        Ok(Response::new(GetVersionResponse {
            status: Some(Default::default()),
            version: MILVUS_API_VERSION.to_string(),
        }))
    }

    async fn check_health(&self, _req: Request<CheckHealthRequest>) -> Reply<CheckHealthResponse> {
        let reasons = unhealthy_reasons(&self.proxy.ctx).await;
        Ok(Response::new(CheckHealthResponse {
            status: Some(Default::default()),
            is_healthy: reasons.is_empty(),
            reasons,
            ..Default::default()
        }))
    }

    async fn connect(&self, req: Request<ConnectRequest>) -> Reply<ConnectResponse> {
        // Clients that name a database on connect (pymilvus 2.x sends it as metadata on
        // every call) learn at once that it does not exist.
        let db = req.metadata().get(DB_NAME_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !db.is_empty() && db != fv_common::DEFAULT_DB_NAME {
            let e = FvError::database_not_found(db);
            return Ok(Response::new(ConnectResponse { status: Some(e.to_status()), ..Default::default() }));
        }
        let identifier = self.next_identifier.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(ConnectResponse {
            status: Some(Default::default()),
            server_info: Some(ServerInfo {
                build_tags: format!("ferrovec-{}", env!("CARGO_PKG_VERSION")),
                deploy_mode: "STANDALONE".to_string(),
                ..Default::default()
            }),
            identifier,
        }))
    }

    async fn alloc_timestamp(&self, _req: Request<AllocTimestampRequest>) -> Reply<AllocTimestampResponse> {
        with_status!(AllocTimestampResponse, self.proxy.alloc_ts().await, |t| AllocTimestampResponse {
            timestamp: t,
            ..Default::default()
        })
    }

    async fn create_database(&self, _req: Request<CreateDatabaseRequest>) -> Reply<Status> {
        Ok(Response::new(unimplemented("CreateDatabase")))
    }

    async fn drop_database(&self, _req: Request<DropDatabaseRequest>) -> Reply<Status> {
        Ok(Response::new(unimplemented("DropDatabase")))
    }

    async fn list_databases(&self, _req: Request<ListDatabasesRequest>) -> Reply<ListDatabasesResponse> {
        Ok(Response::new(ListDatabasesResponse {
            status: Some(Default::default()),
            db_names: vec![fv_common::DEFAULT_DB_NAME.to_string()],
            ..Default::default()
        }))
    }

    async fn describe_database(&self, req: Request<DescribeDatabaseRequest>) -> Reply<DescribeDatabaseResponse> {
        let r = req.into_inner();
        let db = crate::meta_cache::db_name(&r.db_name);
        if db != fv_common::DEFAULT_DB_NAME {
            return Ok(Response::new(DescribeDatabaseResponse {
                status: Some(FvError::database_not_found(&db).to_status()),
                ..Default::default()
            }));
        }
        Ok(Response::new(DescribeDatabaseResponse {
            status: Some(Default::default()),
            db_name: db,
            ..Default::default()
        }))
    }
}
