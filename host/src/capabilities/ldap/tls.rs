//! TLS for a connector's LDAP connections: the rustls client configuration (the CA
//! certificates of `ca_file`, the operating system's trust store, or, only when an
//! administrator set `tls_verify: false`, a verifier that accepts any certificate), and
//! sentences for TLS failures that an administrator can act on.
//!
//! It owns what "trusted" means for a DC's certificate. It must never let a connection go
//! without TLS: even unverified, the handshake happens and its signatures are checked, so the
//! service account's password is always encrypted on the wire.

use std::io::BufReader;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::settings::{InvalidLdapSettings, LdapSettings, Trust};

/// One crypto provider for every connection (ring), chosen explicitly so that no process-wide
/// default is needed.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: LazyLock<Arc<CryptoProvider>> =
        LazyLock::new(|| Arc::new(rustls::crypto::ring::default_provider()));
    PROVIDER.clone()
}

/// The client configuration for `trust`; reads `ca_file` or the system's trust store.
pub(super) fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, InvalidLdapSettings> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| InvalidLdapSettings::new(format!("TLS cannot be set up here: {e}")))?;
    let config = match trust {
        Trust::CaFile(path) => builder
            .with_root_certificates(roots_from_file(path)?)
            .with_no_client_auth(),
        Trust::System => builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
        Trust::Unverified => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate {
                algorithms: provider().signature_verification_algorithms,
            }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, InvalidLdapSettings> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| {
        InvalidLdapSettings::new(format!(
            "`ca_file` = {shown:?} cannot be read ({e}): make it readable by the Latchkey \
             server, or remove `ca_file` to use the operating system's trust store"
        ))
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_reader_iter(BufReader::new(file)) {
        let cert = cert.map_err(|e| {
            InvalidLdapSettings::new(format!(
                "`ca_file` = {shown:?} is not a valid PEM file ({e}): point it at the PEM \
                 certificate(s) of the CA that issued the DC's certificate"
            ))
        })?;
        roots.add(cert).map_err(|e| {
            InvalidLdapSettings::new(format!(
                "`ca_file` = {shown:?} holds a certificate that cannot be used as a CA ({e}): \
                 point it at the PEM certificate(s) of the CA that issued the DC's certificate"
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(InvalidLdapSettings::new(format!(
            "`ca_file` = {shown:?} holds no PEM certificate (a block starting with \
             \"-----BEGIN CERTIFICATE-----\"): point it at the CA certificate(s) that issued the \
             DC's certificate"
        )));
    }
    Ok(roots)
}

/// The operating system's trust store, read once per process.
fn system_roots() -> Result<Arc<RootCertStore>, InvalidLdapSettings> {
    static ROOTS: LazyLock<Result<Arc<RootCertStore>, String>> = LazyLock::new(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
            return Err(format!(
                "the operating system's trust store holds no usable CA certificate{}: set \
                 `ca_file` to the PEM certificate(s) of the CA that issued the DC's certificate",
                if errors.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", errors.join("; "))
                }
            ));
        }
        Ok(Arc::new(roots))
    });
    ROOTS.clone().map_err(InvalidLdapSettings::new)
}

/// `tls_verify: false`: any certificate is accepted, but the TLS handshake (and the server's
/// signature over it) still has to succeed.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What went wrong in a TLS handshake with the connector's server, and what to do about it.
pub(super) fn describe_failure(error: &rustls::Error, settings: &LdapSettings) -> String {
    let url = &settings.url;
    match error {
        rustls::Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "the DC's certificate at {url} is not signed by {}; set ca_file to the PEM \
                 certificate of the CA that issued it",
                settings.trust
            ),
            CertificateError::NotValidForName => format!(
                "the DC's certificate at {url} is not issued for `{}`; use a url with a name the \
                 certificate carries, or reissue the certificate with `{}` in its \
                 subjectAltName",
                url.host(),
                url.host()
            ),
            CertificateError::NotValidForNameContext { presented, .. } => format!(
                "the DC's certificate at {url} is not issued for `{}` (it names {}); use a url \
                 with a name the certificate carries, or reissue the certificate with `{}` in \
                 its subjectAltName",
                url.host(),
                if presented.is_empty() {
                    "no name in its subjectAltName".to_string()
                } else {
                    presented.join(", ")
                },
                url.host()
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
                "the DC's certificate at {url} has expired; renew it on the DC (or check this \
                 server's clock)"
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!(
                    "the DC's certificate at {url} is not valid yet; check the clocks of the DC \
                     and of the Latchkey server"
                )
            }
            CertificateError::Revoked => {
                format!("the DC's certificate at {url} has been revoked; issue it a new one")
            }
            other => format!(
                "the DC's certificate at {url} was refused ({}); check the certificate, and that \
                 ca_file holds the CA that issued it",
                rustls::Error::InvalidCertificate(other.clone())
            ),
        },
        rustls::Error::InvalidMessage(_)
        | rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. } => {
            if url.is_ldaps() {
                format!(
                    "the server at {url} did not answer with TLS; check that port {} serves \
                     LDAPS (usually 636), or use an ldap:// url with `starttls: true`",
                    url.authority()
                )
            } else {
                format!("the server at {url} broke the TLS handshake after StartTLS ({error})")
            }
        }
        rustls::Error::AlertReceived(alert) => format!(
            "the server at {url} ended the TLS handshake with the alert {alert:?}; check the \
             DC's TLS settings and certificate"
        ),
        rustls::Error::PeerIncompatible(why) => format!(
            "the server at {url} and Latchkey have no TLS version or cipher suite in common \
             ({why:?}); enable TLS 1.2 or newer on the DC"
        ),
        other => format!("TLS with {url} failed: {other}"),
    }
}
