//! Ferrovec's configuration.
//!
//! One TOML file describes every role and backend; every key has a default, so an empty
//! file (or none) gives a working standalone server. Layers, lowest first: defaults, the
//! file, environment variables `FERROVEC__<SECTION>__<KEY>` (values parsed as TOML
//! literals, falling back to strings), then command-line flags applied by the binary.
//! Unknown keys are errors that name the key, so typos do not pass silently.
//! `docs/config.md` lists every key.

use std::path::{Path, PathBuf};

/// When the embedded log's appends reach the disk (`broker.fsync`: `"always"` or
/// `"never"`). One definition, shared with the embedded stores (`fv-wal`).
pub use fv_wal::FsyncPolicy;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Parse(String),
    #[error("invalid config value {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// Where logs go and how verbose they are.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// tracing filter directive: "info", "debug", "fv_querynode=debug,info", ...
    pub level: String,
    /// "text" or "json".
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: "text".into() }
    }
}

/// The log broker (Milvus MsgStream).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// "embedded" (a durable file log under `<data_dir>/log`) or "nats" (NATS JetStream).
    pub kind: String,
    /// Embedded log: when appends reach the disk.
    pub fsync: FsyncPolicy,
    /// Embedded log: size of one log segment file.
    pub segment_bytes: u64,
    /// Largest record; producers split larger inserts.
    pub max_message_bytes: usize,
    /// NATS server URL(s), comma-separated (`nats://127.0.0.1:4222`).
    pub nats_url: String,
    /// Prepended to the JetStream stream names (one stream per pchannel, `FV_DML_0`, ...);
    /// empty by default. It renames streams, not subjects: clusters sharing one NATS
    /// server need a NATS account each (docs/nats.md).
    pub nats_stream_prefix: String,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            kind: "embedded".into(),
            fsync: FsyncPolicy::Always,
            segment_bytes: 64 << 20,
            max_message_bytes: 8 << 20,
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_stream_prefix: String::new(),
        }
    }
}

/// The meta store.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetaConfig {
    /// "embedded" (a file-backed KV under `<data_dir>/meta`) or "etcd".
    pub kind: String,
    /// Key prefix all of Ferrovec's keys live under.
    pub root: String,
    /// Session lease time-to-live; a role that stops refreshing disappears after it.
    pub session_ttl_ms: u64,
    /// etcd endpoints, comma-separated (`http://127.0.0.1:2379`).
    pub etcd_endpoints: String,
}

impl Default for MetaConfig {
    fn default() -> Self {
        Self {
            kind: "embedded".into(),
            root: "ferrovec".into(),
            session_ttl_ms: 10_000,
            etcd_endpoints: "http://127.0.0.1:2379".into(),
        }
    }
}

/// Object storage for binlogs and index files.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// "local" (a directory, `<data_dir>/objects`) or "s3" (any S3-compatible store).
    pub kind: String,
    /// S3: endpoint URL (`http://127.0.0.1:9000`); empty for AWS's regional endpoint.
    pub endpoint: String,
    /// S3: region; empty means us-east-1.
    pub region: String,
    /// S3: bucket, created if missing.
    pub bucket: String,
    /// S3: credentials; when both are empty, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    /// from the environment are used.
    pub access_key: String,
    pub secret_key: String,
    /// S3: path-style addressing (`endpoint/bucket/key`), what MinIO and SeaweedFS expect.
    pub path_style: bool,
    /// S3: prefix of every key (several clusters can share a bucket).
    pub root_prefix: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: "local".into(),
            endpoint: String::new(),
            region: String::new(),
            bucket: "ferrovec".into(),
            access_key: String::new(),
            secret_key: String::new(),
            path_style: true,
            root_prefix: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Milvus gRPC port.
    pub port: u16,
    /// Host to bind.
    pub host: String,
    /// Largest request accepted (Milvus allows 256 MiB inserts).
    pub max_request_bytes: usize,
    /// Largest nq * topk of one search.
    pub max_result_window: i64,
    /// Staleness allowed for Bounded reads.
    pub bounded_staleness_ms: u64,
    /// How long a read waits for the requested serviceable time.
    pub read_timeout_ms: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            port: 19530,
            host: "0.0.0.0".into(),
            max_request_bytes: 256 << 20,
            max_result_window: 16_384,
            bounded_staleness_ms: 5_000,
            read_timeout_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RootCoordConfig {
    /// Number of pchannels (topics) collections' shards are spread over.
    pub dml_channels: usize,
    /// Period of TimeTick messages on pchannels in use.
    pub time_tick_interval_ms: u64,
    /// Maximum shards per collection.
    pub max_shards: i32,
}

