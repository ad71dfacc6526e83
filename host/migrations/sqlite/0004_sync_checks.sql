-- Password hash sync verification (sqlite flavour; column-for-column identical to the other).
--
-- A secondary connector that does not write a synced account (Entra ID for a user mastered in
-- on-prem AD) answers `awaiting-sync`: the password reaches it through the organisation's
-- sync. Each such outcome is watched here until the connector's `password-changed-at` shows
-- a change after the second the change began (`synced`), or its deadline passes (`overdue`, then
-- still watched until `watch_until` in case sync catches up). No password, only the account.
CREATE TABLE sync_checks (
    change_id TEXT NOT NULL REFERENCES password_changes (id) ON DELETE CASCADE,
    connector_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The connector's account (the WIT `account` record as JSON).
    account TEXT NOT NULL,
    -- The change began in this second; a password change recorded after it is ours.
    since INTEGER NOT NULL,
    -- awaiting | synced | overdue
    state TEXT NOT NULL,
    deadline INTEGER NOT NULL,
    watch_until INTEGER NOT NULL,
    next_check_at INTEGER NOT NULL,
    checks INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    synced_at INTEGER,
    PRIMARY KEY (change_id, connector_id)
);
CREATE INDEX sync_checks_due ON sync_checks (next_check_at) WHERE state <> 'synced';
