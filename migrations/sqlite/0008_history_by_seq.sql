-- The latest score point of a subscription (read by every write transaction that moves its score,
-- and by the export outbox) is found by `ORDER BY seq DESC LIMIT 1`. The index by time cannot
-- answer that order, so SQLite sorted all of the subscription's history on every write: a write
-- cost grew with the history (2.5 ms of CPU per PUT after a few thousand points). This index
-- makes it one step down a B-tree.
CREATE INDEX score_history_by_seq ON score_history (subscription_id, initiative, seq);
