//! Plugin packages: a directory holding `manifest.toml`, `plugin.wasm` and, once signed,
//! `plugin.sig`.
//!
//! The signature is Ed25519 over a domain-separated digest of the manifest's exact bytes and
//! the component's exact bytes, so changing either one (a capability added to the manifest, a
//! patched component) invalidates it. The server loads a package only when the signature
//! verifies against a key the operator trusts, or when the operator explicitly allows unsigned
//! packages.
//!
//! This module never loads or runs the component; `registry` does, after verification.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::capabilities::{Capability, CapabilitySet};

/// The manifest's file name in a package.
pub const MANIFEST_FILE: &str = "manifest.toml";
/// The component's file name in a package.
pub const COMPONENT_FILE: &str = "plugin.wasm";
/// The signature's file name in a package.
pub const SIGNATURE_FILE: &str = "plugin.sig";

const SIGNING_DOMAIN: &[u8] = b"latchkey plugin package v1\n";

/// What a plugin says about itself, outside the component: read before anything runs.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Lowercase letters, digits and dashes, e.g. `ad-ldap`.
    pub id: String,
    pub version: semver::Version,
    /// The version of the `latchkey:connector` contract the component implements.
    pub wit: semver::Version,
    /// A name for people.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// What the plugin asks to use. A tenant grants some or all of it.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
}

impl Manifest {
    /// Parse and check a manifest.
    pub fn parse(text: &str) -> Result<Manifest, PackageError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| PackageError::BadManifest(e.to_string()))?;
        let valid_id = !manifest.id.is_empty()
            && manifest.id.len() <= 64
            && manifest
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !manifest.id.starts_with('-');
        if !valid_id {
            return Err(PackageError::BadManifest(format!(
                "id `{}` must be 1 to 64 lowercase letters, digits and dashes, not starting with a dash",
                manifest.id
            )));
        }
        Ok(manifest)
    }

    /// The capabilities requested, as a set.
    pub fn requested(&self) -> CapabilitySet {
        self.capabilities.iter().copied().collect()
    }
}

/// Why a package was refused.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("the package could not be read: {0}")]
    Unreadable(String),
    #[error("the manifest is invalid: {0}")]
    BadManifest(String),
    #[error(
        "the package is not signed; sign it with `latchkey plugin sign`, or start the server with \
         --allow-unsigned-plugins to accept unsigned packages"
    )]
    Unsigned,
    #[error("the signature file is invalid: {0}")]
    BadSignatureFile(String),
    #[error(
        "the package is signed by key {key_id}, which this server does not trust; add its public key to the trusted keys"
    )]
    UntrustedSigner { key_id: String },
    #[error(
        "the signature by key {key_id} does not match the package: the manifest or the component \
         was changed after signing"
    )]
    Tampered { key_id: String },
    #[error("the component does not implement Latchkey's connector world: {0}")]
    WrongWorld(String),
    #[error("the component's contract version does not fit: {0}")]
    WitVersion(String),
    #[error(
        "the component answered `describe` with {field} `{found}`, but its manifest says `{expected}`"
    )]
    DescribeMismatch {
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("the component failed while describing itself: {0}")]
    DescribeFailed(String),
    #[error("the component could not be loaded: {0}")]
    Load(String),
}

/// A package read from disk, not yet verified.
pub struct Package {
    pub dir: PathBuf,
    pub manifest: Manifest,
    manifest_bytes: Vec<u8>,
    pub component: Vec<u8>,
    signature: Option<SignatureFile>,
}

/// `plugin.sig`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    algorithm: String,
    key_id: String,
    signature: String,
}

/// How a package was accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provenance {
    /// Signed by the trusted key with this id.
    Signed { key_id: String },
    /// Unsigned, accepted because the operator allows unsigned packages.
    UnsignedAllowed,
    /// Built into the server binary (as trusted as the binary itself).
    Bundled,
}

