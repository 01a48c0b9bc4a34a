//! Compiles every .proto file under the workspace's `proto/` folder with protox (a
//! pure-Rust protobuf compiler), so no system `protoc` is needed.
//!
//! Services of the Milvus client API (`milvus.*` packages) get tonic clients and
//! servers. Services of Ferrovec's own packages (`fv.*`, the requests roles send each
//! other over the log broker) get the bus glue written by [`BusRpcGenerator`]: a marker
//! type per method (implementing `rpc::Rpc`), a handler trait, a routing table for the
//! server and a typed client, plus `rpc::HasStatus` for every response type. Adding an
//! internal RPC is then one line in a `service` block and one method in the handler.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use prost_build::{Method, Service, ServiceGenerator};

fn collect(dir: &Path, root: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, root, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            let rel = path.strip_prefix(root).expect("file lies under the proto root");
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let root = root.canonicalize()?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", root.display());
    println!("cargo:rerun-if-changed=build.rs");
    // The paths above are absolute, so in a target dir shared by several checkouts (the CI
    // cache outside the clone, git worktrees) a build from another checkout would find
    // them unchanged and reuse that checkout's generated code. The directory cargo runs
    // in tells the checkouts apart.
    println!("cargo:rerun-if-env-changed=PWD");
    let mut files = Vec::new();
    collect(&root, &root, &mut files)?;
    files.sort();
    for f in &files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let fds = protox::compile(&files, [&root])?;

    let services = Rc::new(RefCell::new(Vec::new()));
    let tonic = tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // No `connect` constructors: they clash with the Milvus `Connect` RPC; clients are
        // built with `XClient::new(channel)`.
        .build_transport(false)
        .service_generator();
    let mut config = prost_build::Config::new();
    config.out_dir(&out_dir).service_generator(Box::new(SplitGenerator {
        tonic,
        bus: BusRpcGenerator { services: services.clone(), with_status: HashSet::new() },
    }));
    config.compile_fds(fds)?;
    std::fs::write(out_dir.join("fv_rpc_clients.rs"), clients_trait(&services.borrow()))?;
    Ok(())
}

/// Bus services go to [`BusRpcGenerator`], the client API's to tonic.
struct SplitGenerator {
    tonic: Box<dyn ServiceGenerator>,
    bus: BusRpcGenerator,
}

fn is_bus_package(package: &str) -> bool {
    package == "fv" || package.starts_with("fv.")
}

impl ServiceGenerator for SplitGenerator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        if is_bus_package(&service.package) {
            self.bus.generate(service, buf);
        } else {
            self.tonic.generate(service, buf);
        }
    }

    fn finalize(&mut self, buf: &mut String) {
        self.tonic.finalize(buf);
    }

    fn finalize_package(&mut self, package: &str, buf: &mut String) {
        if !is_bus_package(package) {
            self.tonic.finalize_package(package, buf);
        }
    }
}

/// What the client accessor trait needs to know of a generated service.
struct ServiceInfo {
    /// `fv.datanode`
    package: String,
    /// `DataNode` (also the `rpc::Role` variant)
    name: String,
}

impl ServiceInfo {
    /// Coordinators are singletons (`Target::Coord`); every other role is addressed by node.
    fn is_coordinator(&self) -> bool {
        self.name.ends_with("Coord")
    }

    /// `crate::fv::datanode`
    fn module(&self) -> String {
        format!("crate::{}", self.package.replace('.', "::"))
    }
}

/// Writes the bus glue of one `fv.*` service into its package's module.
struct BusRpcGenerator {
    services: Rc<RefCell<Vec<ServiceInfo>>>,
    /// Response types that already got their `HasStatus` impl (by protobuf name).
    with_status: HashSet<String>,
}

/// `DataNode` -> `data_node`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A type path prost resolved relative to the package module, seen from one module deeper.
fn from_submodule(path: &str) -> String {
    if path.starts_with("::") || path.starts_with("crate::") { path.to_string() } else { format!("super::{path}") }
}

fn doc(buf: &mut String, indent: &str, lines: &[String]) {
    for l in lines {
        let _ = writeln!(buf, "{indent}///{}{}", if l.is_empty() { "" } else { " " }, l.trim_end());
    }
}

