-- The PostgreSQL schema: the tables of the SQLite migrations 0001–0007 as they stand after them,
-- so that both engines share their SQL text and row mapping. Encodings are SQLite's on purpose:
-- GUIDs are lowercase text, times are fixed-width RFC 3339 UTC text (text order is time order),
-- JSON is text. Every text column is compared bytewise (COLLATE "C"): key ranges such as
-- ['scope/', 'scope0') and cursor order rely on byte order, whatever the database's locale.

CREATE TABLE meta (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);

-- Bumped (nextval) by every write transaction. A sequence never blocks: a counter row would make
-- every writer of every replica queue behind every other until its commit.
CREATE SEQUENCE generation;

CREATE TABLE subscriptions (
    id           TEXT COLLATE "C" PRIMARY KEY,
    display_name TEXT NOT NULL,
    tenant_id    TEXT NOT NULL,
    state        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    -- Counts the writes to this subscription (change feed, `Change::Subscription`); its row is
    -- also the lock that orders writers of the subscription (see `postgres::lock_subscriptions`).
    version      BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE assessments (
    resource_key          TEXT COLLATE "C" NOT NULL,
    name_key              TEXT COLLATE "C" NOT NULL,
    subscription_id       TEXT COLLATE "C" NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    resource_id           TEXT NOT NULL,
    name                  TEXT NOT NULL,
    status                TEXT NOT NULL,
    cause                 TEXT,
    description           TEXT,
    resource_details      TEXT NOT NULL,
    additional_data       TEXT,
    partner_name          TEXT,
    first_evaluation_date TEXT NOT NULL,
    status_change_date    TEXT NOT NULL,
    PRIMARY KEY (resource_key, name_key)
);
CREATE INDEX assessments_by_subscription ON assessments (subscription_id, resource_key, name_key);

CREATE TABLE resource_tallies (
    subscription_id TEXT COLLATE "C" NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    control         TEXT COLLATE "C" NOT NULL,
    resource_key    TEXT COLLATE "C" NOT NULL,
    healthy         BIGINT NOT NULL,
    unhealthy       BIGINT NOT NULL,
    not_applicable  BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, control, resource_key)
);

CREATE TABLE control_counts (
    subscription_id TEXT COLLATE "C" NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    control         TEXT COLLATE "C" NOT NULL,
    healthy         BIGINT NOT NULL,
    unhealthy       BIGINT NOT NULL,
    not_applicable  BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, control)
);

CREATE TABLE score_history (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id TEXT COLLATE "C" NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    initiative      TEXT COLLATE "C" NOT NULL,
    at              TEXT COLLATE "C" NOT NULL,
    current         DOUBLE PRECISION NOT NULL,
    max             BIGINT NOT NULL,
    percentage      DOUBLE PRECISION NOT NULL,
    weight          BIGINT NOT NULL,
    reason          TEXT
);
CREATE INDEX score_history_by_time ON score_history (subscription_id, initiative, at);
CREATE INDEX score_history_by_seq ON score_history (subscription_id, initiative, seq);

CREATE TABLE custom_metadata (
    subscription_id TEXT COLLATE "C" NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    name_key        TEXT COLLATE "C" NOT NULL,
    name            TEXT NOT NULL,
    properties      TEXT NOT NULL,
    PRIMARY KEY (subscription_id, name_key)
);

CREATE TABLE principals (
    id           TEXT COLLATE "C" PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('ServicePrincipal', 'User')),
    display_name TEXT NOT NULL,
    app_id       TEXT COLLATE "C" UNIQUE,
    user_name    TEXT COLLATE "C" UNIQUE,
    tenant_id    TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    created_at   TEXT COLLATE "C" NOT NULL
);

CREATE TABLE role_assignments (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    principal_id       TEXT COLLATE "C" NOT NULL,
    role_definition_id TEXT COLLATE "C" NOT NULL,
    scope              TEXT COLLATE "C" NOT NULL,
    created_at         TEXT NOT NULL,
    CONSTRAINT role_assignment_unique UNIQUE (principal_id, role_definition_id, scope)
);
CREATE INDEX role_assignments_by_principal ON role_assignments (principal_id);

CREATE TABLE sub_assessments (
    resource_key    TEXT COLLATE "C" NOT NULL,
    assessment_key  TEXT COLLATE "C" NOT NULL,
    name_key        TEXT COLLATE "C" NOT NULL,
    subscription_id TEXT COLLATE "C" NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    resource_id     TEXT NOT NULL,
    assessment_name TEXT NOT NULL,
    name            TEXT NOT NULL,
    properties      TEXT NOT NULL,
    PRIMARY KEY (resource_key, assessment_key, name_key)
);
CREATE INDEX sub_assessments_by_subscription
    ON sub_assessments (subscription_id, resource_key, assessment_key, name_key);

