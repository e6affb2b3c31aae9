//! TLS for `ssl://` binds: rustls (ring provider) through tokio-rustls, certificates read
//! once at boot. ALPN offers `h2` then `http/1.1`, so browsers speak HTTP/2 over it.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::error::{Error, Result};

/// Builds the acceptor from a bind URI's query, `cert=PATH&key=PATH`. The error is one line
/// a user can act on (which file, what is wrong with it).
pub fn acceptor(query: &str) -> Result<TlsAcceptor> {
    let mut cert = None;
    let mut key = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("cert", v)) => cert = Some(v),
            Some(("key", v)) => key = Some(v),
            _ => {} // Puma's other ssl:// options (verify_mode, …) are not supported: ignored
        }
    }
    let cert = cert.ok_or_else(|| Error::Tls("TLS needs cert=PATH (a PEM certificate chain)".into()))?;
    let key = key.ok_or_else(|| Error::Tls("TLS needs key=PATH (a PEM private key)".into()))?;
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::Tls(format!("certificate {cert}: {e}")))?;
    if chain.is_empty() {
        return Err(Error::Tls(format!("certificate {cert}: no PEM certificate in it")));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        Error::Tls(match e {
            rustls_pki_types::pem::Error::NoItemsFound => format!("private key {key}: no PEM private key in it"),
            e => format!("private key {key}: {e}"),
        })
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| Error::Tls(format!("certificate {cert} with key {key}: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
