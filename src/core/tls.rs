//! Building the rustls client configuration from a [`TlsConfig`].

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use super::config::{ClientCertificate, PemSource, TlsConfig};
use super::error::ConfigError;

/// Build the client TLS configuration (without ALPN, which depends on the scheme).
pub(crate) fn client_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, ConfigError> {
    install_crypto_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|err| ConfigError::InvalidCaCertificate {
            reason: err.to_string(),
        })?;

    let builder = if tls.danger_accept_any_certificate {
        log::warn!("TLS certificate verification is DISABLED (danger_accept_any_certificate); never use this outside development");
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                pins: None,
                provider,
            }))
    } else if !tls.pinned_sha256.is_empty() {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                pins: Some(tls.pinned_sha256.clone()),
                provider,
            }))
    } else {
        builder.with_root_certificates(root_store(tls)?)
    };
    let config = match &tls.client_certificate {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let (chain, key) = client_identity(identity)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|err| invalid_client_certificate(err.to_string()))?
        }
    };
    Ok(config)
}

fn invalid_client_certificate(reason: String) -> ConfigError {
    ConfigError::InvalidClientCertificate { reason }
}

/// Read and parse the client certificate chain and key (files read now, at each call).
fn client_identity(
    identity: &ClientCertificate,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ConfigError> {
    let read = |source: &PemSource, what: &str| match source {
        PemSource::Pem(pem) => Ok(pem.clone()),
        PemSource::File(path) => std::fs::read(path).map_err(|err| {
            invalid_client_certificate(format!(
                "cannot read the {what} file '{}': {err}",
                path.display()
            ))
        }),
    };
    let chain_pem = read(&identity.chain, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| invalid_client_certificate(format!("certificate: {err}")))?;
    if chain.is_empty() {
        return Err(invalid_client_certificate(
            "no PEM 'CERTIFICATE' block in the certificate chain".into(),
        ));
    }
    let key_pem = read(&identity.key, "key")?;
    // The parser's error names only the PEM section kind, never key material.
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|err| invalid_client_certificate(format!("no usable PEM private key ({err})")))?;
    Ok((chain, key))
}

fn root_store(tls: &TlsConfig) -> Result<rustls::RootCertStore, ConfigError> {
    let mut roots = if tls.use_system_roots {
        system_roots().clone()
    } else {
        rustls::RootCertStore::empty()
    };
    for pem in &tls.extra_ca_pem {
        add_pem(&mut roots, pem)?;
    }
    for path in &tls.extra_ca_files {
        let pem = std::fs::read(path).map_err(|err| ConfigError::CaFileUnreadable {
            path: path.display().to_string(),
            reason: err.to_string(),
        })?;
        add_pem(&mut roots, &pem)?;
    }
    Ok(roots)
}

/// The system's root certificates, read from disk and parsed once per process (that costs
/// tens of milliseconds, far more under valgrind, and every client and connect needs them,
/// inside its connect timeout). rustls-native-certs honours `SSL_CERT_FILE` and
/// `SSL_CERT_DIR` as set when the first client is created.
fn system_roots() -> &'static rustls::RootCertStore {
    static ROOTS: std::sync::OnceLock<rustls::RootCertStore> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let native = rustls_native_certs::load_native_certs();
        for err in &native.errors {
            log::debug!("skipping unreadable system certificate source: {err}");
        }
        let mut roots = rustls::RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        log::debug!("trusting {added} system root certificates ({ignored} unparsable skipped)");
        roots
    })
}

/// Install the process-wide rustls crypto provider (ring) once. Both ring and aws-lc-rs are
/// compiled in through dependencies, so rustls cannot pick one by itself.
pub(crate) fn install_crypto_provider() {
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| {
        // Err means another component installed a provider first, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn add_pem(roots: &mut rustls::RootCertStore, pem: &[u8]) -> Result<(), ConfigError> {
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|err| ConfigError::InvalidCaCertificate {
            reason: err.to_string(),
        })?;
        roots
            .add(cert)
            .map_err(|err| ConfigError::InvalidCaCertificate {
                reason: err.to_string(),
            })?;
        count += 1;
    }
    if count == 0 {
        return Err(ConfigError::InvalidCaCertificate {
            reason: "no PEM 'CERTIFICATE' block found".into(),
        });
    }
    Ok(())
}

/// SHA-256 of a DER certificate.
pub fn certificate_sha256(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// Accepts a server certificate by fingerprint (`pins: Some`) or unconditionally
/// (`pins: None`, development only). Handshake signatures are always verified.
#[derive(Debug)]
struct Pinned {
    pins: Option<Vec<[u8; 32]>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(pins) = &self.pins else {
            return Ok(ServerCertVerified::assertion());
        };
        let digest = certificate_sha256(end_entity.as_ref());
        if pins.contains(&digest) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate fingerprint mismatch: the relay presented SHA-256 {} which is not pinned",
                digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
