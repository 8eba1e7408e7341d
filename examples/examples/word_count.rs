//! Counts the words of the text that ships with Weir on an embedded MiniCluster and prints
//! the ten most frequent: `cargo run --release --example word_count`.

use weir_actors::prelude::*;

fn main() -> Result<()> {
    let input = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/words.txt");
    let mut counts = MiniCluster::collect(move |env| {
        env.source("lines", TextFile::new(input))
            .flat_map("split", |l: String| l.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
            .key_by(|w: &String| w.clone())
            .window(Global::new())
            .aggregate("count", Count)
    })?;
    counts.sort_by(|a, b| b.value.cmp(&a.value).then(a.key.cmp(&b.key)));
    for w in counts.iter().take(10) {
        println!("{:>5}  {}", w.value, w.key);
    }
    Ok(())
}
