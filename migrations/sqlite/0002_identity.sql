-- Identity (issue 4): the principals the built-in authority issues tokens to, and the role
-- assignments that authorize every principal, local or from a trusted external authority.

-- Service principals (client credentials) and users (implicit flow, password grant).
CREATE TABLE principals (
    id           TEXT PRIMARY KEY,             -- object id (oid), lowercase GUID
    kind         TEXT NOT NULL CHECK (kind IN ('ServicePrincipal', 'User')),
    display_name TEXT NOT NULL,
    app_id       TEXT UNIQUE,                  -- client id of a service principal, lowercase GUID
    user_name    TEXT UNIQUE,                  -- lowercase user principal name of a user
    tenant_id    TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,                -- 'sha256$<salt>$<digest>' of the secret or password
    created_at   TEXT NOT NULL
);

-- Azure role assignments at '/' or '/subscriptions/{id}', inherited below their scope.
-- principal_id is an object id: a local principal's, or one from a trusted external authority.
CREATE TABLE role_assignments (
    id                 TEXT PRIMARY KEY,       -- the assignment's GUID
    principal_id       TEXT NOT NULL,
    role_definition_id TEXT NOT NULL,          -- Azure's role definition GUID
    scope              TEXT NOT NULL,          -- '/' or '/subscriptions/{lowercase guid}'
    created_at         TEXT NOT NULL,
    CONSTRAINT role_assignment_unique UNIQUE (principal_id, role_definition_id, scope)
);
CREATE INDEX role_assignments_by_principal ON role_assignments (principal_id);
