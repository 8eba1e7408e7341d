use std::collections::BTreeMap;

use serde::Serialize;

use super::KeyEncoder;

fn same<T: Serialize + std::fmt::Debug>(value: T) {
    let mut buf = [0u8; 128];
    let mut enc = KeyEncoder::new(&mut buf);
    value.serialize(&mut enc).unwrap();
    let ours = enc.written().to_vec();
    let theirs = postcard::to_stdvec(&value).unwrap();
    assert_eq!(ours, theirs, "encoding of {value:?}");
}

#[derive(Debug, Serialize)]
struct Point {
    x: i32,
    y: Option<u64>,
}

#[derive(Debug, Serialize)]
enum Shape {
    Unit,
    New(u16),
    Tuple(i8, String),
    Struct { a: bool, b: f64 },
}

#[test]
fn writes_exactly_what_postcard_writes() {
    for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
        same(v);
        same(v as u32);
        same(v as u16);
        same(v as i64);
        same(-(v as i64));
        same(v as i32);
        same(v as u128 * 3);
        same(-(v as i128));
    }
    same(u8::MAX);
    same(-5i8);
    same(-300i16);
    same(true);
    same(1.5f32);
    same(-2.25f64);
    same('é');
    same("");
    same("alice");
    same("ü".repeat(30));
    same(String::from("word"));
    same(());
    same((7u32, "k", -1i64));
    same(Some(3u8));
    same(None::<u32>);
    same(vec![1u32, 2, 300]);
    same(Point { x: -4, y: Some(9) });
    same(Shape::Unit);
    same(Shape::New(500));
    same(Shape::Tuple(-1, "t".into()));
    same(Shape::Struct { a: true, b: 0.5 });
    same(BTreeMap::from([(1u8, "a"), (2, "b")]));
    same([1u8, 2, 3]);
}

#[test]
fn a_key_too_large_overflows_instead_of_truncating() {
    let mut buf = [0u8; 8];
    let mut enc = KeyEncoder::new(&mut buf);
    assert!("a long key of many bytes".serialize(&mut enc).is_err());
}
