-- Pending authorization codes (as SQLite's 0011): a code one replica issues is redeemable at
-- another; only its SHA-256 is kept.
CREATE TABLE authorization_codes (
    code_hash    TEXT COLLATE "C" PRIMARY KEY,
    client_id    TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    challenge    TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    audience     TEXT NOT NULL,
    nonce        TEXT,
    expires_at   TEXT COLLATE "C" NOT NULL
);
CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);
