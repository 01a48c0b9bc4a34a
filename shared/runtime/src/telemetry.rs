//! Logging setup: structured `tracing` output, text or JSON.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `level` is a filter directive ("info",
/// "fv_querynode=debug,info"); RUST_LOG overrides it when set. Safe to call twice (the
/// second call is ignored), which tests rely on.
pub fn init(level: &str, json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// For tests: logs at `warn` unless RUST_LOG says otherwise, captured by the test harness.
pub fn init_for_tests() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}
