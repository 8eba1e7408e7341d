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

/// An auction's columns in the reference's order.
const AUCTION_COLUMNS: [&str; 10] =
    ["id", "itemName", "description", "initialBid", "reserve", "dateTime", "expires", "seller", "category", "extra"];

/// Fields of an event, tab-separated.
fn columns(v: &Value, names: &[&str]) -> String {
    let field = |name: &&str| match &v[*name] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    names.iter().map(field).collect::<Vec<_>>().join("\t")
}

/// The generator's arguments of every run here.
const GENERATOR: [&str; 6] = ["--events", "20000", "--seed", "5", "--event-rate", "1000"];

/// Writes the events of [`GENERATOR`] to `DIR/events` with `weir nexmark generate`.
fn generate(dir: &TempDir) -> String {
    let events = dir.join("events");
    let events = events.to_str().unwrap().to_owned();
    let mut args = vec!["nexmark", "generate"];
    args.extend(GENERATOR);
    args.extend(["--output", &events]);
    let said = ok(&args);
    assert!(said.contains("400 people, 1200 auctions, 18400 bids"), "{said}");
    events
}

/// The events of one kind that [`generate`] wrote.
fn read_events(dir: &TempDir, name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("events").join(name)).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Runs `query` from the generator at p=2 and from the files at p=1, each into its own
/// directory, which are returned.
fn run_both(dir: &TempDir, events: &str, query: &str) -> [std::path::PathBuf; 2] {
    let job = format!("nexmark-{query}");
    let generated = dir.join(&format!("{query}-generated"));
    let mut run = vec!["run", job.as_str(), "--local", "-p", "2", "--"];
    run.extend(GENERATOR);
    run.extend(["--output", generated.to_str().unwrap()]);
    ok(&run);
    let from_files = dir.join(&format!("{query}-files"));
    ok(&["run", &job, "--local", "-p", "1", "--", "--input", events, "--output", from_files.to_str().unwrap()]);
    [generated, from_files]
}

#[test]
fn query_rows_from_the_generator_equal_those_from_its_files_and_a_direct_computation() {
    let dir = TempDir::new("nexmark");
    let events = generate(&dir);
    let events = events.as_str();
    let read = |name: &str| read_events(&dir, name);
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
            Some(format!("{}\t{}", bid.join("\t"), columns(a, &AUCTION_COLUMNS[1..])))
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
        let [generated, from_files] = run_both(&dir, events, query);
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

    // `weir jobs` says which query has no job, and why.
    let jobs = ok(&["jobs"]);
    assert!(jobs.lines().any(|l| l.starts_with("nexmark-q6") && l.contains("not provided: ")), "{jobs}");
    for q in 0..=22 {
        assert!(jobs.lines().any(|l| l.starts_with(&format!("nexmark-q{q} "))), "no nexmark-q{q}: {jobs}");
    }

    // A bad argument is named.
    let bad = weir(&["run", "nexmark-q0", "--local", "--", "--event-rate", "-1"], TIMEOUT);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--event-rate must be a positive number"));
}

/// An updating query's output in the order each subtask wrote it: part files by subtask and
/// sequence number, their lines in order.
fn read_changelog(dir: &std::path::Path) -> Vec<String> {
    let mut files: Vec<((u64, u64), std::path::PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_owned();
            let (subtask, seq) = name.strip_prefix("part-")?.split_once('-')?;
            Some(((subtask.parse().ok()?, seq.parse().ok()?), path))
        })
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|(_, path)| std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// The table an upsert changelog leaves, keyed by the columns `key` (after the kind): each
/// key's last row. A key's changes must start with `+I`, go on with `+U`, and end a row with
/// `-D` (which a new `+I` may follow).
fn fold(query: &str, changes: &[String], key: &[usize]) -> Vec<String> {
    let mut table: HashMap<Vec<String>, String> = HashMap::new();
    for line in changes {
        let (kind, row) = line.split_once('\t').unwrap_or_else(|| panic!("{query}: no kind in '{line}'"));
        let cols: Vec<&str> = row.split('\t').collect();
        let k: Vec<String> = key.iter().map(|&i| cols[i].to_owned()).collect();
        let present = table.contains_key(&k);
        match kind {
            "+I" => assert!(!present, "{query}: +I of a present key: {line}"),
            "+U" | "-D" => assert!(present, "{query}: {kind} of an absent key: {line}"),
            _ => panic!("{query}: unknown kind in '{line}'"),
        }
        if kind == "-D" {
            table.remove(&k);
        } else {
            table.insert(k, row.to_owned());
        }
    }
    sorted(table.into_values().collect())
}