impl Package {
    /// Read the package in `dir`.
    pub fn read(dir: &Path) -> Result<Package, PackageError> {
        let read = |name: &str| {
            fs::read(dir.join(name))
                .map_err(|e| PackageError::Unreadable(format!("{}: {e}", dir.join(name).display())))
        };
        let manifest_bytes = read(MANIFEST_FILE)?;
        let manifest_text = std::str::from_utf8(&manifest_bytes)
            .map_err(|_| PackageError::BadManifest("not UTF-8".into()))?;
        let manifest = Manifest::parse(manifest_text)?;
        let component = read(COMPONENT_FILE)?;
        let signature = match fs::read_to_string(dir.join(SIGNATURE_FILE)) {
            Ok(text) => Some(
                toml::from_str(&text).map_err(|e| PackageError::BadSignatureFile(e.to_string()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(PackageError::Unreadable(format!("{SIGNATURE_FILE}: {e}"))),
        };
        Ok(Package {
            dir: dir.to_path_buf(),
            manifest,
            manifest_bytes,
            component,
            signature,
        })
    }

    /// A package held in memory (a plugin bundled into the binary): no directory, no signature.
    pub fn in_memory(manifest_text: &str, component: Vec<u8>) -> Result<Package, PackageError> {
        Ok(Package {
            dir: PathBuf::new(),
            manifest: Manifest::parse(manifest_text)?,
            manifest_bytes: manifest_text.as_bytes().to_vec(),
            component,
            signature: None,
        })
    }

    /// Put a manifest and a component together into a new, unsigned package directory.
    pub fn assemble(manifest: &Path, component: &Path, out: &Path) -> anyhow::Result<Package> {
        let text = fs::read_to_string(manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        Manifest::parse(&text)?;
        fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        fs::copy(manifest, out.join(MANIFEST_FILE))
            .with_context(|| format!("copying {}", manifest.display()))?;
        fs::copy(component, out.join(COMPONENT_FILE))
            .with_context(|| format!("copying {}", component.display()))?;
        let _ = fs::remove_file(out.join(SIGNATURE_FILE));
        Ok(Package::read(out)?)
    }

    /// The SHA-256 of the component.
    pub fn component_sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.component).into()
    }

    fn signed_message(&self) -> Vec<u8> {
        let mut message = SIGNING_DOMAIN.to_vec();
        message.extend_from_slice(&Sha256::digest(&self.manifest_bytes));
        message.extend_from_slice(&self.component_sha256());
        message
    }

    /// Sign the package with `key`, writing `plugin.sig`.
    pub fn sign(&mut self, key: &SigningKey) -> anyhow::Result<String> {
        let signature = key.sign(&self.signed_message());
        let key_id = key_id(&key.verifying_key());
        let file = SignatureFile {
            algorithm: "ed25519".into(),
            key_id: key_id.clone(),
            signature: BASE64.encode(signature.to_bytes()),
        };
        fs::write(self.dir.join(SIGNATURE_FILE), toml::to_string(&file)?)
            .context("writing the signature")?;
        self.signature = Some(file);
        Ok(key_id)
    }

    /// Check the signature against `trust`.
    pub fn verify(&self, trust: &TrustStore) -> Result<Provenance, PackageError> {
        let Some(file) = &self.signature else {
            return if trust.allow_unsigned {
                Ok(Provenance::UnsignedAllowed)
            } else {
                Err(PackageError::Unsigned)
            };
        };
        if file.algorithm != "ed25519" {
            return Err(PackageError::BadSignatureFile(format!(
                "algorithm `{}` is not supported (only ed25519)",
                file.algorithm
            )));
        }
        let key = trust
            .keys
            .get(&file.key_id)
            .ok_or_else(|| PackageError::UntrustedSigner {
                key_id: file.key_id.clone(),
            })?;
        let bytes: [u8; 64] = BASE64
            .decode(&file.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                PackageError::BadSignatureFile("the signature is not 64 bytes of base64".into())
            })?;
        key.verify_strict(&self.signed_message(), &Signature::from_bytes(&bytes))
            .map_err(|_| PackageError::Tampered {
                key_id: file.key_id.clone(),
            })?;
        Ok(Provenance::Signed {
            key_id: file.key_id.clone(),
        })
    }
}

/// A key's id: the first 8 bytes of the SHA-256 of its public key, in hex.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// The keys whose signatures the server accepts, and whether it accepts unsigned packages.
#[derive(Default)]
pub struct TrustStore {
    keys: BTreeMap<String, VerifyingKey>,
    allow_unsigned: bool,
}

impl TrustStore {
    /// The same trust, also accepting packages without a signature: an explicit operator
    /// choice for plugin development, logged when the server starts.
    pub fn allowing_unsigned(mut self) -> TrustStore {
        self.allow_unsigned = true;
        self
    }

    /// Whether packages without a signature are accepted.
    pub fn allows_unsigned(&self) -> bool {
        self.allow_unsigned
    }

    /// Trust `key`.
    pub fn trust(&mut self, key: VerifyingKey) -> String {
        let id = key_id(&key);
        self.keys.insert(id.clone(), key);
        id
    }

    /// Trust every `*.pem` public key in `dir` (a missing directory trusts nothing).
    pub fn load_dir(&mut self, dir: &Path) -> anyhow::Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "pem") {
                self.trust(read_public_key(&path)?);
            }
        }
        Ok(())
    }

    /// The ids of the trusted keys.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

