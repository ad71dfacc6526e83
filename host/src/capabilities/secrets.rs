//! `Secrets`: the secret values a tenant set for one connector (an LDAP bind password, a Graph
//! client secret), by name, kept apart from its non-secret configuration.
//!
//! It owns holding those values in memory for the capability that attaches them. It must never
//! print, serialize or hand a value to a plugin: it has no `Display` or `Serialize`, its
//! `Debug` shows the names only, and a value leaves only through [`Secrets::get`] as a
//! [`SecretString`].

use std::collections::BTreeMap;
use std::fmt;

use secrecy::SecretString;

/// A connector's secrets by name (`bind_password`, `client_secret`, ...).
#[derive(Clone, Default)]
pub struct Secrets(BTreeMap<String, SecretString>);

impl Secrets {
    /// No secrets.
    pub fn new() -> Secrets {
        Secrets::default()
    }

    /// Sets the secret called `name`, replacing any earlier value.
    pub fn insert(&mut self, name: impl Into<String>, value: SecretString) {
        self.0.insert(name.into(), value);
    }

    /// The secret called `name`.
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.0.get(name)
    }

    /// The names of the secrets that are set, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

impl<N: Into<String>> FromIterator<(N, SecretString)> for Secrets {
    fn from_iter<I: IntoIterator<Item = (N, SecretString)>>(iter: I) -> Self {
        Secrets(iter.into_iter().map(|(n, v)| (n.into(), v)).collect())
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("names", &self.names().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn debug_shows_names_but_never_values() {
        let secrets: Secrets = [("bind_password", SecretString::from("hunter2-Secret"))]
            .into_iter()
            .collect();
        let debug = format!("{secrets:?}");
        assert!(debug.contains("bind_password"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert_eq!(
            secrets.get("bind_password").unwrap().expose_secret(),
            "hunter2-Secret"
        );
        assert!(secrets.get("client_secret").is_none());
    }
}