#[test]
fn updating_query_changelogs_fold_to_a_direct_computation() {
    let dir = TempDir::new("nexmark-updating");
    let events = generate(&dir);
    let (auctions, bids) = (read_events(&dir, "auction.jsonl"), read_events(&dir, "bid.jsonl"));
    let int = |v: &Value, k: &str| v[k].as_i64().unwrap();
    let text = |v: &Value, k: &str| v[k].as_str().unwrap().to_owned();
    let bid_row = |b: &Value| {
        let cols = [int(b, "auction"), int(b, "bidder"), int(b, "price")].map(|n| n.to_string());
        format!("{}\t{}\t{}\t{}", cols.join("\t"), text(b, "channel"), text(b, "url"), int(b, "dateTime"))
            + "\t"
            + &text(b, "extra")
    };
    // Every bid is on 2024-01-01 (the generator's default base time, 20 s of events).
    let day_start = 1_704_067_200_000;
    assert!(bids.iter().all(|b| (day_start..day_start + 86_400_000).contains(&int(b, "dateTime"))));
    let day = "2024-01-01";
    let rank = |p: i64| match p {
        ..10_000 => 1,
        10_000..1_000_000 => 2,
        _ => 3,
    };

    // The bids in each auction's time (q4, q9).
    let mut in_time: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    for a in &auctions {
        let (id, from, to) = (int(a, "id"), int(a, "dateTime"), int(a, "expires"));
        let matching = bids.iter().filter(|b| int(b, "auction") == id && (from..=to).contains(&int(b, "dateTime")));
        in_time.insert(id, matching.collect());
    }
    let by_id: HashMap<i64, &Value> = auctions.iter().map(|a| (int(a, "id"), a)).collect();
    let mut expected: Vec<(&str, Vec<usize>, Vec<String>)> = Vec::new();
    let mut finals: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut q9 = Vec::new();
    for (id, matching) in &in_time {
        // Highest price, then earliest time, then first seen.
        let Some(best) = matching.iter().copied().reduce(|best, b| {
            let better = int(b, "price") > int(best, "price")
                || (int(b, "price") == int(best, "price") && int(b, "dateTime") < int(best, "dateTime"));
            if better { b } else { best }
        }) else {
            continue;
        };
        let a = by_id[id];
        finals.entry(int(a, "category")).or_default().push(int(best, "price"));
        let bid = columns(best, &["auction", "bidder", "price", "dateTime", "extra"]);
        let auction = columns(a, &AUCTION_COLUMNS);
        q9.push(format!("{auction}\t{bid}"));
    }
    let q4 = finals.iter().map(|(c, prices)| format!("{c}\t{}", prices.iter().sum::<i64>() / prices.len() as i64));
    expected.push(("q4", vec![0], q4.collect()));
    expected.push(("q9", vec![0], q9));

    // q15–q17: counts per price rank, distinct bidders and auctions.
    #[derive(Default)]
    struct Stats {
        bids: [u64; 4],
        bidders: [HashSet<i64>; 4],
        auctions: [HashSet<i64>; 4],
        minute: String,
        prices: Vec<i64>,
    }
    impl Stats {
        fn add(&mut self, b: &Value, rank: usize) {
            let (bidder, auction) = (b["bidder"].as_i64().unwrap(), b["auction"].as_i64().unwrap());
            for i in [0, rank] {
                self.bids[i] += 1;
                self.bidders[i].insert(bidder);
                self.auctions[i].insert(auction);
            }
            let t = b["dateTime"].as_i64().unwrap();
            let minute = format!("{:02}:{:02}", t / 3_600_000 % 24, t / 60_000 % 60);
            self.minute = self.minute.clone().max(minute);
            self.prices.push(b["price"].as_i64().unwrap());
        }
        fn counts(&self) -> String {
            let distinct = |sets: &[HashSet<i64>; 4]| sets.iter().map(|s| s.len().to_string()).collect::<Vec<_>>();
            let mut cols: Vec<String> = self.bids.iter().map(u64::to_string).collect();
            cols.extend(distinct(&self.bidders));
            cols.extend(distinct(&self.auctions));
            cols.join("\t")
        }
    }
    let mut all = Stats::default();
    let mut by_channel: BTreeMap<String, Stats> = BTreeMap::new();
    let mut by_auction: BTreeMap<i64, Stats> = BTreeMap::new();
    for b in &bids {
        let r = rank(int(b, "price"));
        all.add(b, r);
        by_channel.entry(text(b, "channel")).or_default().add(b, r);
        by_auction.entry(int(b, "auction")).or_default().add(b, r);
    }
    expected.push(("q15", vec![0], vec![format!("{day}\t{}", all.counts())]));
    let q16 = by_channel.iter().map(|(c, s)| format!("{c}\t{day}\t{}\t{}", s.minute, s.counts()));
    expected.push(("q16", vec![0, 1], q16.collect()));
    let q17 = by_auction.iter().map(|(a, s)| {
        let (min, max, sum) =
            (s.prices.iter().min().unwrap(), s.prices.iter().max().unwrap(), s.prices.iter().sum::<i64>());
        let n = s.bids.map(|n| n.to_string()).join("\t");
        format!("{a}\t{day}\t{n}\t{min}\t{max}\t{}\t{sum}", sum / s.bids[0] as i64)
    });
    expected.push(("q17", vec![0, 1], q17.collect()));

    // q18: each bidder's latest bid per auction (of equal times the last seen).
    let mut last: HashMap<(i64, i64), &Value> = HashMap::new();
    for b in &bids {
        let slot = last.entry((int(b, "bidder"), int(b, "auction"))).or_insert(b);
        if int(b, "dateTime") >= int(slot, "dateTime") {
            *slot = b;
        }
    }
    expected.push(("q18", vec![1, 0], last.values().map(|b| bid_row(b)).collect()));

    for (query, key, want) in &expected {
        assert!(!want.is_empty(), "{query}");
        for out in run_both(&dir, &events, query) {
            let got = fold(query, &read_changelog(&out), key);
            assert!(
                got == sorted(want.clone()),
                "{query} ({}): the folded changelog differs from the direct computation",
                out.display()
            );
        }
    }

    // q19: each auction's ten highest prices by rank (bids of equal price rank in the order
    // seen, which two sources interleave differently), each row one of the auction's bids.
    let mut by_auction: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for b in &bids {
        by_auction.entry(int(b, "auction")).or_default().push(int(b, "price"));
    }
    let mut want = Vec::new();
    for (auction, prices) in &mut by_auction {
        prices.sort_unstable_by(|a, b| b.cmp(a));
        want.extend(prices.iter().take(10).enumerate().map(|(i, p)| format!("{auction}\t{p}\t{}", i + 1)));
    }
    let all_bids: HashSet<String> = bids.iter().map(bid_row).collect();
    for out in run_both(&dir, &events, "q19") {
        let table = fold("q19", &read_changelog(&out), &[0, 7]);
        let (rows, ranks): (Vec<&str>, Vec<&str>) = table.iter().map(|r| r.rsplit_once('\t').unwrap()).unzip();
        assert!(rows.iter().all(|r| all_bids.contains(*r)), "q19: a ranked row is no bid");
        let got: Vec<String> = rows
            .iter()
            .zip(ranks)
            .map(|(r, rank)| {
                let cols: Vec<&str> = r.split('\t').collect();
                format!("{}\t{}\t{rank}", cols[0], cols[2])
            })
            .collect();
        assert!(
            sorted(got) == sorted(want.clone()),
            "q19 ({}): the ranks differ from the direct computation",
            out.display()
        );
    }

    // q12: windows of the wall clock, so only the total is fixed.
    for out in run_both(&dir, &events, "q12") {
        let rows = read_output(&out);
        let mut total = 0;
        for row in &rows {
            let cols: Vec<i64> = row.split('\t').map(|c| c.parse().unwrap()).collect();
            assert!(cols[2] % 10_000 == 0 && cols[3] == cols[2] + 10_000, "q12: not a 10 s window: {row}");
            total += cols[1];
        }
        assert_eq!(total, bids.len() as i64, "q12 ({}): every bid counted once", out.display());
    }
}

