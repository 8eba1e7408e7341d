//! Nexmark: `weir nexmark generate` writes the reference schema's JSON lines, and the query
//! jobs give the same rows from the generator (at any parallelism) as from those files, equal
//! to a direct computation from them.

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
    let said = ok(&["nexmark", "generate", "--events", "20000", "--seed", "5", "--output", events]);
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
    let expected = |query: &str| -> Vec<String> {
        let rows = bids.iter().filter_map(|b| {
            let (auction, bidder, price, time, extra) =
                (int(b, "auction"), int(b, "bidder"), int(b, "price"), int(b, "dateTime"), text(b, "extra"));
            match query {
                "q0" => Some(format!("{auction}\t{bidder}\t{price}\t{time}\t{extra}")),
                "q1" => Some(format!(
                    "{auction}\t{bidder}\t{}.{:03}\t{time}\t{extra}",
                    price * 908 / 1000,
                    price * 908 % 1000
                )),
                "q2" => (auction % 123 == 0).then(|| format!("{auction}\t{price}")),
                _ => unreachable!(),
            }
        });
        sorted(rows.collect())
    };
    for query in ["q0", "q1", "q2"] {
        let job = format!("nexmark-{query}");
        let generated = dir.join(&format!("{query}-generated"));
        ok(&[
            "run",
            &job,
            "--local",
            "-p",
            "2",
            "--",
            "--events",
            "20000",
            "--seed",
            "5",
            "--output",
            generated.to_str().unwrap(),
        ]);
        let from_files = dir.join(&format!("{query}-files"));
        ok(&["run", &job, "--local", "-p", "1", "--", "--input", events, "--output", from_files.to_str().unwrap()]);
        let want = expected(query);
        assert!(!want.is_empty(), "{query}");
        assert!(
            sorted(read_output(&generated)) == want,
            "{query}: the generator's rows differ from the direct computation"
        );
        assert!(
            sorted(read_output(&from_files)) == want,
            "{query}: the rows from files differ from the direct computation"
        );
    }

    // A bad argument is named.
    let bad = weir(&["run", "nexmark-q0", "--local", "--", "--event-rate", "-1"], TIMEOUT);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--event-rate must be a positive number"));
}