impl BusRpcGenerator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        assert!(
            service.methods.iter().all(|m| !m.client_streaming && !m.server_streaming),
            "bus service {} declares a streaming method; the bus carries one request and one reply",
            service.proto_name
        );
        let name = &service.proto_name;
        let markers = format!("{}_rpc", snake(name));
        let handler = format!("{name}Handler");
        let client = format!("{name}Client");

        // Marker types.
        let _ = writeln!(buf, "/// One type per method of the `{name}` service, naming it on the bus.");
        let _ = writeln!(buf, "pub mod {markers} {{");
        for m in &service.methods {
            let _ = writeln!(buf, "    /// `{name}.{}`.", m.proto_name);
            let _ = writeln!(buf, "    #[derive(Debug, Clone, Copy)]");
            let _ = writeln!(buf, "    pub struct {};", m.proto_name);
            let _ = writeln!(buf, "    impl crate::rpc::Rpc for {} {{", m.proto_name);
            let _ = writeln!(buf, "        const ROLE: crate::rpc::Role = crate::rpc::Role::{name};");
            let _ = writeln!(buf, "        const METHOD: &'static str = \"{}\";", m.proto_name);
            let _ = writeln!(buf, "        type Req = {};", from_submodule(&m.input_type));
            let _ = writeln!(buf, "        type Resp = {};", from_submodule(&m.output_type));
            let _ = writeln!(buf, "    }}");
        }
        let _ = writeln!(buf, "}}");

        // Every response carries a Milvus status.
        for m in &service.methods {
            if self.with_status.insert(m.output_proto_type.clone()) {
                let _ = writeln!(buf, "impl crate::rpc::HasStatus for {} {{", m.output_type);
                let _ =
                    writeln!(buf, "    fn status(&self) -> Option<&crate::common::Status> {{ self.status.as_ref() }}");
                let _ = writeln!(
                    buf,
                    "    fn set_status(&mut self, status: crate::common::Status) {{ self.status = Some(status); }}"
                );
                let _ = writeln!(buf, "}}");
            }
        }

        // Handler trait.
        doc(buf, "", &service.comments.leading);
        let _ = writeln!(buf, "///");
        let _ =
            writeln!(buf, "/// Implement this to serve `{name}`; [`{}_routes`] routes its requests here.", snake(name));
        let _ = writeln!(buf, "pub trait {handler}: Send + Sync + 'static {{");
        let _ = writeln!(buf, "    /// What a method fails with; it becomes the status of the response.");
        let _ = writeln!(buf, "    type Error: crate::rpc::IntoStatus;");
        for m in &service.methods {
            method_doc(buf, m);
            let _ = writeln!(
                buf,
                "    fn {}(&self, req: {}) -> impl ::core::future::Future<Output = ::core::result::Result<{}, Self::Error>> + Send;",
                m.name, m.input_type, m.output_type
            );
        }
        let _ = writeln!(buf, "}}");

        // Routing table.
        let _ = writeln!(buf, "/// The server side of `{name}`: one route per method, each calling `handler`.");
        let _ = writeln!(
            buf,
            "pub fn {}_routes<H: {handler}>(handler: ::std::sync::Arc<H>) -> ::std::vec::Vec<crate::rpc::Route> {{",
            snake(name)
        );
        let _ = writeln!(buf, "    vec![");
        for m in &service.methods {
            let _ = writeln!(buf, "        {{");
            let _ = writeln!(buf, "            let h = handler.clone();");
            let _ = writeln!(
                buf,
                "            crate::rpc::Route::new::<{markers}::{}, _, _, _>(move |req| {{ let h = h.clone(); async move {{ h.{}(req).await }} }})",
                m.proto_name, m.name
            );
            let _ = writeln!(buf, "        }},");
        }
        let _ = writeln!(buf, "    ]");
        let _ = writeln!(buf, "}}");

        // Typed client.
        let _ = writeln!(buf, "/// A typed client of `{name}` over any [`crate::rpc::Transport`].");
        let _ = writeln!(buf, "pub struct {client}<'a, T: ?Sized> {{");
        let _ = writeln!(buf, "    transport: &'a T,");
        let _ = writeln!(buf, "    target: crate::rpc::Target,");
        let _ = writeln!(buf, "}}");
        let _ = writeln!(buf, "impl<'a, T: crate::rpc::Transport + ?Sized> {client}<'a, T> {{");
        let _ = writeln!(buf, "    /// Sends to `target` through `transport`.");
        let _ = writeln!(
            buf,
            "    pub fn new(transport: &'a T, target: crate::rpc::Target) -> Self {{ {client} {{ transport, target }} }}"
        );
        for m in &service.methods {
            method_doc(buf, m);
            let _ = writeln!(
                buf,
                "    pub fn {}(&self, req: &'a {}) -> T::Call<'a, {markers}::{}> {{ self.transport.call::<{markers}::{}>(self.target, req) }}",
                m.name, m.input_type, m.proto_name, m.proto_name
            );
        }
        let _ = writeln!(buf, "}}");

        self.services.borrow_mut().push(ServiceInfo { package: service.package.clone(), name: name.clone() });
    }
}

fn method_doc(buf: &mut String, m: &Method) {
    if m.comments.leading.is_empty() {
        let _ = writeln!(buf, "    /// `{}`.", m.proto_name);
    } else {
        doc(buf, "    ", &m.comments.leading);
    }
}

/// The `Clients` extension trait: one accessor per bus service on every transport.
fn clients_trait(services: &[ServiceInfo]) -> String {
    let mut buf = String::new();
    let _ = writeln!(
        buf,
        "/// A typed client of every bus service on any [`Transport`]: `rpc.datanode(id).flush_segments(&req)`."
    );
    let _ = writeln!(buf, "pub trait Clients: Transport {{");
    for s in services {
        let accessor = s.name.to_ascii_lowercase();
        let client = format!("{}::{}Client", s.module(), s.name);
        if s.is_coordinator() {
            let _ = writeln!(buf, "    /// The active `{}`.", s.name);
            let _ = writeln!(
                buf,
                "    fn {accessor}(&self) -> {client}<'_, Self> {{ {client}::new(self, Target::Coord) }}"
            );
        } else {
            let _ = writeln!(buf, "    /// The `{}` with this node id.", s.name);
            let _ = writeln!(
                buf,
                "    fn {accessor}(&self, node: i64) -> {client}<'_, Self> {{ {client}::new(self, Target::Node(node)) }}"
            );
        }
    }
    let _ = writeln!(buf, "}}");
    let _ = writeln!(buf, "impl<T: Transport + ?Sized> Clients for T {{}}");
    buf
}
