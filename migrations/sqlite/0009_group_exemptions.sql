-- Exemptions at management-group scope: a row lies either at a resource scope (subscription_id
-- set) or at a management group (group_key set: the group's lowercase name, the tenant id for
-- the root group). A group's exemption reaches every subscription below it as the hierarchy
-- places them at the time; SQLite cannot drop NOT NULL in place, so the table is rebuilt.
CREATE TABLE exemptions_new (
    name_key        TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    subscription_id TEXT REFERENCES subscriptions (id) ON DELETE CASCADE,
    scope           TEXT NOT NULL,
    scope_key       TEXT NOT NULL,
    assessment_key  TEXT NOT NULL,
    assessment      TEXT NOT NULL,
    category        TEXT NOT NULL CHECK (category IN ('Waiver', 'Mitigated')),
    expires_on      TEXT,
    description     TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    active          INTEGER NOT NULL,
    group_key       TEXT,
    CHECK ((subscription_id IS NULL) <> (group_key IS NULL))
);
INSERT INTO exemptions_new (name_key, name, subscription_id, scope, scope_key, assessment_key,
    assessment, category, expires_on, description, created_at, updated_at, active, group_key)
SELECT name_key, name, subscription_id, scope, scope_key, assessment_key, assessment, category,
       expires_on, description, created_at, updated_at, active, NULL
FROM exemptions;
DROP TABLE exemptions;
ALTER TABLE exemptions_new RENAME TO exemptions;
CREATE INDEX exemptions_by_subscription ON exemptions (subscription_id, assessment_key);
CREATE INDEX exemptions_by_group ON exemptions (group_key);
CREATE INDEX exemptions_by_expiry ON exemptions (active, expires_on);
