-- An audit record written in a transaction is appended to the chain at its commit (postgres
-- only; see ../sqlite/0009_audit_at_commit.sql). The transaction inserts the record here, with
-- `tail`, the bytes its hash covers after the seq (store/audit.rs, `chain_tail`); this deferred
-- trigger runs inside COMMIT, takes the chain's head (next seq, previous hash), inserts the
-- record into audit_log hashed as store/audit.rs's `chain_hash` does, SHA-256(prev ‖ label ‖
-- seq ‖ tail), and deletes it from here. The head's row lock, which every append waits for, is
-- then held from inside COMMIT to its end, never while the client is sent a row and answers
-- with its next statement. Records of one transaction are appended in the order written.
CREATE TABLE audit_pending (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT,
    details TEXT NOT NULL,
    at BIGINT NOT NULL,
    tail BYTEA NOT NULL
);

CREATE FUNCTION audit_append_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head_seq BIGINT;
    head_hash BYTEA;
BEGIN
    UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash INTO head_seq, head_hash;
    INSERT INTO audit_log (seq, tenant_id, actor, action, subject, details, at, prev_hash, hash)
    VALUES (head_seq, NEW.tenant_id, NEW.actor, NEW.action, NEW.subject, NEW.details, NEW.at,
            head_hash,
            sha256(head_hash || convert_to('latchkey audit v1', 'UTF8') || '\x00'::bytea
                   || int8send(head_seq) || NEW.tail));
    DELETE FROM audit_pending WHERE id = NEW.id;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER audit_append_at_commit AFTER INSERT ON audit_pending
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_append_at_commit();
