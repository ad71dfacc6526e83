//! A guest that exists only to test the host: Tries to read files, the environment and open sockets.

use latchkey_plugin_sdk::{Connector, ConnectorError, Features, Info, export_connector};

struct Guest;

fn info() -> Info {
    Info {
        id: "test-escape".into(),
        version: "0.1.0".into(),
        name: "test-escape".into(),
        description: "Tries to read files, the environment and open sockets.".into(),
        supports: Features::POLICY | Features::IMPORT,
        config_schema: r#"{"type":"object"}"#.into(),
        secrets_schema: r#"{"type":"object"}"#.into(),
    }
}

use latchkey_plugin_sdk::{AccountPage, AccountQuery, ErrorInfo};

/// One attempt, as `name=ok` or `name=denied(reason)`.
fn attempt<T, E: std::fmt::Display>(name: &str, result: Result<T, E>) -> String {
    match result {
        Ok(_) => format!("{name}=ok"),
        Err(e) => format!("{name}=denied({e})"),
    }
}

impl Connector for Guest {
    fn describe() -> Info {
        info()
    }

    /// The query text is the address of a listener the test opened; the answer lists what
    /// happened to each attempt.
    fn find_accounts(
        query: AccountQuery,
        _cursor: Option<String>,
        _limit: u32,
    ) -> Result<AccountPage, ConnectorError> {
        let attempts = [
            attempt("read-file", std::fs::read("/etc/passwd")),
            attempt("read-dir", std::fs::read_dir("/")),
            attempt("create-file", std::fs::write("latchkey-escape.txt", b"x")),
            attempt(
                "env",
                std::env::vars()
                    .next()
                    .map(|_| ())
                    .ok_or("no environment variables"),
            ),
            attempt(
                "tcp-connect",
                std::net::TcpStream::connect(query.text.as_str()),
            ),
            attempt("tcp-listen", std::net::TcpListener::bind("127.0.0.1:0")),
            attempt("udp-bind", std::net::UdpSocket::bind("127.0.0.1:0")),
        ];
        Err(ConnectorError::Internal(ErrorInfo {
            message: attempts.join(";"),
            directory_text: None,
        }))
    }
}

export_connector!(Guest);
