//! [`ObjectStore`] over an S3-compatible service (AWS S3, MinIO, SeaweedFS, …).
//!
//! Every key is stored as `<root_prefix>/<key>` in one bucket, so several deployments
//! or test runs can share a bucket; keys passed in and listed out are relative to the
//! root prefix. Keys follow the same rules as the local store ([`validate_key`]), so
//! data can move between the two.
//!
//! A put up to [`MULTIPART_THRESHOLD`] bytes is one PutObject (atomic on S3); a larger
//! one is a multipart upload of [`PART_SIZE`] parts, which S3 only makes visible when it
//! completes, and which is aborted when a part fails. Ranged reads are HTTP range
//! requests. `list` sorts what the server returns: SeaweedFS lists in the order of its
//! directory walk (`b/a` before `b-x`), not in S3's byte order.
//!
//! Requests are retried by the SDK (standard retry mode, 3 attempts);
//! errors that remain are mapped to [`ObjectStoreError`]: missing keys to `NotFound`,
//! connection failures, timeouts, throttling and 5xx responses to the retriable
//! `Unavailable`, and any other rejection to `Io` with the object's `s3://` address (403
//! as `PermissionDenied`, 400 as `InvalidInput`).

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration, Delete,
    ObjectIdentifier,
};
use aws_smithy_http_client::tls;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tracing::{debug, info, warn};

use crate::local::validate_key;
use crate::{ObjectMeta, ObjectStore, ObjectStoreError, Result};

/// Puts larger than this use a multipart upload.
pub const MULTIPART_THRESHOLD: usize = 16 << 20;
/// Size of each part of a multipart upload (the last one may be smaller).
pub const PART_SIZE: usize = 8 << 20;
/// Parts of one multipart upload in flight at once.
const PART_CONCURRENCY: usize = 4;
/// Keys per DeleteObjects request (the S3 maximum).
const DELETE_BATCH: usize = 1000;
/// Upper bound of ListObjectsV2 pages for one listing (1000 keys each): a guard against a
/// server that never stops paginating, not a limit anyone should reach.
const MAX_LIST_PAGES: usize = 1_000_000;
/// Attempts per request, the first included (SDK standard retry mode, with backoff).
const MAX_ATTEMPTS: u32 = 3;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound of one attempt of one request (a part is at most [`PART_SIZE`], but a get may
/// read a whole large object).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);

/// Where and how to reach the bucket.
#[derive(Clone, Default)]
pub struct S3Config {
    /// Endpoint URL, e.g. `http://127.0.0.1:8333`; empty for AWS's regional endpoint.
    pub endpoint: String,
    /// Region; empty means `us-east-1` (what MinIO and SeaweedFS expect).
    pub region: String,
    pub bucket: String,
    /// Static credentials; when both are empty, `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` are read from the environment.
    pub access_key: String,
    pub secret_key: String,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most self-hosted servers.
    pub path_style: bool,
    /// Prepended (with a `/`) to every key; empty for none.
    pub root_prefix: String,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key", &self.access_key)
            .field("secret_key", &if self.secret_key.is_empty() { "" } else { "<redacted>" })
            .field("path_style", &self.path_style)
            .field("root_prefix", &self.root_prefix)
            .finish()
    }
}

/// An object store in an S3 bucket. See the [module docs](self).
#[derive(Debug)]
pub struct S3ObjectStore {
    client: Client,
    bucket: String,
    /// Empty, or the configured root prefix followed by `/`.
    root: String,
}

fn config_error(reason: impl Into<String>) -> ObjectStoreError {
    ObjectStoreError::Io {
        path: PathBuf::from("s3://"),
        source: io::Error::new(io::ErrorKind::InvalidInput, reason.into()),
    }
}

impl S3ObjectStore {
    /// Builds the client and creates the bucket if it does not exist yet.
    pub async fn connect(cfg: S3Config) -> Result<Arc<S3ObjectStore>> {
        let store = S3ObjectStore::new(cfg)?;
        store.ensure_bucket().await?;
        info!(bucket = %store.bucket, root = %store.root, "connected to S3 object store");
        Ok(Arc::new(store))
    }

