//! `latchkey plugin new`: a new connector plugin crate that builds, passes its own unit tests
//! and passes `latchkey plugin test` as it is, with `TODO:`s where the integrator's work goes.
//!
//! It owns the templates (embedded in the binary from `host/templates/plugin/`) and the rules
//! for a plugin's name. It never overwrites anything: an existing directory is refused.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

const CARGO_TOML: &str = include_str!("../templates/plugin/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("../templates/plugin/lib.rs.tmpl");
const MANIFEST: &str = include_str!("../templates/plugin/manifest.toml.tmpl");
const README: &str = include_str!("../templates/plugin/README.md.tmpl");
const CONFORMANCE: &str = include_str!("../templates/plugin/conformance.toml.tmpl");
const GITIGNORE: &str = include_str!("../templates/plugin/gitignore.tmpl");

/// The SDK of the checkout this binary was built from.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk");

/// What `plugin new` was asked for.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    /// The plugin's id, also its crate's name.
    pub name: String,
    /// The directory to create (default: `./NAME`).
    pub dir: Option<PathBuf>,
    /// The SDK crate to depend on (default: this checkout's `plugins/sdk`).
    pub sdk: Option<PathBuf>,
}

/// Whether `name` can be a plugin id and a crate name: 1 to 64 lowercase ASCII letters, digits
/// and single dashes, starting with a letter and not ending with a dash.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a plugin name: use 1 to 64 lowercase letters, digits and single \
             dashes, starting with a letter (e.g. `acme-directory`)"
        ))
    }
}

/// `acme-directory` → `AcmeDirectory` (the connector's type).
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `acme-directory` → `Acme Directory` (the connector's name for people, until changed).
fn title(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The SDK directory to depend on, absolute, checked to be the SDK crate.
fn sdk_path(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = given.unwrap_or(Path::new(BUILT_SDK));
    let absolute = path.canonicalize().with_context(|| {
        format!(
            "the plugin SDK is not at {}: pass --sdk with the path of Latchkey's plugins/sdk",
            path.display()
        )
    })?;
    let manifest = fs::read_to_string(absolute.join("Cargo.toml")).with_context(|| {
        format!(
            "{} has no Cargo.toml: pass --sdk with the path of Latchkey's plugins/sdk",
            absolute.display()
        )
    })?;
    anyhow::ensure!(
        manifest.contains("name = \"latchkey-plugin-sdk\""),
        "{} is not the latchkey-plugin-sdk crate: pass --sdk with the path of Latchkey's \
         plugins/sdk",
        absolute.display()
    );
    Ok(absolute)
}

/// A string as the inside of a TOML basic string.
fn toml_escaped(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The files of a new plugin, by path inside its directory.
pub fn render(name: &str, sdk: &Path) -> Vec<(&'static str, String)> {
    let fill = |template: &str| {
        template
            .replace("{{id}}", name)
            .replace("{{crate_file}}", &name.replace('-', "_"))
            .replace("{{type}}", &type_name(name))
            .replace("{{title}}", &title(name))
            .replace("{{sdk}}", &toml_escaped(&sdk.to_string_lossy()))
    };
    vec![
        ("Cargo.toml", fill(CARGO_TOML)),
        ("src/lib.rs", fill(LIB_RS)),
        ("manifest.toml", fill(MANIFEST)),
        ("README.md", fill(README)),
        ("conformance.toml", fill(CONFORMANCE)),
        (".gitignore", fill(GITIGNORE)),
    ]
}

/// Create the plugin crate; the directory created.
pub fn create(request: &NewPlugin) -> anyhow::Result<PathBuf> {
    validate_name(&request.name).map_err(anyhow::Error::msg)?;
    let sdk = sdk_path(request.sdk.as_deref())?;
    let dir = request
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&request.name));
    anyhow::ensure!(
        !dir.exists(),
        "{} already exists; choose another --dir (nothing was written)",
        dir.display()
    );
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    // `create_dir` (not `_all`) fails if someone created it meanwhile: still no overwrite.
    fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::create_dir(dir.join("src")).with_context(|| format!("creating {}/src", dir.display()))?;
    for (path, text) in render(&request.name, &sdk) {
        fs::write(dir.join(path), text)
            .with_context(|| format!("writing {}", dir.join(path).display()))?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_digits_and_dashes() {
        for good in ["acme", "acme-directory", "hr2-ldap", "a"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "Acme", "acme_dir", "-acme", "acme-", "2fa", "a--b", "acme dir", "é",
        ] {
            let error = validate_name(bad).unwrap_err();
            assert!(error.contains("lowercase letters"), "{bad}: {error}");
        }
        assert!(validate_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn templates_are_filled_everywhere() {
        let files = render("acme-directory", Path::new("/opt/latchkey/plugins/sdk"));
        for (path, text) in &files {
            assert!(!text.contains("{{"), "{path} has an unfilled placeholder");
        }
        let get = |name: &str| &files.iter().find(|(p, _)| *p == name).unwrap().1;
        assert!(get("src/lib.rs").contains("struct AcmeDirectory;"));
        assert!(get("src/lib.rs").contains("export_connector!(AcmeDirectory);"));
        assert!(get("src/lib.rs").contains("TODO:"));
        assert!(get("Cargo.toml").contains("path = \"/opt/latchkey/plugins/sdk\""));
        assert!(get("Cargo.toml").contains("[workspace]"));
        assert!(get("README.md").contains("acme_directory.wasm"));
        let manifest =
            crate::runtime::Manifest::parse(get("manifest.toml")).expect("a valid manifest");
        assert_eq!(manifest.id, "acme-directory");
        assert_eq!(manifest.name, "Acme Directory");
        let config: toml::Table = toml::from_str(get("conformance.toml")).expect("TOML");
        assert!(config.contains_key("connector"));
    }

    #[test]
    fn an_existing_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = create(&NewPlugin {
            name: "acme".into(),
            dir: Some(dir.path().to_path_buf()),
            sdk: None,
        })
        .unwrap_err();
        assert!(error.to_string().contains("already exists"), "{error}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
