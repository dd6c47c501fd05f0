//! TLS (feature `tls`): gRPC over HTTP/2 over TLS with rustls and its ring
//! provider, for the server ([`crate::Server::serve_tls`]) and the client
//! ([`crate::Channel::connect_tls`]).
//!
//! Both sides offer and expect ALPN `h2` (RFC 9113 §3.2, and grpc-go `credentials/tls.go`): grpc-go
//! clients refuse a TLS server that negotiates nothing, and rustls refuses
//! a client that offers ALPN without `h2`. A client that offers no ALPN at
//! all is served HTTP/2 anyway (prior knowledge, as over plain TCP).
//!
//! The handshake runs on the connection's shard under the same time limit
//! as the HTTP/2 handshake, never on the task that accepts connections, so
//! a slow or silent client cannot hold up the others.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

pub use futures_rustls::{TlsAcceptor, TlsConnector};
pub use rustls;

/// The ALPN protocol of HTTP/2 over TLS.
pub const ALPN_H2: &[u8] = b"h2";

/// A TLS configuration that cannot be built: the operator's files or
/// settings are at fault.
#[derive(Debug)]
pub struct TlsConfigError(String);

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsConfigError {}

impl From<TlsConfigError> for io::Error {
    fn from(e: TlsConfigError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in the PEM file at `path`, in order.
pub fn certificates_from_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let bad = |e: rustls::pki_types::pem::Error| {
        TlsConfigError(format!("certificates in {}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(bad)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    if certs.is_empty() {
        return Err(TlsConfigError(format!(
            "{}: no PEM certificate (BEGIN CERTIFICATE) in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in the PEM file at `path`.
pub fn private_key_from_pem(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| TlsConfigError(format!("private key in {}: {e}", path.display())))
}

/// A server configuration: the certificate chain `certs` (the server's
/// first) with its `key`, TLS 1.2 and 1.3, no client certificates, ALPN h2.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsConfigError(format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// [`server_config`] from PEM files: the chain at `cert`, the key at `key`.
pub fn server_config_from_pem(
    cert: &Path,
    key: &Path,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    server_config(certificates_from_pem(cert)?, private_key_from_pem(key)?)
}

/// A client configuration trusting the certificates in `roots`, ALPN h2.
pub fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// [`client_config`] trusting every certificate in the PEM file at `ca`.
pub fn client_config_from_pem(ca: &Path) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates_from_pem(ca)? {
        roots
            .add(cert)
            .map_err(|e| TlsConfigError(format!("a certificate in {}: {e}", ca.display())))?;
    }
    client_config(roots)
}

/// Checks what a finished handshake agreed on: `h2`, or nothing.
pub(crate) fn check_alpn(negotiated: Option<&[u8]>) -> io::Result<()> {
    match negotiated {
        None => Ok(()),
        Some(p) if p == ALPN_H2 => Ok(()),
        Some(p) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("ALPN {:?} is not h2", String::from_utf8_lossy(p)),
        )),
    }
}
