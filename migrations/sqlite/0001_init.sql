-- Key/value facts about this data directory (e.g. its default tenant).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Bumped by every write transaction: servers poll it to notice writes made by other processes
-- (the CLI on the same data directory, other replicas) and drop their read caches.
CREATE TABLE generation (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO generation (id, value) VALUES (1, 0);

CREATE TABLE subscriptions (
    id           TEXT PRIMARY KEY,           -- lowercase GUID
    display_name TEXT NOT NULL,
    tenant_id    TEXT NOT NULL,
    state        TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

CREATE TABLE assessments (
    resource_key          TEXT NOT NULL,      -- lowercase resource id
    name_key              TEXT NOT NULL,      -- lowercase assessment (metadata) name
    subscription_id       TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    resource_id           TEXT NOT NULL,      -- casing of the first write
    name                  TEXT NOT NULL,      -- casing of the first write
    status                TEXT NOT NULL,
    cause                 TEXT,
    description           TEXT,
    resource_details      TEXT NOT NULL,      -- JSON
    additional_data       TEXT,               -- JSON object of strings
    partner_name          TEXT,
    first_evaluation_date TEXT NOT NULL,
    status_change_date    TEXT NOT NULL,
    PRIMARY KEY (resource_key, name_key)
);
CREATE INDEX assessments_by_subscription ON assessments (subscription_id, resource_key, name_key);

-- Maintained state (docs/SCORING.md): per control and resource, how many of the resource's
-- scored assessments have each status; and per control, how many resources are in each state.
CREATE TABLE resource_tallies (
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    control         TEXT NOT NULL,
    resource_key    TEXT NOT NULL,
    healthy         INTEGER NOT NULL,
    unhealthy       INTEGER NOT NULL,
    not_applicable  INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, control, resource_key)
);

CREATE TABLE control_counts (
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    control         TEXT NOT NULL,
    healthy         INTEGER NOT NULL,
    unhealthy       INTEGER NOT NULL,
    not_applicable  INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, control)
);

-- Every change of a secure score, with its time.
CREATE TABLE score_history (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    initiative      TEXT NOT NULL,
    at              TEXT NOT NULL,            -- RFC 3339 UTC, fixed width so text order is time order
    current         REAL NOT NULL,
    max             INTEGER NOT NULL,
    percentage      REAL NOT NULL,
    weight          INTEGER NOT NULL
);
CREATE INDEX score_history_by_time ON score_history (subscription_id, initiative, at);

-- Subscription-level custom assessment metadata (never moves the score).
CREATE TABLE custom_metadata (
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    name_key        TEXT NOT NULL,
    name            TEXT NOT NULL,
    properties      TEXT NOT NULL,            -- JSON, as validated
    PRIMARY KEY (subscription_id, name_key)
);
