//! The Nexmark benchmark's events — people, auctions and bids of an online auction — as an
//! [`EventSequence`] for a [`Generator`](super::Generator) source.
//!
//! Faithful to the reference generator (`nexmark/nexmark`'s `NexmarkGenerator` and
//! `GeneratorConfig`): event ids from 2 on, types in the proportions person 1 : auction 3 :
//! bid 46 by `id % 50`; each event's time is `base_time + ⌊(n · 10⁶ / rate) µs⌋` of its event
//! number `n`; ids, hot sellers (3 in 4), hot auctions (1 in 2), hot bidders (3 in 4), the ids
//! of the last 1000 people and 100 auctions in flight (and 10 ahead), log-uniform prices of 1 to
//! 1 000 000 dollars (in cents), auction lengths up to twice the time of the next 1666 events,
//! names, cities, states, credit cards, channels and URLs, and `extra` padding each event to the
//! reference's average size, drawn field by field in the reference's order and with its
//! distributions.
//!
//! Where it differs, and why:
//! - Values are drawn from a generator seeded with `(seed, event id)` (as the first Flink port
//!   and Beam did), not from the reference's unseeded one: the same arguments give the same
//!   events on every run and at any parallelism, so results can be compared. No engine can
//!   match the reference value for value (its values change from run to run); the id and time
//!   structure is the reference's exactly.
//! - Subtask `j` of `p` generates the events `n ≡ j (mod p)` of one sequence (the reference
//!   gives each subtask its own id range on a shared timeline, so its events depend on the
//!   parallelism).
//! - `base_time` is fixed (`--base-time-ms`, default 2024-01-01T00:00:00Z), not the wall clock.
//! - A bid's bidder is a person id (the reference adds 1000 twice since 2021, so its bidders
//!   are person ids + 1000 and never join a person).
//! - `extra` strings are `a`–`z` only (the reference's signed remainder also yields `H`–`Z`
//!   and `[\]^_\``), cut from a 1 MiB string made once per subtask, as the reference does.
//!
//! Event time: the reference's source is in order (`outOfOrderGroupSize` 1) and its tables
//! declare a 4 s watermark delay; the sequence's watermark bound is `--watermark-delay-ms`
//! (default 4000).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use weir_dataplane::Timestamp;

use crate::api::connectors::generator::EventSequence;
use crate::api::job_args::JobArgs;
use crate::base::error::{Result, WeirError};

/// A person: a seller or a bidder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    /// From 1000 (the reference's `FIRST_PERSON_ID`).
    pub id: i64,
    /// `First Last`.
    pub name: String,
    /// `xxx@yyy.com`.
    pub email_address: String,
    /// Four groups of four digits.
    pub credit_card: String,
    /// A US city.
    pub city: String,
    /// A US state (`AZ, CA, ID, OR, WA, WY`).
    pub state: String,
    /// Event time (ms since the epoch).
    pub date_time: Timestamp,
    /// Padding to the reference's average person size.
    pub extra: String,
}

/// An auction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Auction {
    /// From 1000.
    pub id: i64,
    /// Its item's name.
    pub item_name: String,
    /// Its item's description.
    pub description: String,
    /// The first bid (cents).
    pub initial_bid: i64,
    /// The reserve price (cents; above the initial bid).
    pub reserve: i64,
    /// Event time (ms since the epoch).
    pub date_time: Timestamp,
    /// When it ends (ms since the epoch).
    pub expires: Timestamp,
    /// The seller's person id.
    pub seller: i64,
    /// 10 to 14.
    pub category: i64,
    /// Padding to the reference's average auction size.
    pub extra: String,
}

/// A bid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bid {
    /// The auction's id.
    pub auction: i64,
    /// The bidder's person id.
    pub bidder: i64,
    /// Cents.
    pub price: i64,
    /// `Google`, `Facebook`, `Baidu`, `Apple` or `channel-N`.
    pub channel: String,
    /// The channel's URL.
    pub url: String,
    /// Event time (ms since the epoch).
    pub date_time: Timestamp,
    /// Padding to the reference's average bid size.
    pub extra: String,
}

