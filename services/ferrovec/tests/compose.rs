//! `compose/docker-compose.yml` and `compose/Dockerfile` checked against the binary.
//!
//! No Docker engine runs where the tests do, so the compose setup is checked in two ways:
//! statically, against what the binary really uses (its roles, its configuration loader
//! and keys, its ports and health endpoint, the start order), and by running every role
//! service's own command line with the compose configuration file, with only the server
//! host names swapped for loopback test servers, until each process reports healthy.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferrovec::roles::START_ORDER;
use fv_config::Config;
use fv_runtime::rpc::Role;
use serde_yaml::Value;

const COMPOSE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../compose");
const COMPOSE_FILE: &str = include_str!("../../../compose/docker-compose.yml");
const DOCKERFILE: &str = include_str!("../../../compose/Dockerfile");
const WORKSPACE_MANIFEST: &str = include_str!("../../../Cargo.toml");
const DEPS_SCRIPT: &str = include_str!("../../../scripts/deps.sh");

/// The servers the roles need, besides each other.
const SERVERS: [&str; 4] = ["nats", "etcd", "minio", "jaeger"];

fn compose() -> Value {
    let mut doc: Value = serde_yaml::from_str(COMPOSE_FILE).expect("docker-compose.yml is valid YAML");
    // Compose resolves `<<: *anchor` merge keys; so must we before reading services.
    doc.apply_merge().expect("merge keys resolve");
    doc
}

fn services(doc: &Value) -> &serde_yaml::Mapping {
    doc.get("services").and_then(Value::as_mapping).expect("a services mapping")
}

fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc.get("services").and_then(|s| s.get(name)).unwrap_or_else(|| panic!("no service {name}"))
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("expected a list, got {v:?}"))
        .iter()
        .map(|x| match x {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => panic!("expected a string, got {other:?}"),
        })
        .collect()
}

fn command(svc: &Value) -> Vec<String> {
    str_list(svc.get("command").expect("a command"))
}

/// The service's environment, given as a mapping or as `KEY=VALUE` items.
fn environment(svc: &Value) -> Vec<(String, String)> {
    match svc.get("environment") {
        None => Vec::new(),
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    other => panic!("unsupported environment value {other:?}"),
                };
                (k.as_str().expect("string keys").to_owned(), v)
            })
            .collect(),
        Some(list) => str_list(list)
            .into_iter()
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("environment item {kv} has no ="));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
    }
}

/// Host port -> container port of each `ports` item (`"19530:19530"`).
fn published_ports(svc: &Value) -> BTreeMap<u16, u16> {
    svc.get("ports")
        .map(str_list)
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let (host, container) = p.rsplit_once(':').unwrap_or_else(|| panic!("port {p} is not HOST:CONTAINER"));
            let host = host.rsplit(':').next().expect("a host port").parse().expect("numeric host port");
            (host, container.parse().expect("numeric container port"))
        })
        .collect()
}

/// The file on this machine that a `./file:/container/path[:ro]` volume mounts at `path`.
fn mounted_file(svc: &Value, container_path: &str) -> PathBuf {
    for volume in svc.get("volumes").map(str_list).unwrap_or_default() {
        let mut parts = volume.split(':');
        let (Some(src), Some(dst)) = (parts.next(), parts.next()) else { continue };
        if dst == container_path {
            assert!(src.starts_with("./"), "{container_path} must be mounted from a file beside the compose file");
            let path = Path::new(COMPOSE_DIR).join(src);
            assert!(path.is_file(), "{} (mounted at {container_path}) does not exist", path.display());
            return path;
        }
    }
    panic!("nothing is mounted at {container_path}")
}

/// `ferrovec run <role> --config PATH`: the role and the configuration file it reads.
fn role_command(svc: &Value) -> (String, PathBuf) {
    let cmd = command(svc);
    assert_eq!(cmd.len(), 4, "command {cmd:?} is not `run <role> --config <file>`");
    assert_eq!((cmd[0].as_str(), cmd[2].as_str()), ("run", "--config"), "command {cmd:?}");
    (cmd[1].clone(), mounted_file(svc, &cmd[3]))
}

/// The configuration a role container runs with, loaded by the binary's own loader
/// (which rejects unknown keys) from the mounted file and the service's environment.
fn role_config(svc: &Value) -> Config {
    let (_, file) = role_command(svc);
    let text = std::fs::read_to_string(&file).expect("config file readable");
    Config::from_toml_and_env(&text, environment(svc).into_iter())
        .unwrap_or_else(|e| panic!("{} with the service environment: {e}", file.display()))
}