impl Default for RootCoordConfig {
    fn default() -> Self {
        Self { dml_channels: 16, time_tick_interval_ms: 200, max_shards: 16 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataCoordConfig {
    /// A growing segment is sealed when its estimated size reaches this.
    pub segment_max_bytes: u64,
    /// ... or when it holds this many rows (0: derive from size only).
    pub segment_max_rows: u64,
    /// ... or when nothing was written to it for this long.
    pub segment_idle_seal_ms: u64,
    /// Period of garbage collection of dropped segments' files.
    pub gc_interval_ms: u64,
    /// How often the log is truncated below every consumer's checkpoint.
    pub log_truncate_interval_ms: u64,
}

impl Default for DataCoordConfig {
    fn default() -> Self {
        Self {
            segment_max_bytes: 512 << 20,
            segment_max_rows: 0,
            segment_idle_seal_ms: 600_000,
            gc_interval_ms: 60_000,
            log_truncate_interval_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataNodeConfig {
    /// Buffered deletes of flushed segments are written out this often.
    pub delete_flush_interval_ms: u64,
    /// Also written out once this many are buffered.
    pub delete_buffer_rows: usize,
}

impl Default for DataNodeConfig {
    fn default() -> Self {
        Self { delete_flush_interval_ms: 10_000, delete_buffer_rows: 100_000 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueryCoordConfig {
    /// Period of the reconciliation loop (handoff, reassignment).
    pub check_interval_ms: u64,
}

impl Default for QueryCoordConfig {
    fn default() -> Self {
        Self { check_interval_ms: 500 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct QueryNodeConfig {}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IndexNodeConfig {
    /// Concurrent index builds.
    pub slots: i64,
}

impl Default for IndexNodeConfig {
    fn default() -> Self {
        Self { slots: 1 }
    }
}

/// Traces exported over OTLP/gRPC (Jaeger, Tempo, an OpenTelemetry collector).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP/gRPC endpoint (`http://127.0.0.1:4317`); empty turns span export off, and
    /// then no OpenTelemetry layer is installed at all.
    pub otlp_endpoint: String,
    /// Fraction of traces started here that are exported (0.0..=1.0); a request that
    /// arrives with a sampled parent follows its parent's decision.
    pub sampling_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { otlp_endpoint: String::new(), sampling_ratio: 1.0 }
    }
}

/// Health and metrics HTTP endpoint of each process.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub port: u16,
    pub host: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { port: 9091, host: "0.0.0.0".into() }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Root of everything a standalone server stores (log, meta, objects).
    pub data_dir: PathBuf,
    /// Id of this process' nodes (0: allocate one at start).
    pub node_id: i64,
    pub log: LogConfig,
    pub telemetry: TelemetryConfig,
    pub broker: BrokerConfig,
    pub meta: MetaConfig,
    pub storage: StorageConfig,
    pub http: HttpConfig,
    pub proxy: ProxyConfig,
    pub rootcoord: RootCoordConfig,
    pub datacoord: DataCoordConfig,
    pub datanode: DataNodeConfig,
    pub querycoord: QueryCoordConfig,
    pub querynode: QueryNodeConfig,
    pub indexnode: IndexNodeConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            node_id: 0,
            log: LogConfig::default(),
            telemetry: TelemetryConfig::default(),
            broker: BrokerConfig::default(),
            meta: MetaConfig::default(),
            storage: StorageConfig::default(),
            http: HttpConfig::default(),
            proxy: ProxyConfig::default(),
            rootcoord: RootCoordConfig::default(),
            datacoord: DataCoordConfig::default(),
            datanode: DataNodeConfig::default(),
            querycoord: QueryCoordConfig::default(),
            querynode: QueryNodeConfig::default(),
            indexnode: IndexNodeConfig::default(),
        }
    }
}

const ENV_PREFIX: &str = "FERROVEC__";

impl Config {
    /// Loads defaults < `file` (if any) < `FERROVEC__...` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let text = match file {
            Some(p) => {
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.to_path_buf(), source })?
            }
            None => String::new(),
        };
        Self::from_toml_and_env(&text, std::env::vars())
    }

    /// Parses TOML text and applies env-style overrides (testable without touching the
    /// process environment).
    pub fn from_toml_and_env(text: &str, env: impl Iterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let mut root: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        for (k, v) in env {
            let Some(path) = k.strip_prefix(ENV_PREFIX) else { continue };
            let keys: Vec<String> = path.split("__").map(|s| s.to_ascii_lowercase()).collect();
            if keys.iter().any(|k| k.is_empty()) {
                return Err(ConfigError::Parse(format!("malformed environment override {k}")));
            }
            set_path(&mut root, &keys, parse_env_value(&v)).map_err(|e| ConfigError::Parse(format!("{k}: {e}")))?;
        }
        let cfg: Config =
            toml::Value::Table(root).try_into().map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, reason: &str| Err(ConfigError::Invalid { key, reason: reason.into() });
        if self.rootcoord.dml_channels == 0 || self.rootcoord.dml_channels > 1024 {
            return bad("rootcoord.dml_channels", "must be in 1..=1024");
        }
        if self.rootcoord.time_tick_interval_ms == 0 {
            return bad("rootcoord.time_tick_interval_ms", "must be positive");
        }
        if self.broker.max_message_bytes < 64 << 10 {
            return bad("broker.max_message_bytes", "must be at least 64 KiB");
        }
        if !["embedded", "nats"].contains(&self.broker.kind.as_str()) {
            return bad("broker.kind", "must be \"embedded\" or \"nats\"");
        }
        if !["embedded", "etcd"].contains(&self.meta.kind.as_str()) {
            return bad("meta.kind", "must be \"embedded\" or \"etcd\"");
        }
        if !["local", "s3"].contains(&self.storage.kind.as_str()) {
            return bad("storage.kind", "must be \"local\" or \"s3\"");
        }
        if self.storage.kind == "s3" && self.storage.bucket.is_empty() {
            return bad("storage.bucket", "must be set for S3 storage");
        }
        if !["text", "json"].contains(&self.log.format.as_str()) {
            return bad("log.format", "must be \"text\" or \"json\"");
        }
        if !(0.0..=1.0).contains(&self.telemetry.sampling_ratio) {
            return bad("telemetry.sampling_ratio", "must be in 0.0..=1.0");
        }
        let endpoint = &self.telemetry.otlp_endpoint;
        if !endpoint.is_empty() && !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
            return bad("telemetry.otlp_endpoint", "must be empty or an http:// or https:// URL");
        }
        if self.meta.session_ttl_ms < 500 {
            return bad("meta.session_ttl_ms", "must be at least 500");
        }
        if self.indexnode.slots < 1 {
            return bad("indexnode.slots", "must be at least 1");
        }
        Ok(())
    }
}

fn parse_env_value(v: &str) -> toml::Value {
    // Parse as a TOML literal (numbers, booleans, quoted strings, arrays); anything else
    // is taken as a plain string.
    match format!("x = {v}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("x").unwrap_or_else(|| toml::Value::String(v.to_string())),
        Err(_) => toml::Value::String(v.to_string()),
    }
}

fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = keys.split_last().ok_or("empty key")?;
    let mut cur = table;
    for k in parents {
        let entry = cur.entry(k.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| format!("{k} is not a section"))?;
    }
    cur.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_default() {
        let c = Config::from_toml_and_env("", std::iter::empty()).expect("defaults are valid");
        assert_eq!(c, Config::default());
        assert_eq!(c.proxy.port, 19530);
    }

    #[test]
    fn file_then_env_override() {
        let toml = "data_dir = \"/tmp/x\"\n[proxy]\nport = 1234\n[broker]\nfsync = \"never\"\n";
        let env = vec![
            ("FERROVEC__PROXY__PORT".to_string(), "4321".to_string()),
            ("FERROVEC__LOG__LEVEL".to_string(), "debug".to_string()),
            ("OTHER".to_string(), "ignored".to_string()),
        ];
        let c = Config::from_toml_and_env(toml, env.into_iter()).expect("valid");
        assert_eq!(c.proxy.port, 4321);
        assert_eq!(c.log.level, "debug");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.broker.fsync, FsyncPolicy::Never);
    }

