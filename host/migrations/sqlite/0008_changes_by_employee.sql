-- An employee's changes, newest first, by index (the employee list's latest change of each
-- employee and an employee's page): without it each of those read every change of every tenant.
-- Not led by tenant_id (employee ids are unique across tenants): PostgreSQL then chose this index
-- for the change path's `tenant_id = $1 AND id = $2` statements, and a change cost ~25 % more.
CREATE INDEX password_changes_employee ON password_changes (employee_id, started_at);