/// A Nexmark event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Event {
    /// A new person.
    Person(Person),
    /// A new auction.
    Auction(Auction),
    /// A bid.
    Bid(Bid),
}

impl Event {
    /// The event's time.
    pub fn date_time(&self) -> Timestamp {
        match self {
            Event::Person(p) => p.date_time,
            Event::Auction(a) => a.date_time,
            Event::Bid(b) => b.date_time,
        }
    }
}

const FIRST_PERSON_ID: i64 = 1000;
const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_CATEGORY_ID: i64 = 10;
const NUM_CATEGORIES: u32 = 5;
const PERSON_ID_LEAD: i64 = 10;
const AUCTION_ID_LEAD: i64 = 10;
const HOT_RATIO: i64 = 100;
const CHANNELS: usize = 10_000;
const REUSABLE_EXTRA: usize = 1 << 20;
const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] =
    ["Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"];
const FIRST_NAMES: [&str; 11] =
    ["Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"];
const LAST_NAMES: [&str; 9] = ["Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"];
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// What to generate: the reference's `NexmarkConfiguration` (its defaults) and a seed.
#[derive(Debug, Clone)]
pub struct NexmarkConfig {
    /// Total events; `None` for an unbounded stream.
    pub events: Option<u64>,
    /// Seed of every drawn value.
    pub seed: u64,
    /// Events per second of event time (the reference's `first-event.rate`, 10 000).
    pub event_rate: f64,
    /// Event time of event number 0 (ms since the epoch).
    pub base_time: Timestamp,
    /// Events per second of wall-clock time over all subtasks; `None`: as fast as possible.
    pub rate: Option<f64>,
    /// Event time is the wall clock (`--real-time`): each event is emitted at its time, so
    /// `event_rate` is the wall-clock rate from `base_time` on (as the reference's generator,
    /// whose base time is when it starts).
    pub real_time: bool,
    /// The watermark delay (the reference's tables: 4 s).
    pub watermark_delay: Duration,
    /// Proportions of people, auctions and bids (1, 3, 46).
    pub person_proportion: u64,
    /// See [`person_proportion`](Self::person_proportion).
    pub auction_proportion: u64,
    /// See [`person_proportion`](Self::person_proportion).
    pub bid_proportion: u64,
    /// Average sizes (bytes) that `extra` pads events to (200, 500, 100).
    pub avg_person_bytes: usize,
    /// See [`avg_person_bytes`](Self::avg_person_bytes).
    pub avg_auction_bytes: usize,
    /// See [`avg_person_bytes`](Self::avg_person_bytes).
    pub avg_bid_bytes: usize,
    /// 1 in this many bids are not on a hot auction (2).
    pub hot_auction_ratio: u32,
    /// 1 in this many auctions are not by a hot seller (4).
    pub hot_sellers_ratio: u32,
    /// 1 in this many bids are not by a hot bidder (4).
    pub hot_bidders_ratio: u32,
    /// People that sell and bid (1000).
    pub num_active_people: i64,
    /// Auctions open at once (100).
    pub num_in_flight_auctions: i64,
    /// Strings every subtask's generator makes once (channel URLs, the `extra` source).
    tables: Arc<OnceLock<Tables>>,
}

/// The strings the reference makes once per generator.
struct Tables {
    hot_urls: [String; 4],
    channel_urls: Vec<String>,
    extra: String,
}

impl std::fmt::Debug for Tables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tables { .. }")
    }
}

impl Default for NexmarkConfig {
    fn default() -> Self {
        NexmarkConfig {
            events: Some(100_000),
            seed: 1,
            event_rate: 10_000.0,
            base_time: 1_704_067_200_000,
            rate: None,
            real_time: false,
            watermark_delay: Duration::from_secs(4),
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
            avg_person_bytes: 200,
            avg_auction_bytes: 500,
            avg_bid_bytes: 100,
            hot_auction_ratio: 2,
            hot_sellers_ratio: 4,
            hot_bidders_ratio: 4,
            num_active_people: 1000,
            num_in_flight_auctions: 100,
            tables: Arc::default(),
        }
    }
}

