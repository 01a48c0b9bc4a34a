//! Shared setup for the integration tests.

use std::path::Path;

use ferrovec::Standalone;
use fv_config::Config;
use fv_integration_tests::client::Client;

/// A standalone configuration on `dir` with fast periodic work for tests.
pub fn config(dir: &Path) -> Config {
    let mut c = Config::default();
    c.data_dir = dir.to_path_buf();
    c.rootcoord.dml_channels = 4;
    c.rootcoord.time_tick_interval_ms = 100;
    c.querycoord.check_interval_ms = 200;
    c.meta.session_ttl_ms = 3_000;
    c
}

pub async fn start(config: Config) -> (Standalone, Client) {
    fv_runtime::telemetry::init_for_tests();
    let s = Standalone::start(config).await.expect("standalone starts");
    let api = s.api().expect("standalone runs a proxy");
    (s, Client { api })
}

