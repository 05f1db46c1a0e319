//! The change feed: what other processes commit, heard through LISTEN on [`CHANNEL`] (payloads
//! written by `postgres::bump_generation`: `<subscription id>:<version>`, or `*`).
//!
//! Notifications sent while the listening connection is down are lost, so every time it is lost
//! (and once it is back) the feed says [`Change::Everything`]: the store drops all its views and
//! reads afresh, which is what it would have learnt from the missed notifications at most.

use anyhow::Result;
use sqlx::postgres::{PgListener, PgPool};
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::CHANNEL;
use crate::store::engine::Change;

/// How many changes may wait for the store before the listener waits for it.
const BUFFER: usize = 1024;
/// The pause after a failed reconnection, so that a database that is down is not hammered.
const RETRY: Duration = Duration::from_secs(1);

/// Listen (the first connection is made here, so a database that cannot be listened to is an
/// error the caller sees) and forward changes until the receiver is dropped.
pub(super) async fn start(pool: &PgPool) -> Result<mpsc::Receiver<Change>> {
    let mut listener = listen(pool).await?;
    let (tx, rx) = mpsc::channel(BUFFER);
    let pool = pool.clone();
    tokio::spawn(async move {
        loop {
            let change = match listener.try_recv().await {
                Ok(Some(n)) => parse(n.payload()),
                // The connection was lost; PgListener reconnects (and re-listens) on the next call.
                Ok(None) => {
                    tracing::warn!(
                        "the change feed lost its connection to PostgreSQL; reconnecting"
                    );
                    Change::Everything
                }
                // Anything else (the server ended the session, a reset): start a new listener,
                // as often as it takes.
                Err(e) => {
                    tracing::warn!(error = %e, "the change feed failed; listening anew");
                    loop {
                        tokio::time::sleep(RETRY).await;
                        if tx.is_closed() {
                            return;
                        }
                        match listen(&pool).await {
                            Ok(l) => break listener = l,
                            Err(e) => tracing::warn!(error = %e, "cannot listen to PostgreSQL"),
                        }
                    }
                    Change::Everything
                }
            };
            if tx.send(change).await.is_err() {
                return; // the store went away
            }
        }
    });
    Ok(rx)
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// A payload as `bump_generation` writes it; anything else (an older or newer writer's format)
/// is safest read as "everything".
fn parse(payload: &str) -> Change {
    let parsed = payload.split_once(':').and_then(|(id, version)| {
        Some(Change::Subscription { id: Uuid::parse_str(id).ok()?, version: version.parse().ok()? })
    });
    parsed.unwrap_or(Change::Everything)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_and_anything_else_means_everything() {
        let id = Uuid::new_v4();
        assert_eq!(parse(&format!("{id}:7")), Change::Subscription { id, version: 7 });
        assert_eq!(parse("*"), Change::Everything);
        assert_eq!(parse("nonsense:x"), Change::Everything);
        assert_eq!(parse(&format!("{id}")), Change::Everything);
    }
}
