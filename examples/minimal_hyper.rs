//! Minimal hyper 1 HTTP/1.1 server used as the performance baseline by
//! `bench/run.sh`.
//!
//! It serves the exact same bytes for every request (whatever the method or
//! path) with `content-type: application/json; charset=utf-8`, using an
//! ordinary hyper `http1` connection per accepted socket (keep-alive on) on a
//! tokio runtime. No routing, no middleware, no allocation per request beyond
//! what hyper itself does: the body is a cheaply cloned `Bytes`.
//!
//! Usage: `minimal_hyper <listen-addr> <body-file> [worker-threads]`
//! `worker-threads` defaults to the number of available CPUs (as tokio's
//! default multi-thread runtime does); `0` selects a current-thread runtime.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: minimal_hyper <listen-addr> <body-file> [worker-threads]";
    let addr: SocketAddr =
        args.next().and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("{usage}"));
    let body_path = args.next().unwrap_or_else(|| panic!("{usage}"));
    let workers: Option<usize> = args.next().map(|w| w.parse().expect(usage));
    let body = Bytes::from(std::fs::read(&body_path)?);

    let runtime = match workers {
        Some(0) => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        Some(n) => {
            tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build()?
        }
        None => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
    };
    runtime.block_on(serve(addr, body))
}

async fn serve(addr: SocketAddr, body: Bytes) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    eprintln!("minimal_hyper listening on {} ({} body bytes)", listener.local_addr()?, body.len());
    let content_type = HeaderValue::from_static("application/json; charset=utf-8");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        let content_type = content_type.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                let mut resp = Response::new(Full::new(body.clone()));
                resp.headers_mut().insert(CONTENT_TYPE, content_type.clone());
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
