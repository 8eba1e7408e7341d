use super::*;
use crate::net::testing::{node, within};
use crate::net::{ClusterCa, accept_control, open_control};

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
enum Control {
    Register { node: String },
    Registered { slots: u32 },
}

/// A TaskManager-like node registers at a JobManager-like one over a control stream, and
/// the reply comes back, with each node's settings.
async fn register(jm: NetConfig, tm: NetConfig) {
    let ca = ClusterCa::generate("test").unwrap();
    let (jm, tm) = (node(&ca, "jm", jm), node(&ca, "tm", tm));
    let max = jm.config().max_frame_bytes;

    let server = tokio::spawn({
        let jm = jm.clone();
        async move {
            let conn = jm.accept().await.unwrap().unwrap();
            let (mut tx, mut rx) = accept_control(&conn, max).await.unwrap();
            assert_eq!(rx.recv::<Control>().await.unwrap(), Some(Control::Register { node: "tm".into() }));
            tx.send(&Control::Registered { slots: 4 }).await.unwrap();
            tx.finish().await.unwrap();
            assert_eq!(rx.recv::<Control>().await.unwrap(), None);
        }
    });

    let conn = within("connect", tm.connect(jm.local_addr())).await.unwrap();
    let (mut tx, mut rx) = open_control(&conn, max).await.unwrap();
    tx.send(&Control::Register { node: "tm".into() }).await.unwrap();
    assert_eq!(within("reply", rx.recv::<Control>()).await.unwrap(), Some(Control::Registered { slots: 4 }));
    assert_eq!(within("end", rx.recv::<Control>()).await.unwrap(), None);
    tx.finish().await.unwrap();
    within("server", server).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_one_cluster_exchange_control_messages_both_ways() {
    register(NetConfig::default(), NetConfig::default()).await;
}

/// Settings beyond what QUIC can encode are clamped, and such nodes still talk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_out_of_range_settings_still_talk() {
    let huge = NetConfig {
        connection_window_bytes: u64::MAX,
        stream_window_bytes: u64::MAX,
        idle_timeout: Duration::MAX,
        ..NetConfig::default()
    };
    register(huge.clone(), huge).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_per_peer() {
    let ca = ClusterCa::generate("test").unwrap();
    let (a, b) = (node(&ca, "a", NetConfig::default()), node(&ca, "b", NetConfig::default()));
    let accepting = tokio::spawn({
        let b = b.clone();
        async move {
            // Held: quinn closes a connection once every handle to it is dropped.
            let mut held = Vec::new();
            while let Some(conn) = b.accept().await {
                held.push(conn.unwrap());
            }
        }
    });

    let (first, second) =
        within("connect", async { tokio::join!(a.connect(b.local_addr()), a.connect(b.local_addr())) }).await;
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.stable_id(), second.stable_id());
    let again = within("connect again", a.connect(b.local_addr())).await.unwrap();
    assert_eq!(again.stable_id(), first.stable_id());
    assert_eq!(a.endpoint.open_connections(), 1);

    // A closed connection is replaced.
    first.close(VarInt::from_u32(0), b"test");
    let fresh = within("reconnect", a.connect(b.local_addr())).await.unwrap();
    assert_ne!(fresh.stable_id(), first.stable_id());
    accepting.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_of_nodes_shares_one_connection_whoever_dialed() {
    let ca = ClusterCa::generate("test").unwrap();
    let (a, b) = (node(&ca, "a", NetConfig::default()), node(&ca, "b", NetConfig::default()));
    let accepted = tokio::spawn({
        let b = b.clone();
        async move { b.accept().await.unwrap().unwrap() }
    });
    let dialed = within("connect", a.connect(b.local_addr())).await.unwrap();
    let accepted = within("accept", accepted).await.unwrap();
    // B now "dials" A: it gets the connection A opened, not a second one.
    let back = within("connect back", b.connect(a.local_addr())).await.unwrap();
    assert_eq!(back.stable_id(), accepted.stable_id());
    assert_eq!(b.endpoint.open_connections(), 1);
    assert_eq!(a.endpoint.open_connections(), 1);
    drop(dialed);
}

/// Whether `conn` can carry a control round trip to a peer that echoes.
async fn usable(conn: &quinn::Connection) -> bool {
    let Ok((mut tx, mut rx)) = open_control(conn, 1024).await else { return false };
    tx.send(&Control::Registered { slots: 1 }).await.is_ok() && matches!(rx.recv::<Control>().await, Ok(Some(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_a_certificate_from_another_ca_is_refused() {
    let cluster = ClusterCa::generate("cluster").unwrap();
    let intruders = ClusterCa::generate("cluster").unwrap();
    let server = node(&cluster, "jm", NetConfig::default());
    let intruder_identity = NodeIdentity { ca_pem: cluster.cert_pem(), ..intruders.issue("tm").unwrap() };
    let intruder = NetEndpoint::bind("127.0.0.1:0".parse().unwrap(), &intruder_identity, NetConfig::default()).unwrap();

    let accepted = tokio::spawn({
        let server = server.clone();
        async move {
            let conn = server.accept().await.unwrap()?;
            // Not reached when the handshake is refused; echo once to show the connection works.
            let (mut tx, mut rx) = accept_control(&conn, 1024).await?;
            let message: Option<Control> = rx.recv().await?;
            tx.send(&message).await?;
            Ok::<_, DataplaneError>(conn)
        }
    });

    // With TLS 1.3 the client may finish its handshake before the server rejects its
    // certificate, so connecting can succeed; using the connection must not.
    if let Ok(conn) = within("connect", intruder.connect(server.local_addr())).await {
        assert!(!within("use", usable(&conn)).await, "the intruder's connection works");
    }
    let refused = within("accept", accepted).await.unwrap().unwrap_err();
    assert!(
        matches!(&refused, DataplaneError::Connect { reason, handshake: true, .. } if reason.contains("certificate")),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_a_certificate_from_another_ca_is_refused() {
    let cluster = ClusterCa::generate("cluster").unwrap();
    let impostors = ClusterCa::generate("cluster").unwrap();
    let client = node(&cluster, "tm", NetConfig::default());
    let impostor = node(&impostors, "jm", NetConfig::default());
    let accepted = tokio::spawn({
        let impostor = impostor.clone();
        async move { impostor.accept().await.unwrap() }
    });

    let err = within("connect", client.connect(impostor.local_addr())).await.unwrap_err();
    assert!(
        matches!(&err, DataplaneError::Connect { peer, reason, handshake: true } if *peer == impostor.local_addr().to_string() && reason.contains("certificate")),
        "{err}"
    );
    assert!(within("accept", accepted).await.unwrap().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_ends_when_the_endpoint_closes() {
    let ca = ClusterCa::generate("test").unwrap();
    let endpoint = node(&ca, "a", NetConfig::default());
    let accepting = tokio::spawn({
        let endpoint = endpoint.clone();
        async move { endpoint.accept().await.is_none() }
    });
    endpoint.close();
    assert!(within("accept", accepting).await.unwrap());
}

#[tokio::test]
async fn binding_a_used_port_is_an_io_error() {
    let ca = ClusterCa::generate("test").unwrap();
    let first = node(&ca, "a", NetConfig::default());
    let err = NetEndpoint::bind(first.local_addr(), &ca.issue("b").unwrap(), NetConfig::default()).unwrap_err();
    assert!(matches!(&err, DataplaneError::Io(why) if why.starts_with("binding a UDP socket")), "{err}");
}
