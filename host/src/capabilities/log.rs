//! `log`, and the plugin's stdout and stderr: each message goes to tracing under the target
//! `latchkey::plugin`, tagged with the plugin id, its version, the tenant and the connector.
//!
//! A plugin cannot flood the log: each message is cut at [`MAX_MESSAGE`] bytes and a call may
//! write [`CALL_BUDGET`] bytes in all, after which one line says how much was dropped. Secrets
//! handed to the call (the password being set, the old and new ones of a change) are replaced
//! by `[redacted]` wherever a careless plugin writes them.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

/// The longest single message kept, in bytes.
pub const MAX_MESSAGE: usize = 2048;
/// The most log bytes one call may write, across `log`, stdout and stderr.
pub const CALL_BUDGET: usize = 64 * 1024;

/// Where a message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The `log` import.
    Log,
    /// The plugin's standard output.
    Stdout,
    /// The plugin's standard error (where a Rust plugin's panic message goes).
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Log => "log",
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A message's level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Who is logging: the tags every message carries.
#[derive(Clone, Debug)]
pub struct LogTags {
    pub plugin: Arc<str>,
    pub version: Arc<str>,
    pub tenant: Arc<str>,
    pub connector: Arc<str>,
}

/// One call's log: tags, budget and the secrets to redact.
pub struct CallLog {
    tags: LogTags,
    secrets: Vec<SecretString>,
    written: usize,
    dropped: usize,
}

impl CallLog {
    /// A log for one call that must never show any of `secrets`.
    pub fn new(tags: LogTags, secrets: Vec<SecretString>) -> CallLog {
        CallLog {
            tags,
            secrets,
            written: 0,
            dropped: 0,
        }
    }

    /// Redact `secret` too from now on (a password the plugin handed to a capability).
    pub fn add_secret(&mut self, secret: SecretString) {
        self.secrets.push(secret);
    }

    /// `text` with every secret of this call replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            let secret = secret.expose_secret();
            if !secret.is_empty() && out.contains(secret) {
                out = out.replace(secret, "[redacted]");
            }
        }
        out
    }

    /// Write one message, within the budget.
    pub fn write(&mut self, level: Level, stream: Stream, message: &str) {
        let message = message.trim_end();
        if self.written >= CALL_BUDGET {
            self.dropped += message.len();
            return;
        }
        // Redact before cutting, so that a cut cannot leave a secret's prefix behind unredacted.
        let redacted = self.redact(message);
        let room = (CALL_BUDGET - self.written).min(MAX_MESSAGE);
        let (text, cut) = truncate(&redacted, room);
        self.written += text.len();
        let suffix = if cut > 0 {
            format!(" [... {cut} bytes cut]")
        } else {
            String::new()
        };
        emit(&self.tags, level, stream.name(), &format!("{text}{suffix}"));
    }

    /// Say how much was dropped, if anything; called once at the end of the call.
    pub fn finish(&mut self) {
        if self.dropped > 0 {
            let dropped = std::mem::take(&mut self.dropped);
            emit(
                &self.tags,
                Level::Warn,
                "host",
                &format!(
                    "plugin log budget of {CALL_BUDGET} bytes exhausted: {dropped} bytes dropped"
                ),
            );
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary, and how many bytes were cut.
pub fn truncate(text: &str, max: usize) -> (&str, usize) {
    if text.len() <= max {
        return (text, 0);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], text.len() - end)
}

fn emit(tags: &LogTags, level: Level, stream: &str, message: &str) {
    macro_rules! event {
        ($level:expr) => {
            tracing::event!(
                target: "latchkey::plugin",
                $level,
                plugin = %tags.plugin,
                version = %tags.version,
                tenant = %tags.tenant,
                connector = %tags.connector,
                stream,
                "{message}"
            )
        };
    }
    match level {
        Level::Trace => event!(tracing::Level::TRACE),
        Level::Debug => event!(tracing::Level::DEBUG),
        Level::Info => event!(tracing::Level::INFO),
        Level::Warn => event!(tracing::Level::WARN),
        Level::Error => event!(tracing::Level::ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags() -> LogTags {
        LogTags {
            plugin: "p".into(),
            version: "1".into(),
            tenant: "t".into(),
            connector: "c".into(),
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let log = CallLog::new(tags(), vec![SecretString::from("Hunter2!x")]);
        assert_eq!(
            log.redact("pw=Hunter2!x and Hunter2!x"),
            "pw=[redacted] and [redacted]"
        );
        assert_eq!(log.redact("nothing here"), "nothing here");
    }

    #[test]
    fn secrets_added_during_a_call_are_redacted_too() {
        let mut log = CallLog::new(tags(), vec![]);
        assert_eq!(log.redact("bind with Us3r-Pass"), "bind with Us3r-Pass");
        log.add_secret(SecretString::from("Us3r-Pass"));
        assert_eq!(log.redact("bind with Us3r-Pass"), "bind with [redacted]");
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        assert_eq!(truncate("héllo", 2), ("h", 5));
        assert_eq!(truncate("abc", 10), ("abc", 0));
    }

    #[test]
    fn the_budget_caps_a_call() {
        let mut log = CallLog::new(tags(), vec![]);
        let big = "x".repeat(MAX_MESSAGE * 2);
        for _ in 0..(CALL_BUDGET / MAX_MESSAGE + 10) {
            log.write(Level::Info, Stream::Log, &big);
        }
        assert_eq!(log.written, CALL_BUDGET);
        assert!(log.dropped >= 10 * big.len());
    }
}