-- Deleting an assessment, by any write path, deletes its sub-assessments (as SQLite's trigger).
CREATE FUNCTION assessments_delete_sub_assessments() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM sub_assessments
    WHERE resource_key = OLD.resource_key AND assessment_key = OLD.name_key;
    RETURN OLD;
END $$;
CREATE TRIGGER assessments_delete_sub_assessments AFTER DELETE ON assessments
    FOR EACH ROW EXECUTE FUNCTION assessments_delete_sub_assessments();

CREATE TABLE automations (
    subscription_id    TEXT COLLATE "C" NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    resource_group_key TEXT COLLATE "C" NOT NULL,
    name_key           TEXT COLLATE "C" NOT NULL,
    resource_group     TEXT NOT NULL,
    name               TEXT NOT NULL,
    etag               TEXT NOT NULL,
    spec               TEXT NOT NULL,
    last_snapshot_at   BIGINT,
    PRIMARY KEY (subscription_id, resource_group_key, name_key)
);

CREATE TABLE change_events (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        TEXT NOT NULL,
    subscription_id TEXT COLLATE "C" NOT NULL,
    kind            TEXT NOT NULL,
    change          TEXT NOT NULL,
    resource_key    TEXT COLLATE "C" NOT NULL,
    payload         TEXT NOT NULL,
    at              TEXT NOT NULL
);

CREATE TABLE deliveries (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        TEXT NOT NULL,
    subscription_id TEXT COLLATE "C" NOT NULL,
    automation_key  TEXT COLLATE "C" NOT NULL,
    automation_id   TEXT NOT NULL,
    action_index    BIGINT NOT NULL,
    lane            TEXT COLLATE "C" NOT NULL,
    event_source    TEXT NOT NULL,
    change          TEXT NOT NULL,
    target          TEXT NOT NULL,
    body            TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT
);
CREATE INDEX deliveries_by_lane ON deliveries (lane, seq);
CREATE INDEX deliveries_by_automation ON deliveries (automation_key);

CREATE FUNCTION automations_delete_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM deliveries WHERE automation_key =
        '/subscriptions/' || OLD.subscription_id || '/resourcegroups/' || OLD.resource_group_key ||
        '/providers/microsoft.security/automations/' || OLD.name_key;
    RETURN OLD;
END $$;
CREATE TRIGGER automations_delete_deliveries AFTER DELETE ON automations
    FOR EACH ROW EXECUTE FUNCTION automations_delete_deliveries();

CREATE TABLE management_groups (
    name_key     TEXT COLLATE "C" PRIMARY KEY,
    name         TEXT NOT NULL,
    display_name TEXT NOT NULL,
    parent_key   TEXT COLLATE "C" REFERENCES management_groups (name_key),
    version      BIGINT NOT NULL,
    updated_time TEXT NOT NULL,
    updated_by   TEXT NOT NULL,
    -- Creation order (SQLite lists groups by rowid).
    created_seq  BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX management_groups_by_parent ON management_groups (parent_key);

CREATE TABLE management_group_subscriptions (
    subscription_id TEXT COLLATE "C" PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
    group_key       TEXT COLLATE "C" NOT NULL REFERENCES management_groups (name_key)
);
CREATE INDEX management_group_subscriptions_by_group ON management_group_subscriptions (group_key);

CREATE TABLE resource_group_counts (
    subscription_id TEXT COLLATE "C" NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    resource_group  TEXT COLLATE "C" NOT NULL,
    control         TEXT COLLATE "C" NOT NULL,
    healthy         BIGINT NOT NULL,
    unhealthy       BIGINT NOT NULL,
    not_applicable  BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, resource_group, control)
);

CREATE TABLE exemptions (
    name_key        TEXT COLLATE "C" PRIMARY KEY,
    name            TEXT NOT NULL,
    subscription_id TEXT COLLATE "C" NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    scope           TEXT NOT NULL,
    scope_key       TEXT COLLATE "C" NOT NULL,
    assessment_key  TEXT COLLATE "C" NOT NULL,
    assessment      TEXT NOT NULL,
    category        TEXT NOT NULL CHECK (category IN ('Waiver', 'Mitigated')),
    expires_on      TEXT COLLATE "C",
    description     TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    active          BOOLEAN NOT NULL
);
CREATE INDEX exemptions_by_subscription ON exemptions (subscription_id, assessment_key);
CREATE INDEX exemptions_by_expiry ON exemptions (active, expires_on);

CREATE TABLE status_changes (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id   TEXT COLLATE "C" NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    at                TEXT COLLATE "C" NOT NULL,
    resource_id       TEXT NOT NULL,
    assessment        TEXT NOT NULL,
    old_status        TEXT,
    new_status        TEXT,
    cause             TEXT,
    before_current    DOUBLE PRECISION NOT NULL,
    before_max        BIGINT NOT NULL,
    before_percentage DOUBLE PRECISION NOT NULL,
    after_current     DOUBLE PRECISION NOT NULL,
    after_max         BIGINT NOT NULL,
    after_percentage  DOUBLE PRECISION NOT NULL
);
CREATE INDEX status_changes_by_time ON status_changes (subscription_id, at, seq);
