//! The phases of a run against one endpoint: create, insert, flush, index, load, search at
//! each concurrency level, the recall–QPS sweep, filtered search, queries, and the mixed
//! read/write phase.
//!
//! Clients are futures driven together on the calling task (each on its own connection,
//! as separate application processes would be); the server does the heavy work, and the
//! per-answer recall check is a handful of dot products.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use fv_proto::common::{ConsistencyLevel, KeyValuePair};
use fv_proto::schema::field_data::Field;
use fv_proto::schema::scalar_field::Data;
use fv_proto::schema::vector_field::Data as VData;
use fv_proto::schema::{
    CollectionSchema, DataType, FieldData, FieldSchema, FloatArray, LongArray, ScalarField, StringArray, VectorField,
};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cli::Options;
use crate::client::{Client, ClientError, ClientResult, SearchCall, Target};
use crate::dataset::{Dataset, RND_RANGE, Truth};
use crate::error::{LoadError, PhaseContext, Result};
use crate::recall::recall_at_k;
use crate::report::{
    EndpointRun, FilteredResult, LevelResult, MixedResult, QueryResult, SetupPhase, SweepPoint, VisibilityCheck,
};
use crate::stats::{Recorder, Summary};

/// The vector field's name in the collection the workload creates.
pub const VECTOR_FIELD: &str = "vector";

/// Shared by the phases of one endpoint's run.
pub struct Workload<'a> {
    pub opts: &'a Options,
    pub ds: &'a Dataset,
    pub target: Target,
    /// The run's time origin (timelines of every endpoint and phase count from it).
    pub origin: Instant,
    pub bars: MultiProgress,
}

/// When a phase stops: after a duration or after a number of requests.
#[derive(Debug, Clone, Copy)]
struct Stop {
    until: Instant,
    count: Option<u64>,
}

impl<'a> Workload<'a> {
    pub fn new(opts: &'a Options, ds: &'a Dataset, target: Target, origin: Instant) -> Self {
        let bars = MultiProgress::new();
        if opts.quiet {
            bars.set_draw_target(ProgressDrawTarget::hidden());
        }
        Workload { opts, ds, target, origin, bars }
    }

    fn stop(&self, duration: Duration) -> Stop {
        match self.opts.count {
            Some(n) => Stop { until: Instant::now() + self.opts.wait_timeout, count: Some(n) },
            None => Stop { until: Instant::now() + duration, count: None },
        }
    }

