//! Why an LDAP operation could not be carried out: ldap3's errors sorted into the WIT
//! `ldap-error` kinds (unavailable, TLS, bind failed, timeout, invalid request, ...) with a
//! sentence naming the server and what to check, plus what the failure means for the
//! connection it happened on (intact, lost, or in doubt).
//!
//! It owns the wording plugins and administrators see. It must never put a password or a
//! modify's values into a sentence: it only ever sees ldap3's error, the settings' URL and
//! trust, and the name of the operation.

use std::io;

use super::settings::LdapSettings;
use super::tls;
use crate::capabilities::ldap::LdapError;

/// What a failure left the connection in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Connection {
    /// Still usable (the request was refused before it was sent, or fully answered).
    Intact,
    /// Gone (closed, reset, broken): a read-only operation may be retried on a new one.
    Lost,
    /// Not known (a timeout, a malformed answer): discard it, but retry nothing.
    InDoubt,
}

/// A failed operation: the error for the plugin, and the state of its connection.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) error: LdapError,
    pub(super) connection: Connection,
}

impl Failure {
    pub(super) fn intact(error: LdapError) -> Failure {
        Failure {
            error,
            connection: Connection::Intact,
        }
    }

    pub(super) fn timeout(settings: &LdapSettings, operation: &str) -> Failure {
        Failure {
            error: LdapError::Timeout(format!(
                "no answer from {} within {} ms to the {operation}",
                settings.url,
                settings.timeout_ms()
            )),
            connection: Connection::InDoubt,
        }
    }

    pub(super) fn malformed(settings: &LdapSettings, what: &str) -> Failure {
        Failure {
            error: LdapError::Unavailable(format!(
                "the server at {} sent {what} that is not valid LDAP; the connection was closed",
                settings.url
            )),
            connection: Connection::InDoubt,
        }
    }
}

/// A failure while connecting: TCP, TLS (or StartTLS) and the bind request itself.
pub(super) fn connect_failure(error: ldap3::LdapError, settings: &LdapSettings) -> LdapError {
    let url = &settings.url;
    match error {
        ldap3::LdapError::Io { source } => match tls_error(&source) {
            Some(tls) => LdapError::Tls(tls::describe_failure(tls, settings)),
            None => io_failure(&source, settings, "while connecting"),
        },
        ldap3::LdapError::Rustls { source } => {
            LdapError::Tls(tls::describe_failure(&source, settings))
        }
        ldap3::LdapError::DNSName { .. } => LdapError::Tls(format!(
            "`{}` in the url of {url} is not a name a TLS certificate can carry; use the DC's \
             DNS name or IP address",
            url.host()
        )),
        // Only StartTLS answers with a result while connecting.
        ldap3::LdapError::LdapResult { result } => LdapError::Tls(format!(
            "the server at {url} refused StartTLS (result code {}{}); enable TLS on the DC, or \
             use an ldaps:// url",
            result.rc,
            if result.text.is_empty() {
                String::new()
            } else {
                format!(": {}", result.text)
            }
        )),
        ldap3::LdapError::Timeout { .. } => LdapError::Timeout(format!(
            "no answer from {url} within {} ms while connecting",
            settings.timeout_ms()
        )),
        other => operation_failure(other, settings, "connection").error,
    }
}

/// A failure of an operation on an open connection.
pub(super) fn operation_failure(
    error: ldap3::LdapError,
    settings: &LdapSettings,
    operation: &str,
) -> Failure {
    let url = &settings.url;
    let lost = |error: LdapError| Failure {
        error,
        connection: Connection::Lost,
    };
    match error {
        ldap3::LdapError::Io { source } => match tls_error(&source) {
            Some(tls) => lost(LdapError::Tls(tls::describe_failure(tls, settings))),
            None => match source.kind() {
                io::ErrorKind::TimedOut => Failure::timeout(settings, operation),
                _ => lost(io_failure(
                    &source,
                    settings,
                    &format!("during the {operation}"),
                )),
            },
        },
        ldap3::LdapError::OpSend { .. }
        | ldap3::LdapError::ResultRecv { .. }
        | ldap3::LdapError::IdScrubSend { .. }
        | ldap3::LdapError::MiscSend { .. }
        | ldap3::LdapError::EndOfStream => lost(LdapError::Unavailable(format!(
            "the connection to {url} was lost during the {operation}"
        ))),
        ldap3::LdapError::Timeout { .. } => Failure::timeout(settings, operation),
        ldap3::LdapError::FilterParsing => Failure::intact(LdapError::InvalidRequest(
            "the filter is not a valid RFC 4515 filter".to_string(),
        )),
        ldap3::LdapError::AddNoValues => Failure::intact(LdapError::InvalidRequest(
            "an `add` modification needs at least one value".to_string(),
        )),
        ldap3::LdapError::Rustls { source } => {
            lost(LdapError::Tls(tls::describe_failure(&source, settings)))
        }
        ldap3::LdapError::DecodingUTF8 => Failure::malformed(settings, "text"),
        other => Failure {
            error: LdapError::Unavailable(format!("the {operation} with {url} failed: {other}")),
            connection: Connection::InDoubt,
        },
    }
}

/// The rustls error inside an I/O error from the TLS stream, if that is what it is.
fn tls_error(error: &io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

/// `during` says when: "while connecting", "during the search".
fn io_failure(error: &io::Error, settings: &LdapSettings, during: &str) -> LdapError {
    let url = &settings.url;
    match error.kind() {
        io::ErrorKind::ConnectionRefused => LdapError::Unavailable(format!(
            "nothing accepts connections at {} (connection refused) for {url}; check the url and \
             that the DC is running",
            url.authority()
        )),
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::NotConnected => LdapError::Unavailable(format!(
            "{url} closed the connection {during}{}",
            if during == "while connecting" {
                " (if this keeps happening, check that the port serves LDAPS, or StartTLS for \
                 an ldap:// url)"
            } else {
                ""
            }
        )),
        io::ErrorKind::TimedOut => LdapError::Timeout(format!(
            "no answer from {url} within {} ms {during}",
            settings.timeout_ms()
        )),
        _ => LdapError::Unavailable(format!("could not reach {url} {during}: {error}")),
    }
}
