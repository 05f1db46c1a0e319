//! Bulk ingest of assessments: the service behind `POST /securescore/v1/import` and
//! `securescore import --data-dir`. It sits below the API and the CLI (it knows neither) and owns
//! the input format, the batching and the fairness towards other writers.
//!
//! The input is NDJSON, one assessment per line, in either of two shapes:
//! - the PUT body plus `resourceId` and `name`:
//!   `{"resourceId":"/subscriptions/…/vm1","name":"<assessment>","properties":{…}}`
//! - an assessment exactly as Azure lists it: `id`, `name`, `type`, `properties` (the ARM API,
//!   `az rest`), or with the properties lifted beside `id` (`az security assessment list`). The
//!   resource is `id` without its `/providers/Microsoft.Security/assessments/{name}` suffix, and
//!   the read-only properties are ignored as a PUT ignores them.
//!
//! A line may instead hold a **sub-assessment**, recognised by its `type`
//! (`Microsoft.Security/assessments/subAssessments`) or, without one, by an `id` with a
//! `/subAssessments/` segment: Azure's listing shape
//! `{"id":"{resource}/providers/Microsoft.Security/assessments/{a}/subAssessments/{name}","properties":{…}}`
//! (or with the properties lifted beside `id`, as `az` prints them). It is validated as its PUT is
//! ([`crate::sub_assessment::parse_input`]) and written in a transaction of its own, after the
//! pending batch is committed, so the report's "committed up to line N" stays true.
//!
//! The whole input may also be one JSON array of such documents over any number of lines (what
//! `az … -o json` prints); it is read element by element, and errors name the line where the
//! element starts. A line holding an array is read as its elements, too.
//!
//! Every document is validated exactly as a PUT is ([`crate::assessment::parse_input`]). Valid
//! lines are applied in batches, one transaction each; invalid lines are reported with their
//! numbers and skipped. A line is a create-or-replace, so importing a file twice is harmless.
//!
//! Memory stays bounded whatever the input: a line longer than `max_line_bytes` is skipped in
//! chunks, never held whole.
//!
//! Other writers (the server's API, another import) share the SQLite write lock with an import:
//! a batch shrinks until its transaction holds the lock for about [`SLICE`], and after every
//! commit the import pauses so that a writer waiting on the lock gets it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::time::Instant;
use uuid::Uuid;

use crate::arm::{ApiError, ResourceId};
use crate::assessment::parse_input;
use crate::store::{Outcome, ScoreView, Store, Write};
use crate::wire::{ImportProgress, ImportReport, LineError, MAX_REPORTED_ERRORS};

/// The longest accepted line, unless told otherwise (the CLI's `--max-line-bytes`, the endpoint).
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;
/// Lines per transaction, unless told otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 500;
/// The largest batch anyone may ask for. A batch costs a few statements per 500 writes
/// (`store::sql::core`'s `apply`), so a transaction of [`SLICE`] holds thousands of them; the
/// pacer still sizes batches to the slice, this only bounds the memory a batch holds.
pub const MAX_BATCH_SIZE: usize = 50_000;
/// How long one batch's transaction should hold the write lock.
pub const SLICE: Duration = Duration::from_millis(50);

/// The `type` of an assessment in Azure's documents.
const ASSESSMENT_TYPE: &str = "Microsoft.Security/assessments";
/// The `type` of a sub-assessment in Azure's documents.
const SUB_ASSESSMENT_TYPE: &str = "Microsoft.Security/assessments/subAssessments";

#[derive(Debug, Clone)]
pub struct Options {
    /// Lines per transaction at most (capped at [`MAX_BATCH_SIZE`]); fewer when the store is slow.
    pub batch_size: usize,
    /// Longer lines are rejected (and skipped without being held in memory).
    pub max_line_bytes: usize,
    /// Stop reading at this instant: what was read is committed and reported.
    pub deadline: Option<Instant>,
    /// Stop when the input delivers no line for this long.
    pub idle: Option<Duration>,
    /// No other writer waits for the store (a data directory no server is running on): batches
    /// of `batch_size` one after the other, without the time slices and pauses that give other
    /// writers their turns. Every batch is still its own durable transaction.
    pub exclusive: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_size: DEFAULT_BATCH_SIZE,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            deadline: None,
            idle: None,
            exclusive: false,
        }
    }
}

/// Why an import stopped before the end of its input. Whatever was committed before stays.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    #[error("the input could not be read: {0}")]
    Input(#[source] std::io::Error),
    #[error("the time limit was reached")]
    Deadline,
    #[error("the input sent no line for {0} seconds")]
    Idle(u64),
    #[error("the store failed: {0:#}")]
    Store(anyhow::Error),
}

/// The result of an import: always a report, and the reason when it stopped early.
#[derive(Debug)]
pub struct Finished {
    pub report: ImportReport,
    pub stop: Option<Stop>,
}

