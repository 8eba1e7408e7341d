//! Cluster certificates for mutual TLS: a CA per cluster, and node identities it signs.
//!
//! Every node certificate carries the DNS name [`SERVER_NAME`], and clients verify servers
//! against that name, so nodes need no DNS names of their own: holding a certificate signed by
//! the cluster's CA is what makes a node a member.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PublicKeyData,
};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::{NetConfig, transport_config};
use crate::{DataplaneError, Result};

/// The DNS name in every node certificate; clients connect with it.
pub const SERVER_NAME: &str = "weir-node";

/// The application protocol negotiated on every connection.
const ALPN: &[u8] = b"weir/1";

/// The organization named in every certificate Weir makes.
const ORGANIZATION: &str = "Weir";

/// What a CA's key may be used for.
const CA_KEY_USAGES: [KeyUsagePurpose; 3] =
    [KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];

/// A cluster's certificate authority: it signs the identity of every node.
pub struct ClusterCa {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// A new self-signed CA for the cluster `cluster_name`, with a fresh key.
    pub fn generate(cluster_name: &str) -> Result<Self> {
        let key = KeyPair::generate().map_err(tls("generating the CA key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(&format!("{cluster_name} CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = CA_KEY_USAGES.to_vec();
        let cert = params.self_signed(&key).map_err(tls("signing the CA certificate"))?;
        Ok(Self { cert_pem: cert.pem(), key_pem: key.serialize_pem(), issuer: Issuer::new(params, key) })
    }

    /// The CA saved with [`ClusterCa::cert_pem`] and [`ClusterCa::key_pem`].
    ///
    /// Fails with [`DataplaneError::Tls`] if either does not parse, the key is not the
    /// certificate's, or the certificate's subject uses string types Weir does not write.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let key = KeyPair::from_pem(key_pem).map_err(tls("reading the CA key"))?;
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(tls("reading the CA certificate"))?;
        let mut roots = RootCertStore::empty();
        roots.add(cert).map_err(tls("reading the CA certificate"))?;
        let anchor = &roots.roots[0];
        let key_info = key.subject_public_key_info();
        if der_item(&key_info, SEQUENCE).map(|(spki, _)| spki) != Some(anchor.subject_public_key_info.as_ref()) {
            return Err(DataplaneError::Tls("the CA key does not belong to the CA certificate".into()));
        }
        // Issued certificates name their issuer by the CA's subject, which verifiers compare
        // byte for byte, so it is read back rather than rebuilt.
        let mut params = CertificateParams::default();
        params.distinguished_name = parse_name(anchor.subject.as_ref())
            .ok_or_else(|| DataplaneError::Tls("the CA certificate's subject is not one Weir can sign for".into()))?;
        params.key_usages = CA_KEY_USAGES.to_vec();
        Ok(Self { cert_pem: cert_pem.to_owned(), key_pem: key_pem.to_owned(), issuer: Issuer::new(params, key) })
    }

    /// The CA certificate, PEM-encoded: what every node trusts.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA's private key, PEM-encoded: keep it secret, it makes cluster members.
    pub fn key_pem(&self) -> String {
        self.key_pem.clone()
    }

    /// A new identity for node `node_name` (its certificate's common name), signed by this CA:
    /// valid as a server for [`SERVER_NAME`], `localhost`, 127.0.0.1 and ::1, and as a client.
    pub fn issue(&self, node_name: &str) -> Result<NodeIdentity> {
        self.issue_for(node_name, &[])
    }

    /// As [`issue`](Self::issue), for a node of its own on another machine: its certificate
    /// names `addresses` too (as IP subject alternative names) and its key is its own.
    pub fn issue_for(&self, node_name: &str, addresses: &[IpAddr]) -> Result<NodeIdentity> {
        let key = KeyPair::generate().map_err(tls("generating a node key"))?;
        let names = [SERVER_NAME, "localhost", "127.0.0.1", "::1"]
            .map(String::from)
            .into_iter()
            .chain(addresses.iter().map(IpAddr::to_string))
            .collect::<Vec<_>>();
        let mut params = CertificateParams::new(names).map_err(tls("naming a node certificate"))?;
        params.distinguished_name = distinguished_name(node_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).map_err(tls("signing a node certificate"))?;
        Ok(NodeIdentity { ca_pem: self.cert_pem.clone(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

/// What a node needs to join its cluster's network: the CA to trust, and its own certificate
/// and key. All PEM-encoded.
#[derive(Clone)]
pub struct NodeIdentity {
    /// The cluster CA's certificate.
    pub ca_pem: String,
    /// This node's certificate, signed by the CA.
    pub cert_pem: String,
    /// This node's private key.
    pub key_pem: String,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// The server side of mutual TLS: presents this node's certificate and accepts only
    /// clients whose certificate chains to the cluster CA. Transport settings from `net`.
    pub fn server_config(&self, net: &NetConfig) -> Result<quinn::ServerConfig> {
        let provider = provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots()?, provider.clone())
            .build()
            .map_err(tls("building the client certificate verifier"))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls("choosing TLS versions"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain()?, self.key()?)
            .map_err(tls("using the node certificate"))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = QuicServerConfig::try_from(config).map_err(tls("configuring QUIC"))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(transport_config(net));
        Ok(config)
    }

    /// The client side of mutual TLS: trusts only the cluster CA and presents this node's
    /// certificate. Transport settings from `net`.
    pub fn client_config(&self, net: &NetConfig) -> Result<quinn::ClientConfig> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls("choosing TLS versions"))?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain()?, self.key()?)
            .map_err(tls("using the node certificate"))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = QuicClientConfig::try_from(config).map_err(tls("configuring QUIC"))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(transport_config(net));
        Ok(config)
    }

    fn roots(&self) -> Result<Arc<RootCertStore>> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.map_err(tls("reading the CA certificate"))?).map_err(tls("reading the CA certificate"))?;
        }
        if roots.is_empty() {
            return Err(DataplaneError::Tls("no CA certificate in the identity".into()));
        }
        Ok(Arc::new(roots))
    }

    fn chain(&self) -> Result<Vec<CertificateDer<'static>>> {
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(tls("reading the node certificate"))?;
        if chain.is_empty() {
            return Err(DataplaneError::Tls("no node certificate in the identity".into()));
        }
        Ok(chain)
    }

    fn key(&self) -> Result<PrivateKeyDer<'static>> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(tls("reading the node key"))
    }
}

