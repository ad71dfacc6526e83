//! Does a component implement Latchkey's connector world? Checked before a plugin is loaded,
//! with an answer an integrator can act on: what is missing, what is extra, which version.
//!
//! Two sources of the contract version are read: the `latchkey:wit-version` custom section the
//! Rust SDK stamps, and the version in the name of the component's `connector` export (which
//! components built in any language carry). They must agree with the manifest.

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

/// The contract versions this host binds.
pub const SUPPORTED_WIT: &[&str] = &["0.1.0"];

/// The export a connector must provide, without its version.
const CONNECTOR_INTERFACE: &str = "latchkey:connector/connector";

/// The functions of the `connector` interface.
pub const CONNECTOR_FUNCTIONS: [&str; 8] = [
    "describe",
    "test-connection",
    "find-accounts",
    "get-policy",
    "check-password",
    "set-password",
    "change-password",
    "password-changed-at",
];

/// The name of the custom section holding the contract version.
pub const WIT_VERSION_SECTION: &str = "latchkey:wit-version";

/// The version in the `latchkey:wit-version` custom section of any module inside the
/// component, if there is one.
pub fn stamped_wit_version(component: &[u8]) -> Result<Option<String>, String> {
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        let payload = payload.map_err(|e| format!("the component cannot be parsed: {e}"))?;
        if let wasmparser::Payload::CustomSection(section) = payload
            && section.name() == WIT_VERSION_SECTION
        {
            return std::str::from_utf8(section.data())
                .map(|v| Some(v.to_string()))
                .map_err(|_| format!("the {WIT_VERSION_SECTION} section is not UTF-8"));
        }
    }
    Ok(None)
}

/// Whether `bytes` is a core module rather than a component.
pub fn is_core_module(bytes: &[u8]) -> bool {
    wasmparser::Parser::is_core_wasm(bytes)
}

/// Check that `component` exports the `connector` interface with every function, in version
/// `wit`, and imports nothing the host does not provide.
pub fn check(engine: &Engine, component: &Component, wit: &str) -> Result<(), String> {
    let ty = component.component_type();
    let exports: Vec<(String, ComponentItem)> = ty
        .exports(engine)
        .map(|(name, item)| (name.to_string(), item.ty))
        .collect();
    let expected = format!("{CONNECTOR_INTERFACE}@{wit}");
    let Some((_, item)) = exports.iter().find(|(name, _)| *name == expected) else {
        let names: Vec<&str> = exports.iter().map(|(n, _)| n.as_str()).collect();
        if let Some(other) = names.iter().find(|n| n.starts_with(CONNECTOR_INTERFACE)) {
            return Err(format!(
                "it exports `{other}`, but its manifest says contract version {wit}"
            ));
        }
        return Err(format!(
            "it does not export `{expected}` (it exports: {}). Build it for the world `plugin` of \
             wit/connector.wit; with the Rust SDK, implement `Connector` and call \
             `export_connector!`",
            if names.is_empty() {
                "nothing".to_string()
            } else {
                names.join(", ")
            }
        ));
    };
    let ComponentItem::ComponentInstance(instance) = item else {
        return Err(format!(
            "its `{expected}` export is not an interface instance"
        ));
    };
    let functions: Vec<String> = instance
        .exports(engine)
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
        .map(|(name, _)| name.to_string())
        .collect();
    let missing: Vec<&str> = CONNECTOR_FUNCTIONS
        .into_iter()
        .filter(|f| !functions.iter().any(|g| g == f))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "its `connector` export lacks the function(s): {}",
            missing.join(", ")
        ));
    }
    let provided = |name: &str| {
        name.starts_with("wasi:")
            || ["types", "log", "config", "ldap", "graph"]
                .iter()
                .any(|i| name == format!("latchkey:connector/{i}@{wit}"))
    };
    let foreign: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .filter(|n| !provided(n))
        .collect();
    if !foreign.is_empty() {
        return Err(format!(
            "it imports {}, which Latchkey does not provide (a connector may import \
             latchkey:connector/{{log,config,ldap,graph}} and WASI 0.2)",
            foreign.join(", ")
        ));
    }
    Ok(())
}