/// Import NDJSON (or one JSON array) from `reader`. `on_batch` is called after every committed batch with the running
/// totals. Never fails as a whole: a failure stops the import, and [`Finished`] says what was
/// committed before it.
pub async fn ingest<R, F>(store: &Store, reader: R, options: &Options, on_batch: F) -> Finished
where
    R: AsyncBufRead + Unpin,
    F: FnMut(&ImportProgress),
{
    let max_batch = options.batch_size.clamp(1, MAX_BATCH_SIZE);
    let mut importer = Importer {
        store,
        pacer: Pacer {
            max: max_batch,
            per_write: None,
            worked: Duration::ZERO,
            exclusive: options.exclusive,
        },
        views: HashMap::new(),
        writes: Vec::new(),
        lines: Vec::new(),
        pending_since: Instant::now(),
        report: ImportReport { complete: true, ..ImportReport::default() },
        on_batch,
    };
    let mut source = Source {
        reader,
        max: options.max_line_bytes,
        bytes: 0,
        line: 0,
        started: false,
        array: false,
    };
    let mut buf = Vec::new();
    let mut stop = loop {
        let limit = match (options.deadline, options.idle) {
            (Some(d), Some(i)) => Some(d.min(Instant::now() + i)),
            (d, i) => d.or_else(|| i.map(|i| Instant::now() + i)),
        };
        let next = source.next(&mut buf);
        let read = match limit {
            Some(at) => tokio::time::timeout_at(at, next).await,
            None => Ok(next.await),
        };
        importer.report.bytes = source.bytes;
        let item = match read {
            Ok(Ok(item)) => item,
            Ok(Err(e)) => break Some(Stop::Input(e)),
            Err(_) if options.deadline.is_some_and(|d| Instant::now() >= d) => {
                break Some(Stop::Deadline)
            }
            Err(_) => break Some(Stop::Idle(options.idle.unwrap_or_default().as_secs())),
        };
        match item {
            Item::End => break None,
            Item::TooLong { line, last } => {
                importer.report.last_line = importer.report.last_line.max(last);
                importer.report.lines += 1;
                importer.reject(line, &ApiError::PayloadTooLarge { limit: options.max_line_bytes });
            }
            Item::Text { line, last } => {
                importer.report.last_line = importer.report.last_line.max(last);
                if let Err(e) = importer.line(line, &buf).await {
                    break Some(Stop::Store(e));
                }
            }
        }
    };
    // What was read is committed, whatever stopped the import.
    if let Err(e) = importer.flush().await {
        stop = stop.or(Some(Stop::Store(e)));
    }
    if importer.report.batches > 0 {
        // A large import would otherwise leave a WAL as large as its largest stretch between
        // checkpoints; a failed checkpoint costs disk space, not data.
        if let Err(e) = store.checkpoint().await {
            tracing::warn!(error = format!("{e:#}"), "cannot checkpoint the store after an import");
        }
    }
    let mut report = importer.report;
    match &stop {
        None => tracing::info!(
            lines = report.lines,
            created = report.created,
            replaced = report.replaced,
            rejected = report.failed,
            batches = report.batches,
            "import finished"
        ),
        Some(s) => {
            // Never a silent partial commit: the log says what stays committed.
            tracing::warn!(reason = %s, committed = report.committed(), "import stopped early");
            report.complete = false;
            report.stopped = Some(s.to_string());
        }
    }
    Finished { report, stop }
}

/// What [`next_line`] found.
#[derive(Debug, PartialEq)]
enum Line {
    /// A line is in the buffer (without its newline).
    Complete,
    /// A line longer than the bound was skipped; the buffer is empty.
    TooLong,
    /// The input is exhausted.
    End,
}

/// What [`Source::next`] found: a line, or an element of a top-level array, from line `line`
/// (its number in error reports) through line `last`.
#[derive(Debug, PartialEq)]
enum Item {
    /// It is in the buffer.
    Text {
        line: usize,
        last: usize,
    },
    /// It was longer than the bound and skipped; the buffer is empty.
    TooLong {
        line: usize,
        last: usize,
    },
    End,
}

/// The input, read one line at a time, or, when it opens with `[` (what `az … -o json` prints),
/// one array element at a time, spanning lines or not. Either way at most `max` bytes of an item
/// are held.
struct Source<R> {
    reader: R,
    max: usize,
    /// Bytes consumed.
    bytes: u64,
    /// Newlines consumed: the current line is `line + 1`.
    line: usize,
    started: bool,
    /// Inside the top-level array.
    array: bool,
}

impl<R: AsyncBufRead + Unpin> Source<R> {
    async fn next(&mut self, buf: &mut Vec<u8>) -> std::io::Result<Item> {
        if !self.started {
            self.started = true;
            self.array = self.opens_array().await?;
        }
        loop {
            if self.array {
                match self.next_element(buf).await? {
                    Some(item) => return Ok(item),
                    // The array closed: what follows is read as lines.
                    None => continue,
                }
            }
            let number = self.line + 1;
            return Ok(match next_line(&mut self.reader, buf, self.max, &mut self.bytes).await? {
                Line::End => Item::End,
                Line::Complete => {
                    self.line += 1;
                    Item::Text { line: number, last: number }
                }
                Line::TooLong => {
                    self.line += 1;
                    Item::TooLong { line: number, last: number }
                }
            });
        }
    }