    /// Builds the client without any request.
    fn new(cfg: S3Config) -> Result<S3ObjectStore> {
        if cfg.bucket.is_empty() {
            return Err(config_error("no bucket configured"));
        }
        let root_prefix = cfg.root_prefix.trim_end_matches('/');
        let root = if root_prefix.is_empty() {
            String::new()
        } else {
            validate_key(root_prefix).map_err(|error| config_error(format!("invalid root prefix: {error}")))?;
            format!("{root_prefix}/")
        };
        let (access_key, secret_key) = if cfg.access_key.is_empty() && cfg.secret_key.is_empty() {
            let var =
                |name: &str| std::env::var(name).map_err(|_| config_error(format!("no credentials: {name} unset")));
            (var("AWS_ACCESS_KEY_ID")?, var("AWS_SECRET_ACCESS_KEY")?)
        } else if cfg.access_key.is_empty() || cfg.secret_key.is_empty() {
            return Err(config_error("access_key and secret_key must be set together"));
        } else {
            (cfg.access_key, cfg.secret_key)
        };
        let region = if cfg.region.is_empty() { "us-east-1".to_owned() } else { cfg.region };

        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
            .build_https();
        let mut builder = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(Credentials::new(access_key, secret_key, None, None, "ferrovec-config"))
            .force_path_style(cfg.path_style)
            .http_client(http)
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            );
        if !cfg.endpoint.is_empty() {
            builder = builder.endpoint_url(cfg.endpoint);
        }
        Ok(S3ObjectStore { client: Client::from_conf(builder.build()), bucket: cfg.bucket, root })
    }

    async fn ensure_bucket(&self) -> Result<()> {
        let bucket = &self.bucket;
        match self.client.head_bucket().bucket(bucket).send().await {
            Ok(_) => return Ok(()),
            Err(error) if http_status(&error) == Some(404) => {}
            Err(error) => return Err(map_error(error, "", &self.address(""))),
        }
        let mut request = self.client.create_bucket().bucket(bucket);
        let region = self.client.config().region().map(|region| region.as_ref().to_owned()).unwrap_or_default();
        if region != "us-east-1" {
            let location = CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build();
            request = request.create_bucket_configuration(location);
        }
        match request.send().await {
            Ok(_) => {
                info!(bucket, "created bucket");
                Ok(())
            }
            // Created concurrently (by another process or test).
            Err(error)
                if error.as_service_error().is_some_and(|error| {
                    error.is_bucket_already_owned_by_you() || error.is_bucket_already_exists()
                }) =>
            {
                Ok(())
            }
            Err(error) => Err(map_error(error, "", &self.address(""))),
        }
    }

    /// The bucket's key of `key`.
    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.root)
    }

    /// `s3://bucket/full-key`, for error messages.
    fn address(&self, full_key: &str) -> String {
        format!("s3://{}/{full_key}", self.bucket)
    }

    async fn put_single(&self, key: &str, full_key: &str, data: Bytes) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(full_key)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|error| map_error(error, key, &self.address(full_key)))?;
        Ok(())
    }

    async fn put_multipart(&self, key: &str, full_key: &str, data: Bytes) -> Result<()> {
        let address = self.address(full_key);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(full_key)
            .send()
            .await
            .map_err(|error| map_error(error, key, &address))?;
        let Some(upload_id) = created.upload_id() else {
            return Err(protocol_error(&address, "CreateMultipartUpload returned no upload id"));
        };
        match self.upload_parts(key, full_key, upload_id, &data).await {
            Ok(()) => {
                debug!(key, bytes = data.len(), "multipart upload completed");
                Ok(())
            }
            Err(error) => {
                let aborted = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(full_key)
                    .upload_id(upload_id)
                    .send()
                    .await;
                if let Err(abort_error) = aborted {
                    warn!(key, upload_id, error = %DisplayErrorContext(&abort_error), "could not abort a multipart upload");
                }
                Err(error)
            }
        }
    }

    async fn upload_parts(&self, key: &str, full_key: &str, upload_id: &str, data: &Bytes) -> Result<()> {
        let address = self.address(full_key);
        let chunks =
            (0..data.len()).step_by(PART_SIZE).map(|start| data.slice(start..(start + PART_SIZE).min(data.len())));
        let parts: Vec<CompletedPart> = futures::stream::iter(chunks.enumerate())
            .map(|(index, chunk)| {
                let part_number = i32::try_from(index + 1).expect("at most 10000 parts");
                let address = &address;
                async move {
                    let uploaded = self
                        .client
                        .upload_part()
                        .bucket(&self.bucket)
                        .key(full_key)
                        .upload_id(upload_id)
                        .part_number(part_number)
                        .body(ByteStream::from(chunk))
                        .send()
                        .await
                        .map_err(|error| map_error(error, key, address))?;
                    let e_tag = uploaded
                        .e_tag()
                        .ok_or_else(|| protocol_error(address, format!("UploadPart {part_number} returned no ETag")))?;
                    Ok::<_, ObjectStoreError>(CompletedPart::builder().part_number(part_number).e_tag(e_tag).build())
                }
            })
            .buffered(PART_CONCURRENCY)
            .try_collect()
            .await?;
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(full_key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|error| map_error(error, key, &address))?;
        Ok(())
    }

    /// Every object under the bucket key prefix `full_prefix`, keys relative to the root,
    /// in key order.
    async fn list_full(&self, full_prefix: &str) -> Result<Vec<ObjectMeta>> {
        let address = self.address(full_prefix);
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(full_prefix)
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(|error| map_error(error, full_prefix, &address))?;
            for object in page.contents() {
                let Some(full_key) = object.key() else { continue };
                let Some(key) = full_key.strip_prefix(&self.root) else { continue };
                // Directory markers some servers and tools create are not objects.
                if key.is_empty() || key.ends_with('/') {
                    continue;
                }
                let size = u64::try_from(object.size().unwrap_or(0)).unwrap_or(0);
                objects.push(ObjectMeta { key: key.to_owned(), size });
            }
            if !page.is_truncated().unwrap_or(false) {
                // S3 lists in byte order; not every compatible server does.
                objects.sort_unstable_by(|a, b| a.key.cmp(&b.key));
                objects.dedup_by(|a, b| a.key == b.key);
                return Ok(objects);
            }
            match page.next_continuation_token() {
                Some(next) if token.as_deref() != Some(next) => token = Some(next.to_owned()),
                _ => {
                    return Err(protocol_error(
                        &address,
                        "ListObjectsV2 is truncated without a new continuation token",
                    ));
                }
            }
        }
        Err(protocol_error(&address, format!("listing did not end after {MAX_LIST_PAGES} pages")))
    }

    /// The result of a read of `range` that has no bytes to return: an empty range, or
    /// (`refused`) one the server answered with 416, which S3 does for a start at or
    /// after the end. Either way InvalidRange past the end, else empty.
    async fn empty_read(&self, key: &str, range: &Range<u64>, refused: bool) -> Result<Bytes> {
        match self.head(key).await? {
            None => Err(ObjectStoreError::NotFound { key: key.to_owned() }),
            Some(meta) if range.start > meta.size => Err(ObjectStoreError::InvalidRange {
                key: key.to_owned(),
                start: range.start,
                end: range.end,
                size: meta.size,
            }),
            // Never turn a range the server should have served into an empty read.
            Some(meta) if refused && range.start < meta.size => Err(protocol_error(
                &self.address(&self.full_key(key)),
                format!("the server refused range {range:?} of an object of {} bytes", meta.size),
            )),
            Some(_) => Ok(Bytes::new()),
        }
    }
}