    #[test]
    fn fsync_is_spelled_in_lower_case() {
        let parse = |v: &str| Config::from_toml_and_env(&format!("[broker]\nfsync = \"{v}\"\n"), std::iter::empty());
        assert_eq!(parse("always").expect("always").broker.fsync, FsyncPolicy::Always);
        assert_eq!(parse("never").expect("never").broker.fsync, FsyncPolicy::Never);
        assert!(parse("Always").is_err());
        assert_eq!(Config::default().broker.fsync, FsyncPolicy::Always);
        let written = toml::to_string(&Config::default()).expect("serialize");
        assert!(written.contains("fsync = \"always\""), "{written}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = Config::from_toml_and_env("[proxy]\nprot = 1\n", std::iter::empty()).unwrap_err();
        assert!(e.to_string().contains("prot"), "{e}");
        let e = Config::from_toml_and_env("[rootcoord]\ndml_channels = 0\n", std::iter::empty()).unwrap_err();
        assert!(e.to_string().contains("dml_channels"), "{e}");
    }

    #[test]
    fn telemetry_endpoint_from_the_environment() {
        let c = Config::from_toml_and_env("", std::iter::empty()).expect("defaults");
        assert!(c.telemetry.otlp_endpoint.is_empty(), "export is off by default");
        let env = vec![
            ("FERROVEC__TELEMETRY__OTLP_ENDPOINT".to_string(), "http://jaeger:4317".to_string()),
            ("FERROVEC__TELEMETRY__SAMPLING_RATIO".to_string(), "0.25".to_string()),
        ];
        let c = Config::from_toml_and_env("", env.into_iter()).expect("valid");
        assert_eq!(c.telemetry.otlp_endpoint, "http://jaeger:4317");
        assert_eq!(c.telemetry.sampling_ratio, 0.25);
        let e = Config::from_toml_and_env("[telemetry]\nsampling_ratio = 1.5\n", std::iter::empty()).unwrap_err();
        assert!(e.to_string().contains("sampling_ratio"), "{e}");
        let e = Config::from_toml_and_env("[telemetry]\notlp_endpoint = \"jaeger:4317\"\n", std::iter::empty())
            .unwrap_err();
        assert!(e.to_string().contains("otlp_endpoint"), "{e}");
    }

    #[test]
    fn load_reads_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.toml");
        std::fs::write(&path, "[datacoord]\nsegment_max_rows = 5\n").expect("write");
        let c = Config::load(Some(&path)).expect("loads");
        assert_eq!(c.datacoord.segment_max_rows, 5);
        assert!(Config::load(Some(&dir.path().join("missing.toml"))).is_err());
    }
}

#[cfg(test)]
mod doc_tests {
    use super::*;

    /// Every key of the schema appears in docs/config.md.
    #[test]
    fn config_doc_lists_every_key() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md"))
            .expect("docs/config.md exists");
        let value = toml::Value::try_from(Config::default()).expect("config serialises");
        let mut keys = Vec::new();
        fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
            match v {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                        walk(&p, v, out);
                    }
                }
                _ => out.push(prefix.to_string()),
            }
        }
        walk("", &value, &mut keys);
        assert!(keys.len() > 20);
        for k in keys {
            assert!(doc.contains(&format!("`{k}`")), "docs/config.md does not document {k}");
        }
    }
}
