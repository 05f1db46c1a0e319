-- Exemptions (extension API): while one is active, the assessments it matches count as not
-- applicable; their stored status is kept so that removing or expiring the exemption restores
-- them. `active` is what the maintained counters reflect: an exemption past its `expires_on`
-- stays active until the expiry sweep re-steps its assessments and clears the flag.
CREATE TABLE exemptions (
    name_key        TEXT PRIMARY KEY,          -- lowercase exemption name
    name            TEXT NOT NULL,             -- casing of the last write
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    scope           TEXT NOT NULL,             -- canonical resource id of the scope
    scope_key       TEXT NOT NULL,             -- lowercase scope
    assessment_key  TEXT NOT NULL,             -- lowercase assessment (metadata) name
    assessment      TEXT NOT NULL,             -- casing of the last write
    category        TEXT NOT NULL CHECK (category IN ('Waiver', 'Mitigated')),
    expires_on      TEXT,                      -- RFC 3339 UTC, fixed width; NULL: never
    description     TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    active          INTEGER NOT NULL           -- 1 while it takes effect, 0 once expired
);
CREATE INDEX exemptions_by_subscription ON exemptions (subscription_id, assessment_key);
CREATE INDEX exemptions_by_expiry ON exemptions (active, expires_on);

-- Every status transition of an assessment (extension API `changes`), written in the transaction
-- of the write that made it, with the subscription's secure score before and after. `old_status`
-- is NULL for a first write, `new_status` NULL for a delete. `cause` is NULL for an assessment
-- write and 'exemption' when an exemption began or ended. Rows older than the server's retention
-- (`serve --changes-retention-days`) are pruned.
CREATE TABLE status_changes (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id   TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    at                TEXT NOT NULL,           -- RFC 3339 UTC, fixed width so text order is time order
    resource_id       TEXT NOT NULL,           -- casing of the assessment's first write
    assessment        TEXT NOT NULL,           -- assessment name, casing of its first write
    old_status        TEXT,
    new_status        TEXT,
    cause             TEXT,
    before_current    REAL NOT NULL,
    before_max        INTEGER NOT NULL,
    before_percentage REAL NOT NULL,
    after_current     REAL NOT NULL,
    after_max         INTEGER NOT NULL,
    after_percentage  REAL NOT NULL
);
CREATE INDEX status_changes_by_time ON status_changes (subscription_id, at, seq);
