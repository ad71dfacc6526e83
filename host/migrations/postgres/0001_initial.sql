-- Latchkey's schema, PostgreSQL flavour. Kept column-for-column identical to
-- ../sqlite/0001_initial.sql: the same names, the same constraints and indexes; only the types
-- differ (BIGINT for INTEGER, BYTEA for BLOB). Ids are UUID strings, times are unix seconds,
-- JSON is TEXT (the store parses it), flags are 0/1 integers.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

-- Operators (no tenant, no role) and a tenant's admins (a tenant and a role). A token is the
-- row's token_id plus a secret whose argon2id PHC hash is token_hash.
CREATE TABLE principals (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('operator', 'admin')),
    tenant_id TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    role TEXT CHECK (role IN ('owner', 'admin', 'helpdesk', 'auditor')),
    name TEXT NOT NULL,
    token_id TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    CHECK ((kind = 'operator' AND tenant_id IS NULL AND role IS NULL)
        OR (kind = 'admin' AND tenant_id IS NOT NULL AND role IS NOT NULL))
);
CREATE INDEX principals_tenant ON principals (tenant_id);

CREATE TABLE connectors (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    plugin TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('primary', 'secondary')),
    position BIGINT NOT NULL,
    config TEXT NOT NULL,
    enabled BIGINT NOT NULL CHECK (enabled IN (0, 1)),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, id)
);
-- One primary connector per tenant.
CREATE UNIQUE INDEX connectors_one_primary ON connectors (tenant_id) WHERE role = 'primary';

-- A connector's secret values, sealed with XChaCha20-Poly1305 under the master key `key_id`;
-- the AAD binds tenant, connector and name, so a row copied elsewhere does not open.
CREATE TABLE connector_secrets (
    tenant_id TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    nonce BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (connector_id, name),
    FOREIGN KEY (tenant_id, connector_id) REFERENCES connectors (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE employees (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    connector_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    username TEXT NOT NULL,
    display_name TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, connector_id, account_id),
    FOREIGN KEY (tenant_id, connector_id) REFERENCES connectors (tenant_id, id)
);

CREATE TABLE keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    serial TEXT NOT NULL,
    kem_public_key BYTEA NOT NULL,
    sig_public_key BYTEA NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ready', 'reserved', 'active', 'locked', 'suspended',
        'deactivated', 'compromised')),
    employee_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, serial),
    FOREIGN KEY (tenant_id, employee_id) REFERENCES employees (tenant_id, id)
);
CREATE INDEX keys_employee ON keys (tenant_id, employee_id);

CREATE TABLE workstations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('enrolled', 'approved', 'revoked')),
    token_id TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL,
    enrolled_at BIGINT NOT NULL,
    approved_at BIGINT,
    revoked_at BIGINT,
    UNIQUE (tenant_id, id)
);

CREATE TABLE password_changes (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    employee_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('manual', 'generate')),
    options TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('held', 'applying', 'applied', 'partially_applied',
        'failed')),
    outcomes TEXT NOT NULL,
    failure TEXT,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, employee_id) REFERENCES employees (tenant_id, id),
    FOREIGN KEY (tenant_id, key_id) REFERENCES keys (tenant_id, id)
);
-- Crash recovery at start-up reads the changes left between seal and release.
CREATE INDEX password_changes_unfinished ON password_changes (started_at)
    WHERE state IN ('held', 'applying');

-- Sealed envelopes on their way to a key. `ciphertext` is NULL in every final state.
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    slot TEXT NOT NULL,
    change_id TEXT,
    state TEXT NOT NULL CHECK (state IN ('held', 'pending', 'leased', 'delivered', 'superseded',
        'expired', 'failed')),
    ciphertext BYTEA,
    created_at BIGINT NOT NULL,
    released_at BIGINT,
    not_after BIGINT,
    lease_expires_at BIGINT,
    leased_by TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    finished_at BIGINT,
    failure TEXT,
    CHECK ((state IN ('held', 'pending', 'leased')) = (ciphertext IS NOT NULL)),
    CHECK ((state = 'leased') = (lease_expires_at IS NOT NULL)),
    FOREIGN KEY (tenant_id, key_id) REFERENCES keys (tenant_id, id),
    FOREIGN KEY (tenant_id, change_id) REFERENCES password_changes (tenant_id, id)
);
-- One change in flight per key and account slot...
CREATE UNIQUE INDEX deliveries_one_held ON deliveries (key_id, slot) WHERE state = 'held';
-- ...and one envelope queued for it: a release supersedes the older one in its transaction.
CREATE UNIQUE INDEX deliveries_one_queued ON deliveries (key_id, slot)
    WHERE state IN ('pending', 'leased');
-- The claim: a key's queued deliveries in order.
CREATE INDEX deliveries_claim ON deliveries (key_id, state, created_at)
    WHERE state IN ('pending', 'leased');
-- The sweepers: leases past expiry, envelopes past not_after.
CREATE INDEX deliveries_lease_expiry ON deliveries (lease_expires_at) WHERE state = 'leased';
CREATE INDEX deliveries_change ON deliveries (change_id);

-- One hash chain over every audit record: hash = SHA-256(prev_hash || canonical row bytes).
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    tenant_id TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT,
    details TEXT NOT NULL,
    at BIGINT NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash BYTEA NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, seq);

-- The chain's head: appends lock this row (UPDATE), so concurrent appends queue, never fork.
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