/// A new signing key, written to `path` (PKCS#8 PEM, mode 0600) with its public key beside it
/// at `path.pub.pem`. Returns the key id.
pub fn generate_key(path: &Path) -> anyhow::Result<String> {
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let pem = key
        .to_pkcs8_pem(Default::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    write_private(path, pem.as_bytes())?;
    let public = key
        .verifying_key()
        .to_public_key_pem(Default::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    fs::write(public_key_path(path), public)?;
    Ok(key_id(&key.verifying_key()))
}

/// Where [`generate_key`] writes the public key of the private key at `path`.
pub fn public_key_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub.pem");
    PathBuf::from(name)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

/// Read a private signing key (PKCS#8 PEM).
pub fn read_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    let pem = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        anyhow::anyhow!(
            "{} is not an Ed25519 private key in PKCS#8 PEM: {e}",
            path.display()
        )
    })
}

/// Read a public key (SPKI PEM).
pub fn read_public_key(path: &Path) -> anyhow::Result<VerifyingKey> {
    let pem = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    VerifyingKey::from_public_key_pem(&pem).map_err(|e| {
        anyhow::anyhow!(
            "{} is not an Ed25519 public key in PEM: {e}",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
id = "acme-dir"
version = "1.2.3"
wit = "0.1.0"
name = "Acme"
capabilities = ["ldap", "log"]
"#;

    fn package(dir: &Path) -> Package {
        fs::write(dir.join("m.toml"), MANIFEST).unwrap();
        fs::write(dir.join("c.wasm"), b"\0asm component bytes").unwrap();
        Package::assemble(&dir.join("m.toml"), &dir.join("c.wasm"), &dir.join("pkg")).unwrap()
    }

    #[test]
    fn manifests_are_checked() {
        let m = Manifest::parse(MANIFEST).unwrap();
        assert_eq!(m.requested().to_string(), "log, ldap");
        let err = Manifest::parse(&MANIFEST.replace("acme-dir", "Acme Dir")).unwrap_err();
        assert!(err.to_string().contains("lowercase"), "{err}");
        let err = Manifest::parse(&MANIFEST.replace("\"ldap\"", "\"files\"")).unwrap_err();
        assert!(
            err.to_string().contains("unknown capability `files`"),
            "{err}"
        );
        let err = Manifest::parse(&format!("{MANIFEST}\nextra = 1")).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn signing_and_verification() {
        let dir = tempfile::tempdir().unwrap();
        let mut pkg = package(dir.path());
        let mut trust = TrustStore::default();
        assert!(matches!(pkg.verify(&trust), Err(PackageError::Unsigned)));
        assert_eq!(
            pkg.verify(&TrustStore::default().allowing_unsigned())
                .unwrap(),
            Provenance::UnsignedAllowed
        );

        let key_path = dir.path().join("key.pem");
        let id = generate_key(&key_path).unwrap();
        let key = read_signing_key(&key_path).unwrap();
        assert_eq!(pkg.sign(&key).unwrap(), id);
        let pkg = Package::read(&dir.path().join("pkg")).unwrap();
        assert!(matches!(
            pkg.verify(&trust),
            Err(PackageError::UntrustedSigner { .. })
        ));
        let trusted = dir.path().join("trusted");
        fs::create_dir(&trusted).unwrap();
        fs::copy(public_key_path(&key_path), trusted.join("acme.pem")).unwrap();
        trust.load_dir(&trusted).unwrap();
        assert_eq!(trust.key_ids().collect::<Vec<_>>(), vec![id.as_str()]);
        assert_eq!(
            pkg.verify(&trust).unwrap(),
            Provenance::Signed { key_id: id.clone() }
        );

        // Any change to the manifest or the component breaks the signature.
        fs::write(
            dir.path().join("pkg").join(MANIFEST_FILE),
            MANIFEST.replace("\"log\"", "\"graph\""),
        )
        .unwrap();
        let tampered = Package::read(&dir.path().join("pkg")).unwrap();
        assert!(matches!(
            tampered.verify(&trust),
            Err(PackageError::Tampered { .. })
        ));
        fs::write(dir.path().join("pkg").join(MANIFEST_FILE), MANIFEST).unwrap();
        fs::write(
            dir.path().join("pkg").join(COMPONENT_FILE),
            b"\0asm component byteZ",
        )
        .unwrap();
        let tampered = Package::read(&dir.path().join("pkg")).unwrap();
        assert!(matches!(
            tampered.verify(&trust),
            Err(PackageError::Tampered { .. })
        ));
    }

    #[test]
    fn keygen_never_overwrites_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        generate_key(&path).unwrap();
        assert!(generate_key(&path).is_err());
    }
}
