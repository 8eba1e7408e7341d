//! `interval-join`: orders matched with their payments by an interval join on event time.

use std::time::Duration;

use weir_actors::prelude::*;

use crate::csv::{OnBadLine, field, fields, good_records, is_header, text_input};
use crate::file_sink;

/// An order line: `order_id,ts_ms,amount` (the amount is kept as written).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Order {
    /// The order's id.
    pub id: String,
    /// When it was placed (ms since the epoch).
    pub ts: i64,
    /// Its amount, as written.
    pub amount: String,
}

/// A payment line: `order_id,ts_ms,method`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Payment {
    /// The paid order's id.
    pub order: String,
    /// When it was paid (ms since the epoch).
    pub ts: i64,
    /// How.
    pub method: String,
}

const ORDER_FIELDS: [&str; 3] = ["order_id", "ts_ms", "amount"];
const PAYMENT_FIELDS: [&str; 3] = ["order_id", "ts_ms", "method"];

/// Parses an order line (a header line is `None`).
pub fn parse_order(line: &str) -> std::result::Result<Option<Order>, String> {
    if is_header(line, &ORDER_FIELDS) {
        return Ok(None);
    }
    let f = fields(line, &ORDER_FIELDS)?;
    let _: f64 = field(&f, &ORDER_FIELDS, 2, "a number")?;
    let ts = field(&f, &ORDER_FIELDS, 1, "an integer (ms since the epoch)")?;
    Ok(Some(Order { id: f[0].to_owned(), ts, amount: f[2].to_owned() }))
}

/// Parses a payment line (a header line is `None`).
pub fn parse_payment(line: &str) -> std::result::Result<Option<Payment>, String> {
    if is_header(line, &PAYMENT_FIELDS) {
        return Ok(None);
    }
    let f = fields(line, &PAYMENT_FIELDS)?;
    let ts = field(&f, &PAYMENT_FIELDS, 1, "an integer (ms since the epoch)")?;
    if f[2].is_empty() {
        return Err("field 3 'method' is empty".into());
    }
    Ok(Some(Payment { order: f[0].to_owned(), ts, method: f[2].to_owned() }))
}

/// `interval-join`: `--orders PATH --payments PATH --lower-ms L --upper-ms U
/// --out-of-order-ms D --output DIR [--on-bad-line skip|fail] [--bad-lines DIR]`. Both inputs
/// get event time from `ts_ms` with watermarks `D` behind the highest seen; every
/// order/payment pair with the same `order_id` and `order_ts + L <= payment_ts <= order_ts + U`
/// is one line `order_id<TAB>order_ts<TAB>payment_ts<TAB>amount<TAB>method`.
pub fn interval_join(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let lower: i64 = args.parse_req("lower-ms")?;
    let upper: i64 = args.parse_req("upper-ms")?;
    if lower > upper {
        return Err(WeirError::Argument(format!("--lower-ms ({lower}) must not be above --upper-ms ({upper})")));
    }
    let disorder = Duration::from_millis(args.parse_req("out-of-order-ms")?);
    let on_bad = OnBadLine::from_args(args)?;
    let output = file_sink(args)?;
    let orders = env.source("orders", text_input(args, "orders")?.parse(parse_order));
    let orders = good_records::<Order>(orders, "orders", on_bad, args)?.assign_timestamps_and_watermarks(
        WatermarkStrategy::bounded_out_of_orderness(disorder).with_timestamp_assigner(|o: &Order, _| o.ts),
    );
    let payments = env.source("payments", text_input(args, "payments")?.parse(parse_payment));
    let payments = good_records::<Payment>(payments, "payments", on_bad, args)?.assign_timestamps_and_watermarks(
        WatermarkStrategy::bounded_out_of_orderness(disorder).with_timestamp_assigner(|p: &Payment, _| p.ts),
    );
    orders
        .key_by(|o: &Order| o.id.clone())
        .interval_join(&payments.key_by(|p: &Payment| p.order.clone()))
        .between(lower, upper)
        .process("join", |o: &Order, p: &Payment, ctx: &mut JoinContext<'_, String, String>| {
            ctx.emit(format!("{}\t{}\t{}\t{}\t{}", o.id, o.ts, p.ts, o.amount, p.method));
            Ok(())
        })
        .sink("output", output);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_or_say_which_field_is_wrong() {
        let order = parse_order("o-1, 1000, 12.50").unwrap().unwrap();
        assert_eq!((order.id.as_str(), order.ts, order.amount.as_str()), ("o-1", 1000, "12.50"));
        assert!(parse_order("order_id,ts_ms,amount").unwrap().is_none());
        assert_eq!(
            parse_order("o-1,soon,3").unwrap_err(),
            "field 2 'ts_ms': 'soon' is not an integer (ms since the epoch)"
        );
        assert_eq!(parse_order("o-1,5,lots").unwrap_err(), "field 3 'amount': 'lots' is not a number");
        assert_eq!(parse_order("o-1,5").unwrap_err(), "expected 3 fields (order_id,ts_ms,amount), found 2");
        assert_eq!(parse_payment("o-1,5,").unwrap_err(), "field 3 'method' is empty");
    }
}
