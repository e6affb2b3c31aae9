//! TLS for `ssl://` binds: rustls (ring provider) through tokio-rustls, certificates read
//! once at boot. ALPN offers `h2` then `http/1.1`, so browsers speak HTTP/2 over it.
//!
//! The bind's query is Puma's: `cert=PATH&key=PATH` (PEM), and for client certificates
//! `ca=PATH&verify_mode=peer|force_peer` (verified against those CAs when a client sends
//! one, or required of every client); `verify_mode=none` (the default) asks for none.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::danger::ClientCertVerifier;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::error::{Error, Result};

/// What a bind's query asks of TLS.
#[derive(Debug, Default, PartialEq)]
struct Query<'a> {
    cert: Option<&'a str>,
    key: Option<&'a str>,
    ca: Option<&'a str>,
    verify_mode: Option<&'a str>,
}

fn parse(query: &str) -> Result<Query<'_>> {
    let mut q = Query::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("cert", v)) => q.cert = Some(v),
            Some(("key", v)) => q.key = Some(v),
            Some(("ca", v)) => q.ca = Some(v),
            Some(("verify_mode", v)) => q.verify_mode = Some(v),
            // Puma's TCP tuning and TLS-version floors: Lunar listens with its own backlog and speaks TLS 1.2+.
            Some(("backlog" | "low_latency" | "no_tlsv1" | "no_tlsv1_1", _)) => {}
            _ => return Err(Error::Tls(format!("{pair:?} is not a TLS setting Lunar knows (cert, key, ca, verify_mode)"))),
        }
    }
    Ok(q)
}

/// Builds the acceptor from a bind URI's query. The error is one line a user can act on
/// (which file, what is wrong with it).
pub fn acceptor(query: &str) -> Result<TlsAcceptor> {
    let q = parse(query)?;
    let cert = q.cert.ok_or_else(|| Error::Tls("TLS needs cert=PATH (a PEM certificate chain)".into()))?;
    let key = q.key.ok_or_else(|| Error::Tls("TLS needs key=PATH (a PEM private key)".into()))?;
    let chain = certificates(cert, "certificate")?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        Error::Tls(match e {
            rustls_pki_types::pem::Error::NoItemsFound => format!("private key {key}: no PEM private key in it"),
            e => format!("private key {key}: {e}"),
        })
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().map_err(|e| Error::Tls(format!("TLS: {e}")))?;
    let mut config = match client_verifier(&q, provider)? {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    }
    .with_single_cert(chain, key_der)
    .map_err(|e| Error::Tls(format!("certificate {cert} with key {key}: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The client-certificate check `verify_mode` asks for, with the CAs of `ca`.
fn client_verifier(q: &Query<'_>, provider: Arc<rustls::crypto::CryptoProvider>) -> Result<Option<Arc<dyn ClientCertVerifier>>> {
    let required = match q.verify_mode.unwrap_or("none") {
        "none" => return Ok(None),
        "peer" => false,
        "force_peer" => true,
        other => return Err(Error::Tls(format!("verify_mode={other}: use none, peer or force_peer"))),
    };
    let ca = q.ca.ok_or_else(|| Error::Tls("verify_mode peer or force_peer needs ca=PATH (PEM CA certificates)".into()))?;
    let mut roots = RootCertStore::empty();
    for certificate in certificates(ca, "CA certificates")? {
        roots.add(certificate).map_err(|e| Error::Tls(format!("CA certificates {ca}: {e}")))?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = if required { builder } else { builder.allow_unauthenticated() };
    builder.build().map(Some).map_err(|e| Error::Tls(format!("CA certificates {ca}: {e}")))
}

fn certificates(path: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::Tls(format!("{what} {path}: {e}")))?;
    if chain.is_empty() {
        return Err(Error::Tls(format!("{what} {path}: no PEM certificate in it")));
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_pumas_and_nothing_is_ignored_silently() {
        let q = parse("cert=c.pem&key=k.pem&ca=ca.pem&verify_mode=force_peer&backlog=1024").unwrap();
        assert_eq!(q, Query { cert: Some("c.pem"), key: Some("k.pem"), ca: Some("ca.pem"), verify_mode: Some("force_peer") });
        assert!(parse("cert=c.pem&ssl_cipher_filter=x").is_err());
        let none = Query { verify_mode: Some("none"), ..Query::default() };
        assert!(client_verifier(&none, Arc::new(rustls::crypto::ring::default_provider())).unwrap().is_none());
        let no_ca = Query { verify_mode: Some("peer"), ..Query::default() };
        assert!(client_verifier(&no_ca, Arc::new(rustls::crypto::ring::default_provider())).is_err());
    }
}
