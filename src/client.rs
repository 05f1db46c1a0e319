//! A small HTTP client for the CLI's `--endpoint` mode: trusts the server's CA when given, sends a
//! bearer token, and turns CloudErrors into readable errors.

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use reqwest::StatusCode;
use serde_json::Value;
use std::path::Path;

use crate::cli::structs::Target;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(endpoint: &str, target: &Target) -> Result<Client> {
        crate::server::install_crypto_provider();
        let mut builder = reqwest::Client::builder().use_rustls_tls();
        if let Some(ca) = &target.ca {
            let pem = std::fs::read(ca)
                .with_context(|| format!("cannot read the CA file {}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", ca.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        Ok(Client {
            http: builder.build()?,
            base: endpoint.trim_end_matches('/').to_string(),
            token: target.token.clone(),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    async fn answer(response: reqwest::Response) -> Result<Value> {
        let status = response.status();
        let body = response.bytes().await?;
        let value: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        };
        if !status.is_success() {
            let code = value.pointer("/error/code").and_then(Value::as_str).unwrap_or("");
            let message = value.pointer("/error/message").and_then(Value::as_str).unwrap_or("");
            bail!("the server answered {status}: ({code}) {message}");
        }
        Ok(value)
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        r.send().await.with_context(|| {
            format!(
                "cannot reach {} (is the server running? for HTTPS pass --ca DATA_DIR/ca.pem)",
                self.base
            )
        })
    }

    pub async fn get_json(&self, path: &str) -> Result<Value> {
        Self::answer(self.send(self.request(reqwest::Method::GET, path)).await?).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Result<Value> {
        Self::answer(self.send(self.request(reqwest::Method::PUT, path).json(body)).await?).await
    }

    /// DELETE; false when the server had nothing to delete (404/204).
    pub async fn delete(&self, path: &str) -> Result<bool> {
        let response = self.send(self.request(reqwest::Method::DELETE, path)).await?;
        if matches!(response.status(), StatusCode::NOT_FOUND | StatusCode::NO_CONTENT) {
            return Ok(false);
        }
        Self::answer(response).await.map(|_| true)
    }

    /// Stream a file as NDJSON, advancing `bar` by the bytes sent.
    pub async fn upload_ndjson(&self, path: &str, file: &Path, bar: &ProgressBar) -> Result<Value> {
        use futures::StreamExt;
        let f = tokio::fs::File::open(file)
            .await
            .with_context(|| format!("cannot open {}", file.display()))?;
        let bar = bar.clone();
        let stream = tokio_util_stream(f).map(move |chunk| {
            if let Ok(c) = &chunk {
                bar.inc(c.len() as u64);
            }
            chunk
        });
        let r = self
            .request(reqwest::Method::POST, path)
            .header("content-type", "application/x-ndjson")
            .body(reqwest::Body::wrap_stream(stream));
        Self::answer(self.send(r).await?).await
    }
}

/// A file as a stream of byte chunks (reqwest stops at the first error).
fn tokio_util_stream(
    f: tokio::fs::File,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    futures::stream::unfold(f, |mut f| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    })
}