    /// Skip leading white space; true (and the `[` consumed) when the input is an array.
    async fn opens_array(&mut self) -> std::io::Result<bool> {
        loop {
            let Some(&b) = self.reader.fill_buf().await?.first() else { return Ok(false) };
            match b {
                b'[' => {}
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' => {}
                _ => return Ok(false),
            }
            self.reader.consume(1);
            self.bytes += 1;
            if b == b'[' {
                return Ok(true);
            }
        }
    }

    /// The next element of the array into `buf`; `None` when the array closed first. Strings are
    /// tracked so that brackets and commas inside them do not count.
    async fn next_element(&mut self, buf: &mut Vec<u8>) -> std::io::Result<Option<Item>> {
        buf.clear();
        let (mut depth, mut in_string, mut escaped, mut too_long) = (0usize, false, false, false);
        let mut first = None;
        loop {
            let chunk = self.reader.fill_buf().await?;
            if chunk.is_empty() {
                // The array never closed: an element cut short fails to parse and says so.
                self.array = false;
                return Ok(Some(match first {
                    None => Item::End,
                    Some(line) if too_long => Item::TooLong { line, last: self.line + 1 },
                    Some(line) => Item::Text { line, last: self.line + 1 },
                }));
            }
            let mut used = 0;
            let mut closed = None;
            for &b in chunk {
                used += 1;
                if first.is_none() {
                    match b {
                        b'\n' => {
                            self.line += 1;
                            continue;
                        }
                        b' ' | b'\t' | b'\r' | b',' => continue,
                        b']' => {
                            closed = Some(true);
                            break;
                        }
                        _ => first = Some(self.line + 1),
                    }
                } else if depth == 0 && !in_string && (b == b',' || b == b']') {
                    closed = Some(b == b']');
                    break;
                }
                if b == b'\n' {
                    self.line += 1;
                }
                if in_string {
                    match b {
                        _ if escaped => escaped = false,
                        b'\\' => escaped = true,
                        b'"' => in_string = false,
                        _ => {}
                    }
                } else {
                    match b {
                        b'"' => in_string = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                }
                if !too_long {
                    if buf.len() >= self.max {
                        too_long = true;
                        *buf = Vec::new();
                    } else {
                        buf.push(b);
                    }
                }
            }
            self.reader.consume(used);
            self.bytes += used as u64;
            if let Some(array_closed) = closed {
                if array_closed {
                    self.array = false;
                }
                let last = self.line + 1;
                return Ok(first.map(|line| {
                    if too_long {
                        Item::TooLong { line, last }
                    } else {
                        Item::Text { line, last }
                    }
                }));
            }
        }
    }
}

/// Read the next line into `buf`, holding at most `max` bytes of it: the rest of a longer line
/// is consumed chunk by chunk and dropped. `consumed` counts every byte read.
async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
    consumed: &mut u64,
) -> std::io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    let mut started = false;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(match (started, too_long) {
                (false, _) => Line::End,
                (true, true) => Line::TooLong,
                (true, false) => Line::Complete,
            });
        }
        started = true;
        let newline = chunk.iter().position(|&b| b == b'\n');
        let content = &chunk[..newline.unwrap_or(chunk.len())];
        if !too_long {
            if buf.len() + content.len() > max {
                too_long = true;
                // Give the memory back: the line is rejected whole.
                *buf = Vec::new();
            } else {
                buf.extend_from_slice(content);
            }
        }
        let taken = newline.map_or(chunk.len(), |i| i + 1);
        reader.consume(taken);
        *consumed += taken as u64;
        if newline.is_some() {
            return Ok(if too_long { Line::TooLong } else { Line::Complete });
        }
    }
}

struct Importer<'a, F> {
    store: &'a Store,
    pacer: Pacer,
    /// Subscriptions seen so far (`None`: it does not exist).
    views: HashMap<Uuid, Option<Arc<ScoreView>>>,
    /// The pending batch, and the line number of each of its writes.
    writes: Vec<Write>,
    lines: Vec<usize>,
    /// When the pending batch got its first write.
    pending_since: Instant,
    report: ImportReport,
    on_batch: F,
}

