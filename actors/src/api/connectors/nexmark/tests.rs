//! The Nexmark generator against the reference's rules.

use std::collections::HashSet;

use super::*;
use crate::api::connectors::Generator;
use crate::prelude::MiniCluster;

fn events(config: &NexmarkConfig, n: u64) -> Vec<Event> {
    (0..n).map(|i| config.generate(i).0).collect()
}

#[test]
fn ids_types_and_times_follow_the_reference() {
    let config = NexmarkConfig::default();
    let all = events(&config, 200);
    // Event ids 2, 3 are auctions, 4..=49 bids, 50 a person, 51..=53 auctions, … (so, as in
    // the reference, person 1000 and auction 1000 are never generated, though referenced).
    assert!(matches!(&all[0], Event::Auction(a) if a.id == 1001));
    assert!(matches!(&all[1], Event::Auction(a) if a.id == 1002));
    assert!(matches!(&all[2], Event::Bid(_)));
    assert!(matches!(&all[48], Event::Person(p) if p.id == 1001));
    assert!(matches!(&all[49], Event::Auction(a) if a.id == 1003));
    // 10 000 events per second of event time: event number n at base + n / 10 ms.
    assert_eq!(all[0].date_time(), config.base_time);
    assert_eq!(all[9].date_time(), config.base_time + 1);
    assert_eq!(all[199].date_time(), config.base_time + 20);
    let times: Vec<_> = all.iter().map(Event::date_time).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in order");
}

#[test]
fn proportions_hot_items_prices_and_sizes_are_the_references() {
    let config = NexmarkConfig::default();
    let all = events(&config, 50_000);
    let (mut people, mut auctions, mut bids) = (Vec::new(), Vec::new(), Vec::new());
    for e in all {
        match e {
            Event::Person(p) => people.push(p),
            Event::Auction(a) => auctions.push(a),
            Event::Bid(b) => bids.push(b),
        }
    }
    assert_eq!((people.len(), auctions.len(), bids.len()), (1_000, 3_000, 46_000));
    // Ids: people and auctions are numbered in order.
    assert!(people.windows(2).all(|w| w[1].id == w[0].id + 1));
    assert!(auctions.windows(2).all(|w| w[1].id == w[0].id + 1));
    // Hot: half the bids on an auction id that is a multiple of 100 (plus 1000), 3/4 of the
    // bidders a hot one (…01), 3/4 of the sellers (…00).
    let share = |n: usize, of: usize| n as f64 / of as f64;
    let hot_auctions = bids.iter().filter(|b| (b.auction - 1000) % 100 == 0).count();
    assert!((0.48..0.56).contains(&share(hot_auctions, bids.len())), "{hot_auctions}");
    let hot_bidders = bids.iter().filter(|b| (b.bidder - 1000) % 100 == 1).count();
    assert!((0.73..0.78).contains(&share(hot_bidders, bids.len())), "{hot_bidders}");
    let hot_sellers = auctions.iter().filter(|a| (a.seller - 1000) % 100 == 0).count();
    assert!((0.72..0.79).contains(&share(hot_sellers, auctions.len())), "{hot_sellers}");
    // Bids are on auctions that exist or are at most 10 ahead, by people at most 10 ahead.
    let last_auction = auctions.last().unwrap().id;
    assert!(bids.iter().all(|b| b.auction >= 1000 && b.auction <= last_auction + 10));
    assert!(bids.iter().all(|b| b.bidder >= 1000 && b.bidder <= people.last().unwrap().id + 10));
    // Prices: 1 to 1 000 000 dollars in cents, log-uniform (median about 1000 dollars).
    assert!(bids.iter().all(|b| (100..=100_000_000).contains(&b.price)));
    let mut prices: Vec<i64> = bids.iter().map(|b| b.price).collect();
    prices.sort_unstable();
    let median = prices[prices.len() / 2];
    assert!((70_000..140_000).contains(&median), "{median}");
    assert!(auctions.iter().all(|a| a.reserve > a.initial_bid && (10..15).contains(&a.category)));
    assert!(auctions.iter().all(|a| a.expires > a.date_time && a.expires <= a.date_time + 2 * 167 + 1));
    // Sizes: extra pads bids to about 100 bytes (32 + 54..=81).
    assert!(bids.iter().all(|b| (54..=81).contains(&b.extra.len())));
    let states: HashSet<&str> = people.iter().map(|p| p.state.as_str()).collect();
    assert_eq!(states.len(), 6);
    assert!(people.iter().all(|p| p.credit_card.len() == 19 && p.email_address.ends_with(".com")));
    let channels: HashSet<&str> = bids.iter().map(|b| b.channel.as_str()).collect();
    assert!(channels.contains("Google") && channels.iter().any(|c| c.starts_with("channel-")));
}

