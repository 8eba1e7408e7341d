use super::*;
use crate::net::NetConfig;
use crate::net::testing::{pair, within};
use crate::{PROTOCOL_VERSION, encode_frame};

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
enum Control {
    Heartbeat(u64),
    Deploy { task: String },
}

/// What the accepting side's receiver makes of `raw` bytes sent on a new control stream.
async fn received_from_raw(raw: Vec<u8>, max_frame: usize) -> Result<Option<Control>> {
    let nodes = pair(NetConfig::default()).await;
    let (mut send, _recv) = nodes.a_to_b.open_bi().await.unwrap();
    send.write_all(&raw).await.unwrap();
    send.finish().unwrap();
    let (_tx, mut rx) = within("accept", accept_control(&nodes.b_from_a, max_frame)).await.unwrap();
    within("recv", rx.recv::<Control>()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arrive_in_order_then_the_end() {
    let nodes = pair(NetConfig::default()).await;
    let (mut tx, _rx) = open_control(&nodes.a_to_b, 1024).await.unwrap();
    for beat in 0..100 {
        tx.send(&Control::Heartbeat(beat)).await.unwrap();
    }
    tx.send(&Control::Deploy { task: "map".into() }).await.unwrap();
    tx.finish().await.unwrap();

    let (_tx, mut rx) = within("accept", accept_control(&nodes.b_from_a, 1024)).await.unwrap();
    for beat in 0..100 {
        assert_eq!(within("recv", rx.recv()).await.unwrap(), Some(Control::Heartbeat(beat)));
    }
    assert_eq!(within("recv", rx.recv()).await.unwrap(), Some(Control::Deploy { task: "map".into() }));
    assert_eq!(within("recv", rx.recv::<Control>()).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_maximum_is_not_sent() {
    let nodes = pair(NetConfig::default()).await;
    let (mut tx, _rx) = open_control(&nodes.a_to_b, 16).await.unwrap();
    let err = tx.send(&Control::Deploy { task: "x".repeat(100) }).await.unwrap_err();
    assert!(matches!(err, DataplaneError::FrameTooLarge { max: 16, .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_version_is_an_error() {
    let mut payload = (PROTOCOL_VERSION + 1).to_be_bytes().to_vec();
    payload.extend(postcard::to_stdvec(&Control::Heartbeat(1)).unwrap());
    let mut raw = Vec::new();
    encode_frame(&payload, 1024, &mut raw).unwrap();
    let err = received_from_raw(raw, 1024).await.unwrap_err();
    assert!(
        matches!(err, DataplaneError::UnsupportedVersion { got, supported: PROTOCOL_VERSION } if got == PROTOCOL_VERSION + 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_frame_is_an_error() {
    let mut raw = Vec::new();
    encode_frame(&[0, 1, 0xff, 0xff, 0xff], 1024, &mut raw).unwrap();
    let err = received_from_raw(raw, 1024).await.unwrap_err();
    assert!(matches!(err, DataplaneError::Malformed(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_frame_is_an_error() {
    let mut raw = Vec::new();
    encode_message(&Control::Heartbeat(7), 1024, &mut raw).unwrap();
    raw.pop();
    let err = received_from_raw(raw, 1024).await.unwrap_err();
    assert!(matches!(&err, DataplaneError::Malformed(why) if why.contains("ended inside a frame")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_is_an_error() {
    let raw = [&u32::MAX.to_be_bytes()[..], b"rest"].concat();
    let err = received_from_raw(raw, 1024).await.unwrap_err();
    assert!(matches!(err, DataplaneError::FrameTooLarge { max: 1024, .. }), "{err}");
}
