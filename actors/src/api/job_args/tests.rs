use super::*;

#[test]
fn parses_pairs_flags_and_equals() {
    let args = JobArgs::parse(&["--input", "a.txt", "--verbose", "--n=3"]).unwrap();
    assert_eq!(args.get("input").unwrap(), "a.txt");
    assert_eq!(args.get("verbose").unwrap(), "true");
    assert_eq!(args.parse_req::<u32>("n").unwrap(), 3);
    assert!(args.check_all_read("j").is_ok());
}

#[test]
fn rejects_positional_and_duplicates() {
    assert!(JobArgs::parse(&["input"]).unwrap_err().to_string().contains("'input'"));
    assert!(JobArgs::parse(&["--a", "1", "--a", "2"]).unwrap_err().to_string().contains("twice"));
}

#[test]
fn bad_value_names_the_argument() {
    let args = JobArgs::parse(&["--events", "ten"]).unwrap();
    let err = args.parse_opt::<u64>("events").unwrap_err().to_string();
    assert!(err.contains("--events") && err.contains("'ten'"), "{err}");
}

#[test]
fn unread_arguments_are_unknown() {
    let args = JobArgs::parse(&["--keys", "3", "--windw-ms", "5"]).unwrap();
    args.get("keys").unwrap();
    let err = args.check_all_read("window-agg").unwrap_err().to_string();
    assert!(err.contains("--windw-ms") && err.contains("--keys"), "{err}");
}

#[test]
fn missing_argument_is_named() {
    let args = JobArgs::parse::<&str>(&[]).unwrap();
    assert!(args.get("input").unwrap_err().to_string().contains("--input"));
}
