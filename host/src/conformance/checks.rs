//! The checks, run in order against one enabled connector. Each adds rows to the report; none
//! stops the others, except that nothing can run without a `describe`.
//!
//! What the suite writes: only the `[test] account` (its password, reset several times and
//! left at a random valid one nobody knows). Everything else is read-only, or aimed at an
//! account id made up for the run (which must not exist).

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret as _, SecretString};

use super::candidates::{self, Candidate, Rule, violations_text};
use super::config::SuiteConfig;
use super::report::Report;
use super::schema;
use crate::runtime::wit::types::{
    Account, AccountPage, AccountQuery, CheckStatus, ConnectorError, Features, Info, MatchMode,
    PasswordPolicy, SetOptions, SetStatus,
};
use crate::runtime::{CallError, ConnectorInstance, Manifest};

/// The features a connector can declare, with their names and the functions they cover.
const FEATURES: [(Features, &str, &[&str]); 5] = [
    (Features::SET_PASSWORD, "set-password", &["set-password"]),
    (
        Features::CHANGE_PASSWORD,
        "change-password",
        &["change-password"],
    ),
    (
        Features::POLICY,
        "policy",
        &["get-policy", "check-password"],
    ),
    (Features::IMPORT, "import", &["find-accounts"]),
    (Features::VERIFY, "verify", &["password-changed-at"]),
];

/// What the calls of the run did, for the limits row and the features row.
#[derive(Default)]
struct Calls {
    count: usize,
    slowest: Option<(Duration, &'static str)>,
    /// Every failure of the plugin itself (deadline, memory, refused output, ...).
    plugin_errors: Vec<String>,
    /// Functions that answered `unsupported`, with the message.
    unsupported: Vec<(&'static str, String)>,
}

/// The suite's state while it runs.
pub struct Suite<'a> {
    instance: &'a ConnectorInstance,
    manifest: Option<&'a Manifest>,
    config: &'a SuiteConfig,
    pub report: Report,
    calls: Calls,
    info: Option<Info>,
}

/// The account the policy and password checks use, and whether the suite may write to it.
struct Subject {
    account: Account,
    writable: bool,
    /// Made up by the suite (no directory lookup found it).
    synthetic: bool,
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// A random hex tag for names and ids made up by this run.
fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

fn plain_reset() -> SetOptions {
    SetOptions {
        must_change_at_next_logon: false,
        unlock: false,
        enforce_history: false,
    }
}

fn error_text(error: &CallError) -> String {
    match error {
        CallError::Plugin(e) => format!("plugin error: {e}"),
        CallError::Connector(ConnectorError::Policy(v)) => {
            format!("policy({})", violations_text(v))
        }
        CallError::Connector(e) => e_kind(e).to_string() + ": " + &message(e),
    }
}

fn e_kind(error: &ConnectorError) -> &'static str {
    match error {
        ConnectorError::Policy(_) => "policy",
        ConnectorError::NotFound(_) => "not-found",
        ConnectorError::Denied(_) => "denied",
        ConnectorError::WrongOldPassword(_) => "wrong-old-password",
        ConnectorError::Unavailable(_) => "unavailable",
        ConnectorError::InvalidConfig(_) => "invalid-config",
        ConnectorError::Unsupported(_) => "unsupported",
        ConnectorError::Internal(_) => "internal",
    }
}

fn message(error: &ConnectorError) -> String {
    match error {
        ConnectorError::Policy(v) => violations_text(v),
        ConnectorError::NotFound(i)
        | ConnectorError::Denied(i)
        | ConnectorError::WrongOldPassword(i)
        | ConnectorError::Unavailable(i)
        | ConnectorError::InvalidConfig(i)
        | ConnectorError::Unsupported(i)
        | ConnectorError::Internal(i) => i.message.clone(),
    }
}

impl<'a> Suite<'a> {
    pub fn new(
        instance: &'a ConnectorInstance,
        manifest: Option<&'a Manifest>,
        config: &'a SuiteConfig,
    ) -> Suite<'a> {
        Suite {
            instance,
            manifest,
            config,
            report: Report::default(),
            calls: Calls::default(),
            info: None,
        }
    }

