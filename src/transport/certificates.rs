//! Which certificates pop3 trusts, and how it names them: the system's roots plus a CA file, a
//! pinned fingerprint instead of a chain, client certificates, and the summary `login-check`
//! prints.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};

use super::TransportError;

/// The roots verified against first: the CA file's certificates alone when one is set (the
/// system's roots are then read only if they do not vouch for the server, see
/// [`ShowingVerifier`]), else the system's.
fn trusted_roots(ca_file: Option<&Path>) -> Result<RootCertStore, TransportError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for certificate in read_certificates(path)? {
                roots.add(certificate).map_err(|e| TransportError::CaFile {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
            }
        }
        None => system_roots(&mut roots),
    }
    if roots.is_empty() {
        return Err(TransportError::NoRootCertificates);
    }
    Ok(roots)
}

/// Adds the system's roots to `roots`. Unreadable system certificates are not fatal: the CA
/// file may be all we need.
fn system_roots(roots: &mut RootCertStore) {
    roots.add_parsable_certificates(system_certificates());
}

/// Bundle files that hold every system root in one PEM file, most common first (Debian/Ubuntu,
/// Fedora/RHEL, openSUSE, Alpine/BSD).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The system's root certificates, read as cheaply as the system allows: `SSL_CERT_FILE` when
/// set, else the distribution's single bundle file. Only without either is a certificate
/// directory read (`SSL_CERT_DIR`, or what `rustls-native-certs` probes), because that means
/// one `open` per certificate (about 150 files and 300 `statx` on Debian) on every run, while
/// the bundle holds the same certificates in one file.
fn system_certificates() -> Vec<CertificateDer<'static>> {
    let bundle = match std::env::var_os("SSL_CERT_FILE") {
        Some(file) => Some(PathBuf::from(file)),
        None if std::env::var_os("SSL_CERT_DIR").is_some() => None,
        None => SYSTEM_BUNDLES
            .iter()
            .map(PathBuf::from)
            .find(|path| path.is_file()),
    };
    if let Some(path) = bundle
        && let Ok(certificates) = CertificateDer::pem_file_iter(&path)
    {
        // Like OpenSSL, skip what does not parse rather than distrust the whole store.
        return certificates.filter_map(Result::ok).collect();
    }
    rustls_native_certs::load_native_certs().certs
}

/// The server presented a certificate other than the pinned one; holds its fingerprint.
#[derive(Debug)]
struct PinMismatch(String);

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the server's certificate is not the one pinned by tls_fingerprint: it presented SHA-256 {} (if the server's certificate was renewed, check that this is really your server, then update tls_fingerprint)",
            self.0
        )
    }
}

impl std::error::Error for PinMismatch {}

/// Upper-case hex bytes joined by colons, as `login-check` prints fingerprints.
pub fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What a [`ChainlessVerifier`] accepts.
#[derive(Debug)]
pub(super) enum Accept {
    /// Exactly the certificate with this SHA-256 fingerprint: for servers whose certificate no
    /// authority vouches for. The pin replaces the chain and name checks (that is its point).
    Pinned([u8; 32]),
    /// Any certificate: only for [`speaks_tls`](super::speaks_tls), whose connection carries
    /// nothing.
    AnyForProbe,
}

/// A verifier that checks no chain and no name, only what [`Accept`] says. The handshake
/// signatures are still verified, so only the holder of the accepted certificate's key can pass.
#[derive(Debug)]
pub(super) struct ChainlessVerifier {
    pub(super) accept: Accept,
    pub(super) provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for ChainlessVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let fingerprint = match &self.accept {
            Accept::AnyForProbe => {
                return Ok(rustls::client::danger::ServerCertVerified::assertion());
            }
            Accept::Pinned(fingerprint) => fingerprint,
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        if digest.as_ref() == fingerprint {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch(
                    colon_hex(digest.as_ref()),
                )))),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The usual verification (webpki against the trusted roots, host name, validity), which on
/// refusing a certificate carries it out in the error ([`Unverified`]) so that it can be shown:
/// rustls keeps the peer's certificates only once they are verified.
///
/// With a CA file, the chain is verified against the CA file alone first, and only if that
/// fails against the system's roots, read then (once per connector). This accepts exactly
/// what one store holding both would: a chain ends at one anchor, from one store or the other,
/// and its intermediates come from the server. It spares the usual run against a private CA
/// parsing the ~140 system roots (issue 11).
#[derive(Debug)]
pub(super) struct ShowingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    /// The system's roots, when `inner` holds only the CA file's.
    fallback: Option<SystemFallback>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

/// A verifier over the system's roots, built the first time it is needed; `None` inside when
/// the system has no usable root.
#[derive(Debug, Default)]
struct SystemFallback(OnceLock<Option<Arc<WebPkiServerVerifier>>>);

