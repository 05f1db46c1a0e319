-- Sub-assessments (Microsoft.Security/assessments/subAssessments, api-version 2019-01-01-preview):
-- the findings below one assessment of one resource. They never take part in scoring, so no
-- counter or history row depends on them.
CREATE TABLE sub_assessments (
    resource_key    TEXT NOT NULL,      -- lowercase resource id of the parent assessment
    assessment_key  TEXT NOT NULL,      -- lowercase parent assessment name
    name_key        TEXT NOT NULL,      -- lowercase sub-assessment name
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    resource_id     TEXT NOT NULL,      -- casing of the first write
    assessment_name TEXT NOT NULL,      -- casing of the first write
    name            TEXT NOT NULL,      -- casing of the first write
    properties      TEXT NOT NULL,      -- JSON object, as the client wrote it (validated)
    PRIMARY KEY (resource_key, assessment_key, name_key)
);
CREATE INDEX sub_assessments_by_subscription
    ON sub_assessments (subscription_id, resource_key, assessment_key, name_key);

-- Deleting an assessment, by any write path, deletes its sub-assessments in the same statement's
-- transaction: one place for the cascade.
CREATE TRIGGER assessments_delete_sub_assessments AFTER DELETE ON assessments
BEGIN
    DELETE FROM sub_assessments
    WHERE resource_key = OLD.resource_key AND assessment_key = OLD.name_key;
END;