#[test]
fn bench_nexmark_reports_throughput_cpu_memory_and_latency() {
    let queries = "q0,q4,q10";
    let args = ["bench", "nexmark", "--queries", queries, "--events", "20000", "-p", "1,2", "--latency-seconds", "1"];
    let mut json = args.to_vec();
    json.push("--json");
    let out: Value = serde_json::from_str(&ok(&json)).unwrap();
    let rows = out.as_array().unwrap();
    let cases: Vec<(String, u64)> =
        rows.iter().map(|r| (r["query"].as_str().unwrap().to_owned(), r["parallelism"].as_u64().unwrap())).collect();
    let expected: Vec<(String, u64)> =
        queries.split(',').flat_map(|q| [(q.to_owned(), 1), (q.to_owned(), 2)]).collect();
    assert_eq!(cases, expected);
    for r in rows {
        assert_eq!(r["events"], 20_000, "{r}");
        for field in ["events_per_second", "events_per_cpu_second", "peak_rss_bytes"] {
            assert!(r[field].as_f64().is_some_and(|v| v > 0.0), "{field}: {r}");
        }
        if r["query"] == "q10" {
            // Its rows are files: no latency run, and the files it wrote are gone.
            assert!(r["latency_rate"].is_null() && r["latency_p99_ms"].is_null(), "{r}");
            continue;
        }
        assert!(r["latency_rate"].as_f64().is_some_and(|v| v > 0.0), "latency_rate: {r}");
        let (p50, p99) = (r["latency_p50_ms"].as_f64().unwrap(), r["latency_p99_ms"].as_f64().unwrap());
        assert!(0.0 <= p50 && p50 <= p99, "{r}");
        assert!(r["latency_rows"].as_u64().unwrap() > 0, "{r}");
    }

    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("weir-bench-q10-"))
        .collect();
    assert!(left.is_empty(), "q10's benchmark output left behind: {left:?}");

    let bad = weir(&["bench", "nexmark", "--queries", "q6"], TIMEOUT);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown Nexmark query 'q6'"));
    let bad = weir(&["run", "nexmark-q0", "--local", "--", "--output", "x", "--latency-out", "y"], TIMEOUT);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--output and --latency-out exclude each other"));
}