/// The cryptography of every config: ring, chosen explicitly rather than through a
/// process-wide default that another crate might install differently.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Maps an error to [`DataplaneError::Tls`], saying what was being done.
fn tls<E: fmt::Display>(doing: &'static str) -> impl FnOnce(E) -> DataplaneError {
    move |e| DataplaneError::Tls(format!("{doing}: {e}"))
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, ORGANIZATION);
    name
}

// Just enough DER to read a certificate's subject back into the form rcgen writes: rcgen
// can only parse certificates with its `x509-parser` feature, which Weir does not build.

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const IA5_STRING: u8 = 0x16;

/// The attributes of a Name, from its DER without the outer SEQUENCE; `None` for anything
/// rcgen would not write the same way (multi-valued RDNs, other string types).
fn parse_name(mut der: &[u8]) -> Option<DistinguishedName> {
    let mut name = DistinguishedName::new();
    while !der.is_empty() {
        let (rdn, rest) = der_item(der, SET)?;
        der = rest;
        let (attribute, []) = der_item(rdn, SEQUENCE)? else { return None };
        let (oid, value) = der_item(attribute, OID)?;
        let tag = *value.first()?;
        let (text, []) = der_item(value, tag)? else { return None };
        let text = std::str::from_utf8(text).ok()?;
        let value = match tag {
            UTF8_STRING => DnValue::Utf8String(text.to_owned()),
            PRINTABLE_STRING => DnValue::PrintableString(text.try_into().ok()?),
            IA5_STRING => DnValue::Ia5String(text.try_into().ok()?),
            _ => return None,
        };
        name.push(DnType::from_oid(&oid_arcs(oid)?), value);
    }
    Some(name)
}

/// Splits one DER item with tag `tag` off `der`: (its contents, the rest).
fn der_item(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&[found, first], rest) = der.split_first_chunk::<2>()?;
    if found != tag {
        return None;
    }
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let (bytes, rest) = rest.split_at_checked(usize::from(first & 0x7f))?;
            (bytes.iter().fold(0, |len, &b| len << 8 | usize::from(b)), rest)
        }
        _ => return None,
    };
    rest.split_at_checked(len)
}

/// The arcs of a DER-encoded object identifier.
fn oid_arcs(der: &[u8]) -> Option<Vec<u64>> {
    let mut values = Vec::new();
    let mut value = 0u64;
    for &byte in der {
        value = value.checked_mul(128)? | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            values.push(value);
            value = 0;
        }
    }
    if *der.last()? & 0x80 != 0 {
        return None;
    }
    let first = values[0];
    let (a, b) = if first < 80 { (first / 40, first % 40) } else { (2, first - 80) };
    Some([a, b].into_iter().chain(values[1..].iter().copied()).collect())
}

#[cfg(test)]
mod tests;
