//! The connector plugins built into the server binary, so a fresh server can reach Active
//! Directory and Entra ID with no plugin to install. `build.rs` compiles each for wasm32-wasip2 (or takes
//! the components from `LATCHKEY_BUNDLED_PLUGINS`, a directory of prebuilt ones) and the
//! bytes are included here.

/// One bundled plugin.
#[derive(Debug)]
pub struct BundledPlugin {
    /// The plugin crate's name.
    pub name: &'static str,
    /// Its manifest.toml.
    pub manifest: &'static str,
    /// Its component.
    pub component: &'static [u8],
}

/// Every bundled plugin.
pub const PLUGINS: &[BundledPlugin] = &[
    BundledPlugin {
        name: "ad-ldap",
        manifest: include_str!("../../../plugins/ad-ldap/manifest.toml"),
        component: include_bytes!(concat!(env!("OUT_DIR"), "/ad_ldap.wasm")),
    },
    BundledPlugin {
        name: "azure-ad",
        manifest: include_str!("../../../plugins/azure-ad/manifest.toml"),
        component: include_bytes!(concat!(env!("OUT_DIR"), "/azure_ad.wasm")),
    },
];
