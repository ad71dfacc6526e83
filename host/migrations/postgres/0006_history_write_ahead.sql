-- The password history is written ahead of the directory (postgres flavour; column-for-column
-- identical to ../sqlite/0006_history_write_ahead.sql): a change records its password's hash in
-- the transaction that begins it, so a crash after the directory took the password never
-- leaves it out of the history. change_id names the change that added the entry, so a change
-- that fails before any directory took its password takes its entry back. NULL for entries
-- written before this migration.
ALTER TABLE password_history ADD COLUMN change_id TEXT;
