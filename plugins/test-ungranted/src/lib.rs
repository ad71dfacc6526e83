//! A guest that exists only to test the host: Calls capabilities it was not granted.

use latchkey_plugin_sdk::{
    Account, Connector, ConnectorError, Features, Info, Violation, export_connector, log,
};

struct Guest;

fn info() -> Info {
    Info {
        id: "test-ungranted".into(),
        version: "0.1.0".into(),
        name: "test-ungranted".into(),
        description: "Calls capabilities it was not granted.".into(),
        supports: Features::POLICY | Features::IMPORT,
        config_schema: r#"{"type":"object"}"#.into(),
        secrets_schema: r#"{"type":"object"}"#.into(),
    }
}

use latchkey_plugin_sdk::{ErrorInfo, Report, config, graph, ldap};

fn internal(message: String) -> ConnectorError {
    ConnectorError::Internal(ErrorInfo {
        message,
        directory_text: None,
    })
}

impl Connector for Guest {
    fn describe() -> Info {
        info()
    }

    /// Opens an LDAP session: the manifest requests `ldap`; whether the tenant grants it is
    /// up to the test.
    fn test_connection() -> Result<Report, ConnectorError> {
        match ldap::open() {
            Ok(_session) => Ok(Report { checks: vec![] }),
            Err(e) => Err(internal(format!("ldap refused: {e:?}"))),
        }
    }

    /// Sends a Graph request: the manifest does not request `graph`.
    fn get_policy(
        _account: Account,
    ) -> Result<latchkey_plugin_sdk::PasswordPolicy, ConnectorError> {
        let request = graph::Request {
            method: graph::Method::Get,
            path: "/v1.0/users".into(),
            query: vec![],
            body: None,
        };
        match graph::send(&request) {
            Ok(response) => Err(internal(format!("graph answered {}", response.status))),
            Err(e) => Err(internal(format!("graph refused: {e:?}"))),
        }
    }

    /// Reads its configuration: the manifest does not request `config`.
    fn check_password(_account: Account, _candidate: String) -> Result<(), Vec<Violation>> {
        let value = config::get("anything");
        log::log(log::Level::Info, &format!("config gave {value:?}"));
        Ok(())
    }
}

export_connector!(Guest);
