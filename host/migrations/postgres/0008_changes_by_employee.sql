-- An employee's changes, newest first, by index (the employee list's latest change of each
-- employee and an employee's page): without it each of those read every change of every tenant.
CREATE INDEX password_changes_employee ON password_changes (tenant_id, employee_id, started_at);
