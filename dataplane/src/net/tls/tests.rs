use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{ServerName, UnixTime};

use super::*;

/// Checks `identity`'s certificate the way a peer trusting `ca_pem` would: as a server named
/// `name`, and as a client.
fn verify(ca_pem: &str, identity: &NodeIdentity, name: &str) -> (Result<(), rustls::Error>, Result<(), rustls::Error>) {
    let trusting = NodeIdentity { ca_pem: ca_pem.into(), ..identity.clone() };
    let roots = trusting.roots().unwrap();
    let chain = identity.chain().unwrap();
    let now = UnixTime::now();
    let server = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .unwrap()
        .verify_server_cert(&chain[0], &chain[1..], &ServerName::try_from(name).unwrap(), &[], now)
        .map(drop);
    let client = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .unwrap()
        .verify_client_cert(&chain[0], &chain[1..], now)
        .map(drop);
    (server, client)
}

#[test]
fn issued_identities_verify_as_servers_and_clients() {
    let ca = ClusterCa::generate("test").unwrap();
    let node = ca.issue("tm-1").unwrap();
    assert_eq!(node.ca_pem, ca.cert_pem());
    for name in [SERVER_NAME, "localhost", "127.0.0.1", "::1"] {
        let (server, client) = verify(&ca.cert_pem(), &node, name);
        assert_eq!(server, Ok(()), "as server {name}");
        assert_eq!(client, Ok(()));
    }
    let (server, _) = verify(&ca.cert_pem(), &node, "example.com");
    assert!(server.is_err(), "a node is not example.com");
}

#[test]
fn an_identity_issued_for_addresses_names_them() {
    let ca = ClusterCa::generate("test").unwrap();
    let node = ca.issue_for("host-a", &["10.200.3.2".parse().unwrap(), "fd00::7".parse().unwrap()]).unwrap();
    for name in [SERVER_NAME, "127.0.0.1", "10.200.3.2", "fd00::7"] {
        assert_eq!(verify(&ca.cert_pem(), &node, name), (Ok(()), Ok(())), "as server {name}");
    }
    let (server, _) = verify(&ca.cert_pem(), &node, "10.200.3.3");
    assert!(server.is_err(), "host-a is not 10.200.3.3");
    assert_ne!(node.key_pem, ca.issue_for("host-a", &[]).unwrap().key_pem, "every identity has a key of its own");
}

#[test]
fn a_certificate_from_another_ca_does_not_verify() {
    let ours = ClusterCa::generate("ours").unwrap();
    let theirs = ClusterCa::generate("ours").unwrap();
    let stranger = theirs.issue("tm-1").unwrap();
    let (server, client) = verify(&ours.cert_pem(), &stranger, SERVER_NAME);
    assert!(server.is_err() && client.is_err(), "{server:?} {client:?}");
}

#[test]
fn a_ca_loaded_from_pem_signs_for_the_same_cluster() {
    let ca = ClusterCa::generate("prod ünïcode (eu-1)").unwrap();
    let loaded = ClusterCa::from_pem(&ca.cert_pem(), &ca.key_pem()).unwrap();
    assert_eq!((loaded.cert_pem(), loaded.key_pem()), (ca.cert_pem(), ca.key_pem()));
    let node = loaded.issue("tm-2").unwrap();
    let (server, client) = verify(&ca.cert_pem(), &node, SERVER_NAME);
    assert_eq!((server, client), (Ok(()), Ok(())));
}

#[test]
fn from_pem_rejects_garbage_and_a_key_of_another_ca() {
    let ca = ClusterCa::generate("a").unwrap();
    let other = ClusterCa::generate("b").unwrap();
    let err = ClusterCa::from_pem(&ca.cert_pem(), &other.key_pem()).unwrap_err();
    assert_eq!(err.to_string(), "tls: the CA key does not belong to the CA certificate");
    let err = ClusterCa::from_pem("not a certificate", &ca.key_pem()).unwrap_err();
    assert!(matches!(&err, DataplaneError::Tls(why) if why.starts_with("reading the CA certificate")), "{err}");
    let err = ClusterCa::from_pem(&ca.cert_pem(), "not a key").unwrap_err();
    assert!(matches!(&err, DataplaneError::Tls(why) if why.starts_with("reading the CA key")), "{err}");
}

#[test]
fn configs_build_and_bad_pem_is_a_tls_error() {
    let node = ClusterCa::generate("c").unwrap().issue("n").unwrap();
    let net = NetConfig::default();
    node.server_config(&net).unwrap();
    node.client_config(&net).unwrap();

    let broken = NodeIdentity { key_pem: String::new(), ..node.clone() };
    assert!(matches!(broken.server_config(&net), Err(DataplaneError::Tls(_))));
    let broken = NodeIdentity { ca_pem: String::new(), ..node };
    let err = broken.client_config(&net).unwrap_err();
    assert_eq!(err.to_string(), "tls: no CA certificate in the identity");
}

#[test]
fn identities_do_not_print_their_keys() {
    let ca = ClusterCa::generate("c").unwrap();
    let node = ca.issue("n").unwrap();
    assert!(!format!("{ca:?}{node:?}").contains("PRIVATE KEY"));
}

#[test]
fn der_reading() {
    assert_eq!(oid_arcs(&[0x55, 0x04, 0x03]), Some(vec![2, 5, 4, 3]));
    assert_eq!(oid_arcs(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]), Some(vec![1, 2, 840, 113_549]));
    assert_eq!(oid_arcs(&[0x55, 0x84]), None, "ends inside an arc");
    assert_eq!(oid_arcs(&[]), None);

    let mut long = vec![SEQUENCE, 0x81, 200];
    long.extend([7; 201]);
    assert_eq!(der_item(&long, SEQUENCE), Some((&[7; 200][..], &[7][..])));
    assert_eq!(der_item(&long, SET), None, "wrong tag");
    assert_eq!(der_item(&long[..100], SEQUENCE), None, "truncated");
    assert_eq!(der_item(&[SEQUENCE, 0x80], SEQUENCE), None, "indefinite length");
}
