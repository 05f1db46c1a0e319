//! Bulk ingest of NDJSON assessments, shared by the extension endpoint (`POST /securescore/v1/import`)
//! and `securescore import --data-dir`. A line is the PUT body plus `resourceId` and `name`:
//!
//! `{"resourceId":"/subscriptions/…/resourceGroups/rg/providers/…/vm1","name":"<assessment GUID>","properties":{"resourceDetails":{"source":"Azure"},"status":{"code":"Unhealthy"}}}`
//!
//! Lines are validated exactly as a PUT is, applied in batches (one transaction each) and are
//! idempotent: importing a file twice leaves the same state. Invalid lines are reported with their
//! line numbers and skipped; the others are applied.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};
use uuid::Uuid;

use crate::api::assessments::parse_input;
use crate::arm::{ApiError, ResourceId};
use crate::cli::structs::{ImportArgs, Output};
use crate::store::{Outcome, ScoreView, Store, Write};

/// The longest accepted line.
pub const MAX_LINE: usize = 1 << 20;

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub lines: usize,
    pub created: usize,
    pub replaced: usize,
    pub failed: usize,
    pub errors: Vec<LineError>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LineError {
    pub line: usize,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<String>,
    pub message: String,
}

/// Report at most this many line errors in full (the count stays exact).
const MAX_REPORTED_ERRORS: usize = 1000;

struct Importer<'a> {
    store: &'a Store,
    batch_size: usize,
    views: HashMap<Uuid, Option<Arc<ScoreView>>>,
    batch: Vec<(usize, Write)>,
    report: ImportReport,
}

impl Importer<'_> {
    fn error(&mut self, line: usize, e: &ApiError) {
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

    async fn line(&mut self, number: usize, text: &str) -> Result<()> {
        if text.trim().is_empty() {
            return Ok(());
        }
        self.report.lines += 1;
        match self.parse(text).await? {
            Ok(write) => {
                self.batch.push((number, write));
                if self.batch.len() >= self.batch_size {
                    self.flush().await?;
                }
            }
            Err(e) => self.error(number, &e),
        }
        Ok(())
    }

    async fn parse(&mut self, text: &str) -> Result<Result<Write, ApiError>> {
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                return Ok(Err(ApiError::invalid_field(
                    "",
                    format!("The line is not valid JSON: {e}."),
                )))
            }
        };
        let field = |k: &str| value.get(k).and_then(Value::as_str);
        let Some(resource) = field("resourceId") else {
            return Ok(Err(ApiError::invalid_field(
                "resourceId",
                "The required field 'resourceId' is missing.",
            )));
        };
        let Some(name) = field("name") else {
            return Ok(Err(ApiError::invalid_field(
                "name",
                "The required field 'name' (the assessment name) is missing.",
            )));
        };
        let resource = match ResourceId::parse(resource) {
            Ok(r) => r,
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
        Ok(parse_input(&resource, name, &value, view).map(Write::Put))
    }

    async fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let writes: Vec<Write> = batch.iter().map(|(_, w)| w.clone()).collect();
        let outcomes = self.store.apply(&writes).await?;
        for ((line, write), outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Outcome::Created(_) => self.report.created += 1,
                Outcome::Replaced(_) => self.report.replaced += 1,
                _ => self.error(
                    *line,
                    &ApiError::SubscriptionNotFound(write.resource().subscription().to_string()),
                ),
            }
        }
        Ok(())
    }
}

/// Import NDJSON from a reader; `progress` is called with the bytes consumed so far.
pub async fn import_lines<R: AsyncBufRead + Unpin>(
    store: &Store,
    mut reader: R,
    batch_size: usize,
    mut progress: impl FnMut(u64),
) -> Result<ImportReport> {
    let mut importer = Importer {
        store,
        batch_size: batch_size.max(1),
        views: HashMap::new(),
        batch: Vec::new(),
        report: ImportReport::default(),
    };
    let mut number = 0;
    let mut consumed = 0u64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf).await?;
        if n == 0 {
            break;
        }
        number += 1;
        consumed += n as u64;
        if buf.len() > MAX_LINE && !buf.ends_with(b"\n") {
            importer.report.lines += 1;
            importer.error(number, &ApiError::PayloadTooLarge { limit: MAX_LINE });
            // Skip the rest of the overlong line.
            let mut rest = Vec::new();
            consumed += reader.read_until(b'\n', &mut rest).await? as u64;
            continue;
        }
        match std::str::from_utf8(&buf) {
            Ok(text) => {
                let text = text.to_string();
                importer.line(number, &text).await?;
            }
            Err(_) => {
                importer.report.lines += 1;
                importer.error(number, &ApiError::invalid_field("", "The line is not UTF-8 text."));
            }
        }
        progress(consumed);
    }
    importer.flush().await?;
    Ok(importer.report)
}

/// `securescore import FILE`.
pub async fn run(args: ImportArgs) -> Result<()> {
    let stdin = args.file.as_os_str() == "-";
    let size = if stdin {
        None
    } else {
        Some(
            std::fs::metadata(&args.file)
                .with_context(|| format!("cannot read {}", args.file.display()))?
                .len(),
        )
    };
    let bar = match size {
        Some(len) => ProgressBar::new(len),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let report = if let Some(endpoint) = &args.target.endpoint {
        let client = crate::client::Client::new(endpoint, &args.target)?;
        let value = client.upload_ndjson("/securescore/v1/import", &args.file, &bar).await?;
        serde_json::from_value(value)
            .context("the server's import report is not in the expected shape")?
    } else {
        let store = crate::cli::cmd::open_data_dir(&args.target).await?;
        let file: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if stdin {
            Box::new(tokio::io::stdin())
        } else {
            Box::new(
                tokio::fs::File::open(&args.file)
                    .await
                    .with_context(|| format!("cannot open {}", args.file.display()))?,
            )
        };
        let reader = tokio::io::BufReader::new(file);
        import_lines(&store, reader, args.batch_size, |n| bar.set_position(n)).await?
    };
    bar.finish_and_clear();
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => {
            println!(
                "{} lines: {} created, {} replaced, {} failed",
                report.lines, report.created, report.replaced, report.failed
            );
            if !report.errors.is_empty() {
                let mut t = comfy_table::Table::new();
                t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
                    .set_header(["Line", "Code", "Target", "Message"]);
                for e in &report.errors {
                    t.add_row([
                        e.line.to_string(),
                        e.code.clone(),
                        e.target.clone().unwrap_or_default(),
                        e.message.clone(),
                    ]);
                }
                println!("{t}");
            }
        }
    }
    if report.failed > 0 {
        anyhow::bail!(
            "{} of {} lines were rejected (see above); the others were applied",
            report.failed,
            report.lines
        );
    }
    Ok(())
}
