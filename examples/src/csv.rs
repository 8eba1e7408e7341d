//! Comma-separated input for the example jobs: each line parsed in its source, a line that
//! does not parse named by file, line and field, and a job's choice of failing on such a line
//! (`--on-bad-line fail`, the default) or setting it aside (`skip`: into `--bad-lines DIR` if
//! given, as `file:line<TAB>reason<TAB>text` lines). `--chunk-bytes N` sets the size of the
//! chunks the input files are dealt out to the subtasks in (default 1 MiB).

use std::str::FromStr;

use weir_actors::prelude::*;

/// The text file named by `--KEY`, cut into chunks of `--chunk-bytes` (default 1 MiB) for the
/// subtasks (see [`TextFile::chunk_bytes`]).
pub(crate) fn text_input(args: &JobArgs, key: &str) -> Result<TextFile> {
    let file = TextFile::new(args.get(key)?);
    Ok(match args.parse_opt::<u64>("chunk-bytes")? {
        Some(0) => return Err(WeirError::Argument("--chunk-bytes must be at least 1".into())),
        Some(bytes) => file.chunk_bytes(bytes),
        None => file,
    })
}

/// The fields of a line with `names.len()` of them; the line is refused naming what is wrong.
pub(crate) fn fields<'a>(line: &'a str, names: &[&str]) -> std::result::Result<Vec<&'a str>, String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() != names.len() {
        return Err(format!("expected {} fields ({}), found {}", names.len(), names.join(","), fields.len()));
    }
    Ok(fields)
}

/// Field `index` (named `names[index]`) parsed as a `T` (`what` says what it must be).
pub(crate) fn field<T: FromStr>(
    fields: &[&str],
    names: &[&str],
    index: usize,
    what: &str,
) -> std::result::Result<T, String> {
    let value = fields[index];
    value.parse().map_err(|_| format!("field {} '{}': '{value}' is not {what}", index + 1, names[index]))
}

/// Whether `line` is the header naming `names` (it is skipped).
pub(crate) fn is_header(line: &str, names: &[&str]) -> bool {
    line.split(',').map(str::trim).eq(names.iter().copied())
}

/// What a job does with a line that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnBadLine {
    Fail,
    Skip,
}

impl OnBadLine {
    pub(crate) fn from_args(args: &JobArgs) -> Result<Self> {
        match args.get_opt("on-bad-line").unwrap_or("fail") {
            "fail" => Ok(OnBadLine::Fail),
            "skip" => Ok(OnBadLine::Skip),
            other => Err(WeirError::Argument(format!("--on-bad-line must be 'skip' or 'fail', not '{other}'"))),
        }
    }
}

/// A record of a parsed line: the record, a header line, or a bad line.
pub(crate) type Parsed<T> = std::result::Result<Option<T>, BadLine>;

/// The records of `input` (a parsed text source named `name`): a bad line fails the job, or
/// with [`OnBadLine::Skip`] is written to `--bad-lines DIR` (if given).
pub(crate) fn good_records<T: Data>(
    input: DataStream<Parsed<T>>,
    name: &str,
    on_bad: OnBadLine,
    args: &JobArgs,
) -> Result<DataStream<T>> {
    let bad_lines = OutputTag::<String>::new("bad-lines");
    let tag = bad_lines.clone();
    let records = input.process(&format!("{name}-records"), move |parsed: Parsed<T>, ctx: &mut Context<'_, T>| {
        match parsed {
            Ok(Some(record)) => ctx.emit(record),
            Ok(None) => {}
            Err(bad) if on_bad == OnBadLine::Skip => {
                ctx.output(&tag, format!("{}:{}\t{}\t{}", bad.path, bad.line, bad.reason, bad.text))
            }
            Err(bad) => {
                return Err(WeirError::user(format!("bad input line (--on-bad-line skip sets it aside): {bad}")));
            }
        }
        Ok(())
    });
    if let Some(dir) = args.get_opt("bad-lines") {
        let sink = FileSink::new(format!("{dir}/{name}"));
        let sink = if args.parse_or("overwrite", false)? { sink.overwrite() } else { sink };
        records.get_side_output(&bad_lines).sink(&format!("{name}-bad-lines"), sink);
    }
    Ok(records)
}