/// SplitMix64: a small, fast generator, seeded per event.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        Rng(super::generator::mix(seed ^ super::generator::mix(stream.wrapping_add(0x9E37_79B9_7F4A_7C15))))
    }
    #[inline]
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        super::generator::mix(self.0)
    }
    /// Uniform in `0..n` (Java's `nextInt(n)`).
    #[inline]
    fn int(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }
    /// Uniform in `0..n` (the reference's `LongGenerator.nextLong`).
    fn long(&mut self, n: i64) -> i64 {
        match u32::try_from(n) {
            Ok(n) => i64::from(self.int(n)),
            Err(_) => (self.next_u64() % n.max(1) as u64) as i64,
        }
    }
    /// Uniform in `[0, 1)`.
    fn double(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// 1 to 1 000 000 dollars, log-uniform, in cents (`PriceGenerator.nextPrice`).
    fn price(&mut self) -> i64 {
        (10f64.powf(self.double() * 6.0) * 100.0).round() as i64
    }
    /// 3 to `max_len - 1` letters, one in 13 of them `special`, trimmed of spaces
    /// (`StringsGenerator.nextString`).
    fn string(&mut self, max_len: u32, special: char) -> String {
        let len = 3 + self.int(max_len - 3);
        let mut s = String::with_capacity(len as usize);
        for _ in 0..len {
            s.push(if self.int(13) == 0 { special } else { char::from(b'a' + self.int(26) as u8) });
        }
        s.trim_matches(' ').to_owned()
    }
    /// `len` letters.
    fn exact_string(&mut self, len: usize) -> String {
        (0..len).map(|_| char::from(b'a' + self.int(26) as u8)).collect()
    }
}

impl NexmarkConfig {
    /// Reads `--events N`, `--seed S`, `--event-rate E` (events per second of event time),
    /// `--rate R` (wall clock, over all subtasks), `--base-time-ms T`, `--watermark-delay-ms D`,
    /// `--person-proportion`, `--auction-proportion`, `--bid-proportion`.
    pub fn from_args(args: &JobArgs) -> Result<Self> {
        let d = NexmarkConfig::default();
        let config = NexmarkConfig {
            events: args.parse_opt("events")?,
            seed: args.parse_or("seed", d.seed)?,
            event_rate: args.parse_or("event-rate", d.event_rate)?,
            base_time: args.parse_or("base-time-ms", d.base_time)?,
            rate: args.parse_opt("rate")?,
            real_time: args.parse_or("real-time", false)?,
            watermark_delay: Duration::from_millis(args.parse_or("watermark-delay-ms", 4000u64)?),
            person_proportion: args.parse_or("person-proportion", d.person_proportion)?,
            auction_proportion: args.parse_or("auction-proportion", d.auction_proportion)?,
            bid_proportion: args.parse_or("bid-proportion", d.bid_proportion)?,
            ..d
        };
        config.check()?;
        Ok(config)
    }

    fn total_proportion(&self) -> u64 {
        self.person_proportion + self.auction_proportion + self.bid_proportion
    }

    /// The event time of event number `n` (from 1, as the reference counts).
    fn timestamp(&self, n: u64) -> Timestamp {
        let delay_us = 1_000_000.0 / self.event_rate;
        self.base_time + ((n as f64 * delay_us) as i64) / 1000
    }

    fn last_person(&self, id: u64) -> i64 {
        let (total, people) = (self.total_proportion(), self.person_proportion);
        let (epoch, offset) = (id / total, (id % total).min(people - 1));
        (epoch * people + offset) as i64
    }