/// (host, port) of a `scheme://host:port[/...]` URL.
fn host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().expect("an authority");
    let (host, port) = authority.rsplit_once(':').unwrap_or_else(|| panic!("{url} names no port"));
    (host.to_owned(), port.parse().unwrap_or_else(|_| panic!("{url}: bad port")))
}

fn role_services(doc: &Value) -> Vec<(Role, &Value)> {
    Role::ALL.iter().map(|r| (*r, service(doc, r.name()))).collect()
}

/// `depends_on` as name -> condition (the short list form means `service_started`).
fn depends_on(svc: &Value) -> BTreeMap<String, String> {
    match svc.get("depends_on") {
        None => BTreeMap::new(),
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(k, v)| {
                let cond = v.get("condition").and_then(Value::as_str).unwrap_or("service_started");
                (k.as_str().expect("service name").to_owned(), cond.to_owned())
            })
            .collect(),
        Some(list) => str_list(list).into_iter().map(|n| (n, "service_started".to_owned())).collect(),
    }
}

/// The numeric version of an image reference's tag (`nats:2.15.1-alpine` -> [2, 15, 1]).
fn image_version(svc: &Value) -> Vec<u32> {
    let image = svc.get("image").and_then(Value::as_str).expect("an image");
    let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or_else(|| panic!("{image} is not pinned"));
    tag.trim_start_matches('v').split(['-', '.']).map_while(|p| p.parse().ok()).collect()
}

#[test]
fn every_role_runs_from_one_image_with_the_compose_config() {
    let doc = compose();
    let names: BTreeSet<&str> = services(&doc).keys().filter_map(Value::as_str).collect();
    let expected: BTreeSet<&str> = Role::ALL.iter().map(|r| r.name()).chain(SERVERS).collect();
    assert_eq!(names, expected, "one service per role plus the servers");
    let mut images = BTreeSet::new();
    for (role, svc) in role_services(&doc) {
        let (named, _) = role_command(svc);
        assert_eq!(Role::parse(&named), Some(role), "service {role} runs {named}");
        images.insert(svc.get("image").and_then(Value::as_str).expect("an image").to_owned());
        let build = svc.get("build").expect("roles build the image");
        assert_eq!(build.get("dockerfile").and_then(Value::as_str), Some("compose/Dockerfile"));
        let context = Path::new(COMPOSE_DIR).join(build.get("context").and_then(Value::as_str).expect("a context"));
        assert!(context.join("Cargo.toml").is_file(), "the build context is the workspace root");
        // Loads with the binary's loader: every key and environment override is known.
        let _ = role_config(svc);
    }
    assert_eq!(images.len(), 1, "every role from one image: {images:?}");
}

#[test]
fn roles_reach_the_servers_compose_starts() {
    let doc = compose();
    let nats = service(&doc, "nats");
    let nats_cmd = command(nats);
    assert!(nats_cmd.iter().any(|a| a == "-js" || a == "--jetstream"), "JetStream must be on: {nats_cmd:?}");
    // Atomic batch publish needs 2.12; pin the version the test suite runs against.
    let tested: Vec<u32> = DEPS_SCRIPT
        .lines()
        .find_map(|l| l.strip_prefix("FERROVEC_NATS_VERSION="))
        .expect("scripts/deps.sh pins NATS")
        .split('.')
        .map(|p| p.parse().expect("numeric"))
        .collect();
    assert_eq!(image_version(nats), tested, "the NATS image is the version the tests run against");
    let etcd_cmd = command(service(&doc, "etcd")).join(" ");
    let minio = service(&doc, "minio");
    let minio_env: BTreeMap<String, String> = environment(minio).into_iter().collect();
    let minio_cmd = command(minio);
    assert!(minio_cmd.iter().all(|a| !a.starts_with("--address")), "MinIO serves S3 on its default 9000");
    for (role, svc) in role_services(&doc) {
        let c = role_config(svc);
        assert_eq!(c.broker.kind, "nats", "{role}");
        assert_eq!(host_port(&c.broker.nats_url), ("nats".to_owned(), 4222), "{role}");
        assert_eq!(c.meta.kind, "etcd", "{role}");
        for endpoint in c.meta.etcd_endpoints.split(',') {
            let (host, port) = host_port(endpoint);
            assert_eq!(host, "etcd", "{role}");
            assert!(etcd_cmd.contains(&format!("--listen-client-urls=http://0.0.0.0:{port}")), "{role}: etcd port");
        }
        assert_eq!(c.storage.kind, "s3", "{role}");
        assert_eq!(host_port(&c.storage.endpoint), ("minio".to_owned(), 9000), "{role}");
        assert!(c.storage.path_style, "MinIO wants path-style requests");
        assert_eq!(Some(&c.storage.access_key), minio_env.get("MINIO_ROOT_USER"), "{role}");
        assert_eq!(Some(&c.storage.secret_key), minio_env.get("MINIO_ROOT_PASSWORD"), "{role}");
        // Spans go to Jaeger's OTLP/gRPC receiver.
        assert_eq!(host_port(&c.telemetry.otlp_endpoint), ("jaeger".to_owned(), 4317), "{role}");
    }
    assert!(image_version(service(&doc, "jaeger"))[0] >= 2, "Jaeger 2 takes OTLP on 4317 without extra settings");
}