    fn bar(&self, len: u64, what: &str, unit: &str) -> ProgressBar {
        let bar = self.bars.add(ProgressBar::new(len));
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{prefix:>12.bold}} {{bar:30.cyan/blue}} {{pos}}/{{len}} {unit} {{msg}} [{{elapsed}}]"
            ))
            .expect("valid template"),
        );
        bar.set_prefix(what.to_string());
        bar
    }

    fn spinner(&self, what: &str) -> ProgressBar {
        let bar = self.bars.add(ProgressBar::new_spinner());
        bar.set_style(ProgressStyle::with_template("{prefix:>12.bold} {spinner} {msg} [{elapsed}]").expect("template"));
        bar.set_prefix(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// A bar for a timed or counted phase: its position is requests (counted) or
    /// elapsed milliseconds (timed).
    fn stop_bar(&self, stop: Stop, what: &str) -> ProgressBar {
        match stop.count {
            Some(n) => self.bar(n, what, "requests"),
            None => self.bar(stop.until.saturating_duration_since(Instant::now()).as_millis() as u64, what, "ms"),
        }
    }

    async fn clients(&self, n: usize) -> Result<Vec<Client>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(
                Client::connect(&self.target)
                    .await
                    .map_err(|e| LoadError::Connect { uri: self.target.uri.clone(), reason: e.to_string() })?,
            );
        }
        Ok(out)
    }

    /// Runs `op` on every client until `stop`; `op(client, seq)` returns the items the
    /// request carried and the recall of each query it answered.
    async fn drive<F, Fut>(&self, clients: &[Client], stop: Stop, bar: &ProgressBar, op: F) -> Summary
    where
        F: Fn(Client, u64) -> Fut,
        Fut: Future<Output = ClientResult<(u64, Vec<f64>)>>,
    {
        let next = AtomicU64::new(0);
        let start = Instant::now();
        let op = &op;
        let next = &next;
        let tasks = clients.iter().map(|c| async move {
            let mut rec = Recorder::new(self.origin);
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if stop.count.is_some_and(|n| seq >= n) || Instant::now() >= stop.until {
                    break;
                }
                let t = Instant::now();
                match op(c.clone(), seq).await {
                    Ok((items, recalls)) => {
                        rec.ok(t.elapsed(), items);
                        recalls.into_iter().for_each(|r| rec.recall(r));
                    }
                    Err(e) => rec.error(e.code_label()),
                }
                if stop.count.is_some() {
                    bar.inc(1);
                } else {
                    bar.set_position(start.elapsed().as_millis() as u64);
                }
            }
            rec
        });
        let mut all = Recorder::new(self.origin);
        for r in join_all(tasks).await {
            all.merge(r);
        }
        let summary = all.summary(start.elapsed());
        bar.finish_with_message(format!(
            "{:.0} req/s, p99 {:.1} ms{}",
            summary.requests_per_s,
            summary.latency_ms.p99,
            summary.recall.map(|r| format!(", recall {r:.4}")).unwrap_or_default()
        ));
        summary
    }

    /// Runs every selected phase; a failing setup phase ends the run with an error, while
    /// failing requests in measured phases are counted by code.
    pub async fn run(&self, label: &str) -> Result<EndpointRun> {
        let o = self.opts;
        let admin = self.clients(1).await?.remove(0);
        let version = admin.version().await.unwrap_or_else(|e| format!("unknown ({e})"));
        let mut run = EndpointRun::new(label, &self.target.uri, &version);
        if o.runs("create") {
            run.setup.push(self.create(&admin).await?);
        }
        if o.runs("insert") {
            run.setup.push(self.insert().await?);
        }
        let timed = |name: &'static str, bar: ProgressBar, start: Instant, r: ClientResult<()>| {
            r.phase(name)?;
            bar.finish_with_message("done");
            // Only the index build's time is per row; flush and load are waits.
            let rows = (name == "index").then(|| self.ds.rows());
            Ok::<_, LoadError>(SetupPhase::timed(name, start.elapsed(), rows))
        };
        if o.runs("flush") {
            let (bar, start) = (self.spinner("flush"), Instant::now());
            run.setup.push(timed("flush", bar, start, admin.flush(&o.collection, o.wait_timeout).await)?);
        }
        if o.runs("index") {
            let (bar, start) = (self.spinner("index"), Instant::now());
            let r = self.build_index(&admin, &bar).await;
            run.setup.push(timed("index", bar, start, r)?);
        }
        if o.runs("load") {
            let (bar, start) = (self.spinner("load"), Instant::now());
            run.setup.push(timed("load", bar, start, admin.load(&o.collection, o.wait_timeout).await)?);
        }
        if o.runs("search") {
            for &c in &o.concurrency {
                let summary = self.search(c, &o.search_params, &format!("search c={c}")).await?;
                run.search.push(LevelResult { concurrency: c, summary });
            }
        }
        if o.runs("sweep")
            && let Some((name, values)) = o.sweep_values()?
        {
            for v in values {
                let mut params = o.search_params.clone();
                params[name.as_str()] = v.clone();
                let summary = self.search(o.sweep_concurrency, &params, &format!("{name}={v}")).await?;
                run.sweep.push(SweepPoint { param: name.clone(), value: v, summary });
            }
        }
        if o.runs("filtered") {
            for &s in &o.selectivities {
                run.filtered.push(self.filtered(s).await?);
            }
        }
        if o.runs("query") {
            run.query = self.queries().await?;
        }
        if o.runs("mixed") {
            run.mixed = Some(self.mixed().await?);
        }
        if o.drop_after {
            admin.drop_collection(&o.collection).await.phase("drop")?;
        }
        Ok(run)
    }

    fn schema(&self) -> CollectionSchema {
        let field = |name: &str, t: DataType, params: Vec<(&str, String)>| FieldSchema {
            name: name.into(),
            data_type: t as i32,
            type_params: params.into_iter().map(|(k, v)| KeyValuePair { key: k.into(), value: v }).collect(),
            ..Default::default()
        };
        let mut id = field("id", DataType::Int64, vec![]);
        id.is_primary_key = true;
        let mut fields = vec![
            id,
            field(VECTOR_FIELD, DataType::FloatVector, vec![("dim", self.ds.dim.to_string())]),
            field("rnd", DataType::Int64, vec![]),
        ];
        if self.ds.texts.is_some() {
            let max = self.ds.max_text_bytes().clamp(16, 65_535);
            fields.push(field("text", DataType::VarChar, vec![("max_length", max.to_string())]));
        }
        CollectionSchema {
            name: self.opts.collection.clone(),
            description: format!("loadtest: {}", self.ds.name),
            fields,
            ..Default::default()
        }
    }

    async fn create(&self, admin: &Client) -> Result<SetupPhase> {
        let start = Instant::now();
        let o = self.opts;
        if admin.has_collection(&o.collection).await.phase("create")? {
            admin.drop_collection(&o.collection).await.phase("create")?;
        }
        admin.create_collection(&self.schema(), o.shards, ConsistencyLevel::Bounded).await.phase("create")?;
        Ok(SetupPhase::timed("create", start.elapsed(), None))
    }

    /// Columns for rows `ids` whose vectors are `vectors` (row-major).
    fn columns(&self, ids: &[i64], vectors: Vec<f32>, text: impl Fn(i64) -> String) -> Vec<FieldData> {
        let scalar = |name: &str, t: DataType, data: Data| FieldData {
            r#type: t as i32,
            field_name: name.into(),
            field: Some(Field::Scalars(ScalarField { data: Some(data) })),
            ..Default::default()
        };
        let mut cols = vec![
            scalar("id", DataType::Int64, Data::LongData(LongArray { data: ids.to_vec() })),
            FieldData {
                r#type: DataType::FloatVector as i32,
                field_name: VECTOR_FIELD.into(),
                field: Some(Field::Vectors(VectorField {
                    dim: self.ds.dim as i64,
                    data: Some(VData::FloatVector(FloatArray { data: vectors })),
                })),
                ..Default::default()
            },
            scalar(
                "rnd",
                DataType::Int64,
                Data::LongData(LongArray { data: ids.iter().map(|&i| Dataset::rnd(i)).collect() }),
            ),
        ];
        if self.ds.texts.is_some() {
            cols.push(scalar(
                "text",
                DataType::VarChar,
                Data::StringData(StringArray { data: ids.iter().map(|&i| text(i)).collect() }),
            ));
        }
        cols
    }

    async fn insert(&self) -> Result<SetupPhase> {
        let o = self.opts;
        let rows = self.ds.rows();
        let batches = rows.div_ceil(o.batch_size) as u64;
        let bar = self.bar(rows as u64, "insert", "rows");
        let clients = self.clients(o.insert_concurrency).await?;
        let stop = Stop { until: Instant::now() + o.wait_timeout, count: Some(batches) };
        let texts = self.ds.texts.as_ref();
        // Rows are inserted once each: a failed batch is a failed run, not a statistic.
        let summary = self
            .drive(&clients, stop, &ProgressBar::hidden(), |c, seq| {
                let lo = seq as usize * o.batch_size;
                let hi = (lo + o.batch_size).min(rows);
                let ids: Vec<i64> = (lo as i64..hi as i64).collect();
                let cols = self.columns(&ids, self.ds.base[lo * self.ds.dim..hi * self.ds.dim].to_vec(), |i| {
                    texts.map(|t| t[i as usize].clone()).unwrap_or_default()
                });
                let bar = bar.clone();
                async move {
                    c.insert(&o.collection, cols, hi - lo).await?;
                    bar.inc((hi - lo) as u64);
                    Ok(((hi - lo) as u64, vec![]))
                }
            })
            .await;
        bar.finish_with_message(format!("{:.0} rows/s", summary.items_per_s));
        if let Some((code, n)) = summary.errors.iter().next() {
            return Err(LoadError::Phase {
                phase: "insert",
                source: ClientError::Protocol(format!("{n} insert batches failed (first code {code})")),
            });
        }
        Ok(SetupPhase {
            name: "insert".into(),
            seconds: summary.seconds,
            rows: Some(rows),
            rows_per_s: Some(summary.items_per_s),
            summary: Some(summary),
        })
    }

    async fn build_index(&self, admin: &Client, bar: &ProgressBar) -> ClientResult<()> {
        let o = self.opts;
        admin.create_index(&o.collection, VECTOR_FIELD, &o.index_type, self.ds.metric.name(), &o.index_params).await?;
        admin
            .wait_index(&o.collection, VECTOR_FIELD, o.wait_timeout, |done, total| {
                bar.set_message(format!("{} {done}/{total} rows indexed", o.index_type))
            })
            .await
    }

    /// Search at `clients` concurrency with `params`, recall against the full truth.
    async fn search(&self, clients: usize, params: &serde_json::Value, what: &str) -> Result<Summary> {
        let o = self.opts;
        let ds = self.ds;
        let truth = ds.truth.as_ref().expect("truth computed before searching");
        let nq_total = ds.num_queries();
        let conns = self.clients(clients).await?;
        let stop = self.stop(o.duration);
        let bar = self.stop_bar(stop, what);
        Ok(self
            .drive(&conns, stop, &bar, |c, seq| {
                let first = (seq as usize * o.nq) % nq_total;
                let qs: Vec<usize> = (0..o.nq).map(|j| (first + j) % nq_total).collect();
                async move {
                    let call = search_call(o, ds, &qs, params, "");
                    let answers = c.search(&call).await?;
                    let recalls =
                        qs.iter().zip(&answers).map(|(&q, hits)| recall_of(ds, truth, q, o.topk, hits)).collect();
                    Ok((qs.len() as u64, recalls))
                }
            })
            .await)
    }

    async fn filtered(&self, selectivity: f64) -> Result<FilteredResult> {
        let o = self.opts;
        let ds = self.ds;
        let threshold = ((selectivity * RND_RANGE as f64).round() as i64).clamp(1, RND_RANGE);
        let expr = format!("rnd < {threshold}");
        let allowed: Vec<bool> = (0..ds.rows() as i64).map(|id| Dataset::rnd(id) < threshold).collect();
        let matching = allowed.iter().filter(|&&a| a).count();
        let nq = o.filtered_queries.min(ds.num_queries());
        let truth = ds.exact_truth(o.topk, 0..nq, Some(&allowed));
        let conns = self.clients(o.filtered_concurrency).await?;
        let stop = self.stop(o.duration);
        let bar = self.stop_bar(stop, &format!("filter {selectivity}"));
        let params = &o.search_params;
        let (truth, expr_ref) = (&truth, expr.as_str());
        let summary = self
            .drive(&conns, stop, &bar, |c, seq| {
                let q = seq as usize % nq;
                async move {
                    let call = search_call(o, ds, &[q], params, expr_ref);
                    let answers = c.search(&call).await?;
                    let hits = answers.first().map(Vec::as_slice).unwrap_or_default();
                    // Every answer must pass the filter: a row outside it is a wrong result.
                    if hits.iter().any(|(id, _)| Dataset::rnd(*id) >= threshold) {
                        return Err(ClientError::Protocol("a hit does not match the filter".into()));
                    }
                    Ok((1, vec![recall_of(ds, truth, q, o.topk, hits)]))
                }
            })
            .await;
        Ok(FilteredResult { selectivity, expr, matching_rows: matching, summary })
    }

    async fn queries(&self) -> Result<Vec<QueryResult>> {
        let o = self.opts;
        let ds = self.ds;
        let rows = ds.rows() as i64;
        let conns = self.clients(o.filtered_concurrency).await?;
        let mut out = vec![];

        // Point lookups of 10 random ids: exactly those rows must come back.
        let stop = self.stop(o.duration);
        let bar = self.stop_bar(stop, "query by id");
        let seed = o.seed;
        let summary = self
            .drive(&conns, stop, &bar, |c, seq| async move {
                let mut rng = StdRng::seed_from_u64(seed ^ seq);
                let mut ids: Vec<i64> = (0..10.min(rows)).map(|_| rng.random_range(0..rows)).collect();
                ids.sort_unstable();
                ids.dedup();
                let expr = format!("id in {ids:?}");
                let mut got = c.query(&o.collection, &expr, "id", None, o.consistency, 0).await?;
                got.sort_unstable();
                if got != ids {
                    return Err(ClientError::Protocol(format!("{expr} returned {got:?}")));
                }
                Ok((got.len() as u64, vec![]))
            })
            .await;
        out.push(QueryResult {
            name: "get by id".into(),
            expr: "id in [10 random ids]".into(),
            expected: Some(10.min(rows)),
            summary,
        });

        // A selective range over the scalar field: the exact matching ids must come back.
        let range_t = (RND_RANGE / 2000).max(1);
        let expr = format!("rnd < {range_t}");
        let expected: Vec<i64> = (0..rows).filter(|&id| Dataset::rnd(id) < range_t).collect();
        let stop = self.stop(o.duration);
        let bar = self.stop_bar(stop, "query range");
        let (e, exp) = (expr.as_str(), &expected);
        let summary = self
            .drive(&conns, stop, &bar, |c, _| async move {
                let mut got = c.query(&o.collection, e, "id", Some(16_384), o.consistency, 0).await?;
                got.sort_unstable();
                if got != *exp {
                    return Err(ClientError::Protocol(format!(
                        "{e} returned {} ids, expected {}",
                        got.len(),
                        exp.len()
                    )));
                }
                Ok((got.len() as u64, vec![]))
            })
            .await;
        out.push(QueryResult {
            name: "range filter".into(),
            expr: expr.clone(),
            expected: Some(expected.len() as i64),
            summary,
        });

        // count(*) over a tenth of the rows.
        let count_t = RND_RANGE / 10;
        let expr = format!("rnd < {count_t}");
        let expected = (0..rows).filter(|&id| Dataset::rnd(id) < count_t).count() as i64;
        let stop = self.stop(o.duration);
        let bar = self.stop_bar(stop, "query count");
        let e = expr.as_str();
        let summary = self
            .drive(&conns, stop, &bar, |c, _| async move {
                let n = c.count(&o.collection, e, o.consistency).await?;
                if n != expected {
                    return Err(ClientError::Protocol(format!("count(*) where {e} = {n}, expected {expected}")));
                }
                Ok((1, vec![]))
            })
            .await;
        out.push(QueryResult { name: "count".into(), expr, expected: Some(expected), summary });
        Ok(out)
    }

    /// Searches while inserts and deletes go on; checks that every acknowledged write is
    /// visible (or gone) at the requested consistency level, and the final row count.
    async fn mixed(&self) -> Result<MixedResult> {
        let o = self.opts;
        let ds = self.ds;
        let writer = self.clients(1).await?.remove(0);
        let searchers = self.clients(o.mixed_searchers).await?;
        let stop = Stop { until: Instant::now() + o.mixed_duration, count: None };
        let bar = self.stop_bar(stop, "mixed");
        let immediate = matches!(o.mixed_consistency, ConsistencyLevel::Strong | ConsistencyLevel::Session);
        // New rows get ids above the dataset's so the base rows (and the truth) stay intact.
        let first_id = (ds.rows() as i64).max(1) * 2;
        let before = writer.count(&o.collection, "", ConsistencyLevel::Strong).await.phase("mixed")?;

        let writes = async {
            let mut inserts = Recorder::new(self.origin);
            let mut deletes = Recorder::new(self.origin);
            let mut visibility = Recorder::new(self.origin);
            let mut check = VisibilityCheck::default();
            let mut next_id = first_id;
            let mut live: i64 = 0;
            let mut rng = StdRng::seed_from_u64(o.seed);
            while Instant::now() < stop.until {
                let ids: Vec<i64> = (next_id..next_id + o.mixed_batch as i64).collect();
                next_id += o.mixed_batch as i64;
                let mut vectors = Vec::with_capacity(ids.len() * ds.dim);
                for _ in &ids {
                    vectors.extend_from_slice(ds.query(rng.random_range(0..ds.num_queries())));
                }
                let cols = self.columns(&ids, vectors, |_| "mixed phase row".into());
                let t = Instant::now();
                let ts = match writer.insert(&o.collection, cols, ids.len()).await {
                    Ok(ts) => ts,
                    Err(e) => {
                        inserts.error(e.code_label());
                        continue;
                    }
                };
                inserts.ok(t.elapsed(), ids.len() as u64);
                live += ids.len() as i64;
                self.check_visible(&writer, &ids, ids.len(), ts, immediate, &mut check, &mut visibility).await;

                // Delete every other row of the batch just written.
                let gone: Vec<i64> = ids.iter().copied().step_by(2).collect();
                let t = Instant::now();
                match writer.delete(&o.collection, &format!("id in {gone:?}")).await {
                    Ok(ts) => {
                        deletes.ok(t.elapsed(), gone.len() as u64);
                        live -= gone.len() as i64;
                        self.check_visible(&writer, &gone, 0, ts, immediate, &mut check, &mut visibility).await;
                    }
                    Err(e) => deletes.error(e.code_label()),
                }
            }
            (inserts, deletes, visibility, check, live)
        };
        let params = &o.search_params;
        let reads = self.drive(&searchers, stop, &bar, |c, seq| async move {
            let q = seq as usize % ds.num_queries();
            let call = search_call(o, ds, &[q], params, "");
            c.search(&call).await?;
            Ok((1, vec![]))
        });
        let ((inserts, deletes, visibility, check, live), searches) = tokio::join!(writes, reads);
        let elapsed = o.mixed_duration;
        let after = writer.count(&o.collection, "", ConsistencyLevel::Strong).await.phase("mixed")?;
        // Remove what the phase added so a rerun of later phases sees the dataset alone.
        writer.delete(&o.collection, &format!("id >= {first_id}")).await.phase("mixed cleanup")?;
        Ok(MixedResult {
            consistency: format!("{:?}", o.mixed_consistency),
            inserts: inserts.summary(elapsed),
            deletes: deletes.summary(elapsed),
            searches,
            visibility: visibility.summary(elapsed),
            checks: check.checks,
            violations: check.violations,
            count_before: before,
            count_expected: before + live,
            count_after: after,
        })
    }

    /// After a write acknowledged at `ts`: with an immediate consistency level, one query
    /// must see exactly `want` of `ids`; otherwise polls (up to 30 s) and records the lag.
    #[allow(clippy::too_many_arguments)]
    async fn check_visible(
        &self,
        c: &Client,
        ids: &[i64],
        want: usize,
        ts: u64,
        immediate: bool,
        check: &mut VisibilityCheck,
        lag: &mut Recorder,
    ) {
        let o = self.opts;
        let expr = format!("id in {ids:?}");
        let guarantee = if o.mixed_consistency == ConsistencyLevel::Session { ts } else { 0 };
        let start = Instant::now();
        check.checks += 1;
        loop {
            match c.query(&o.collection, &expr, "id", None, o.mixed_consistency, guarantee).await {
                Ok(got) if got.len() == want => {
                    lag.ok(start.elapsed(), 1);
                    return;
                }
                Ok(_) if immediate => {
                    check.violations += 1;
                    lag.error("not-visible");
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    lag.error(e.code_label());
                    return;
                }
            }
            if start.elapsed() > Duration::from_secs(30) {
                check.violations += 1;
                lag.error("not-visible-after-30s");
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The search call of the workload for queries `qs` of the dataset.
fn search_call<'a>(
    o: &'a Options,
    ds: &'a Dataset,
    qs: &[usize],
    params: &'a serde_json::Value,
    filter: &'a str,
) -> SearchCall<'a> {
    SearchCall {
        collection: &o.collection,
        field: VECTOR_FIELD,
        vectors: qs.iter().map(|&q| ds.query(q)).collect(),
        topk: o.topk,
        metric: ds.metric.name(),
        params,
        filter,
        consistency: o.consistency,
    }
}

/// Recall of one answer for query `q` (row `q` of `truth`).
fn recall_of(ds: &Dataset, truth: &Truth, q: usize, k: usize, hits: &[(i64, f32)]) -> f64 {
    let ids: Vec<i64> = hits.iter().map(|h| h.0).collect();
    recall_at_k(ds.metric, k, &ids, &truth.ids[q], &truth.scores[q], |id| ds.true_score(q, id))
}

/// Connection settings shared by every client of one endpoint.
pub fn target(opts: &Options, uri: &str) -> Target {
    Target {
        uri: uri.to_string(),
        db: opts.db_name.clone(),
        token: opts.token.clone(),
        request_timeout: opts.request_timeout,
    }
}

/// Loads the dataset and computes whatever ground truth the phases need.
pub fn prepare(opts: &Options) -> Result<Arc<Dataset>> {
    let mut ds = crate::dataset::load(&opts.source(), opts.rows, opts.queries, opts.metric)?;
    ds.ensure_truth(opts.topk);
    Ok(Arc::new(ds))
}