/// q10's generator arguments: 3000 events at 10 per second of event time span five minutes
/// (five `hm` partitions), produced at 2000 per second of wall clock so that checkpoints (every
/// 100 ms) commit files and partitions while the job runs.
const Q10_GENERATOR: [&str; 8] = ["--events", "3000", "--seed", "7", "--event-rate", "10", "--rate", "2000"];

/// The partition of a bid at epoch millisecond `t` as Flink writes q10's: `dt=yyyy-MM-dd/hm=HH%3Amm`
/// (computed here independently of the job, through the days of the civil calendar).
fn q10_partition(t: i64) -> String {
    let (days, ms) = (t.div_euclid(86_400_000), t.rem_euclid(86_400_000));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let minute = ms / 60_000;
    format!("dt={y:04}-{m:02}-{d:02}/hm={:02}%3A{:02}", minute / 60, minute % 60)
}

/// Checks q10's output in `out` against the bids of `events`: each bid's line exactly once, in
/// the partition of its `dateTime`; nothing but partition directories at the top, nothing
/// hidden left (no in-progress or pending file), and a `_SUCCESS` in every partition.
fn check_q10(out: &std::path::Path, bids: &[Value]) {
    let int = |v: &Value, k: &str| v[k].as_i64().unwrap();
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for b in bids {
        let t = int(b, "dateTime");
        let line = format!(
            "{}\t{}\t{}\t{t}\t{}",
            int(b, "auction"),
            int(b, "bidder"),
            int(b, "price"),
            b["extra"].as_str().unwrap()
        );
        expected.entry(q10_partition(t)).or_default().push(line);
    }
    assert!(expected.len() >= 5, "the bids span several minutes: {:?}", expected.keys());
    for entry in std::fs::read_dir(out).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(name.starts_with("dt=") && entry.path().is_dir(), "only partitions at the top: {name}");
    }
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut successes = HashSet::new();
    for day in std::fs::read_dir(out).unwrap().flatten() {
        for minute in std::fs::read_dir(day.path()).unwrap().flatten() {
            let partition = format!("{}/{}", day.file_name().to_string_lossy(), minute.file_name().to_string_lossy());
            assert!(minute.path().is_dir(), "{partition} is a directory");
            for file in std::fs::read_dir(minute.path()).unwrap().flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                if name == "_SUCCESS" {
                    assert_eq!(std::fs::metadata(file.path()).unwrap().len(), 0, "{partition}/_SUCCESS is empty");
                    successes.insert(partition.clone());
                    continue;
                }
                assert!(name.starts_with("part-"), "only committed part files are left: {partition}/{name}");
                let text = std::fs::read_to_string(file.path()).unwrap();
                found.entry(partition.clone()).or_default().extend(text.lines().map(str::to_owned));
            }
        }
    }
    for lines in expected.values_mut().chain(found.values_mut()) {
        lines.sort();
    }
    assert_eq!(found.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "the partitions");
    for (partition, lines) in &expected {
        assert_eq!(found[partition].len(), lines.len(), "{partition}: every bid once");
        assert!(&found[partition] == lines, "{partition}: the bids of its minute, each once");
        assert!(successes.contains(partition), "{partition} has its _SUCCESS");
    }
}

