-- The host's own password history, PostgreSQL flavour. Kept column-for-column identical to
-- ../sqlite/0002_password_history.sql; only the types differ (BIGINT for INTEGER).
--
-- How many passwords are remembered is a column on tenants rather than a settings table: it is
-- one number every tenant has, with a default, read in the same lookup that names the tenant;
-- a settings table would be a second place to look (and a key/value type to parse) for no gain
-- until there are many such settings. 0 remembers nothing; the cap bounds the argon2 work one
-- check can cost.
ALTER TABLE tenants ADD COLUMN password_history_length BIGINT NOT NULL DEFAULT 24
    CHECK (password_history_length BETWEEN 0 AND 100);

-- argon2id PHC hashes of the passwords set through Latchkey, per employee; never a plaintext.
-- seq numbers an employee's entries (1, 2, ...) so "the last N" does not depend on clock
-- resolution; the oldest beyond the tenant's length are deleted in the transaction that adds.
CREATE TABLE password_history (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    employee_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, employee_id, seq),
    FOREIGN KEY (tenant_id, employee_id) REFERENCES employees (tenant_id, id) ON DELETE CASCADE
);