#[test]
fn health_checks_ports_and_start_order_match_the_binary() {
    let doc = compose();
    let all = services(&doc);
    for (role, svc) in role_services(&doc) {
        let c = role_config(svc);
        let check = str_list(svc.get("healthcheck").and_then(|h| h.get("test")).expect("a health check"));
        let url = check.iter().find(|a| a.starts_with("http://")).expect("the check calls a URL");
        assert_eq!(host_port(url), ("localhost".to_owned(), c.http.port), "{role}: health port");
        assert!(url.ends_with("/healthz"), "{role}: {url}");
        assert_eq!(check.get(1).map(String::as_str), Some("curl"), "{role}: the image installs curl for this");
        // Up after the servers; the root coordinator (which allocates ids and timestamps
        // for the others) first, the nodes and the proxy after every coordinator: the
        // binary's start order (roles::START_ORDER).
        let deps = depends_on(svc);
        for server in ["nats", "etcd", "minio"] {
            assert_eq!(deps.get(server).map(String::as_str), Some("service_healthy"), "{role} waits for {server}");
        }
        let position = START_ORDER.iter().position(|r| *r == role).expect("in the start order");
        let before: Vec<Role> = match role {
            Role::RootCoord => Vec::new(),
            r if r.is_coordinator() => vec![Role::RootCoord],
            _ => START_ORDER.iter().copied().filter(|r| r.is_coordinator()).collect(),
        };
        for earlier in before {
            assert!(START_ORDER.iter().position(|r| *r == earlier) < Some(position));
            assert_eq!(
                deps.get(earlier.name()).map(String::as_str),
                Some("service_healthy"),
                "{role} starts after {earlier}"
            );
        }
    }
    // A `service_healthy` dependency needs a health check on the other side.
    for (name, svc) in all {
        for (dep, cond) in depends_on(svc) {
            assert!(all.contains_key(dep.as_str()), "{name:?} depends on unknown {dep}");
            if cond == "service_healthy" {
                assert!(service(&doc, &dep).get("healthcheck").is_some(), "{dep} has no health check");
            }
        }
    }
    // What a user needs from the host: the Milvus API, the proxy's health and metrics,
    // Jaeger's UI, and NATS for the CLI.
    let proxy = service(&doc, "proxy");
    let c = role_config(proxy);
    let ports = published_ports(proxy);
    assert_eq!(ports.get(&19530), Some(&c.proxy.port), "19530 reaches the Milvus API");
    assert_eq!(ports.get(&c.http.port), Some(&c.http.port), "the proxy's /healthz and /metrics");
    assert_eq!(published_ports(service(&doc, "jaeger")).get(&16686), Some(&16686), "Jaeger UI");
    assert_eq!(published_ports(service(&doc, "nats")).get(&4222), Some(&4222), "nats CLI");
    // Named volumes are declared.
    let declared: BTreeSet<&str> =
        doc.get("volumes").and_then(Value::as_mapping).expect("volumes").keys().filter_map(Value::as_str).collect();
    for svc in all.values() {
        for v in svc.get("volumes").map(str_list).unwrap_or_default() {
            let src = v.split(':').next().expect("a source");
            if !src.starts_with('.') && !src.starts_with('/') {
                assert!(declared.contains(src), "volume {src} is not declared");
            }
        }
    }
}

