-- The audit chain's head follows its last record (sqlite flavour; the same trigger as
-- ../postgres/0007_audit_head_trigger.sql): an append takes the next seq and the previous hash
-- from audit_head (UPDATE … RETURNING, which also serializes appends), inserts the record, and
-- this trigger sets the head's hash to the record's in the same statement as the INSERT,
-- instead of a third statement of its own. A record whose seq is not the head's is never
-- inserted (append takes seq from the head), so the head is always the chain's last record.
CREATE TRIGGER audit_head_follows AFTER INSERT ON audit_log
BEGIN
    UPDATE audit_head SET hash = NEW.hash WHERE id = 1 AND seq = NEW.seq;
END;
