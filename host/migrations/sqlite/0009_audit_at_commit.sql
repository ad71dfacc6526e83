-- Nothing on SQLite (../postgres/0009_audit_at_commit.sql appends a transaction's audit records
-- at its commit there). SQLite has one writer, which takes the write lock at BEGIN IMMEDIATE and
-- runs each transaction whole on one thread (store/direct.rs): an append inside it waits for
-- no other, so it is written at once (store/audit.rs, `append_in`).
SELECT 1;
