//! `fraud-rules`: transactions checked against amount limits broadcast to every subtask,
//! in event time so that any parallelism gives the same alerts.

use std::time::Duration;

use weir_actors::prelude::*;

use crate::csv::{OnBadLine, field, fields, good_records, is_header, text_input};
use crate::file_sink;

/// A transaction line: `tx_id,account,ts_ms,amount`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Transaction {
    /// Its id.
    pub id: String,
    /// The account it is keyed by.
    pub account: String,
    /// When (ms since the epoch).
    pub ts: i64,
    /// How much (an integer, e.g. cents).
    pub amount: i64,
}

/// A rule line: `rule_id,max_amount[,ts_ms]`: transactions above `max_amount` are alerts. A
/// rule with a time is in force from then on (a later line with the same id replaces it from
/// its time); without one, from the start.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Rule {
    /// Its id.
    pub id: String,
    /// The largest amount it lets through.
    pub max_amount: i64,
    /// From when it is in force (`i64::MIN`: always).
    pub from: i64,
}

const TX_FIELDS: [&str; 4] = ["tx_id", "account", "ts_ms", "amount"];
const RULE_FIELDS: [&str; 3] = ["rule_id", "max_amount", "ts_ms"];

/// Parses a transaction line (a header line is `None`).
pub fn parse_transaction(line: &str) -> std::result::Result<Option<Transaction>, String> {
    if is_header(line, &TX_FIELDS) {
        return Ok(None);
    }
    let f = fields(line, &TX_FIELDS)?;
    let ts = field(&f, &TX_FIELDS, 2, "an integer (ms since the epoch)")?;
    let amount = field(&f, &TX_FIELDS, 3, "an integer")?;
    Ok(Some(Transaction { id: f[0].to_owned(), account: f[1].to_owned(), ts, amount }))
}

/// Parses a rule line (a header line is `None`).
pub fn parse_rule(line: &str) -> std::result::Result<Option<Rule>, String> {
    if is_header(line, &RULE_FIELDS) || is_header(line, &RULE_FIELDS[..2]) {
        return Ok(None);
    }
    let f = match fields(line, &RULE_FIELDS[..2]) {
        Ok(f) => f,
        Err(_) => fields(line, &RULE_FIELDS)?,
    };
    let max_amount = field(&f, &RULE_FIELDS, 1, "an integer")?;
    let from = if f.len() == 3 { field(&f, &RULE_FIELDS, 2, "an integer (ms since the epoch)")? } else { i64::MIN };
    Ok(Some(Rule { id: f[0].to_owned(), max_amount, from }))
}

/// The rules' versions, by rule id: `(from, max_amount)` in order of `from`.
type Rules = BroadcastState<String, Vec<(i64, i64)>>;

/// Checks each account's transactions once the watermark passes them: by then every rule in
/// force at their time has arrived (rules are broadcast in event time too).
#[derive(Default)]
struct CheckRules {
    unmatched: Option<OutputTag<String>>,
    pending: Option<MapState<i64, Vec<Transaction>>>,
}

impl KeyedBroadcastProcessFunction for CheckRules {
    type Key = String;
    type In = Transaction;
    type Broadcast = Rule;
    type StateKey = String;
    type StateValue = Vec<(i64, i64)>;
    type Out = String;

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, String>) -> Result<()> {
        self.pending = Some(ctx.map_state("pending")?);
        Ok(())
    }

    fn process_element(
        &mut self,
        tx: Transaction,
        _: &Rules,
        ctx: &mut KeyedContext<'_, String, String>,
    ) -> Result<()> {
        let pending = self.pending.expect("opened");
        let mut at = ctx.map(pending).get(&tx.ts)?.unwrap_or_default();
        ctx.register_event_time_timer(tx.ts);
        at.push(tx.clone());
        ctx.map(pending).put(tx.ts, at)
    }

    fn process_broadcast_element(
        &mut self,
        rule: Rule,
        rules: &mut Rules,
        _: &mut BroadcastContext<'_, String>,
    ) -> Result<()> {
        let mut versions = rules.remove(&rule.id).unwrap_or_default();
        versions.retain(|v| v.0 != rule.from);
        versions.push((rule.from, rule.max_amount));
        versions.sort();
        rules.put(rule.id, versions);
        Ok(())
    }

    fn on_timer(
        &mut self,
        ts: Timestamp,
        _: TimeDomain,
        rules: &Rules,
        ctx: &mut KeyedContext<'_, String, String>,
    ) -> Result<()> {
        let pending = self.pending.expect("opened");
        let Some(due) = ctx.map(pending).remove(&ts)? else { return Ok(()) };
        for tx in due {
            // The version of each rule in force at the transaction's time.
            let broken: Vec<&str> = rules
                .iter()
                .filter(|(_, versions)| versions.iter().rev().find(|v| v.0 <= tx.ts).is_some_and(|v| tx.amount > v.1))
                .map(|(id, _)| id.as_str())
                .collect();
            let line = format!("{}\t{}\t{}\t{}", tx.id, tx.account, tx.ts, tx.amount);
            if broken.is_empty() {
                if let Some(tag) = &self.unmatched {
                    ctx.output(tag, line);
                }
            } else {
                ctx.emit(format!("{line}\t{}", broken.join(",")));
            }
        }
        Ok(())
    }
}