impl<F: FnMut(&ImportProgress)> Importer<'_, F> {
    fn reject(&mut self, line: usize, e: &ApiError) {
        self.report.failed += 1;
        if self.report.errors.len() < MAX_REPORTED_ERRORS {
            let (target, message) = match e {
                ApiError::InvalidRequestContent { target, message } => {
                    (Some(target.clone()), message.clone())
                }
                other => (None, other.to_string()),
            };
            self.report.errors.push(LineError {
                line,
                code: e.code().to_string(),
                target,
                message,
            });
        }
    }

    /// One line: a document, or an array of them. Errors are the store's only.
    async fn line(&mut self, number: usize, text: &[u8]) -> anyhow::Result<()> {
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        self.report.lines += 1;
        let value: Value = match serde_json::from_slice(text) {
            Ok(v) => v,
            Err(e) => {
                let e = ApiError::invalid_field("", format!("The line is not valid JSON: {e}."));
                self.reject(number, &e);
                return Ok(());
            }
        };
        match value {
            Value::Array(items) => {
                // The first invalid item rejects the line; the items before it stay applied.
                for item in &items {
                    if !self.document(number, item).await? {
                        break;
                    }
                }
            }
            item => {
                self.document(number, &item).await?;
            }
        }
        Ok(())
    }

    /// Validate one document and queue its write; false when it was rejected.
    async fn document(&mut self, number: usize, value: &Value) -> anyhow::Result<bool> {
        if is_sub_assessment(value) {
            return self.sub_assessment(number, value).await;
        }
        match self.parse(value).await? {
            Ok(write) => {
                self.writes.push(write);
                self.lines.push(number);
                if self.writes.len() == 1 {
                    self.pending_since = Instant::now();
                }
                // A slow input commits (and reports) at least about once a second, not only
                // when a batch fills.
                if self.writes.len() >= self.pacer.batch_size()
                    || self.pending_since.elapsed() >= MAX_PENDING
                {
                    self.flush().await?;
                }
                Ok(true)
            }
            Err(e) => {
                self.reject(number, &e);
                Ok(false)
            }
        }
    }

    /// Validate and write one sub-assessment (they never move a score, so they need no batch of
    /// their own); false when it was rejected.
    async fn sub_assessment(&mut self, number: usize, value: &Value) -> anyhow::Result<bool> {
        let parsed = locate_sub_assessment(value).and_then(|(resource, assessment, name)| {
            let body = sub_assessment_body(value);
            let input = crate::sub_assessment::parse_input(&resource, &assessment, &name, &body)?;
            Ok((resource, input))
        });
        let (resource, input) = match parsed {
            Ok(p) => p,
            Err(e) => {
                self.reject(number, &e);
                return Ok(false);
            }
        };
        // Lines before this one are committed first: the report counts lines in order.
        self.flush().await?;
        match self.store.put_sub_assessment(&resource, &input).await? {
            Some(true) => self.report.created += 1,
            Some(false) => self.report.replaced += 1,
            None => {
                let e = ApiError::SubscriptionNotFound(resource.subscription().to_string());
                self.reject(number, &e);
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn parse(&mut self, value: &Value) -> anyhow::Result<Result<Write, ApiError>> {
        let (resource, name) = match locate(value) {
            Ok(found) => found,
            Err(e) => return Ok(Err(e)),
        };
        let sub = resource.subscription();
        if !self.views.contains_key(&sub) {
            let view = self.store.view(sub).await?;
            self.views.insert(sub, view);
        }
        let Some(view) = self.views.get(&sub).and_then(Option::as_ref) else {
            return Ok(Err(ApiError::SubscriptionNotFound(sub.to_string())));
        };
        let body = as_put_body(value);
        Ok(parse_input(&resource, &name, body.as_ref(), view).map(Write::Put))
    }

    /// Commit the pending batch, then adapt the batch size and let other writers in.
    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let writes = std::mem::take(&mut self.writes);
        let lines = std::mem::take(&mut self.lines);
        let started = Instant::now();
        let outcomes = match self.store.apply(&writes).await {
            Ok(o) => o,
            Err(e) => {
                // Nothing of this batch is committed: the report must not claim its lines.
                if let Some(first) = lines.first() {
                    self.report.last_line = first - 1;
                }
                return Err(e);
            }
        };
        let held = started.elapsed();
        for ((line, write), outcome) in lines.iter().zip(&writes).zip(outcomes) {
            match outcome {
                Outcome::Created(_) => self.report.created += 1,
                Outcome::Replaced(_) => self.report.replaced += 1,
                _ => self.reject(
                    *line,
                    &ApiError::SubscriptionNotFound(write.resource().subscription().to_string()),
                ),
            }
        }
        self.report.batches += 1;
        let r = &self.report;
        (self.on_batch)(&ImportProgress {
            last_line: r.last_line,
            bytes: r.bytes,
            lines: r.lines,
            created: r.created,
            replaced: r.replaced,
            failed: r.failed,
            batches: r.batches,
        });
        let pause = self.pacer.committed(writes.len(), held);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        Ok(())
    }
}

/// The longest a pending write waits for its batch to fill (checked as the next line arrives).
const MAX_PENDING: Duration = Duration::from_secs(1);

/// After every commit the import stays off the write lock for this long. A writer waiting on
/// the lock is polled by SQLite's busy handler at most 25 ms apart during its first ~130 ms of
/// waiting, so a pause this long lets it in within one or two batches.
const SHORT_PAUSE: Duration = Duration::from_millis(25);
/// Later the busy handler polls only every 100 ms; a pause longer than that, after every
/// [`LONG_PAUSE_EVERY`] of transactions, lets in a writer that has waited that long.
const LONG_PAUSE: Duration = Duration::from_millis(110);
const LONG_PAUSE_EVERY: Duration = Duration::from_millis(200);

/// Paces the batches: sizes them so that a transaction takes about [`SLICE`], and spaces them so
/// that other writers get the lock.
struct Pacer {
    /// The caller's batch size (capped); batches are never larger.
    max: usize,
    /// The estimated cost of one write in a transaction. It falls at once and rises by a quarter
    /// per batch at most: a slow batch mostly waited for the lock, writes did not get dearer.
    per_write: Option<Duration>,
    /// Time in transactions since the last long pause.
    worked: Duration,
    /// [`Options::exclusive`]: always `max`, never a pause.
    exclusive: bool,
}

impl Pacer {
    fn batch_size(&self) -> usize {
        if self.exclusive {
            return self.max;
        }
        match self.per_write {
            None => self.max,
            Some(cost) => usize::try_from(SLICE.as_nanos() / cost.as_nanos().max(1))
                .unwrap_or(self.max)
                .clamp(1, self.max),
        }
    }

    /// Record a committed batch of `writes` that took `took`; returns how long to pause.
    fn committed(&mut self, writes: usize, took: Duration) -> Duration {
        if self.exclusive {
            return Duration::ZERO;
        }
        let observed = took / u32::try_from(writes.max(1)).unwrap_or(u32::MAX);
        self.per_write = Some(match self.per_write {
            None => observed,
            Some(cost) => observed.min(cost + cost / 4),
        });
        self.worked += took;
        if self.worked >= LONG_PAUSE_EVERY {
            self.worked = Duration::ZERO;
            LONG_PAUSE
        } else {
            SHORT_PAUSE
        }
    }
}

/// The resource and the assessment name a document is about.
fn locate(value: &Value) -> Result<(ResourceId, String), ApiError> {
    let field = |k: &str| value.get(k).and_then(Value::as_str);
    if let Some(resource) = field("resourceId") {
        let Some(name) = field("name") else {
            return Err(ApiError::invalid_field(
                "name",
                "The required field 'name' (the assessment name) is missing.",
            ));
        };
        return Ok((ResourceId::parse(resource)?, name.to_string()));
    }
    let Some(id) = field("id") else {
        return Err(ApiError::invalid_field(
            "resourceId",
            "The required field 'resourceId' (or the assessment 'id' as Azure lists it) is missing.",
        ));
    };
    if let Some(kind) = field("type") {
        if !kind.eq_ignore_ascii_case(ASSESSMENT_TYPE) {
            return Err(ApiError::invalid_field(
                "type",
                format!("The type '{kind}' is not '{ASSESSMENT_TYPE}'."),
            ));
        }
    }
    let Some((resource, name)) = split_assessment_id(id) else {
        return Err(ApiError::invalid_field(
            "id",
            format!("'{id}' is not an assessment id: it ends with /providers/Microsoft.Security/assessments/{{name}}."),
        ));
    };
    if let Some(given) = field("name") {
        if !given.eq_ignore_ascii_case(name) {
            return Err(ApiError::invalid_field(
                "name",
                format!("The name '{given}' is not the name in the id ('{name}')."),
            ));
        }
    }
    Ok((ResourceId::parse(resource)?, name.to_string()))
}

/// Is this document a sub-assessment? By its `type` when it has one, else by its `id`.
fn is_sub_assessment(value: &Value) -> bool {
    match value.get("type").and_then(Value::as_str) {
        Some(kind) => kind.eq_ignore_ascii_case(SUB_ASSESSMENT_TYPE),
        None => value
            .get("id")
            .and_then(Value::as_str)
            .is_some_and(|id| id.to_ascii_lowercase().contains("/subassessments/")),
    }
}

/// The resource, assessment name and sub-assessment name of a sub-assessment document, from its
/// `id`: `{resource}/providers/Microsoft.Security/assessments/{a}/subAssessments/{name}`.
fn locate_sub_assessment(value: &Value) -> Result<(ResourceId, String, String), ApiError> {
    const MARK: &str = "/subassessments/";
    let Some(id) = value.get("id").and_then(Value::as_str) else {
        return Err(ApiError::invalid_field(
            "id",
            "The required field 'id' (the sub-assessment id as Azure lists it) is missing.",
        ));
    };
    let bad = || {
        ApiError::invalid_field(
            "id",
            format!("'{id}' is not a sub-assessment id: it ends with /providers/Microsoft.Security/assessments/{{assessment}}/subAssessments/{{name}}."),
        )
    };
    // ASCII lowercasing keeps byte offsets, so positions in `lower` are positions in `id`.
    let at = id.to_ascii_lowercase().rfind(MARK).ok_or_else(bad)?;
    let name = &id[at + MARK.len()..];
    let (resource, assessment) = split_assessment_id(&id[..at]).ok_or_else(bad)?;
    if name.is_empty() || name.contains('/') {
        return Err(bad());
    }
    if let Some(given) = value.get("name").and_then(Value::as_str) {
        if !given.eq_ignore_ascii_case(name) {
            return Err(ApiError::invalid_field(
                "name",
                format!("The name '{given}' is not the name in the id ('{name}')."),
            ));
        }
    }
    Ok((ResourceId::parse(resource)?, assessment.to_string(), name.to_string()))
}

/// A sub-assessment document as a PUT body: `properties` as they are, or, lifted beside `id`
/// (as `az` prints them), everything but the resource's own fields.
fn sub_assessment_body(value: &Value) -> std::borrow::Cow<'_, Value> {
    match value.as_object() {
        Some(obj) if !obj.contains_key("properties") => {
            let props: serde_json::Map<String, Value> = obj
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "id" | "name" | "type" | "resourceGroup"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            std::borrow::Cow::Owned(serde_json::json!({ "properties": props }))
        }
        _ => std::borrow::Cow::Borrowed(value),
    }
}

