//! `event-windows`: per-user counts, sums and maxima of amounts in event-time windows of a
//! CSV file.

use std::time::Duration;

use weir_actors::prelude::*;

use crate::csv::{OnBadLine, field, fields, good_records, is_header, text_input};
use crate::file_sink;

/// A line `user,ts_ms,amount` (the amount an integer, e.g. cents: sums are exact).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Purchase {
    /// Who.
    pub user: String,
    /// When (ms since the epoch).
    pub ts: i64,
    /// How much.
    pub amount: i64,
}

const FIELDS: [&str; 3] = ["user", "ts_ms", "amount"];

/// Parses a purchase line (a header line is `None`).
pub fn parse_purchase(line: &str) -> std::result::Result<Option<Purchase>, String> {
    if is_header(line, &FIELDS) {
        return Ok(None);
    }
    let f = fields(line, &FIELDS)?;
    let ts = field(&f, &FIELDS, 1, "an integer (ms since the epoch)")?;
    let amount = field(&f, &FIELDS, 2, "an integer")?;
    Ok(Some(Purchase { user: f[0].to_owned(), ts, amount }))
}

/// Count, sum and maximum of a window's amounts, kept incrementally.
#[derive(Debug, Clone, Copy)]
struct Totals;

impl AggregateFunction<Purchase> for Totals {
    type Acc = (u64, i64, i64);
    type Out = (u64, i64, i64);
    fn create(&self) -> Self::Acc {
        (0, 0, i64::MIN)
    }
    #[inline]
    fn add(&self, acc: &mut Self::Acc, p: &Purchase) {
        *acc = (acc.0 + 1, acc.1.saturating_add(p.amount), acc.2.max(p.amount));
    }
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
        *acc = (acc.0 + other.0, acc.1.saturating_add(other.1), acc.2.max(other.2));
    }
    fn result(&self, acc: &Self::Acc) -> Self::Out {
        *acc
    }
}

/// Formats a window's totals as the job's output line.
struct Line;

impl ProcessWindowFunction for Line {
    type Key = String;
    type In = (u64, i64, i64);
    type Out = String;
    fn process(
        &mut self,
        user: &String,
        totals: Vec<Self::In>,
        ctx: &mut WindowContext<'_, String, String>,
    ) -> Result<()> {
        let w = ctx.window();
        for (count, sum, max) in totals {
            ctx.emit(format!("{user}\t{}\t{}\t{count}\t{sum}\t{max}", w.start, w.end));
        }
        Ok(())
    }
}

/// A positive number of milliseconds from `--key`.
fn window_ms(args: &JobArgs, key: &str) -> Result<Duration> {
    let ms: i64 = args.parse_req(key)?;
    if ms <= 0 {
        return Err(WeirError::Argument(format!("--{key} must be a positive number of milliseconds, not {ms}")));
    }
    Ok(Duration::from_millis(ms as u64))
}

/// `event-windows`: `--input PATH --window tumbling|sliding|session [--size-ms S]
/// [--slide-ms L] [--gap-ms G] --out-of-order-ms D --output DIR [--on-bad-line skip|fail]
/// [--bad-lines DIR]`. Event time from `ts_ms`, watermarks `D` behind the highest seen; one
/// line `user<TAB>window_start<TAB>window_end<TAB>count<TAB>sum<TAB>max` per window and user
/// (the end exclusive; a session ends at its last event plus the gap, and sessions that touch
/// merge).
pub fn event_windows(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let assigner = match args.get("window")? {
        "tumbling" => Tumbling::event_time(window_ms(args, "size-ms")?),
        "sliding" => Sliding::event_time(window_ms(args, "size-ms")?, window_ms(args, "slide-ms")?),
        "session" => Session::event_time(window_ms(args, "gap-ms")?),
        other => {
            return Err(WeirError::Argument(format!("--window must be tumbling, sliding or session, not '{other}'")));
        }
    };
    let disorder = Duration::from_millis(args.parse_req("out-of-order-ms")?);
    let on_bad = OnBadLine::from_args(args)?;
    let output = file_sink(args)?;
    let purchases = env.source("purchases", text_input(args, "input")?.parse(parse_purchase));
    good_records::<Purchase>(purchases, "purchases", on_bad, args)?
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::bounded_out_of_orderness(disorder).with_timestamp_assigner(|p: &Purchase, _| p.ts),
        )
        .key_by(|p: &Purchase| p.user.clone())
        .window(assigner)
        .aggregate_with("totals", Totals, || Line)
        .sink("output", output);
    Ok(())
}
