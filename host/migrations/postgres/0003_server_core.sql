-- What the password-change workflow and the delivery queue need beyond the first schema,
-- PostgreSQL flavour. Kept column-for-column identical to ../sqlite/0003_server_core.sql; only
-- the types differ (BIGINT for INTEGER, BYTEA for BLOB).

-- The account each connector addresses an employee by (the WIT `account` record as JSON):
-- principal name, e-mail and location are needed to call the connector again, and are shown.
ALTER TABLE employees ADD COLUMN account TEXT NOT NULL DEFAULT '{}';

-- The capabilities the tenant granted this connector (a JSON list of names); the plugin gets
-- those its manifest also requests.
ALTER TABLE connectors ADD COLUMN granted TEXT NOT NULL DEFAULT '[]';
-- Bumped by every change to the connector or its secrets: a replica's cached instance (and its
-- LDAP connections, bound with the old password) is rebuilt when it differs.
ALTER TABLE connectors ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;

-- keyproto: the per-(key, slot) sequence number the key requires to grow, and the receipt the
-- server keeps to verify the key's ack (hashes only: it cannot open or complete anything).
ALTER TABLE deliveries ADD COLUMN sequence BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN receipt BYTEA;
CREATE INDEX deliveries_sequence ON deliveries (key_id, slot, sequence);

-- Each tenant's Ed25519 key that signs envelopes (keys trust it as their anchor), sealed under
-- the master key like connector secrets (AAD: tenant); the public half in the clear.
CREATE TABLE tenant_signing_keys (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    public_key BYTEA NOT NULL,
    key_id TEXT NOT NULL,
    nonce BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

-- One-time codes a workstation enrolls with: `lk_<token_id>_<secret>`, argon2id-hashed.
CREATE TABLE enrollment_codes (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token_id TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    workstation_id TEXT
);
CREATE INDEX enrollment_codes_tenant ON enrollment_codes (tenant_id, created_at);