    fn next_person(&self, id: u64, rng: &mut Rng) -> i64 {
        let people = self.last_person(id) + 1;
        let active = people.min(self.num_active_people);
        people - active + rng.long(active + PERSON_ID_LEAD)
    }

    fn last_auction(&self, id: u64) -> i64 {
        let (total, people, auctions) = (self.total_proportion(), self.person_proportion, self.auction_proportion);
        let (mut epoch, mut offset) = (id / total, id % total);
        if offset < people {
            // A person: the last auction is of the epoch before.
            epoch = epoch.wrapping_sub(1);
            offset = auctions - 1;
        } else if offset >= people + auctions {
            offset = auctions - 1;
        } else {
            offset -= people;
        }
        epoch.wrapping_mul(auctions).wrapping_add(offset) as i64
    }

    fn next_auction(&self, id: u64, rng: &mut Rng) -> i64 {
        let last = self.last_auction(id);
        let min = (last - self.num_in_flight_auctions).max(0);
        min + rng.long(last - min + 1 + AUCTION_ID_LEAD)
    }

    fn extra(&self, rng: &mut Rng, size: usize, average: usize) -> String {
        if size > average {
            return String::new();
        }
        let d = (average - size) as f64;
        let delta = (d * 0.2).round() as u32;
        let len = (d as u32 - delta + if delta == 0 { 0 } else { rng.int(2 * delta) }) as usize;
        let extra = &self.tables().extra;
        let start = rng.int((extra.len() - len) as u32) as usize;
        extra[start..start + len].to_owned()
    }

    fn tables(&self) -> &Tables {
        self.tables.get_or_init(|| {
            let mut rng = Rng::new(self.seed, u64::MAX);
            let base_url = |rng: &mut Rng| {
                let mut url = String::from("https://www.nexmark.com/");
                for _ in 0..3 {
                    url.push_str(&rng.string(5, '_'));
                    url.push('/');
                }
                url.push_str("item.htm?query=1");
                url
            };
            let hot_urls = std::array::from_fn(|_| base_url(&mut rng));
            let channel_urls = (0..CHANNELS)
                .map(|c| {
                    let mut url = base_url(&mut rng);
                    if rng.int(10) > 0 {
                        url.push_str(&format!("&channel_id={}", (c as i32).reverse_bits().wrapping_abs()));
                    }
                    url
                })
                .collect();
            Tables { hot_urls, channel_urls, extra: rng.exact_string(REUSABLE_EXTRA) }
        })
    }

    fn person(&self, id: u64, rng: &mut Rng, date_time: Timestamp) -> Person {
        let name = format!("{} {}", FIRST_NAMES[rng.int(11) as usize], LAST_NAMES[rng.int(9) as usize]);
        let email_address = format!("{}@{}.com", rng.string(7, ' '), rng.string(5, ' '));
        let cards: Vec<String> = (0..4).map(|_| format!("{:04}", rng.int(10_000))).collect();
        let credit_card = cards.join(" ");
        let city = US_CITIES[rng.int(10) as usize].to_owned();
        let state = US_STATES[rng.int(6) as usize].to_owned();
        let size = 8 + name.len() + email_address.len() + credit_card.len() + city.len() + state.len();
        let extra = self.extra(rng, size, self.avg_person_bytes);
        let id = self.last_person(id) + FIRST_PERSON_ID;
        Person { id, name, email_address, credit_card, city, state, date_time, extra }
    }

    fn auction(&self, n: u64, id: u64, rng: &mut Rng, date_time: Timestamp) -> Auction {
        let seller = if rng.int(self.hot_sellers_ratio) > 0 {
            (self.last_person(id) / HOT_RATIO) * HOT_RATIO
        } else {
            self.next_person(id, rng)
        } + FIRST_PERSON_ID;
        let category = FIRST_CATEGORY_ID + i64::from(rng.int(NUM_CATEGORIES));
        let initial_bid = rng.price();
        // Up to twice the event time the next auctions' worth of events takes.
        let events_for_auctions =
            (self.num_in_flight_auctions as u64 * self.total_proportion()) / self.auction_proportion;
        let horizon = self.timestamp(n + events_for_auctions) - date_time;
        let expires = date_time + 1 + rng.long((horizon * 2).max(1));
        let item_name = rng.string(20, ' ');
        let description = rng.string(100, ' ');
        let reserve = initial_bid + rng.price();
        let size = 8 + item_name.len() + description.len() + 40;
        let extra = self.extra(rng, size, self.avg_auction_bytes);
        let id = self.last_auction(id) + FIRST_AUCTION_ID;
        Auction { id, item_name, description, initial_bid, reserve, date_time, expires, seller, category, extra }
    }

