-- Exemptions at management-group scope (as SQLite's 0009): a row lies either at a resource
-- scope (subscription_id set) or at a management group (group_key set: the group's lowercase
-- name, the tenant id for the root group).
ALTER TABLE exemptions ALTER COLUMN subscription_id DROP NOT NULL;
ALTER TABLE exemptions ADD COLUMN group_key TEXT COLLATE "C";
ALTER TABLE exemptions ADD CONSTRAINT exemptions_one_scope
    CHECK ((subscription_id IS NULL) <> (group_key IS NULL));
CREATE INDEX exemptions_by_group ON exemptions (group_key);
