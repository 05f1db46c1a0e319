//! `securescore import`: bulk ingest from a file or standard input, into a data directory (the
//! `ingest` service, in this process) or through a server's import endpoint (with its streamed
//! progress). Draws the progress bar and prints the summary; exits non-zero when any line was
//! rejected or the import stopped early.

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncRead, BufReader};

use super::structs::{ImportArgs, Output};
use crate::ingest::{self, Options};
use crate::wire::{ImportEvent, ImportReport};

pub async fn run(args: ImportArgs) -> Result<()> {
    let (input, size): (Box<dyn AsyncRead + Unpin + Send + Sync>, Option<u64>) =
        if args.file.as_os_str() == "-" {
            (Box::new(tokio::io::stdin()), None)
        } else {
            let file = tokio::fs::File::open(&args.file)
                .await
                .with_context(|| format!("cannot open {}", args.file.display()))?;
            let len = file.metadata().await.ok().map(|m| m.len());
            (Box::new(file), len)
        };
    let bar = progress_bar(size);
    let batch_size = usize::try_from(args.batch_size).unwrap_or(ingest::MAX_BATCH_SIZE);
    let report = if let Some(endpoint) = &args.target.endpoint {
        let client = super::client::Client::new(endpoint, &args.target)?;
        let path = format!("/securescore/v1/import?batchSize={batch_size}");
        // The bar follows what the server committed, not what was sent.
        client
            .upload_ndjson(&path, input, |event| {
                if let ImportEvent::Progress(p) = event {
                    bar.set_position(p.bytes);
                }
            })
            .await?
    } else {
        let store = super::data::open_data_dir(&args.target).await?;
        let options = Options {
            batch_size,
            exclusive: args.exclusive,
            max_line_bytes: usize::try_from(args.max_line_bytes).unwrap_or(usize::MAX),
            ..Options::default()
        };
        let reader = BufReader::with_capacity(64 * 1024, input);
        ingest::ingest(&store, reader, &options, |p| bar.set_position(p.bytes)).await.report
    };
    bar.finish_and_clear();
    print(&report, args.output)?;
    if let Some(reason) = &report.stopped {
        bail!("the import stopped early ({reason}); {}", report.committed());
    }
    if report.failed > 0 {
        bail!(
            "{} of {} lines were rejected (see above); the others were applied",
            report.failed,
            report.lines
        );
    }
    Ok(())
}

fn progress_bar(size: Option<u64>) -> ProgressBar {
    let (bar, template) = match size {
        Some(len) => (
            ProgressBar::new(len),
            "{spinner} [{elapsed_precise}] [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        ),
        None => (ProgressBar::new_spinner(), "{spinner} [{elapsed_precise}] {bytes} ({bytes_per_sec})"),
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

fn print(report: &ImportReport, output: Output) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(report)?),
        Output::Table => {
            println!(
                "{} lines: {} created, {} replaced, {} rejected ({} batches committed)",
                report.lines, report.created, report.replaced, report.failed, report.batches
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
            if report.errors.len() < report.failed {
                println!("(the first {} rejected lines are listed)", report.errors.len());
            }
        }
    }
    Ok(())
}
