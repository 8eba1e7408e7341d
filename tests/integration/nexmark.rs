//! Nexmark: `weir nexmark generate` writes the reference schema's JSON lines, and the query
//! jobs give the same rows from the generator (at any parallelism) as from those files, equal
//! to a direct computation from them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;

use crate::support::{TempDir, read_output, weir};

const TIMEOUT: Duration = Duration::from_secs(120);

fn ok(args: &[&str]) -> String {
    let out = weir(args, TIMEOUT);
    assert!(out.status.success(), "weir {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

#[test]
fn query_rows_from_the_generator_equal_those_from_its_files_and_a_direct_computation() {
    let dir = TempDir::new("nexmark");
    let events = dir.join("events");
    let events = events.to_str().unwrap();
    let said =
        ok(&["nexmark", "generate", "--events", "20000", "--seed", "5", "--event-rate", "1000", "--output", events]);
    assert!(said.contains("400 people, 1200 auctions, 18400 bids"), "{said}");
    let read = |name: &str| -> Vec<Value> {
        let text = std::fs::read_to_string(dir.join("events").join(name)).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k.join(",")
    };
    let (people, auctions, bids) = (read("person.jsonl"), read("auction.jsonl"), read("bid.jsonl"));
    assert_eq!(keys(&people[0]), "city,creditCard,dateTime,emailAddress,extra,id,name,state");
    assert_eq!(keys(&auctions[0]), "category,dateTime,description,expires,extra,id,initialBid,itemName,reserve,seller");
    assert_eq!(keys(&bids[0]), "auction,bidder,channel,dateTime,extra,price,url");
    assert_eq!(bids.len(), 18_400);

    // Written once: a second run refuses to replace the files.
    let again = weir(&["nexmark", "generate", "--events", "10", "--output", events], TIMEOUT);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("give --overwrite to replace it"));
    assert_eq!(read("bid.jsonl").len(), 18_400, "nothing was replaced");

    let int = |v: &Value, k: &str| v[k].as_i64().unwrap();
    let text = |v: &Value, k: &str| v[k].as_str().unwrap().to_owned();
    let bid_rows = |f: &dyn Fn(&Value) -> Option<String>| sorted(bids.iter().filter_map(f).collect());
    let euros = |p: i64| format!("{}.{:03}", p * 908 / 1000, p * 908 % 1000);
    let mut expected: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    expected.insert(
        "q0",
        bid_rows(&|b| {
            Some(format!(
                "{}\t{}\t{}\t{}\t{}",
                int(b, "auction"),
                int(b, "bidder"),
                int(b, "price"),
                int(b, "dateTime"),
                text(b, "extra")
            ))
        }),
    );
    expected.insert(
        "q1",
        bid_rows(&|b| {
            let (a, who, p, t, x) =
                (int(b, "auction"), int(b, "bidder"), int(b, "price"), int(b, "dateTime"), text(b, "extra"));
            Some(format!("{a}\t{who}\t{}\t{t}\t{x}", euros(p)))
        }),
    );
    expected.insert(
        "q2",
        bid_rows(&|b| (int(b, "auction") % 123 == 0).then(|| format!("{}\t{}", int(b, "auction"), int(b, "price")))),
    );
    // q3: category-10 auctions of sellers in OR, ID, CA.
    let people_by_id: HashMap<i64, &Value> = people.iter().map(|p| (int(p, "id"), p)).collect();
    expected.insert(
        "q3",
        sorted(
            auctions
                .iter()
                .filter(|a| int(a, "category") == 10)
                .filter_map(|a| {
                    let p = people_by_id.get(&int(a, "seller"))?;
                    ["OR", "ID", "CA"].contains(&text(p, "state").as_str()).then(|| {
                        format!("{}\t{}\t{}\t{}", text(p, "name"), text(p, "city"), text(p, "state"), int(a, "id"))
                    })
                })
                .collect(),
        ),
    );
    // q5: per 10 s window every 2 s, the auctions with the most bids.
    let mut q5 = Vec::new();
    let last = bids.iter().map(|b| int(b, "dateTime")).max().unwrap();
    let first = bids.iter().map(|b| int(b, "dateTime")).min().unwrap();
    let mut start = first - first.rem_euclid(2_000) - 8_000;
    while start <= last {
        let mut counts: HashMap<i64, u64> = HashMap::new();
        for b in bids.iter().filter(|b| (start..start + 10_000).contains(&int(b, "dateTime"))) {
            *counts.entry(int(b, "auction")).or_default() += 1;
        }
        let max = counts.values().copied().max().unwrap_or(0);
        q5.extend(counts.iter().filter(|(_, n)| **n == max).map(|(a, n)| format!("{a}\t{n}")));
        start += 2_000;
    }
    expected.insert("q5", sorted(q5));
    // q7: the bids at a 10 s window's highest price, within [end - 10 s, end].
    let mut max_by_end: BTreeMap<i64, i64> = BTreeMap::new();
    for b in &bids {
        let end = int(b, "dateTime").div_euclid(10_000) * 10_000 + 10_000;
        let m = max_by_end.entry(end).or_insert(i64::MIN);
        *m = (*m).max(int(b, "price"));
    }
    let mut q7 = Vec::new();
    for (end, max) in &max_by_end {
        for b in bids.iter().filter(|b| int(b, "price") == *max && (end - 10_000..=*end).contains(&int(b, "dateTime")))
        {
            q7.push(format!(
                "{}\t{}\t{}\t{}\t{}",
                int(b, "auction"),
                int(b, "price"),
                int(b, "bidder"),
                int(b, "dateTime"),
                text(b, "extra")
            ));
        }
    }
    expected.insert("q7", sorted(q7));
    // q8: people who entered and sold in the same 10 s window.
    let window = |v: &Value| int(v, "dateTime").div_euclid(10_000) * 10_000;
    let sold: HashSet<(i64, i64)> = auctions.iter().map(|a| (int(a, "seller"), window(a))).collect();
    let q8: HashSet<String> = people
        .iter()
        .filter(|p| sold.contains(&(int(p, "id"), window(p))))
        .map(|p| format!("{}\t{}\t{}", int(p, "id"), text(p, "name"), window(p)))
        .collect();
    expected.insert("q8", sorted(q8.into_iter().collect()));
    // q11: each bidder's sessions (bids at most 10 s apart; the end is the last bid + 10 s).
    let mut by_bidder: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for b in &bids {
        by_bidder.entry(int(b, "bidder")).or_default().push(int(b, "dateTime"));
    }
    let mut q11 = Vec::new();
    for (bidder, mut times) in by_bidder {
        times.sort_unstable();
        let (mut start, mut last, mut n) = (times[0], times[0], 0);
        for t in times {
            if t > last + 10_000 {
                q11.push(format!("{bidder}\t{n}\t{start}\t{}", last + 10_000));
                (start, n) = (t, 0);
            }
            (last, n) = (t, n + 1);
        }
        q11.push(format!("{bidder}\t{n}\t{start}\t{}", last + 10_000));
    }
    expected.insert("q11", sorted(q11));
    expected.insert(
        "q14",
        bid_rows(&|b| {
            let (p, t, x) = (int(b, "price"), int(b, "dateTime"), text(b, "extra"));
            if !(p * 908 > 1_000_000_000 && p * 908 < 50_000_000_000) {
                return None;
            }
            let hour = t.div_euclid(3_600_000).rem_euclid(24);
            let kind = if (8..=18).contains(&hour) {
                "dayTime"
            } else if hour <= 6 || hour >= 20 {
                "nightTime"
            } else {
                "otherTime"
            };
            let c = x.matches('c').count();
            Some(format!("{}\t{}\t{}\t{kind}\t{t}\t{x}\t{c}", int(b, "auction"), int(b, "bidder"), euros(p)))
        }),
    );
    expected.insert(
        "q13",
        bid_rows(&|b| {
            let a = int(b, "auction");
            Some(format!(
                "{a}\t{}\t{}\t{}\t{}",
                int(b, "bidder"),
                int(b, "price"),
                int(b, "dateTime"),
                a.rem_euclid(10_000)
            ))
        }),
    );
    let auctions_by_id: HashMap<i64, &Value> = auctions.iter().map(|a| (int(a, "id"), a)).collect();
    expected.insert(
        "q20",
        bid_rows(&|b| {
            let a = auctions_by_id.get(&int(b, "auction")).filter(|a| int(a, "category") == 10)?;
            let bid = [
                int(b, "auction").to_string(),
                int(b, "bidder").to_string(),
                int(b, "price").to_string(),
                text(b, "channel"),
                text(b, "url"),
                int(b, "dateTime").to_string(),
                text(b, "extra"),
            ];
            let auction = [
                text(a, "itemName"),
                text(a, "description"),
                int(a, "initialBid").to_string(),
                int(a, "reserve").to_string(),
                int(a, "dateTime").to_string(),
                int(a, "expires").to_string(),
                int(a, "seller").to_string(),
                int(a, "category").to_string(),
                text(a, "extra"),
            ];
            Some(format!("{}\t{}", bid.join("\t"), auction.join("\t")))
        }),
    );
    expected.insert(
        "q21",
        bid_rows(&|b| {
            let (channel, url) = (text(b, "channel"), text(b, "url"));
            let hot = ["apple", "google", "facebook", "baidu"].iter().position(|c| *c == channel.to_lowercase());
            let id = match hot {
                Some(i) => ["0", "1", "2", "3"][i].to_owned(),
                None => url.split(['?', '&']).find_map(|kv| kv.strip_prefix("channel_id="))?.to_owned(),
            };
            Some(format!("{}\t{}\t{}\t{channel}\t{id}", int(b, "auction"), int(b, "bidder"), int(b, "price")))
        }),
    );
    expected.insert(
        "q22",
        bid_rows(&|b| {
            let url = text(b, "url");
            let dirs: Vec<&str> = url.split('/').skip(3).take(3).collect();
            Some(format!(
                "{}\t{}\t{}\t{}\t{}",
                int(b, "auction"),
                int(b, "bidder"),
                int(b, "price"),
                text(b, "channel"),
                dirs.join("\t")
            ))
        }),
    );
    for (query, want) in &expected {
        let job = format!("nexmark-{query}");
        let generated = dir.join(&format!("{query}-generated"));
        let gen_args = ["--events", "20000", "--seed", "5", "--event-rate", "1000"];
        let mut run = vec!["run", job.as_str(), "--local", "-p", "2", "--"];
        run.extend(gen_args);
        run.extend(["--output", generated.to_str().unwrap()]);
        ok(&run);
        let from_files = dir.join(&format!("{query}-files"));
        ok(&["run", &job, "--local", "-p", "1", "--", "--input", events, "--output", from_files.to_str().unwrap()]);
        assert!(!want.is_empty(), "{query}");
        assert!(
            sorted(read_output(&generated)) == *want,
            "{query}: the generator's rows differ from the direct computation"
        );
        assert!(
            sorted(read_output(&from_files)) == *want,
            "{query}: the rows from files differ from the direct computation"
        );
    }

    // q13's side input from a file: its values, and a bad line named by file and line.
    let side = dir.join("side.csv");
    let table: String = (0..10_000).map(|i| format!("{i},v{i}\n")).collect();
    std::fs::write(&side, table).unwrap();
    let out = dir.join("q13-side");
    let side_arg = side.to_str().unwrap();
    ok(&[
        "run",
        "nexmark-q13",
        "--local",
        "--",
        "--input",
        events,
        "--side-input",
        side_arg,
        "--output",
        out.to_str().unwrap(),
    ]);
    let rows = read_output(&out);
    assert_eq!(rows.len(), bids.len());
    assert!(rows.iter().all(|r| r.rsplit('\t').next().unwrap().starts_with('v')));
    std::fs::write(&side, "1,a\none two\n").unwrap();
    let bad = weir(&["run", "nexmark-q13", "--local", "--", "--events", "100", "--side-input", side_arg], TIMEOUT);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("side.csv line 2: expected key,value"), "{stderr}");

    // A bad argument is named.
    let bad = weir(&["run", "nexmark-q0", "--local", "--", "--event-rate", "-1"], TIMEOUT);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--event-rate must be a positive number"));
}
