//! Bounded retries with exponential backoff for retriable errors.

use std::future::Future;
use std::time::{Duration, Instant};

use fv_common::FvError;

/// Retries `f` while it fails with a retriable error, until `deadline` elapses.
pub async fn retry_until<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> Result<T, FvError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, FvError>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(10);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.retriable && start.elapsed() + delay < deadline => {
                tracing::debug!(what, error = %e, "retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            Err(e) => return Err(e),
        }
    }
}
