//! The host side of each capability a plugin may import: `log`, `config`, `ldap`, `graph`.
//!
//! This module owns what a capability *does* for a plugin, in plain Rust; `runtime` binds it to
//! the WIT imports and checks, on every call, that the capability is both requested by the
//! plugin's manifest and granted by the tenant. Service credentials live here and in the
//! directory clients behind it; they are never handed to a plugin.
//!
//! It must never touch wasmtime, and never log a secret.

pub mod config;
pub mod graph;
pub mod ldap;
pub mod log;
pub mod secrets;

use std::fmt;

/// A capability a plugin can request in its manifest and a tenant can grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// Write to Latchkey's log (truncated, tagged, redacted).
    Log,
    /// Read this connector's non-secret configuration.
    Config,
    /// LDAP to the configured directory, bound by the host as the service account.
    Ldap,
    /// Microsoft Graph with a token the host acquires.
    Graph,
}

impl Capability {
    /// Every capability, in a fixed order.
    pub const ALL: [Capability; 4] = [
        Capability::Log,
        Capability::Config,
        Capability::Ldap,
        Capability::Graph,
    ];

    /// The name used in manifests, grants and messages.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Config => "config",
            Capability::Ldap => "ldap",
            Capability::Graph => "graph",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown capability name.
#[derive(Debug, thiserror::Error)]
#[error("unknown capability `{0}` (known: log, config, ldap, graph)")]
pub struct UnknownCapability(pub String);

impl std::str::FromStr for Capability {
    type Err = UnknownCapability;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownCapability(s.to_string()))
    }
}

impl<'de> serde::Deserialize<'de> for Capability {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Capability {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A set of capabilities.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct CapabilitySet(u8);

impl CapabilitySet {
    /// No capability.
    pub const NONE: CapabilitySet = CapabilitySet(0);

    /// Whether `capability` is in the set.
    pub fn contains(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
    }

    /// The capabilities in both sets: what a plugin may use is what its manifest requests
    /// *and* its tenant grants.
    pub fn intersection(self, other: CapabilitySet) -> CapabilitySet {
        CapabilitySet(self.0 & other.0)
    }

    /// The capabilities in the set, in a fixed order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }
}

impl FromIterator<Capability> for CapabilitySet {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        CapabilitySet(iter.into_iter().fold(0, |bits, c| bits | c.bit()))
    }
}

impl fmt::Display for CapabilitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.iter().map(Capability::name).collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(", "))
        }
    }
}

impl fmt::Debug for CapabilitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{self}}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for c in Capability::ALL {
            assert_eq!(c.name().parse::<Capability>().unwrap(), c);
        }
        let err = "files".parse::<Capability>().unwrap_err();
        assert!(err.to_string().contains("`files`"));
    }

    #[test]
    fn effective_is_the_intersection() {
        let requested: CapabilitySet = [Capability::Log, Capability::Ldap].into_iter().collect();
        let granted: CapabilitySet = [Capability::Log, Capability::Config].into_iter().collect();
        let effective = requested.intersection(granted);
        assert!(effective.contains(Capability::Log));
        assert!(!effective.contains(Capability::Ldap));
        assert!(!effective.contains(Capability::Config));
        assert_eq!(effective.to_string(), "log");
        assert_eq!(CapabilitySet::NONE.to_string(), "none");
    }
}