/// The HTTP `Range` header for a non-empty `range` (inclusive end; open-ended when the
/// end is beyond anything a server can parse).
fn range_header(range: &Range<u64>) -> String {
    let last = range.end - 1;
    if last >= i64::MAX as u64 { format!("bytes={}-", range.start) } else { format!("bytes={}-{last}", range.start) }
}

fn http_status<E>(error: &SdkError<E, HttpResponse>) -> Option<u16> {
    error.raw_response().map(|response| response.status().as_u16())
}

fn protocol_error(address: &str, reason: impl Into<String>) -> ObjectStoreError {
    ObjectStoreError::Io { path: PathBuf::from(address), source: io::Error::other(reason.into()) }
}

/// Maps an SDK error of a request about `key` (relative; reported in NotFound) stored at
/// `address` (reported otherwise).
fn map_error<E>(error: SdkError<E, HttpResponse>, key: &str, address: &str) -> ObjectStoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = http_status(&error);
    let code = error.code().map(str::to_owned);
    let transient = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(_) => {
            status.is_some_and(|status| status >= 500 || status == 429)
                || matches!(
                    code.as_deref(),
                    Some("SlowDown" | "RequestTimeout" | "ServiceUnavailable" | "InternalError")
                )
        }
        _ => false,
    };
    let reason = DisplayErrorContext(&error).to_string();
    if transient {
        return ObjectStoreError::Unavailable { reason: format!("{address}: {reason}") };
    }
    if status == Some(404) || matches!(code.as_deref(), Some("NoSuchKey" | "NotFound")) {
        if code.as_deref() == Some("NoSuchBucket") {
            let source = io::Error::new(io::ErrorKind::NotFound, reason);
            return ObjectStoreError::Io { path: PathBuf::from(address), source };
        }
        return ObjectStoreError::NotFound { key: key.to_owned() };
    }
    let kind = match status {
        Some(401 | 403) => io::ErrorKind::PermissionDenied,
        Some(400) => io::ErrorKind::InvalidInput,
        _ => io::ErrorKind::Other,
    };
    ObjectStoreError::Io { path: PathBuf::from(address), source: io::Error::new(kind, reason) }
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        validate_key(key)?;
        let full_key = self.full_key(key);
        let bytes = data.len();
        if bytes > MULTIPART_THRESHOLD {
            self.put_multipart(key, &full_key, data).await?;
        } else {
            self.put_single(key, &full_key, data).await?;
        }
        debug!(key, bytes, "put object");
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        validate_key(key)?;
        let full_key = self.full_key(key);
        let address = self.address(&full_key);
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full_key)
            .send()
            .await
            .map_err(|error| map_error(error, key, &address))?;
        let body = output.body.collect().await.map_err(|error| ObjectStoreError::Unavailable {
            reason: format!("{address}: reading the body: {}", DisplayErrorContext(&error)),
        })?;
        Ok(body.into_bytes())
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        validate_key(key)?;
        if range.start >= range.end {
            // Nothing to read, but the object must exist and the start be within it.
            return self.empty_read(key, &range, false).await;
        }
        let full_key = self.full_key(key);
        let address = self.address(&full_key);
        let sent =
            self.client.get_object().bucket(&self.bucket).key(&full_key).range(range_header(&range)).send().await;
        let output = match sent {
            Ok(output) => output,
            Err(error) if http_status(&error) == Some(416) => return self.empty_read(key, &range, true).await,
            Err(error) => return Err(map_error(error, key, &address)),
        };
        let partial = output.content_range().is_some();
        let body = output.body.collect().await.map_err(|error| ObjectStoreError::Unavailable {
            reason: format!("{address}: reading the body: {}", DisplayErrorContext(&error)),
        })?;
        let mut bytes = body.into_bytes();
        if !partial {
            // The server ignored the range and sent the whole object.
            let size = bytes.len() as u64;
            if range.start > size {
                return Err(ObjectStoreError::InvalidRange {
                    key: key.to_owned(),
                    start: range.start,
                    end: range.end,
                    size,
                });
            }
            bytes = bytes.slice(range.start as usize..range.end.min(size) as usize);
        }
        let expected = range.end - range.start;
        if bytes.len() as u64 > expected {
            return Err(protocol_error(&address, format!("asked for {expected} bytes, got {}", bytes.len())));
        }
        Ok(bytes)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        validate_key(key)?;
        let full_key = self.full_key(key);
        match self.client.head_object().bucket(&self.bucket).key(&full_key).send().await {
            Ok(output) => {
                let size = u64::try_from(output.content_length().unwrap_or(0)).unwrap_or(0);
                Ok(Some(ObjectMeta { key: key.to_owned(), size }))
            }
            Err(error) if error.as_service_error().is_some_and(|error| error.is_not_found()) => Ok(None),
            Err(error) => match map_error(error, key, &self.address(&full_key)) {
                ObjectStoreError::NotFound { .. } => Ok(None),
                error => Err(error),
            },
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.list_full(&self.full_key(prefix)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let full_key = self.full_key(key);
        match self.client.delete_object().bucket(&self.bucket).key(&full_key).send().await {
            Ok(_) => {}
            Err(error) => match map_error(error, key, &self.address(&full_key)) {
                ObjectStoreError::NotFound { .. } => {}
                error => return Err(error),
            },
        }
        debug!(key, "deleted object");
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let full_prefix = self.full_key(prefix);
        let address = self.address(&full_prefix);
        let objects = self.list_full(&full_prefix).await?;
        let mut deleted = 0;
        for batch in objects.chunks(DELETE_BATCH) {
            let identifiers = batch
                .iter()
                .map(|object| ObjectIdentifier::builder().key(self.full_key(&object.key)).build())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|error| protocol_error(&address, error.to_string()))?;
            let delete = Delete::builder()
                .set_objects(Some(identifiers))
                .quiet(true)
                .build()
                .map_err(|error| protocol_error(&address, error.to_string()))?;
            let output = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|error| map_error(error, prefix, &address))?;
            // A key that vanished meanwhile counts as deleted, as S3 reports it.
            let failed: Vec<_> = output.errors().iter().filter(|error| error.code() != Some("NoSuchKey")).collect();
            if let Some(first) = failed.first() {
                let reason = format!(
                    "{} of {} deletes failed; first: {} {}: {}",
                    failed.len(),
                    batch.len(),
                    first.key().unwrap_or("?"),
                    first.code().unwrap_or("?"),
                    first.message().unwrap_or("")
                );
                return Err(protocol_error(&address, reason));
            }
            deleted += batch.len() as u64;
        }
        debug!(prefix, deleted, "deleted objects by prefix");
        Ok(deleted)
    }

    fn kind(&self) -> &'static str {
        "s3"
    }
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;
    use crate::testsuite;

    /// Bound of every test against a real server.
    const TEST_TIMEOUT: Duration = Duration::from_secs(300);

    /// The test server's config with a root prefix unique to this run and `name`, or None
    /// (after a notice) when no server is configured. Panics instead when
    /// `FERROVEC_REQUIRE_REAL_BACKENDS=1`, so a CI run cannot silently skip.
    fn test_config(name: &str) -> Option<S3Config> {
        let endpoint = std::env::var("FERROVEC_TEST_S3_ENDPOINT").unwrap_or_default();
        if endpoint.is_empty() {
            if std::env::var("FERROVEC_REQUIRE_REAL_BACKENDS").as_deref() == Ok("1") {
                panic!(
                    "FERROVEC_REQUIRE_REAL_BACKENDS=1 but FERROVEC_TEST_S3_ENDPOINT is not set: start SeaweedFS \
                     (`source scripts/deps.sh && start_s3`) or unset FERROVEC_REQUIRE_REAL_BACKENDS"
                );
            }
            eprintln!("notice: FERROVEC_TEST_S3_ENDPOINT is not set; skipping the S3 test {name}");
            return None;
        }
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos();
        Some(S3Config {
            endpoint,
            region: std::env::var("FERROVEC_TEST_S3_REGION").unwrap_or_default(),
            bucket: std::env::var("FERROVEC_TEST_S3_BUCKET")
                .ok()
                .filter(|bucket| !bucket.is_empty())
                .unwrap_or_else(|| "ferrovec-test".to_owned()),
            access_key: String::new(),
            secret_key: String::new(),
            path_style: true,
            root_prefix: format!("test-runs/{}-{nanos}/{name}", std::process::id()),
        })
    }

    async fn bounded<F: std::future::Future>(name: &str, future: F) -> F::Output {
        tokio::time::timeout(TEST_TIMEOUT, future).await.unwrap_or_else(|_| panic!("{name} took over {TEST_TIMEOUT:?}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_suite() {
        let Some(cfg) = test_config("conformance") else { return };
        bounded("conformance suite", async {
            let store = S3ObjectStore::connect(cfg).await.expect("connect");
            assert_eq!(store.kind(), "s3");
            testsuite::run_all(store.as_ref(), "suite/").await;
            assert!(store.list("").await.expect("list").is_empty(), "the suite left nothing behind");
        })
        .await;
        eprintln!("S3 conformance suite passed against {}", std::env::var("FERROVEC_TEST_S3_ENDPOINT").unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_object_goes_through_multipart() {
        let Some(cfg) = test_config("multipart") else { return };
        bounded("multipart test", async {
            let store = S3ObjectStore::connect(cfg).await.expect("connect");
            let len = 20 << 20;
            assert!(len > MULTIPART_THRESHOLD);
            let data = testsuite::pattern(len, 42);
            store.put("big/object", data.clone()).await.expect("put");

            // S3 gives multipart objects an ETag of `<md5 of md5s>-<parts>`.
            let full_key = store.full_key("big/object");
            let head = store.client.head_object().bucket(&store.bucket).key(&full_key).send().await.expect("head");
            let parts = len.div_ceil(PART_SIZE);
            let e_tag = head.e_tag().unwrap_or_default().trim_matches('"');
            assert!(e_tag.ends_with(&format!("-{parts}")), "multipart ETag expected, got {e_tag:?}");

            assert_eq!(
                store.head("big/object").await.expect("head"),
                Some(ObjectMeta { key: "big/object".into(), size: len as u64 })
            );
            let got = store.get("big/object").await.expect("get");
            assert!(got == data, "the object reads back identically ({} of {len} bytes)", got.len());
            let len = len as u64;
            let part = PART_SIZE as u64;
            for range in [0..100, part - 10..part + 10, 2 * part - 1..2 * part + 1, len - 100..len, 5..2 * part + 5] {
                let want = data.slice(range.start as usize..range.end as usize);
                assert!(store.get_range("big/object", range.clone()).await.expect("range") == want, "range {range:?}");
            }
            assert_eq!(
                store.get_range("big/object", len - 10..len + 1000).await.expect("clamped"),
                data.slice(len as usize - 10..)
            );
            assert!(store.get_range("big/object", len..len + 1).await.expect("at the end").is_empty());
            assert!(matches!(
                store.get_range("big/object", len + 1..len + 2).await,
                Err(ObjectStoreError::InvalidRange { size, .. }) if size == len
            ));

            // Overwriting a multipart object with a small one replaces it whole.
            store.put("big/object", Bytes::from_static(b"small")).await.expect("overwrite");
            assert_eq!(store.get("big/object").await.expect("get"), Bytes::from_static(b"small"));
            assert_eq!(store.delete_prefix("").await.expect("delete_prefix"), 1);
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn root_prefixes_isolate_stores_in_one_bucket() {
        let Some(cfg) = test_config("isolation") else { return };
        bounded("isolation test", async {
            let a = S3ObjectStore::connect(S3Config { root_prefix: format!("{}/a/", cfg.root_prefix), ..cfg.clone() })
                .await
                .expect("connect a");
            // The bucket exists by now: connecting again is fine.
            let b = S3ObjectStore::connect(S3Config { root_prefix: format!("{}/b", cfg.root_prefix), ..cfg.clone() })
                .await
                .expect("connect b");
            a.put("k", Bytes::from_static(b"from a")).await.expect("put a");
            b.put("k", Bytes::from_static(b"from b")).await.expect("put b");
            b.put("only-b", Bytes::from_static(b"1")).await.expect("put b");
            assert_eq!(a.get("k").await.expect("get a"), Bytes::from_static(b"from a"));
            assert_eq!(b.get("k").await.expect("get b"), Bytes::from_static(b"from b"));
            let keys = |objects: Vec<ObjectMeta>| objects.into_iter().map(|o| o.key).collect::<Vec<_>>();
            assert_eq!(keys(a.list("").await.expect("list a")), ["k"]);
            assert_eq!(keys(b.list("").await.expect("list b")), ["k", "only-b"]);
            assert_eq!(a.head("only-b").await.expect("head"), None);
            assert_eq!(a.delete_prefix("").await.expect("delete a"), 1);
            assert_eq!(b.get("k").await.expect("b untouched"), Bytes::from_static(b"from b"));
            assert_eq!(b.delete_prefix("").await.expect("delete b"), 2);
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_credentials_are_rejected_and_not_retriable() {
        let Some(cfg) = test_config("credentials") else { return };
        bounded("credentials test", async {
            let access_key = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "minioadmin".into());
            let cfg = S3Config { access_key, secret_key: "not-the-secret".into(), ..cfg };
            match S3ObjectStore::connect(cfg).await {
                Err(ObjectStoreError::Io { source, .. }) if source.kind() == io::ErrorKind::PermissionDenied => {}
                other => panic!("expected PermissionDenied, got {other:?}"),
            }
        })
        .await;
    }

    #[test]
    fn range_headers() {
        assert_eq!(range_header(&(0..1)), "bytes=0-0");
        assert_eq!(range_header(&(10..20)), "bytes=10-19");
        assert_eq!(range_header(&(5..u64::MAX)), "bytes=5-");
    }

    fn unreachable_config() -> S3Config {
        S3Config {
            // Port 1 on loopback: nothing listens there, the connection is refused at once.
            endpoint: "http://127.0.0.1:1".into(),
            bucket: "b".into(),
            access_key: "ak".into(),
            secret_key: "sk".into(),
            path_style: true,
            root_prefix: "root".into(),
            ..S3Config::default()
        }
    }

    #[test]
    fn config_is_validated_and_secrets_redacted() {
        assert!(S3ObjectStore::new(S3Config { bucket: String::new(), ..unreachable_config() }).is_err());
        assert!(S3ObjectStore::new(S3Config { root_prefix: "a//b".into(), ..unreachable_config() }).is_err());
        assert!(S3ObjectStore::new(S3Config { secret_key: String::new(), ..unreachable_config() }).is_err());
        let store = S3ObjectStore::new(S3Config { root_prefix: "a/b/".into(), ..unreachable_config() }).expect("new");
        assert_eq!(store.full_key("k"), "a/b/k");
        let store = S3ObjectStore::new(S3Config { root_prefix: String::new(), ..unreachable_config() }).expect("new");
        assert_eq!(store.full_key("k"), "k");
        let debug = format!("{:?}", unreachable_config());
        assert!(!debug.contains("sk\"") && debug.contains("<redacted>"), "{debug}");
    }

    /// Needs no server: key validation precedes any request, and a refused connection is
    /// a retriable error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn invalid_keys_and_unreachable_servers() {
        let store = S3ObjectStore::new(unreachable_config()).expect("new");
        for key in ["", "/abs", "a//b", "a/", "../x", "a\\b"] {
            let invalid = |result: Result<()>| matches!(result, Err(ObjectStoreError::InvalidKey { .. }));
            assert!(invalid(store.put(key, Bytes::new()).await), "put {key:?}");
            assert!(invalid(store.get(key).await.map(drop)), "get {key:?}");
            assert!(invalid(store.get_range(key, 0..1).await.map(drop)), "get_range {key:?}");
            assert!(invalid(store.head(key).await.map(drop)), "head {key:?}");
            assert!(invalid(store.delete(key).await), "delete {key:?}");
        }
        let error = bounded("unreachable", store.get("k")).await.expect_err("nothing listens");
        assert!(error.is_retriable(), "{error}");
        let error = bounded("unreachable", S3ObjectStore::connect(unreachable_config())).await.expect_err("connect");
        assert!(error.is_retriable(), "{error}");
    }
}