/// The document as a PUT body. The Azure CLI prints an assessment with its properties lifted to
/// the top (`az security assessment list`: `id`, `name`, `status`, `resourceDetails`, ... side by
/// side); such a document, recognised by `id` and no `properties`, is read as if they were nested.
fn as_put_body(value: &Value) -> std::borrow::Cow<'_, Value> {
    let lifted = value.get("properties").is_none()
        && value.get("resourceId").is_none()
        && value.get("id").is_some()
        && (value.get("status").is_some() || value.get("resourceDetails").is_some());
    if lifted {
        std::borrow::Cow::Owned(serde_json::json!({ "properties": value }))
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

/// `{resource}/providers/Microsoft.Security/assessments/{name}` → (resource, name); the provider
/// part matched without regard to case, as ARM does.
fn split_assessment_id(id: &str) -> Option<(&str, &str)> {
    const SUFFIX: &str = "/providers/microsoft.security/assessments/";
    // ASCII lowercasing keeps byte offsets, so positions in `lower` are positions in `id`.
    let at = id.to_ascii_lowercase().rfind(SUFFIX)?;
    let name = &id[at + SUFFIX.len()..];
    (at > 0 && !name.is_empty() && !name.contains('/')).then(|| (&id[..at], name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoreConfig, Subscription};
    use tokio::io::BufReader;

    const NAME: &str = "21300918-b2e3-0346-785f-c77ff57d243b";

    fn line(sub: Uuid, vm: usize) -> String {
        serde_json::json!({
            "resourceId": format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{vm}"),
            "name": NAME,
            "properties": {"resourceDetails": {"source": "Azure"}, "status": {"code": "Healthy"}}
        })
        .to_string()
    }

    async fn store_with(sub: Uuid) -> Store {
        let store = Store::open(&StoreConfig::Memory).await.unwrap();
        store
            .put_subscription(&Subscription {
                id: sub,
                display_name: "t".into(),
                tenant_id: Uuid::nil(),
                state: "Enabled".into(),
            })
            .await
            .unwrap();
        store
    }

    /// A reader that yields `total` bytes of one endless line in small chunks.
    fn endless_line(total: usize) -> impl AsyncBufRead + Unpin {
        let chunks = (0..total / 4096)
            .map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; 4096])));
        let tail = std::iter::once(Ok(bytes::Bytes::from_static(b"\n{}\n")));
        BufReader::new(tokio_util::io::StreamReader::new(futures::stream::iter(chunks.chain(tail))))
    }

    #[tokio::test]
    async fn an_overlong_line_is_skipped_without_being_held() {
        let mut reader = endless_line(8 << 20);
        let mut buf = Vec::new();
        let mut consumed = 0;
        let first = next_line(&mut reader, &mut buf, 64 * 1024, &mut consumed).await.unwrap();
        assert_eq!(first, Line::TooLong);
        assert!(buf.capacity() <= 64 * 1024, "held {} bytes of an 8 MiB line", buf.capacity());
        assert_eq!(consumed, (8 << 20) + 1);
        assert_eq!(
            next_line(&mut reader, &mut buf, 64 * 1024, &mut consumed).await.unwrap(),
            Line::Complete
        );
        assert_eq!(buf, b"{}");
        assert_eq!(
            next_line(&mut reader, &mut buf, 64 * 1024, &mut consumed).await.unwrap(),
            Line::End
        );
    }

    #[tokio::test]
    async fn a_line_of_exactly_the_bound_is_accepted_and_one_more_byte_is_not() {
        for (len, expected) in [(10, Line::Complete), (11, Line::TooLong)] {
            let text = format!("{}\n", "y".repeat(len));
            let mut reader = BufReader::with_capacity(3, text.as_bytes());
            let mut buf = Vec::new();
            let got = next_line(&mut reader, &mut buf, 10, &mut 0).await.unwrap();
            assert_eq!(got, expected, "a line of {len} bytes");
        }
    }

    #[test]
    fn sub_assessment_lines_are_told_apart_and_their_ids_split() {
        let vm = "/subscriptions/20ff7fc3-e762-44dd-bd96-b71116dcdc23/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm";
        let id = format!("{vm}/PROVIDERS/microsoft.security/Assessments/a1/SUBASSESSMENTS/s1");
        let doc = serde_json::json!({ "id": id, "properties": {} });
        assert!(is_sub_assessment(&doc));
        let (resource, assessment, name) = locate_sub_assessment(&doc).unwrap();
        assert_eq!((resource.as_str(), assessment.as_str(), name.as_str()), (vm, "a1", "s1"));
        // An assessment, by its type or its id, is not one.
        let a = serde_json::json!({"id": format!("{vm}/providers/Microsoft.Security/assessments/a1"), "type": ASSESSMENT_TYPE});
        assert!(!is_sub_assessment(&a));
        let typed = serde_json::json!({"type": SUB_ASSESSMENT_TYPE});
        assert!(is_sub_assessment(&typed));
        assert_eq!(locate_sub_assessment(&typed).unwrap_err().code(), "InvalidRequestContent");
        for bad in [
            format!("{vm}/subAssessments/s1"),
            format!("{vm}/providers/Microsoft.Security/assessments/a1/subAssessments/"),
            format!("{vm}/providers/Microsoft.Security/assessments/a1/subAssessments/s1/x"),
        ] {
            let doc = serde_json::json!({ "id": bad });
            assert!(locate_sub_assessment(&doc).is_err(), "{bad}");
        }
        let other = serde_json::json!({ "id": id, "name": "s2" });
        assert!(locate_sub_assessment(&other).is_err(), "a name that is not the id's");
    }

    #[test]
    fn azure_ids_split_into_resource_and_name_whatever_the_case() {
        let rid = "/subscriptions/20ff7fc3-e762-44dd-bd96-b71116dcdc23/resourceGroups/myRg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss1";
        let id = format!("{rid}/PROVIDERS/microsoft.Security/Assessments/{NAME}");
        assert_eq!(split_assessment_id(&id), Some((rid, NAME)));
        assert_eq!(
            split_assessment_id(&format!("{rid}/providers/Microsoft.Security/assessments/")),
            None
        );
        assert_eq!(split_assessment_id(rid), None);
        assert_eq!(split_assessment_id(&format!("{id}/governanceAssignments/x")), None);
    }

    #[test]
    fn batches_fit_the_time_slice_and_a_slow_batch_shrinks_the_next_only_a_little() {
        let mut pacer =
            Pacer { max: 500, per_write: None, worked: Duration::ZERO, exclusive: false };
        assert_eq!(pacer.batch_size(), 500);
        assert_eq!(pacer.committed(500, Duration::from_millis(200)), LONG_PAUSE, "200 ms worked");
        assert_eq!(pacer.batch_size(), 125, "50 ms at 0.4 ms a write");
        // A batch that waited a second for the lock: the estimate rises by a quarter only.
        assert_eq!(pacer.committed(125, Duration::from_secs(1)), LONG_PAUSE);
        assert_eq!(pacer.batch_size(), 100);
        assert_eq!(pacer.committed(100, Duration::from_millis(10)), SHORT_PAUSE);
        assert_eq!(pacer.batch_size(), 500, "cheap writes: the caller's size");
        pacer.committed(1, Duration::from_secs(3));
        assert_eq!(pacer.batch_size(), 500 * 4 / 5, "{:?}", pacer.per_write);
        let mut tiny = Pacer {
            max: 3,
            per_write: Some(Duration::from_secs(1)),
            worked: Duration::ZERO,
            exclusive: false,
        };
        assert_eq!(tiny.batch_size(), 1);
        tiny.committed(1, Duration::ZERO);
        assert_eq!(tiny.batch_size(), 3);
    }

    #[tokio::test]
    async fn a_broken_input_stops_the_import_and_the_report_says_what_was_committed() {
        let sub = Uuid::new_v4();
        let store = store_with(sub).await;
        let text: String = (0..7).map(|i| line(sub, i) + "\n").collect();
        let chunks = vec![
            Ok(bytes::Bytes::from(text)),
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "gone")),
        ];
        let reader =
            BufReader::new(tokio_util::io::StreamReader::new(futures::stream::iter(chunks)));
        let mut progress = Vec::new();
        let options = Options { batch_size: 3, ..Options::default() };
        let done = ingest(&store, reader, &options, |p| progress.push(p.last_line)).await;
        assert!(matches!(done.stop, Some(Stop::Input(_))), "{:?}", done.stop);
        let r = &done.report;
        assert_eq!((r.created, r.last_line, r.batches, r.complete), (7, 7, 3, false));
        assert_eq!(progress, vec![3, 6, 7], "one progress per committed batch");
        assert!(r.stopped.as_deref().is_some_and(|s| s.contains("gone")));
        let scope = ResourceId::subscription_scope(sub);
        assert_eq!(store.assessments(&scope, None, 100).await.unwrap().len(), 7);
        assert_eq!(
            store.maintained_counts(sub).await.unwrap(),
            store.recompute_counts(sub).await.unwrap()
        );
    }

    /// An input that delivers five lines and then nothing, without ending.
    async fn stalled_input(
        sub: Uuid,
    ) -> (tokio::io::DuplexStream, BufReader<tokio::io::DuplexStream>) {
        use tokio::io::AsyncWriteExt;
        let (mut tx, rx) = tokio::io::duplex(1 << 16);
        let text: String = (0..5).map(|i| line(sub, i) + "\n").collect();
        tx.write_all(text.as_bytes()).await.unwrap();
        (tx, BufReader::new(rx))
    }

    #[tokio::test]
    async fn a_deadline_or_a_stalled_input_stops_reading_and_what_was_read_is_committed() {
        let sub = Uuid::new_v4();
        let store = store_with(sub).await;
        let soon = Duration::from_millis(300);
        for options in [
            Options { deadline: Some(Instant::now() + soon), ..Options::default() },
            Options { idle: Some(soon), ..Options::default() },
        ] {
            let (_writer, reader) = stalled_input(sub).await;
            let done = ingest(&store, reader, &options, |_| {}).await;
            assert!(matches!(done.stop, Some(Stop::Deadline | Stop::Idle(_))), "{:?}", done.stop);
            let r = &done.report;
            assert_eq!(
                (r.created + r.replaced, r.last_line, r.batches, r.complete),
                (5, 5, 1, false)
            );
            assert!(r.stopped.is_some());
        }
    }

    /// What `az … -o json` prints: one pretty-printed array over many lines.
    #[tokio::test]
    async fn an_input_that_is_one_json_array_is_read_element_by_element() {
        let sub = Uuid::new_v4();
        let store = store_with(sub).await;
        let mut docs: Vec<Value> =
            (0..4).map(|i| serde_json::from_str(&line(sub, i)).unwrap()).collect();
        // Brackets, commas and escaped quotes inside strings are not structure.
        docs[1]["properties"]["status"]["description"] = Value::String("a ], b [, \\\" } {".into());
        docs[2]["properties"]["status"]["code"] = Value::String("Sideways".into());
        docs[3]["properties"]["status"]["cause"] = Value::String("x".repeat(3000));
        let text =
            format!("\n{}\n{}\n", serde_json::to_string_pretty(&docs).unwrap(), line(sub, 9));
        let options = Options { max_line_bytes: 2000, ..Options::default() };
        let done = ingest(&store, text.as_bytes(), &options, |_| {}).await;
        let r = &done.report;
        assert!(done.stop.is_none(), "{:?}", done.stop);
        assert_eq!((r.lines, r.created, r.failed), (5, 3, 2), "{r:?}");
        // Each element is reported at the line where it starts: the array opens on line 2.
        let element_start = |i: usize| {
            let before: String = serde_json::to_string_pretty(&docs[..i]).unwrap();
            2 + before.lines().count() - 1
        };
        let rejected: Vec<(usize, &str)> =
            r.errors.iter().map(|e| (e.line, e.code.as_str())).collect();
        assert_eq!(
            rejected,
            vec![
                (element_start(2), "InvalidRequestContent"),
                (element_start(3), "RequestContentTooLarge")
            ]
        );
        assert_eq!(r.last_line, text.lines().count());
        let stored = store
            .assessment(&ResourceId::parse(&format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1")).unwrap(), NAME)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.description.as_deref(), Some("a ], b [, \\\" } {"));
        for empty in ["[]", " [ \n ] \n", "[\n]\n\n"] {
            let done = ingest(&store, empty.as_bytes(), &Options::default(), |_| {}).await;
            assert_eq!((done.report.lines, done.report.complete), (0, true), "{empty:?}");
        }
        let cut =
            ingest(&store, b"[{\"id\": 1}, {\"na".as_slice(), &Options::default(), |_| {}).await;
        assert_eq!(cut.report.failed, 2, "an unclosed array: its last element is cut short");
    }

    #[tokio::test]
    async fn a_trickling_input_is_committed_as_it_comes_not_only_when_a_batch_fills() {
        use tokio::io::AsyncWriteExt;
        let sub = Uuid::new_v4();
        let store = store_with(sub).await;
        let (mut writer, reader) = tokio::io::duplex(1 << 16);
        let (progress, mut events) = tokio::sync::mpsc::unbounded_channel();
        let importing = store.clone();
        let task = tokio::spawn(async move {
            let options = Options::default();
            ingest(&importing, BufReader::new(reader), &options, move |p| {
                let _ = progress.send(p.last_line);
            })
            .await
        });
        writer.write_all((line(sub, 0) + "\n").as_bytes()).await.unwrap();
        tokio::time::sleep(MAX_PENDING + Duration::from_millis(100)).await;
        writer.write_all((line(sub, 1) + "\n").as_bytes()).await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(60), events.recv())
            .await
            .expect("a commit while the input is still open");
        assert_eq!(first, Some(2));
        drop(writer);
        let done = task.await.unwrap();
        assert_eq!((done.report.created, done.report.batches, done.report.complete), (2, 1, true));
    }
}
