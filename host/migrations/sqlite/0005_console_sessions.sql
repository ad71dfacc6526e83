-- Admin console sign-ins (sqlite flavour; column-for-column identical to the other).
-- A session is a random 256-bit value in an HttpOnly cookie; only its SHA-256 is kept, so a
-- database reader cannot sign in with it. The CSRF token travels in the console's forms; it
-- is useless without the cookie. Revoking the principal ends its sessions (every lookup joins
-- `principals`).
CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