impl ShowingVerifier {
    /// Verifies against [`trusted_roots`]: `ca_file`'s certificates, then the system's roots;
    /// or the system's alone without a CA file.
    pub(super) fn new(
        ca_file: Option<&Path>,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<ShowingVerifier, TransportError> {
        let roots = trusted_roots(ca_file)?;
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| TransportError::Tls {
                host: String::new(),
                error: rustls::Error::General(e.to_string()),
                presented: None,
            })?;
        Ok(ShowingVerifier {
            inner,
            fallback: ca_file.is_some().then(SystemFallback::default),
            provider,
        })
    }

    /// The verifier over the system's roots, read on first use.
    fn system_verifier(&self) -> Option<&Arc<WebPkiServerVerifier>> {
        let fallback = self.fallback.as_ref()?;
        fallback
            .0
            .get_or_init(|| {
                let mut roots = RootCertStore::empty();
                system_roots(&mut roots);
                // No system root: the CA file's verdict stands.
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                    .build()
                    .ok()
            })
            .as_ref()
    }
}

/// A certificate the usual verification refused, and why.
#[derive(Debug)]
struct Unverified {
    cause: rustls::CertificateError,
    certificate: CertificateDer<'static>,
}

impl std::fmt::Display for Unverified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        rustls::Error::InvalidCertificate(self.cause.clone()).fmt(f)
    }
}

impl std::error::Error for Unverified {}

/// Takes a refused certificate out of a handshake error: the error as the verification gave
/// it, and the summary of the certificate the server presented.
pub(super) fn presented_certificate(
    error: &rustls::Error,
) -> (rustls::Error, Option<Box<CertificateSummary>>) {
    if let rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) = error
        && let Some(unverified) = other.0.downcast_ref::<Unverified>()
    {
        return (
            rustls::Error::InvalidCertificate(unverified.cause.clone()),
            summarize_certificate(&unverified.certificate).map(Box::new),
        );
    }
    (error.clone(), None)
}

impl ServerCertVerifier for ShowingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verify = |verifier: &WebPkiServerVerifier| {
            verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        };
        let first = match verify(&self.inner) {
            Ok(verified) => return Ok(verified),
            Err(error) => error,
        };
        let error = match self.system_verifier() {
            Some(system) => match verify(system) {
                Ok(verified) => return Ok(verified),
                // The CA file found a chain but refused it (wrong name, expired...): that
                // says more than the system's "unknown issuer".
                Err(_) if !is_unknown_issuer(&first) => first,
                Err(second) => second,
            },
            None => first,
        };
        Err(match error {
            rustls::Error::InvalidCertificate(cause) => rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(Unverified {
                    cause,
                    certificate: end_entity.clone().into_owned(),
                }))),
            ),
            other => other,
        })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    // None, as `WebPkiServerVerifier` gave: rustls 0.23 would send these names in the
    // ClientHello's `certificate_authorities` extension, and naming the system's roots there
    // would mean reading them on every run.
    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        None
    }
}

fn is_unknown_issuer(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    )
}

pub(super) fn read_certificates(
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let ca_error = |reason: String| TransportError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let certificates: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| match e {
            // Said plainly, not as the PEM reader's "I/O error: …".
            rustls::pki_types::pem::Error::Io(source) => TransportError::CaFileUnreadable {
                path: path.to_owned(),
                source,
            },
            other => ca_error(other.to_string()),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| ca_error(e.to_string()))?;
    if certificates.is_empty() {
        return Err(ca_error("it holds no PEM certificate".into()));
    }
    Ok(certificates)
}

/// A human summary of a certificate for `login-check` and for the error refusing it.
#[derive(Debug, Clone)]
pub struct CertificateSummary {
    /// The subject distinguished name.
    pub subject: String,
    /// The issuer distinguished name.
    pub issuer: String,
    /// Start of validity (RFC 2822 date).
    pub not_before: String,
    /// End of validity (RFC 2822 date).
    pub not_after: String,
    /// SHA-256 over the DER certificate, as colon-separated upper-case hex.
    pub sha256: String,
}

/// Summarises a DER certificate; `None` when it does not parse.
pub fn summarize_certificate(der: &CertificateDer<'_>) -> Option<CertificateSummary> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    let sha256 = colon_hex(digest.as_ref());
    Some(CertificateSummary {
        subject: certificate.subject().to_string(),
        issuer: certificate.issuer().to_string(),
        not_before: certificate
            .validity()
            .not_before
            .to_rfc2822()
            .unwrap_or_default(),
        not_after: certificate
            .validity()
            .not_after
            .to_rfc2822()
            .unwrap_or_default(),
        sha256,
    })
}
