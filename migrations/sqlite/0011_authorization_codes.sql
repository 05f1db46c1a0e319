-- Pending authorization codes of the sign-in flow (RFC 6749 section 4.1, with PKCE), kept in the
-- store so that a code one replica issues can be redeemed at another. Only the SHA-256 of a code
-- is kept: the code itself is a credential until redeemed. Redemption deletes the row (one
-- attempt per code); expired rows go when the next code is issued.
CREATE TABLE authorization_codes (
    code_hash    TEXT PRIMARY KEY,           -- base64url SHA-256 of the code
    client_id    TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    challenge    TEXT NOT NULL,              -- the S256 code_challenge
    principal_id TEXT NOT NULL,              -- whom it signs in
    audience     TEXT NOT NULL,
    nonce        TEXT,
    expires_at   TEXT NOT NULL               -- RFC 3339 UTC, fixed width
);
CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);