/// Writes the events of [`Q10_GENERATOR`] to `DIR/events`; returns the directory and the bids.
fn q10_events(dir: &TempDir) -> (String, Vec<Value>) {
    let events = dir.join("events").to_str().unwrap().to_owned();
    let mut args = vec!["nexmark", "generate"];
    args.extend(Q10_GENERATOR.iter().take(6));
    args.extend(["--output", &events]);
    ok(&args);
    (events, read_events(dir, "bid.jsonl"))
}

/// q10 through the real binary, from the generator at p=2 with checkpoints: every bid once in
/// the partition of its minute, every partition committed with `_SUCCESS`; a second run into
/// the same directory is refused (the partitions are an earlier run's output).
#[test]
fn q10_writes_every_bid_once_into_its_minutes_partition_and_commits_every_partition() {
    let dir = TempDir::new("nexmark-q10");
    let (_, bids) = q10_events(&dir);
    let out = dir.join("q10");
    let checkpoints = dir.join("checkpoints");
    let mut run = vec!["run", "nexmark-q10", "--local", "-p", "2", "--checkpoint-interval", "100ms"];
    run.extend(["--checkpoint-dir", checkpoints.to_str().unwrap(), "--"]);
    run.extend(Q10_GENERATOR);
    run.extend(["--output", out.to_str().unwrap()]);
    ok(&run);
    check_q10(&out, &bids);

    let again = weir(&run, TIMEOUT);
    assert!(!again.status.success(), "the directory holds an earlier run's partitions");
    assert!(String::from_utf8_lossy(&again.stderr).contains("output of an earlier run"));
    let without_output = weir(&["run", "nexmark-q10", "--local", "--", "--events", "10"], TIMEOUT);
    assert!(String::from_utf8_lossy(&without_output.stderr).contains("give --output DIR"));
}

/// q10 on a MiniCluster whose subtasks crash at commits (the writers' and the committer's
/// third `before-commit`, and a directory sync after a commit): restored from checkpoints, the
/// output is still every bid exactly once with every partition committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q10_is_exactly_once_across_crashes_at_commits() {
    use weir_actors::api::job::{JobConfig, RestartStrategy};
    use weir_actors::base::failpoint::{self, Action, Failpoint, Step};
    use weir_actors::prelude::*;
    use weir_actors::runtime::checkpoint::CheckpointConfig;
    use weir_actors::{JobStatus, JobSubmission, MiniCluster, MiniClusterConfig};

    let dir = TempDir::new("nexmark-q10-crash");
    let (_, bids) = q10_events(&dir);
    let out = dir.join("q10");
    let registry = weir_cli::with_builtin_jobs(JobRegistry::new());
    let mut args: Vec<String> = Q10_GENERATOR.map(str::to_owned).to_vec();
    args.extend(["--output".to_owned(), out.to_str().unwrap().to_owned()]);
    let config = JobConfig {
        checkpoints: Some(CheckpointConfig {
            retained: 2,
            ..CheckpointConfig::every(Duration::from_millis(50), dir.join("checkpoints"))
        }),
        restart: RestartStrategy::FixedDelay { attempts: 10, delay: Duration::from_millis(50) },
        ..Default::default()
    };
    let job = JobSubmission::from_registry(&registry, "nexmark-q10", JobArgs::parse(&args).unwrap(), 2)
        .unwrap()
        .with_config(config)
        .prepare()
        .unwrap();
    let points = vec![Failpoint { step: Step::BeforeCommit, hit: 3 }, Failpoint { step: Step::BeforeDirSync, hit: 9 }];
    let armed = failpoint::arm(Some(job.id), points.clone(), Action::Panic);
    let cluster = MiniCluster::start(MiniClusterConfig::default()).await.unwrap();
    let id = cluster.submit_prepared(job).await.unwrap();
    let result = crate::support::job_result(&cluster, id, TIMEOUT).await;
    cluster.shutdown().await;
    assert_eq!(armed.fired(), points, "the failpoints fired (hits {:?})", armed.hits());
    assert_eq!(result.status(), JobStatus::Finished, "{:?} {:?}", result.details.cause, result.details.exceptions);
    check_q10(&out, &bids);
}
