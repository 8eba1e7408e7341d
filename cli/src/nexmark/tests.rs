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

#[test]
fn dates_format_as_the_reference_formats_them() {
    use updating::{Day, Minute};
    assert_eq!(Day(0).to_string(), "1970-01-01");
    assert_eq!(Day(-1).to_string(), "1969-12-31");
    assert_eq!(Day(1_704_067_200_000 / 86_400_000).to_string(), "2024-01-01");
    assert_eq!(Day(19_723 + 59).to_string(), "2024-02-29");
    assert_eq!(Day(11_016).to_string(), "2000-02-29");
    assert_eq!(Day(11_017).to_string(), "2000-03-01");
    assert_eq!(Minute(0).to_string(), "00:00");
    assert_eq!(Minute(23 * 60 + 59).to_string(), "23:59");
}

/// q19 changes ranks as Flink's append-only Top-N with the row number: a bid taking rank `r`
/// updates ranks `r` on (the bids below move down), inserts the rank not filled before, and
/// a bid no higher than the tenth changes nothing.
#[test]
fn q19_moves_the_bids_below_a_new_rank_down() {
    let mut h = HarnessConfig::new()
        .build(|bids: DataStream<Bid>| bids.key_by(|b: &Bid| b.auction).process("q19", updating::TopBids::default))
        .unwrap();
    let ranks = |rows: Vec<String>| -> Vec<String> {
        rows.iter()
            .map(|r| {
                let c: Vec<&str> = r.split('\t').collect();
                format!("{} {} {}", c[0], c[3], c[8])
            })
            .collect()
    };
    h.process_at(bid(5, 1), 1).unwrap();
    assert_eq!(ranks(h.take_output()), ["+I 5 1"]);
    h.process_at(bid(9, 2), 2).unwrap();
    assert_eq!(ranks(h.take_output()), ["+U 9 1", "+I 5 2"]);
    h.process_at(bid(7, 3), 3).unwrap();
    assert_eq!(ranks(h.take_output()), ["+U 7 2", "+I 5 3"]);
    h.process_at(bid(7, 4), 4).unwrap();
    assert_eq!(ranks(h.take_output()), ["+U 7 3", "+I 5 4"], "an equal price ranks after the earlier");
    for (i, price) in [1, 1, 1, 1, 1, 1].into_iter().enumerate() {
        h.process_at(bid(price, 10 + i as i64), 10 + i as i64).unwrap();
    }
    assert_eq!(h.take_output().len(), 6);
    h.process_at(bid(1, 20), 20).unwrap();
    assert!(h.take_output().is_empty(), "no higher than the tenth");
    h.process_at(bid(6, 21), 21).unwrap();
    let moved = ranks(h.take_output());
    assert_eq!(moved[0], "+U 6 4");
    assert_eq!(moved.last().unwrap(), "+U 1 10", "the tenth falls out with no insert");
    assert_eq!(moved.len(), 7);
}