#[test]
fn dockerfile_builds_the_binary_the_services_run() {
    let rust_version = WORKSPACE_MANIFEST
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("the workspace declares rust-version")
        .trim_matches('"');
    assert!(
        DOCKERFILE.contains(&format!("ARG RUST_VERSION={rust_version}")),
        "the builder uses the workspace's Rust {rust_version}"
    );
    assert!(DOCKERFILE.contains("FROM rust:${RUST_VERSION}"), "the builder image follows RUST_VERSION");
    for needed in
        ["protobuf-compiler", "cargo build --release --locked -p ferrovec", "curl", "ENTRYPOINT [\"ferrovec\"]"]
    {
        assert!(DOCKERFILE.contains(needed), "the Dockerfile lacks {needed}");
    }
    let defaults = Config::default();
    let expose = DOCKERFILE.lines().find_map(|l| l.strip_prefix("EXPOSE ")).expect("EXPOSE");
    let exposed: BTreeSet<u16> = expose.split_whitespace().map(|p| p.parse().expect("numeric")).collect();
    assert_eq!(exposed, BTreeSet::from([defaults.proxy.port, defaults.http.port]));
}

// ---- running the role services' command lines -------------------------------------------

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `GET /healthz` answered 200.
fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").is_err() {
        return false;
    }
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200")
}

/// The tail of every role's log, for failure messages.
fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for role in Role::ALL {
        let text = std::fs::read_to_string(dir.join(format!("{role}.log"))).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        out.push_str(&format!("--- {role}.log\n"));
        for line in tail.into_iter().rev() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Child processes killed when dropped, also when an assertion fails.
struct Processes(Vec<(String, Child)>);

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Processes {
    fn exited(&mut self) -> Option<String> {
        self.0.iter_mut().find_map(|(name, c)| match c.try_wait() {
            Ok(Some(status)) => Some(format!("{name} exited with {status}")),
            _ => None,
        })
    }
}

/// The loopback test servers scripts/deps.sh starts, or None (after a notice) without
/// them; a failure when FERROVEC_REQUIRE_REAL_BACKENDS=1.
fn test_servers() -> Option<(String, String, String)> {
    let vars = ["FERROVEC_TEST_NATS_BIN", "FERROVEC_TEST_ETCD_ENDPOINT", "FERROVEC_TEST_S3_ENDPOINT"];
    let values: Vec<String> = vars.iter().map(|v| std::env::var(v).unwrap_or_default()).collect();
    if values.iter().any(String::is_empty) {
        assert!(
            std::env::var("FERROVEC_REQUIRE_REAL_BACKENDS").as_deref() != Ok("1"),
            "FERROVEC_REQUIRE_REAL_BACKENDS=1 but one of {vars:?} is not set: `source scripts/deps.sh && start_nats && start_etcd && start_s3`"
        );
        eprintln!("notice: {vars:?} not all set; skipping the compose run test");
        return None;
    }
    Some((values[0].clone(), values[1].clone(), values[2].clone()))
}

/// Starts a private nats-server with JetStream: Ferrovec's request subjects are not
/// namespaced, so a whole deployment must not share a server with another test's.
fn start_private_nats(bin: &str, dir: &Path) -> (Child, String) {
    let port = free_port();
    let monitor = free_port();
    let conf = dir.join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "listen: \"127.0.0.1:{port}\"\nhttp: \"127.0.0.1:{monitor}\"\njetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 64MB\n  max_file_store: 1GB\n}}\n",
            dir.join("js").display()
        ),
    )
    .expect("write nats.conf");
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, format!("nats://127.0.0.1:{port}"))
}

/// The role services in waves, as compose starts them: each wave once the roles of the
/// earlier waves it depends on are healthy, the roles of one wave at the same time.
fn compose_start_waves(doc: &Value) -> Vec<Vec<Role>> {
    let mut started: Vec<Role> = Vec::new();
    let mut waves = Vec::new();
    let mut left: Vec<Role> = Role::ALL.to_vec();
    while !left.is_empty() {
        let ready: Vec<Role> = left
            .iter()
            .copied()
            .filter(|r| {
                depends_on(service(doc, r.name()))
                    .keys()
                    .all(|d| SERVERS.contains(&d.as_str()) || started.iter().any(|o| o.name() == d))
            })
            .collect();
        assert!(!ready.is_empty(), "depends_on among the roles has a cycle: {left:?}");
        left.retain(|r| !ready.contains(r));
        started.extend(&ready);
        waves.push(ready);
    }
    waves
}

