//! Group commit of single assessment writes ([`Store::apply_one`]): requests that arrive while a
//! transaction is committing wait in a queue, and the next transaction takes all of them (up to
//! [`MAX_BATCH`]), so one commit — one `fsync` with `synchronous=FULL` — acknowledges many
//! writes. Each request is answered only after the transaction holding its write committed.
//!
//! There is no writer task: the first request to find the writer slot free becomes the leader
//! and commits whatever is queued, the others wait for the slot (tokio's mutex is fair, so they
//! take it in arrival order) and usually find their answer ready. A lone request commits at once,
//! so batching adds no latency when there is nothing to batch.
//!
//! Semantics are those of [`Store::apply`] over the batch's writes in queue order: one
//! transaction, outcomes per write (a batch that writes an assessment twice answers `Created`
//! then `Replaced`), counters stepped per write, one score-history point per subscription whose
//! score the transaction moved (the batch is one moment, `now` of its transaction).

use anyhow::{anyhow, Context, Result};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::{Outcome, Store, Unavailable, Write};

/// The most writes one transaction takes: enough that a commit's fixed cost is spread thin,
/// few enough that the writer lock is held for milliseconds, not seconds.
pub const MAX_BATCH: usize = 512;

struct Pending {
    write: Write,
    done: oneshot::Sender<Result<Outcome>>,
}

#[derive(Default)]
pub(super) struct Batcher {
    queue: Mutex<VecDeque<Pending>>,
    /// Held by the request committing a batch.
    slot: Arc<tokio::sync::Mutex<()>>,
}

impl Batcher {
    fn take(&self) -> Vec<Pending> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let n = queue.len().min(MAX_BATCH);
        queue.drain(..n).collect()
    }
}

impl Store {
    /// Apply one write, committed together with the writes of concurrent requests (group
    /// commit); its outcome once its transaction has committed.
    pub async fn apply_one(&self, write: Write) -> Result<Outcome> {
        let batcher = &self.inner.batcher;
        let (done, mut answer) = oneshot::channel();
        batcher.queue.lock().unwrap_or_else(|e| e.into_inner()).push_back(Pending { write, done });
        loop {
            let slot = batcher.slot.clone().lock_owned().await;
            // The slot is held until a batch has answered all its requests, so once we hold
            // it our write is either answered or still queued.
            match answer.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => break,
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let batch = batcher.take();
            if batch.is_empty() {
                break;
            }
            // In a task of its own, holding the slot: a leader whose client disconnects (its
            // future dropped) must not abandon the other requests' transaction half way.
            let store = self.clone();
            let _ = tokio::spawn(async move {
                store.commit_batch(batch).await;
                drop(slot);
            })
            .await;
        }
        answer.await.unwrap_or_else(|_| Err(anyhow!("the transaction of this write was abandoned")))
    }

    /// Commit `batch` in one transaction and answer each of its requests.
    async fn commit_batch(&self, batch: Vec<Pending>) {
        let (writes, dones): (Vec<Write>, Vec<_>) =
            batch.into_iter().map(|p| (p.write, p.done)).unzip();
        let result = self.apply(&writes).await.and_then(|outcomes| {
            if outcomes.len() == writes.len() {
                Ok(outcomes)
            } else {
                Err(anyhow!("{} outcomes for {} writes", outcomes.len(), writes.len()))
            }
        });
        match result {
            Ok(outcomes) => {
                for (done, outcome) in dones.into_iter().zip(outcomes) {
                    let _ = done.send(Ok(outcome));
                }
            }
            Err(e) if writes.len() == 1 => {
                if let Some(done) = dones.into_iter().next() {
                    let _ = done.send(Err(e));
                }
            }
            Err(e) => match Unavailable::of(&e) {
                // The storage's fault is every request's: each gets it (503, Retry-After).
                Some(fault) => {
                    let reason = format!("{e:#}");
                    for done in dones {
                        let _ = done.send(Err(anyhow::Error::new(fault).context(reason.clone())));
                    }
                }
                // Anything else may be one write's fault: it must not fail the others, so each
                // is tried again alone and gets its own answer.
                None => {
                    for (write, done) in writes.into_iter().zip(dones) {
                        let alone = self
                            .apply(std::slice::from_ref(&write))
                            .await
                            .and_then(|mut o| o.pop().context("no outcome for a write"));
                        let _ = done.send(alone);
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::ResourceId;
    use crate::score::Status;
    use crate::store::AssessmentInput;
    use uuid::Uuid;

    /// Built-in, counts toward the score ("Enable endpoint protection").
    const EP: &str = "21300918-b2e3-0346-785f-c77ff57d243b";

    fn put(resource: &str, status: Status) -> Write {
        Write::Put(AssessmentInput {
            resource: ResourceId::parse(resource).expect("valid id"),
            name: EP.into(),
            status,
            cause: None,
            description: None,
            resource_details: serde_json::json!({"source": "Azure"}),
            additional_data: None,
            partner_name: None,
        })
    }

    fn del(resource: &str) -> Write {
        Write::Delete { resource: ResourceId::parse(resource).expect("valid id"), name: EP.into() }
    }

    /// Writes queued while a commit is in progress go into the next transaction together, in
    /// queue order, and each request gets its own write's outcome — also when the batch writes
    /// one assessment several times.
    #[tokio::test]
    async fn queued_writes_commit_together_with_their_own_outcomes() {
        let (store, id) = Store::memory_with_subscription().await;
        let vm = |n: u32| {
            format!("/subscriptions/{id}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{n}")
        };
        let elsewhere = format!(
            "/subscriptions/{}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x",
            Uuid::new_v4()
        );
        let writes = vec![
            put(&vm(1), Status::Unhealthy),
            put(&vm(1), Status::Healthy),
            del(&vm(1)),
            del(&vm(1)),
            put(&vm(2), Status::Unhealthy),
            put(&elsewhere, Status::Healthy),
        ];
        let generation = store.engine().generation().await.unwrap();

        // As if a transaction were committing: every request queues behind it.
        let busy = store.inner.batcher.slot.clone().lock_owned().await;
        let mut requests = Vec::new();
        for (i, write) in writes.into_iter().enumerate() {
            let s = store.clone();
            requests.push(tokio::spawn(async move { s.apply_one(write).await }));
            while store.inner.batcher.queue.lock().unwrap().len() <= i {
                tokio::task::yield_now().await;
            }
        }
        drop(busy);
        let mut outcomes = Vec::new();
        for r in requests {
            outcomes.push(r.await.unwrap().unwrap());
        }
        assert!(matches!(outcomes[0], Outcome::Created(_)), "{outcomes:?}");
        assert!(matches!(outcomes[1], Outcome::Replaced(_)), "{outcomes:?}");
        assert!(matches!(outcomes[2], Outcome::Deleted), "{outcomes:?}");
        assert!(matches!(outcomes[3], Outcome::Absent), "{outcomes:?}");
        assert!(matches!(outcomes[4], Outcome::Created(_)), "{outcomes:?}");
        assert!(matches!(outcomes[5], Outcome::NoSubscription), "{outcomes:?}");
        assert_eq!(
            store.engine().generation().await.unwrap(),
            generation + 1,
            "one transaction for the six writes"
        );
        assert_eq!(
            store.maintained_counts(id).await.unwrap(),
            store.recompute_counts(id).await.unwrap()
        );
        // A lone write commits at once, in a transaction of its own.
        assert!(matches!(
            store.apply_one(put(&vm(3), Status::Healthy)).await.unwrap(),
            Outcome::Created(_)
        ));
        assert_eq!(store.engine().generation().await.unwrap(), generation + 2);
    }
}