/// The alerts of `transactions` against `rules` (both with event time), as `fraud-rules`
/// writes them; the transactions no rule flags go to `unmatched`.
pub fn check_rules(
    transactions: &DataStream<Transaction>,
    rules: &DataStream<Rule>,
    unmatched: &OutputTag<String>,
) -> DataStream<String> {
    let descriptor = BroadcastStateDescriptor::<String, Vec<(i64, i64)>>::new("rules");
    let tag = unmatched.clone();
    transactions
        .key_by(|t: &Transaction| t.account.clone())
        .connect_broadcast(&rules.broadcast_state(&descriptor))
        .process("check-rules", move || CheckRules { unmatched: Some(tag.clone()), pending: None })
}

/// `fraud-rules`: `--transactions PATH --rules PATH --out-of-order-ms D --output DIR
/// [--unmatched DIR] [--on-bad-line skip|fail] [--bad-lines DIR]`. A
/// `KeyedBroadcastProcessFunction`: the rules (`rule_id,max_amount[,ts_ms]`) are broadcast to
/// the transactions (`tx_id,account,ts_ms,amount`) keyed by account; each transaction above
/// the limit of any rule in force at its time is one alert line
/// `tx_id<TAB>account<TAB>ts<TAB>amount<TAB>rule_ids`, and each transaction no rule flagged
/// goes to a side output (written to `--unmatched DIR`).
pub fn fraud_rules(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let disorder = Duration::from_millis(args.parse_req("out-of-order-ms")?);
    let on_bad = OnBadLine::from_args(args)?;
    let output = file_sink(args)?;
    let unmatched_sink = match args.get_opt("unmatched") {
        Some(dir) => {
            let sink = FileSink::new(dir);
            Some(if args.parse_or("overwrite", false)? { sink.overwrite() } else { sink })
        }
        None => None,
    };
    let transactions = env.source("transactions", text_input(args, "transactions")?.parse(parse_transaction));
    let transactions = good_records::<Transaction>(transactions, "transactions", on_bad, args)?
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::bounded_out_of_orderness(disorder).with_timestamp_assigner(|t: &Transaction, _| t.ts),
        );
    // The rules are few: one subtask reads them, and broadcasts them.
    let rules = env.source("rules", text_input(args, "rules")?.parse(parse_rule)).set_parallelism(1);
    let rules = good_records::<Rule>(rules, "rules", on_bad, args)?
        .set_parallelism(1)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::bounded_out_of_orderness(disorder).with_timestamp_assigner(|r: &Rule, _| r.from),
        )
        .set_parallelism(1);
    let unmatched = OutputTag::<String>::new("unmatched");
    let alerts = check_rules(&transactions, &rules, &unmatched);
    if let Some(sink) = unmatched_sink {
        alerts.get_side_output(&unmatched).sink("unmatched", sink);
    }
    alerts.sink("output", output);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_lines_have_an_optional_time() {
        let always = parse_rule("big,900").unwrap().unwrap();
        assert_eq!((always.id.as_str(), always.max_amount, always.from), ("big", 900, i64::MIN));
        let later = parse_rule("big, 500, 15000").unwrap().unwrap();
        assert_eq!((later.max_amount, later.from), (500, 15_000));
        assert!(parse_rule("rule_id,max_amount").unwrap().is_none());
        assert_eq!(parse_rule("big,lots").unwrap_err(), "field 2 'max_amount': 'lots' is not an integer");
        assert_eq!(parse_rule("a,1,2,3").unwrap_err(), "expected 3 fields (rule_id,max_amount,ts_ms), found 4");
        assert_eq!(
            parse_transaction("t1,acc,5").unwrap_err(),
            "expected 4 fields (tx_id,account,ts_ms,amount), found 3"
        );
    }
}
