-- Continuous export (Microsoft.Security/automations) and its durable delivery.
--
-- automations: the resources as clients wrote them (validated), secrets included; responses
-- leave the secrets out.
CREATE TABLE automations (
    subscription_id    TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    resource_group_key TEXT NOT NULL,      -- lowercase resource group name
    name_key           TEXT NOT NULL,      -- lowercase automation name
    resource_group     TEXT NOT NULL,      -- casing of the first write
    name               TEXT NOT NULL,      -- casing of the first write
    etag               TEXT NOT NULL,      -- new on every write
    spec               TEXT NOT NULL,      -- JSON: location, kind, tags, properties
    last_snapshot_at   INTEGER,            -- unix ms of the last periodic snapshot; NULL: due now
    PRIMARY KEY (subscription_id, resource_group_key, name_key)
);

-- The outbox: one row per change of a resource an automation may export, written in the same
-- transaction as the change itself (so a committed change is never lost to delivery), only for
-- subscriptions that have automations. The delivery worker routes each row to the matching
-- automations' actions (table deliveries) and deletes it, in one transaction.
CREATE TABLE change_events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL,        -- GUID: receivers de-duplicate on it
    subscription_id TEXT NOT NULL,
    kind            TEXT NOT NULL,        -- assessment | secureScore | secureScoreControl
    change          TEXT NOT NULL,        -- created | updated | deleted
    resource_key    TEXT NOT NULL,        -- lowercase id of the resource the event is about
    payload         TEXT NOT NULL,        -- JSON: the stored record at the time of the change
    at              TEXT NOT NULL
);

-- One row per (event, automation, action) still to deliver. A lane is one automation action and
-- one resource: only a lane's oldest row is ever attempted, so a resource's events arrive in order.
CREATE TABLE deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    automation_key  TEXT NOT NULL,        -- lowercase automation id
    automation_id   TEXT NOT NULL,
    action_index    INTEGER NOT NULL,
    lane            TEXT NOT NULL,
    event_source    TEXT NOT NULL,        -- Assessments, SecureScores, ... (snapshots too)
    change          TEXT NOT NULL,        -- created | updated | deleted | snapshot
    target          TEXT NOT NULL,        -- JSON: the action as written, secrets included
    body            TEXT NOT NULL,        -- JSON: the resource as a GET returns it
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,     -- unix ms
    last_error      TEXT
);
CREATE INDEX deliveries_by_lane ON deliveries (lane, seq);
CREATE INDEX deliveries_by_automation ON deliveries (automation_key);

-- An automation that goes away (DELETE, or its subscription removed) takes its waiting
-- deliveries with it: one place for the cascade, whichever path deletes it.
CREATE TRIGGER automations_delete_deliveries AFTER DELETE ON automations
BEGIN
    DELETE FROM deliveries WHERE automation_key =
        '/subscriptions/' || OLD.subscription_id || '/resourcegroups/' || OLD.resource_group_key ||
        '/providers/microsoft.security/automations/' || OLD.name_key;
END;
