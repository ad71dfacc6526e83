//! The suite's result: one row per check (PASS, FAIL or SKIP, with the reason), printed as a
//! table. A row's reason names rules, lengths and errors, never a password or a secret.

use std::fmt;

/// How one check went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
        })
    }
}

/// One check's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub check: String,
    pub outcome: Outcome,
    pub reason: String,
}

/// Every row, in the order the checks ran.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    pub fn add(&mut self, check: &str, outcome: Outcome, reason: impl Into<String>) {
        self.rows.push(Row {
            check: check.to_string(),
            outcome,
            reason: reason.into(),
        });
    }

    pub fn pass(&mut self, check: &str, reason: impl Into<String>) {
        self.add(check, Outcome::Pass, reason);
    }

    pub fn fail(&mut self, check: &str, reason: impl Into<String>) {
        self.add(check, Outcome::Fail, reason);
    }

    pub fn skip(&mut self, check: &str, reason: impl Into<String>) {
        self.add(check, Outcome::Skip, reason);
    }

    /// How many rows have `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.rows.iter().filter(|r| r.outcome == outcome).count()
    }

    /// The table: check, result and reason, aligned, then a line of totals.
    pub fn table(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|r| r.check.chars().count())
            .chain([5])
            .max()
            .unwrap_or(5);
        let mut out = format!("{:width$}  RESULT  REASON\n", "CHECK");
        out.push_str(&format!("{}  ------  ------\n", "-".repeat(width)));
        for row in &self.rows {
            // A reason is one line: the table stays one row per check.
            let reason = row.reason.split_whitespace().collect::<Vec<_>>().join(" ");
            out.push_str(&format!(
                "{:width$}  {:6}  {reason}\n",
                row.check,
                row.outcome.to_string()
            ));
        }
        out.push_str(&format!(
            "\ntotals: {} pass, {} fail, {} skip\n",
            self.count(Outcome::Pass),
            self.count(Outcome::Fail),
            self.count(Outcome::Skip)
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_aligned_line_per_check() {
        let mut report = Report::default();
        report.pass("describe: identity", "id and version match");
        report.fail("find-accounts: limit", "3 accounts\nfor a limit of 1");
        report.skip("set-password", "no [test] account");
        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("CHECK "), "{table}");
        assert!(
            lines[3].starts_with("find-accounts: limit  FAIL    3 accounts for a limit of 1"),
            "{table}"
        );
        assert!(
            table.ends_with("totals: 1 pass, 1 fail, 1 skip\n"),
            "{table}"
        );
        assert_eq!(report.count(Outcome::Fail), 1);
    }
}
