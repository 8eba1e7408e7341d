//! Nexmark queries' functions on the operator harness, where the generated data seldom goes.

use super::*;

fn bid(price: i64, date_time: Timestamp) -> Bid {
    Bid {
        auction: 1000,
        bidder: 1001,
        price,
        channel: "Google".into(),
        url: "https://www.nexmark.com/a/b/c/item.htm?query=1".into(),
        date_time,
        extra: String::new(),
    }
}

/// q7's `BETWEEN window_end - 10 s AND window_end` includes the end: a bid at exactly a
/// window's end belongs to the next window and also meets this one's highest price.
#[test]
fn q7_matches_a_bid_at_a_windows_end_with_both_windows() {
    let mut h = HarnessConfig::new()
        .build(|bids: DataStream<Bid>| bids.key_by(|_: &Bid| 0u8).process("q7", HighestBids::default))
        .unwrap();
    for b in [bid(10, 5_000), bid(7, 9_999), bid(10, 10_000), bid(3, 12_000)] {
        let t = b.date_time;
        h.process_at(b, t).unwrap();
    }
    h.process_watermark(9_999).unwrap();
    assert!(h.output().is_empty(), "the window's end may still bring bids");
    h.process_watermark(10_000).unwrap();
    assert_eq!(h.take_output(), ["1000\t10\t1001\t5000\t", "1000\t10\t1001\t10000\t"]);
    h.end_input().unwrap();
    assert_eq!(h.take_output(), ["1000\t10\t1001\t10000\t"]);
}

#[test]
fn channel_ids_come_from_the_first_channel_id_parameter() {
    assert_eq!(channel_id("https://x/item.htm?query=1&channel_id=42&b=2"), Some("42"));
    assert_eq!(channel_id("channel_id=7"), Some("7"));
    assert_eq!(channel_id("https://x/item.htm?query=1&xchannel_id=5"), None);
    assert_eq!(channel_id("https://x/item.htm?query=1&xchannel_id=5&channel_id=6"), Some("6"));
    assert_eq!(Euros(100).to_string(), "90.800");
    assert_eq!(Euros(1).to_string(), "0.908");
    assert_eq!(tsv(&[&1, &"a", &Euros(-1)]), "1\ta\t-0.908");
}