#[test]
fn the_same_seed_gives_the_same_events_and_another_seed_others() {
    let a = events(&NexmarkConfig::default(), 500);
    assert_eq!(a, events(&NexmarkConfig::default(), 500));
    let other = events(&NexmarkConfig { seed: 2, ..NexmarkConfig::default() }, 500);
    assert_ne!(a, other);
    // The structure does not depend on the seed: same kinds, ids and times.
    let shape = |e: &Event| match e {
        Event::Person(p) => (0, p.id, p.date_time),
        Event::Auction(a) => (1, a.id, a.date_time),
        Event::Bid(b) => (2, 0, b.date_time),
    };
    assert_eq!(a.iter().map(shape).collect::<Vec<_>>(), other.iter().map(shape).collect::<Vec<_>>());
}

#[test]
fn any_parallelism_generates_the_same_events() {
    let config = NexmarkConfig { events: Some(3_000), ..NexmarkConfig::default() };
    let c = config.clone();
    let mut out =
        MiniCluster::collect(move |env| env.source("nexmark", Generator::new(c.clone())).set_parallelism(3)).unwrap();
    let key = |e: &Event| (e.date_time(), format!("{e:?}"));
    out.sort_by_key(key);
    let mut expected = events(&config, 3_000);
    expected.sort_by_key(key);
    assert_eq!(out, expected);
}

#[test]
fn bad_arguments_are_named() {
    let args = |a: &[&str]| crate::api::job_args::JobArgs::parse(a).unwrap();
    let err = NexmarkConfig::from_args(&args(&["--event-rate", "0"])).unwrap_err().to_string();
    assert!(err.contains("--event-rate must be a positive number"), "{err}");
    let err = NexmarkConfig::from_args(&args(&["--bid-proportion", "0"])).unwrap_err().to_string();
    assert!(err.contains("--bid-proportion"), "{err}");
    let err = NexmarkConfig::from_args(&args(&["--events", "many"])).unwrap_err().to_string();
    assert!(err.contains("--events"), "{err}");
}

/// In real time an event leaves the source once the wall clock reaches its time, not
/// before: its time is when it was made.
#[test]
fn real_time_events_leave_no_earlier_than_their_time() {
    let now = || {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        i64::try_from(d.as_millis()).unwrap()
    };
    let base = now() + 300;
    let config = NexmarkConfig {
        events: Some(200),
        event_rate: 1000.0,
        base_time: base,
        real_time: true,
        ..NexmarkConfig::default()
    };
    let out = MiniCluster::collect(move |env| {
        env.source("nexmark", Generator::new(config.clone()))
            .set_parallelism(2)
            .map("seen", move |e: Event| (e.date_time(), now()))
    })
    .unwrap();
    assert_eq!(out.len(), 200);
    assert!(out.iter().all(|(time, seen)| seen >= time), "an event left before its time");
    assert!(out.iter().all(|(time, _)| *time > base), "every event is after the base time");

    let args = |a: &[&str]| crate::api::job_args::JobArgs::parse(a).unwrap();
    let err = NexmarkConfig::from_args(&args(&["--real-time", "--rate", "5"])).unwrap_err().to_string();
    assert!(err.contains("--real-time paces events by their time"), "{err}");
}
