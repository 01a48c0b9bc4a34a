//! What the generated bus glue is written against: roles and targets, the [`Rpc`]
//! description of one method, [`Route`]s for the serving side and the [`Transport`] a
//! typed client sends through. The transport itself (subjects, timeouts, retries,
//! tracing) lives in `fv-runtime`; this module only knows protobuf.
//!
//! For every `service` in a `fv.*` package, `build.rs` writes into that package's
//! module (e.g. [`crate::fv::datanode`]):
//! - `data_node_rpc::<Method>`: a marker type per method implementing [`Rpc`];
//! - `DataNodeHandler`: a trait with one async method per RPC, to implement on the server;
//! - `data_node_routes(Arc<impl DataNodeHandler>)`: the [`Route`]s that serve it;
//! - `DataNodeClient`: a typed client over a [`Transport`] (reached as
//!   `transport.datanode(node_id)` through [`Clients`]);
//! - [`HasStatus`] for every response type (each carries a Milvus `Status`).

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use prost::Message;

use crate::common::Status;
use crate::fv::common::StatusResponse;

/// The roles of a Ferrovec deployment; each serves the bus service of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    RootCoord,
    DataCoord,
    IndexCoord,
    QueryCoord,
    Proxy,
    DataNode,
    QueryNode,
    IndexNode,
}

impl Role {
    /// Every role, in start order (coordinators first, the proxy last).
    pub const ALL: [Role; 8] = [
        Role::RootCoord,
        Role::DataCoord,
        Role::IndexCoord,
        Role::QueryCoord,
        Role::DataNode,
        Role::QueryNode,
        Role::IndexNode,
        Role::Proxy,
    ];

    /// The role's name in subjects, session keys and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::RootCoord => "rootcoord",
            Role::DataCoord => "datacoord",
            Role::IndexCoord => "indexcoord",
            Role::QueryCoord => "querycoord",
            Role::Proxy => "proxy",
            Role::DataNode => "datanode",
            Role::QueryNode => "querynode",
            Role::IndexNode => "indexnode",
        }
    }

    /// The role named `s` (as [`Role::name`] spells it).
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }

    /// Coordinators have one active instance, addressed as [`Target::Coord`].
    pub fn is_coordinator(self) -> bool {
        matches!(self, Role::RootCoord | Role::DataCoord | Role::IndexCoord | Role::QueryCoord)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whom a request goes to: the (single active) coordinator of the role, or one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Coord,
    Node(i64),
}

/// A response message with a Milvus status field.
pub trait HasStatus: Message + Default {
    fn status(&self) -> Option<&Status>;
    fn set_status(&mut self, status: Status);
}

/// One method of a bus service: who serves it, its name and its messages.
pub trait Rpc: Send + Sync + 'static {
    const ROLE: Role;
    const METHOD: &'static str;
    type Req: Message + Default + Send + Sync + 'static;
    type Resp: HasStatus + Send + 'static;
}

/// Errors a handler may fail with: they travel to the caller as the response's status.
pub trait IntoStatus {
    fn into_status(self) -> Status;
}

impl IntoStatus for Status {
    fn into_status(self) -> Status {
        self
    }
}

/// Sends one request of any bus method; the generated clients are written against it.
/// `Call` is what the transport hands back for the caller to configure and await.
pub trait Transport {
    type Call<'a, R: Rpc>
    where
        Self: 'a;
    fn call<'a, R: Rpc>(&'a self, target: Target, req: &'a R::Req) -> Self::Call<'a, R>;
}

/// The encoded answer of one request.
#[derive(Debug)]
pub struct Reply {
    pub payload: Bytes,
    /// The handler's failure, also set as the response's status; `None` on success.
    pub error: Option<Status>,
}

type Handle =
    Box<dyn Fn(Bytes) -> Pin<Box<dyn Future<Output = Result<Reply, prost::DecodeError>> + Send>> + Send + Sync>;

/// How a server answers one method: decode, run the handler, encode (a handler error
/// becomes the response's status).
pub struct Route {
    pub role: Role,
    pub method: &'static str,
    handle: Handle,
    error_reply: fn(Status) -> Bytes,
}

/// The encoded response of `R` that carries only `status`.
fn error_reply<R: Rpc>(status: Status) -> Bytes {
    let mut resp = R::Resp::default();
    resp.set_status(status);
    Bytes::from(resp.encode_to_vec())
}

impl Route {
    /// A route of method `R` answered by `f`.
    pub fn new<R, F, Fut, E>(f: F) -> Route
    where
        R: Rpc,
        F: Fn(R::Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R::Resp, E>> + Send + 'static,
        E: IntoStatus,
    {
        let f = std::sync::Arc::new(f);
        let handle: Handle = Box::new(move |payload: Bytes| {
            let f = f.clone();
            Box::pin(async move {
                let req = R::Req::decode(payload)?;
                let (resp, error) = match f(req).await {
                    Ok(resp) => (resp, None),
                    Err(e) => {
                        let status = e.into_status();
                        let mut resp = R::Resp::default();
                        resp.set_status(status.clone());
                        (resp, Some(status))
                    }
                };
                Ok(Reply { payload: Bytes::from(resp.encode_to_vec()), error })
            })
        });
        Route { role: R::ROLE, method: R::METHOD, handle, error_reply: error_reply::<R> }
    }

    /// The encoded response that only carries `status` (for requests that do not decode).
    pub fn error_reply(&self, status: Status) -> Bytes {
        (self.error_reply)(status)
    }

    /// Answers one encoded request; `Err` when the request does not decode.
    pub fn call(&self, payload: Bytes) -> impl Future<Output = Result<Reply, prost::DecodeError>> + Send + use<> {
        (self.handle)(payload)
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Route({}.{})", self.role, self.method)
    }
}

impl StatusResponse {
    /// The answer of a request that succeeded and has nothing to say.
    pub fn ok() -> StatusResponse {
        StatusResponse { status: Some(Status::default()) }
    }
}

include!(concat!(env!("OUT_DIR"), "/fv_rpc_clients.rs"));