    fn bid(&self, id: u64, rng: &mut Rng, date_time: Timestamp) -> Bid {
        let auction = if rng.int(self.hot_auction_ratio) > 0 {
            (self.last_auction(id) / HOT_RATIO) * HOT_RATIO
        } else {
            self.next_auction(id, rng)
        } + FIRST_AUCTION_ID;
        let bidder = if rng.int(self.hot_bidders_ratio) > 0 {
            (self.last_person(id) / HOT_RATIO) * HOT_RATIO + 1
        } else {
            self.next_person(id, rng)
        } + FIRST_PERSON_ID;
        let price = rng.price();
        let tables = self.tables();
        let (channel, url) = if rng.int(2) > 0 {
            let i = rng.int(4) as usize;
            (HOT_CHANNELS[i].to_owned(), tables.hot_urls[i].clone())
        } else {
            let c = rng.int(CHANNELS as u32) as usize;
            (format!("channel-{c}"), tables.channel_urls[c].clone())
        };
        let extra = self.extra(rng, 32, self.avg_bid_bytes);
        Bid { auction, bidder, price, channel, url, date_time, extra }
    }

    /// Checks the arguments (an error names the bad one).
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(WeirError::Argument(m));
        if !(self.event_rate > 0.0 && self.event_rate.is_finite()) {
            return bad(format!(
                "--event-rate must be a positive number of events per second, not {}",
                self.event_rate
            ));
        }
        if self.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            return bad("--rate must be a positive number of events per second".into());
        }
        if self.real_time && self.rate.is_some() {
            return bad("--real-time paces events by their time (--event-rate from --base-time-ms); drop --rate".into());
        }
        if self.person_proportion == 0 || self.auction_proportion == 0 || self.bid_proportion == 0 {
            return bad("--person-proportion, --auction-proportion and --bid-proportion must each be at least 1".into());
        }
        if self.total_proportion() > 1_000_000 {
            return bad("the proportions must add up to at most 1000000".into());
        }
        if self.watermark_delay > Duration::from_secs(365 * 24 * 3600) {
            return bad("--watermark-delay-ms must be at most a year".into());
        }
        Ok(())
    }
}

impl EventSequence for NexmarkConfig {
    type Event = Event;

    fn generate(&self, index: u64) -> (Event, Timestamp) {
        // As the reference: event number n = 1 + index, id = 1 + n.
        let n = 1 + index;
        let id = 1 + n;
        let date_time = self.timestamp(n);
        let mut rng = Rng::new(self.seed, id);
        let kind = id % self.total_proportion();
        let event = if kind < self.person_proportion {
            Event::Person(self.person(id, &mut rng, date_time))
        } else if kind < self.person_proportion + self.auction_proportion {
            Event::Auction(self.auction(n, id, &mut rng, date_time))
        } else {
            Event::Bid(self.bid(id, &mut rng, date_time))
        };
        (event, date_time)
    }

    fn events(&self) -> Option<u64> {
        self.events
    }

    fn rate(&self) -> Option<f64> {
        self.rate
    }

    fn out_of_orderness(&self) -> Duration {
        self.watermark_delay
    }

    fn check(&self) -> Result<()> {
        NexmarkConfig::check(self)
    }

    fn real_time(&self) -> bool {
        self.real_time
    }
}

#[cfg(test)]
mod tests;