#[test]
fn role_services_start_healthy_from_their_compose_command_lines() {
    let Some((nats_bin, etcd, s3)) = test_servers() else { return };
    let doc = compose();
    let dir = tempfile::tempdir().expect("tempdir");
    let (nats, nats_url) = start_private_nats(&nats_bin, dir.path());
    let mut procs = Processes(vec![("nats-server".into(), nats)]);
    let run = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos();
    let mut http_ports = Vec::new();
    let grpc_port = free_port();
    let waves = compose_start_waves(&doc);
    assert!(waves.len() >= 3, "rootcoord, the other coordinators, then the rest: {waves:?}");
    let started = Instant::now();
    for wave in waves.clone() {
        let mut waiting = Vec::new();
        for role in wave {
            let svc = service(&doc, role.name());
            let cmd = command(svc);
            let (_, config_file) = role_command(svc);
            let http_port = free_port();
            let mut args: Vec<String> = cmd[..3].to_vec();
            args.push(config_file.display().to_string());
            args.extend(["--http-port".into(), http_port.to_string()]);
            args.extend(["--data-dir".into(), dir.path().join(format!("{role}-data")).display().to_string()]);
            if role == Role::Proxy {
                args.extend(["--port".into(), grpc_port.to_string()]);
            }
            let log = std::fs::File::create(dir.path().join(format!("{role}.log"))).expect("log file");
            let child = Command::new(env!("CARGO_BIN_EXE_ferrovec"))
                .args(&args)
                .envs(environment(svc))
                // Only the server host names change: compose's service names do not resolve here.
                .env("FERROVEC__BROKER__NATS_URL", &nats_url)
                .env("FERROVEC__META__ETCD_ENDPOINTS", &etcd)
                .env("FERROVEC__META__ROOT", format!("compose-test-{run}"))
                .env("FERROVEC__STORAGE__ENDPOINT", &s3)
                .env("FERROVEC__STORAGE__ROOT_PREFIX", format!("compose-test-{run}"))
                // No collector listens here: exporting must not hold anything up.
                .env("FERROVEC__TELEMETRY__OTLP_ENDPOINT", format!("http://127.0.0.1:{}", free_port()))
                .env("FERROVEC__PROXY__HOST", "127.0.0.1")
                .env("FERROVEC__HTTP__HOST", "127.0.0.1")
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("ferrovec starts");
            procs.0.push((role.name().to_owned(), child));
            waiting.push((role, http_port));
        }
        // The next wave starts once this one is healthy (`condition: service_healthy`).
        let deadline = Instant::now() + Duration::from_secs(60);
        for &(role, port) in &waiting {
            while !healthy(port) {
                if let Some(why) = procs.exited() {
                    panic!("{why}\n{}", logs(dir.path()));
                }
                assert!(Instant::now() < deadline, "{role} not healthy within 60 s\n{}", logs(dir.path()));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        http_ports.extend(waiting);
    }
    // All still healthy together, and the proxy reaches the coordinators: a collection
    // created through the Milvus API is listed.
    for (role, port) in http_ports {
        assert!(healthy(port), "{role} stopped being healthy");
    }
    eprintln!("compose roles healthy in waves {waves:?} after {:?}", started.elapsed());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(create_and_list_collection(grpc_port));
    assert_eq!(procs.exited(), None);
}

async fn create_and_list_collection(port: u16) {
    use fv_proto::api::milvus_service_client::MilvusServiceClient;
    use fv_proto::api::{CreateCollectionRequest, ShowCollectionsRequest};
    use fv_proto::common::KeyValuePair;
    use fv_proto::schema::{CollectionSchema, DataType, FieldSchema};
    use prost::Message;

    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to the proxy");
    let mut client = MilvusServiceClient::new(channel);
    let schema = CollectionSchema {
        name: "compose_check".into(),
        fields: vec![
            FieldSchema {
                name: "id".into(),
                data_type: DataType::Int64 as i32,
                is_primary_key: true,
                ..Default::default()
            },
            FieldSchema {
                name: "vec".into(),
                data_type: DataType::FloatVector as i32,
                type_params: vec![KeyValuePair { key: "dim".into(), value: "4".into() }],
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let created = client
        .create_collection(CreateCollectionRequest {
            collection_name: "compose_check".into(),
            schema: schema.encode_to_vec(),
            shards_num: 1,
            ..Default::default()
        })
        .await
        .expect("create_collection answers")
        .into_inner();
    assert_eq!(created.code, 0, "create_collection: {created:?}");
    let shown = client
        .show_collections(ShowCollectionsRequest::default())
        .await
        .expect("show_collections answers")
        .into_inner();
    assert_eq!(shown.collection_names, vec!["compose_check".to_string()], "{shown:?}");
}