    fn supports(&self, feature: Features) -> bool {
        self.info
            .as_ref()
            .is_some_and(|info| info.supports.contains(feature))
    }

    /// Note one call: its time, a plugin failure, an `unsupported` answer.
    fn note<T>(&mut self, function: &'static str, started: Instant, result: &Result<T, CallError>) {
        self.calls.count += 1;
        let took = started.elapsed();
        if self.calls.slowest.is_none_or(|(slowest, _)| took > slowest) {
            self.calls.slowest = Some((took, function));
        }
        match result {
            Err(CallError::Plugin(e)) => self.calls.plugin_errors.push(format!("{function}: {e}")),
            Err(CallError::Connector(ConnectorError::Unsupported(info))) => self
                .calls
                .unsupported
                .push((function, info.message.clone())),
            _ => {}
        }
    }

    async fn find(
        &mut self,
        text: &str,
        mode: MatchMode,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<AccountPage, CallError> {
        let query = AccountQuery {
            text: text.to_string(),
            mode,
        };
        let started = Instant::now();
        let result = self.instance.find_accounts(&query, cursor, limit).await;
        self.note("find-accounts", started, &result);
        result
    }

    async fn get_policy(&mut self, account: &Account) -> Result<PasswordPolicy, CallError> {
        let started = Instant::now();
        let result = self.instance.get_policy(account).await;
        self.note("get-policy", started, &result);
        result
    }

    async fn check_password(
        &mut self,
        account: &Account,
        password: &SecretString,
    ) -> Result<Vec<crate::runtime::wit::types::Violation>, CallError> {
        let started = Instant::now();
        let result = self
            .instance
            .check_password(account, password)
            .await
            .map_err(CallError::Plugin);
        self.note("check-password", started, &result);
        result
    }

    async fn set_password(
        &mut self,
        account: &Account,
        password: &SecretString,
    ) -> Result<SetStatus, CallError> {
        let started = Instant::now();
        let result = self
            .instance
            .set_password(account, password, plain_reset())
            .await
            .map(|outcome| outcome.status);
        self.note("set-password", started, &result);
        result
    }

    async fn changed_at(&mut self, account: &Account) -> Result<Option<i64>, CallError> {
        let started = Instant::now();
        let result = self.instance.password_changed_at(account).await;
        self.note("password-changed-at", started, &result);
        result
    }

    /// Run every check.
    pub async fn run(mut self) -> Report {
        if !self.describe().await {
            return self.report;
        }
        self.test_connection().await;
        let found = self.find_accounts().await;
        let subject = self.subject(found);
        let policy = self.policy(subject.as_ref()).await;
        let set_at = self.passwords(subject.as_ref(), policy.as_ref()).await;
        self.changed_at_moves(subject.as_ref(), set_at).await;
        self.typed_errors(subject.as_ref(), policy.as_ref()).await;
        self.features();
        self.limits();
        self.report
    }

    /// describe: identity, text, both schemas, the configuration against its schema and the
    /// secrets against theirs. False when describe itself failed.
    async fn describe(&mut self) -> bool {
        let started = Instant::now();
        let result = self.instance.describe().await.map_err(CallError::Plugin);
        self.note("describe", started, &result);
        let info = match result {
            Ok(info) => info,
            Err(error) => {
                self.report.fail("describe", error_text(&error));
                return false;
            }
        };
        let mut problems = vec![];
        if let Err(e) = semver::Version::parse(&info.version) {
            problems.push(format!("version `{}` is not semver ({e})", info.version));
        }
        if let Some(manifest) = self.manifest {
            if info.id != manifest.id {
                problems.push(format!(
                    "describe says id `{}`, the manifest `{}`",
                    info.id, manifest.id
                ));
            }
            if info.version != manifest.version.to_string() {
                problems.push(format!(
                    "describe says version `{}`, the manifest `{}`",
                    info.version, manifest.version
                ));
            }
        }
        let compared = if self.manifest.is_some() {
            "as in the manifest"
        } else {
            "no manifest to compare with: give --manifest"
        };
        if problems.is_empty() {
            self.report.pass(
                "describe: identity",
                format!("id `{}`, version `{}` ({compared})", info.id, info.version),
            );
        } else {
            self.report.fail("describe: identity", problems.join("; "));
        }

        let mut empty = vec![];
        if info.name.trim().is_empty() {
            empty.push("name");
        }
        if info.description.trim().is_empty() {
            empty.push("description");
        }
        if empty.is_empty() {
            self.report.pass(
                "describe: name and description",
                format!("\"{}\"", info.name),
            );
        } else {
            self.report.fail(
                "describe: name and description",
                format!(
                    "{} empty: administrators choose connectors by them",
                    empty.join(" and ")
                ),
            );
        }

        let config_schema = schema::compile(&info.config_schema);
        match &config_schema {
            Ok(_) => self.report.pass(
                "describe: config schema",
                "JSON, a valid JSON Schema (draft 2020-12)",
            ),
            Err(reason) => self.report.fail(
                "describe: config schema",
                format!("config-schema: {reason}"),
            ),
        }
        let secrets_schema = schema::compile(&info.secrets_schema);
        match &secrets_schema {
            Ok(_) => self.report.pass(
                "describe: secrets schema",
                "JSON, a valid JSON Schema (draft 2020-12)",
            ),
            Err(reason) => self.report.fail(
                "describe: secrets schema",
                format!("secrets-schema: {reason}"),
            ),
        }

        match &config_schema {
            Ok(schema) => {
                let config = serde_json::Value::Object(self.config.connector.clone());
                let errors = schema.errors(&config, 5);
                if errors.is_empty() {
                    self.report.pass(
                        "config: accepted by the schema",
                        format!("{} key(s) in [connector]", self.config.connector.len()),
                    );
                } else {
                    self.report.fail(
                        "config: accepted by the schema",
                        format!(
                            "[connector] breaks the config schema: {}",
                            errors.join("; ")
                        ),
                    );
                }
            }
            Err(_) => self.report.skip(
                "config: accepted by the schema",
                "the config schema is not a usable JSON Schema",
            ),
        }
        match &secrets_schema {
            Ok(schema) => {
                let names: Vec<&str> = self.config.secrets.names().collect();
                let problems = schema.secret_problems(&names);
                let count = names.len();
                if problems.is_empty() {
                    self.report.pass(
                        "secrets: named by the schema",
                        format!("{count} secret(s) in [secrets], all named by the schema"),
                    );
                } else {
                    self.report
                        .fail("secrets: named by the schema", problems.join("; "));
                }
            }
            Err(_) => self.report.skip(
                "secrets: named by the schema",
                "the secrets schema is not a usable JSON Schema",
            ),
        }
        self.info = Some(info);
        true
    }

    async fn test_connection(&mut self) {
        let started = Instant::now();
        let result = self.instance.test_connection().await;
        self.note("test-connection", started, &result);
        const CHECK: &str = "test-connection";
        match result {
            Ok(report) => {
                let unnamed = report.checks.iter().any(|c| c.name.trim().is_empty());
                let failed: Vec<String> = report
                    .checks
                    .iter()
                    .filter(|c| c.status == CheckStatus::Failed)
                    .map(|c| format!("`{}` failed: {}", c.name, c.detail))
                    .collect();
                let warnings = report
                    .checks
                    .iter()
                    .filter(|c| c.status == CheckStatus::Warning)
                    .count();
                if report.checks.is_empty() {
                    self.report
                        .fail(CHECK, "the report has no checks: say what was checked");
                } else if unnamed {
                    self.report
                        .fail(CHECK, "a check has no name: administrators read the report");
                } else if !failed.is_empty() {
                    self.report.fail(CHECK, failed.join("; "));
                } else {
                    self.report.pass(
                        CHECK,
                        format!("{} check(s) ok, {warnings} warning(s)", report.checks.len()),
                    );
                }
            }
            Err(CallError::Connector(ConnectorError::Unsupported(_))) => self
                .report
                .skip(CHECK, "the connector does not implement test-connection"),
            Err(error) => self.report.fail(CHECK, error_text(&error)),
        }
    }

    /// The find-accounts checks; the test account as found, or any one account when there is
    /// none (for the read-only checks).
    async fn find_accounts(&mut self) -> Option<(Account, bool)> {
        const EXACT: &str = "find-accounts: exact search";
        const LIMIT: &str = "find-accounts: limit";
        const PAGING: &str = "find-accounts: paging ends";
        const UNKNOWN: &str = "find-accounts: unknown name";
        if !self.supports(Features::IMPORT) {
            for check in [EXACT, LIMIT, PAGING, UNKNOWN] {
                self.report
                    .skip(check, "`import` is not declared in supports");
            }
            return None;
        }
        let mut found = None;
        match self.config.account.clone() {
            Some(name) => match self.find(&name, MatchMode::Exact, None, 10).await {
                Ok(page) => {
                    let hit = page.accounts.iter().find(|a| {
                        [
                            Some(&a.id),
                            Some(&a.username),
                            a.principal_name.as_ref(),
                            a.email.as_ref(),
                        ]
                        .into_iter()
                        .flatten()
                        .any(|v| v.eq_ignore_ascii_case(&name))
                    });
                    match hit {
                        Some(account) => {
                            self.report.pass(
                                EXACT,
                                format!("found `{name}` (id {})", account.id),
                            );
                            found = Some((account.clone(), true));
                        }
                        None => self.report.fail(
                            EXACT,
                            format!(
                                "an exact search for `{name}` returned {} account(s), none of them it",
                                page.accounts.len()
                            ),
                        ),
                    }
                }
                Err(error) => self.report.fail(EXACT, error_text(&error)),
            },
            None => self.report.skip(EXACT, "no [test] account to search for"),
        }

        match self.find("", MatchMode::Prefix, None, 1).await {
            Ok(page) if page.accounts.len() <= 1 => {
                if found.is_none() {
                    found = page.accounts.first().map(|a| (a.clone(), false));
                }
                self.report.pass(
                    LIMIT,
                    format!("a limit of 1 returned {} account(s)", page.accounts.len()),
                );
            }
            Ok(page) => self.report.fail(
                LIMIT,
                format!("a limit of 1 returned {} accounts", page.accounts.len()),
            ),
            Err(error) => self.report.fail(LIMIT, error_text(&error)),
        }

        let prefix = match (&self.config.account, &found) {
            (Some(_), Some((account, true))) => account.username.clone(),
            _ => String::new(),
        };
        self.paging(PAGING, &prefix).await;

        let nobody = format!("latchkey-conformance-nobody-{}", tag());
        match self.find(&nobody, MatchMode::Exact, None, 10).await {
            Ok(page) if page.accounts.is_empty() => self
                .report
                .pass(UNKNOWN, "an empty page for a name nobody has"),
            Ok(page) => self.report.fail(
                UNKNOWN,
                format!("{} account(s) for a name nobody has", page.accounts.len()),
            ),
            Err(error) => self.report.fail(
                UNKNOWN,
                format!(
                    "a name nobody has must give an empty page, not an error: {}",
                    error_text(&error)
                ),
            ),
        }
        found
    }

    /// Follow the cursor with a limit of 1: every page at most one account, no cursor or
    /// account twice, and an end within `max_pages` (when searching for the test account).
    async fn paging(&mut self, check: &str, prefix: &str) {
        let mut cursor: Option<String> = None;
        let mut cursors = HashSet::new();
        let mut ids = HashSet::new();
        let max = self.config.max_pages;
        for page_number in 1..=max {
            let page = match self
                .find(prefix, MatchMode::Prefix, cursor.as_deref(), 1)
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    self.report
                        .fail(check, format!("page {page_number}: {}", error_text(&error)));
                    return;
                }
            };
            if page.accounts.len() > 1 {
                self.report.fail(
                    check,
                    format!(
                        "page {page_number} has {} accounts for a limit of 1",
                        page.accounts.len()
                    ),
                );
                return;
            }
            for account in &page.accounts {
                if !ids.insert(account.id.clone()) {
                    self.report.fail(
                        check,
                        format!(
                            "page {page_number} repeats account {} of an earlier page",
                            account.id
                        ),
                    );
                    return;
                }
            }
            match page.next_cursor {
                None => {
                    self.report.pass(
                        check,
                        format!("{page_number} page(s) of 1 for prefix `{prefix}`, then no cursor"),
                    );
                    return;
                }
                Some(next) => {
                    if !cursors.insert(next.clone()) {
                        self.report.fail(
                            check,
                            format!("page {page_number} gave a cursor an earlier page gave: paging never ends"),
                        );
                        return;
                    }
                    cursor = Some(next);
                }
            }
        }
        if prefix.is_empty() {
            self.report.pass(
                check,
                format!(
                    "{max} pages of 1 with no repeated cursor or account (stopped at max_pages)"
                ),
            );
        } else {
            self.report.fail(
                check,
                format!("a prefix search for `{prefix}` had not ended after {max} pages of 1"),
            );
        }
    }

    /// The account the policy and password checks use.
    fn subject(&mut self, found: Option<(Account, bool)>) -> Option<Subject> {
        match (&self.config.account, found) {
            (_, Some((account, writable))) => Some(Subject {
                account,
                writable,
                synthetic: false,
            }),
            // Searched for and not found: the exact-search row already failed.
            (Some(_), None) if self.supports(Features::IMPORT) => None,
            // A connector without import addresses accounts by what the admin typed.
            (Some(name), None) => Some(Subject {
                account: synthetic(name, name),
                writable: true,
                synthetic: true,
            }),
            (None, None) => Some(Subject {
                account: synthetic("latchkey-conformance", "lkconformance"),
                writable: false,
                synthetic: true,
            }),
        }
    }

    async fn policy(&mut self, subject: Option<&Subject>) -> Option<PasswordPolicy> {
        const CHECK: &str = "get-policy: coherent";
        if !self.supports(Features::POLICY) {
            self.report
                .skip(CHECK, "`policy` is not declared in supports");
            return None;
        }
        let Some(subject) = subject else {
            self.report.skip(CHECK, "the test account was not found");
            return None;
        };
        match self.get_policy(&subject.account).await {
            Ok(policy) => {
                let mut problems = vec![];
                if policy.min_length > policy.max_length {
                    problems.push(format!(
                        "min-length {} is above max-length {}",
                        policy.min_length, policy.max_length
                    ));
                }
                if policy.max_length == 0 {
                    problems.push("max-length is 0".to_string());
                }
                if let Some(rule) = &policy.complexity {
                    let classes: HashSet<_> = rule.classes.iter().map(|c| *c as u8).collect();
                    if usize::from(rule.required) > classes.len() {
                        problems.push(format!(
                            "complexity requires {} classes of {} listed",
                            rule.required,
                            classes.len()
                        ));
                    }
                }
                if problems.is_empty()
                    && let Err(error) = candidates::valid(&policy, &subject.account)
                {
                    problems.push(format!("no password satisfies it: {error}"));
                }
                if problems.is_empty() {
                    let complexity = policy
                        .complexity
                        .as_ref()
                        .map(|c| format!(", {} of {} classes", c.required, c.classes.len()))
                        .unwrap_or_default();
                    self.report.pass(
                        CHECK,
                        format!(
                            "{}-{} characters{complexity}, from \"{}\"",
                            policy.min_length, policy.max_length, policy.source
                        ),
                    );
                    Some(policy)
                } else {
                    self.report.fail(CHECK, problems.join("; "));
                    None
                }
            }
            Err(CallError::Connector(ConnectorError::NotFound(_))) if subject.synthetic => {
                self.report.skip(
                    CHECK,
                    "get-policy needs an account the directory knows: set [test] account",
                );
                None
            }
            Err(error) => {
                self.report.fail(CHECK, error_text(&error));
                None
            }
        }
    }

    /// check-password against candidates built from the policy, and set-password on those it
    /// accepts; ends with a valid password set. When the last (valid) set happened: the moment
    /// before it.
    async fn passwords(
        &mut self,
        subject: Option<&Subject>,
        policy: Option<&PasswordPolicy>,
    ) -> Option<i64> {
        const VALID: &str = "check-password: a valid password";
        const SET: &str = "set-password: a valid password";
        let (Some(subject), Some(policy)) = (subject, policy) else {
            let reason = if self.supports(Features::POLICY) {
                "no coherent policy to build candidates from"
            } else {
                "`policy` is not declared in supports"
            };
            self.report.skip("check-password", reason);
            return None;
        };
        let account = subject.account.clone();
        let mut accepted_bad: Vec<Candidate> = vec![];
        for rule in Rule::ALL {
            let check = format!("check-password: {}", rule.label());
            let candidate = match candidates::breaking(rule, policy, &account) {
                Ok(candidate) => candidate,
                Err(reason) => {
                    self.report.skip(&check, reason);
                    continue;
                }
            };
            match self.check_password(&account, &candidate.password).await {
                Ok(violations) if violations.iter().any(|v| rule.reported_by(v)) => {
                    self.report.pass(
                        &check,
                        format!(
                            "{}: {}",
                            candidate.description,
                            violations_text(&violations)
                        ),
                    );
                }
                Ok(violations) if violations.is_empty() => {
                    self.report.fail(
                        &check,
                        format!(
                            "check-password accepted {}, which get-policy's own policy refuses",
                            candidate.description
                        ),
                    );
                    accepted_bad.push(candidate);
                }
                Ok(violations) => self.report.fail(
                    &check,
                    format!(
                        "for {} check-password reported {} but not the {} rule",
                        candidate.description,
                        violations_text(&violations),
                        rule.label()
                    ),
                ),
                Err(error) => self.report.fail(&check, error_text(&error)),
            }
        }
        let valid = match candidates::valid(policy, &account) {
            Ok(password) => password,
            Err(error) => {
                self.report
                    .fail(VALID, format!("no password satisfies the policy: {error}"));
                return None;
            }
        };
        let valid_length = valid.expose_secret().chars().count();
        match self.check_password(&account, &valid).await {
            Ok(violations) if violations.is_empty() => self.report.pass(
                VALID,
                format!("accepted a generated password of {valid_length} characters"),
            ),
            Ok(violations) => self.report.fail(
                VALID,
                format!(
                    "refused a password of {valid_length} characters generated to satisfy get-policy's policy: {}",
                    violations_text(&violations)
                ),
            ),
            Err(error) => self.report.fail(VALID, error_text(&error)),
        }

        let skip_writes = if !self.supports(Features::SET_PASSWORD) {
            Some("`set-password` is not declared in supports")
        } else if !subject.writable && self.config.account.is_some() {
            Some("the test account was not found: the suite writes only to the account you name")
        } else if !subject.writable {
            Some("no [test] account: the suite writes only to an account you name")
        } else {
            None
        };
        if let Some(reason) = skip_writes {
            self.report.skip(SET, reason);
            return None;
        }
        // What check-password let through must not be refused for a policy reason.
        for candidate in accepted_bad {
            let check = format!(
                "set-password: agrees with check ({})",
                candidate.rule.label()
            );
            match self.set_password(&account, &candidate.password).await {
                Err(CallError::Connector(ConnectorError::Policy(violations))) => self.report.fail(
                    &check,
                    format!(
                        "set-password refused {} that check-password had accepted: policy({}); check-password must report what set-password refuses",
                        candidate.description,
                        violations_text(&violations)
                    ),
                ),
                Ok(_) => self.report.pass(
                    &check,
                    format!(
                        "set-password took {} too (get-policy is stricter than the directory)",
                        candidate.description
                    ),
                ),
                Err(error) => self.report.fail(&check, error_text(&error)),
            }
        }
        let before = now_seconds();
        match self.set_password(&account, &valid).await {
            Ok(status) => {
                let status = match status {
                    SetStatus::Applied => "applied",
                    SetStatus::AwaitingSync => "awaiting sync",
                };
                self.report.pass(
                    SET,
                    format!("{status}; the account is left with a random password nobody knows"),
                );
                Some(before)
            }
            Err(CallError::Connector(ConnectorError::Policy(violations))) => {
                self.report.fail(
                    SET,
                    format!(
                        "set-password refused a password check-password accepted: policy({})",
                        violations_text(&violations)
                    ),
                );
                None
            }
            Err(error) => {
                self.report.fail(SET, error_text(&error));
                None
            }
        }
    }

    async fn changed_at_moves(&mut self, subject: Option<&Subject>, set_at: Option<i64>) {
        const CHECK: &str = "password-changed-at: moves";
        if !self.supports(Features::VERIFY) {
            self.report
                .skip(CHECK, "`verify` is not declared in supports");
            return;
        }
        let (Some(subject), Some(before)) = (subject, set_at) else {
            self.report
                .skip(CHECK, "no password was set by this run to compare with");
            return;
        };
        match self.changed_at(&subject.account).await {
            Ok(Some(at)) if at >= before => self.report.pass(
                CHECK,
                format!("{}s after the moment before the set", at - before),
            ),
            Ok(Some(at)) => self.report.fail(
                CHECK,
                format!(
                    "it says {at}, {}s before the set this run made (at {before} or later)",
                    before - at
                ),
            ),
            Ok(None) => self.report.fail(CHECK, "it says never, right after a set"),
            Err(error) => self.report.fail(CHECK, error_text(&error)),
        }
    }

    /// Each function on an account id made up for this run: `not-found`, never `internal`.
    async fn typed_errors(&mut self, subject: Option<&Subject>, policy: Option<&PasswordPolicy>) {
        let base = subject
            .map(|s| s.account.clone())
            .unwrap_or_else(|| synthetic("nobody", "nobody"));
        let nobody = Account {
            id: uuid::Uuid::new_v4().to_string(),
            username: format!("lk-nobody-{}", tag()),
            principal_name: None,
            display_name: None,
            email: None,
            ..base
        };
        let password = policy
            .and_then(|p| candidates::valid(p, &nobody).ok())
            .unwrap_or_else(|| SecretString::from(format!("Lk-{}-9x!", tag())));

        const POLICY: &str = "errors: get-policy, unknown account";
        if self.supports(Features::POLICY) {
            match self.get_policy(&nobody).await {
                Err(CallError::Connector(ConnectorError::NotFound(_))) => {
                    self.report.pass(POLICY, "not-found")
                }
                Ok(_) => self.report.pass(
                    POLICY,
                    "answered a policy (accepted: a policy need not depend on the account)",
                ),
                Err(error) => self.report.fail(POLICY, expected_not_found(&error)),
            }
        } else {
            self.report
                .skip(POLICY, "`policy` is not declared in supports");
        }

        const SET: &str = "errors: set-password, unknown account";
        if self.supports(Features::SET_PASSWORD) {
            match self.set_password(&nobody, &password).await {
                Err(CallError::Connector(ConnectorError::NotFound(_))) => {
                    self.report.pass(SET, "not-found")
                }
                Ok(_) => self.report.fail(
                    SET,
                    "it set a password on an account id that does not exist",
                ),
                Err(error) => self.report.fail(SET, expected_not_found(&error)),
            }
        } else {
            self.report
                .skip(SET, "`set-password` is not declared in supports");
        }

        const CHANGE: &str = "errors: change-password, unknown account";
        if self.supports(Features::CHANGE_PASSWORD) {
            let old = SecretString::from(format!("Lk-{}-8y!", tag()));
            let started = Instant::now();
            let result = self
                .instance
                .change_password(&nobody, &old, &password)
                .await;
            self.note("change-password", started, &result);
            match result {
                Err(CallError::Connector(ConnectorError::NotFound(_))) => {
                    self.report.pass(CHANGE, "not-found")
                }
                Ok(_) => self.report.fail(
                    CHANGE,
                    "it changed a password on an account id that does not exist",
                ),
                Err(error) => self.report.fail(CHANGE, expected_not_found(&error)),
            }
        } else {
            self.report
                .skip(CHANGE, "`change-password` is not declared in supports");
        }

        const CHANGED_AT: &str = "errors: password-changed-at, unknown account";
        if self.supports(Features::VERIFY) {
            match self.changed_at(&nobody).await {
                Err(CallError::Connector(ConnectorError::NotFound(_))) => {
                    self.report.pass(CHANGED_AT, "not-found")
                }
                Ok(_) => self.report.fail(
                    CHANGED_AT,
                    "it answered for an account id that does not exist",
                ),
                Err(error) => self.report.fail(CHANGED_AT, expected_not_found(&error)),
            }
        } else {
            self.report
                .skip(CHANGED_AT, "`verify` is not declared in supports");
        }
    }

    /// Every declared feature's functions answered something other than `unsupported`.
    fn features(&mut self) {
        const CHECK: &str = "describe: declared features work";
        let Some(info) = &self.info else { return };
        let mut lies = vec![];
        let mut declared = vec![];
        for (feature, name, functions) in FEATURES {
            if !info.supports.contains(feature) {
                continue;
            }
            declared.push(name);
            for (function, message) in &self.calls.unsupported {
                if functions.contains(function) {
                    lies.push(format!(
                        "supports declares `{name}`, but {function} answered unsupported ({message})"
                    ));
                }
            }
        }
        lies.dedup();
        if !lies.is_empty() {
            self.report.fail(CHECK, lies.join("; "));
        } else if declared.is_empty() {
            self.report.pass(CHECK, "no feature declared");
        } else {
            self.report
                .pass(CHECK, format!("declared: {}", declared.join(", ")));
        }
    }

    /// No call failed in the plugin itself: deadline, memory, oversize or invalid answers.
    fn limits(&mut self) {
        const CHECK: &str = "limits: every call within them";
        let deadline = self.config.limits.deadline;
        if self.calls.plugin_errors.is_empty() {
            let slowest = self
                .calls
                .slowest
                .map(|(took, function)| format!("; slowest {function} {took:.1?}"))
                .unwrap_or_default();
            self.report.pass(
                CHECK,
                format!(
                    "{} calls, none refused by the host (deadline {} ms){slowest}",
                    self.calls.count,
                    deadline.as_millis()
                ),
            );
        } else {
            let mut errors = self.calls.plugin_errors.clone();
            errors.dedup();
            self.report.fail(CHECK, errors.join("; "));
        }
    }
}

fn expected_not_found(error: &CallError) -> String {
    format!("expected not-found, got {}", error_text(error))
}

/// An account the suite made up, named `username`, with id `id`.
fn synthetic(id: &str, username: &str) -> Account {
    Account {
        id: id.to_string(),
        username: username.to_string(),
        principal_name: None,
        display_name: Some("Latchkey Conformance".into()),
        email: None,
        location: None,
        enabled: true,
        locked_out: false,
        synced_from_on_premises: false,
    }
}
