use super::*;
use crate::{CheckpointBarrier, count_records};

fn barrier(id: u64) -> Element<u32> {
    Element::Barrier(CheckpointBarrier::checkpoint(id, 0))
}

fn drain(buf: &mut OutputBuffer<u32>) -> Vec<(usize, Batch<u32>)> {
    std::iter::from_fn(|| buf.pop_ready()).collect()
}

#[test]
fn default_config() {
    let c = BatchConfig::default();
    assert_eq!(c.max_records, 1024);
    assert_eq!(c.flush_interval, Duration::from_millis(5));
    assert_eq!(c.channel_capacity, 8);
}

#[test]
fn full_batch_becomes_ready() {
    let mut buf = OutputBuffer::new(2, 3);
    assert_eq!(buf.num_channels(), 2);
    buf.push_record(0, 1, 10);
    buf.push_record(0, 2, 11);
    assert!(!buf.has_ready());
    assert!(buf.has_pending());
    buf.push_record(0, 3, 12);
    assert!(buf.has_ready());
    assert!(!buf.has_pending());
    let (ch, batch) = buf.pop_ready().unwrap();
    assert_eq!(ch, 0);
    assert_eq!(batch, vec![Element::Record(1, 10), Element::Record(2, 11), Element::Record(3, 12)]);
    assert!(batch.capacity() >= 3);
    assert!(buf.pop_ready().is_none());
}

#[test]
fn flush_closes_non_empty_batches_in_channel_order() {
    let mut buf = OutputBuffer::new(3, 100);
    buf.push_record(2, 20, 0);
    buf.push_record(0, 0, 0);
    buf.flush();
    assert!(!buf.has_pending());
    let out = drain(&mut buf);
    assert_eq!(out, vec![(0, vec![Element::Record(0, 0)]), (2, vec![Element::Record(20, 0)])]);
    buf.flush();
    assert!(!buf.has_ready());
}

#[test]
fn watermark_broadcast_reaches_every_channel_without_closing() {
    let mut buf = OutputBuffer::new(3, 100);
    buf.push_record(1, 7, 5);
    buf.broadcast(Element::Watermark(5));
    assert!(!buf.has_ready());
    buf.flush();
    let out = drain(&mut buf);
    assert_eq!(
        out,
        vec![
            (0, vec![Element::Watermark(5)]),
            (1, vec![Element::Record(7, 5), Element::Watermark(5)]),
            (2, vec![Element::Watermark(5)]),
        ]
    );
}

#[test]
fn barrier_and_end_of_data_close_batches() {
    let mut buf = OutputBuffer::new(2, 100);
    buf.push_record(0, 1, 0);
    buf.push(0, barrier(1));
    assert!(!buf.has_pending());
    assert_eq!(drain(&mut buf), vec![(0, vec![Element::Record(1, 0), barrier(1)])]);

    buf.push_record(1, 2, 0);
    buf.broadcast(barrier(2));
    assert!(!buf.has_pending());
    assert_eq!(drain(&mut buf), vec![(0, vec![barrier(2)]), (1, vec![Element::Record(2, 0), barrier(2)])]);

    buf.push_record(0, 3, 0);
    buf.push(0, Element::EndOfData);
    buf.broadcast(Element::EndOfData);
    assert_eq!(
        drain(&mut buf),
        vec![
            (0, vec![Element::Record(3, 0), Element::EndOfData]),
            (0, vec![Element::EndOfData]),
            (1, vec![Element::EndOfData]),
        ]
    );
}

#[test]
fn per_channel_order_is_preserved() {
    let mut buf = OutputBuffer::new(3, 4);
    let mut expected: Vec<Vec<Element<u32>>> = vec![Vec::new(); 3];
    for i in 0..100u32 {
        let ch = (i as usize * 7) % 3;
        if i % 11 == 0 {
            buf.broadcast(Element::Watermark(i64::from(i)));
            for e in &mut expected {
                e.push(Element::Watermark(i64::from(i)));
            }
        } else if i % 17 == 0 {
            buf.push(ch, barrier(u64::from(i)));
            expected[ch].push(barrier(u64::from(i)));
        } else {
            buf.push_record(ch, i, i64::from(i));
            expected[ch].push(Element::Record(i, i64::from(i)));
        }
    }
    buf.flush();
    let mut got: Vec<Vec<Element<u32>>> = vec![Vec::new(); 3];
    for (ch, batch) in drain(&mut buf) {
        assert!(!batch.is_empty() && batch.len() <= 4);
        got[ch].extend(batch);
    }
    assert_eq!(got, expected);
}

#[test]
fn buffered_records_counts_pending_and_ready() {
    let mut buf = OutputBuffer::new(2, 2);
    assert_eq!(buf.buffered_records(), 0);
    buf.push_record(0, 1, 0);
    buf.push_record(0, 2, 0); // closes
    buf.push_record(1, 3, 0);
    buf.push(1, Element::Watermark(1)); // closes, one record
    buf.push(0, Element::Record(4, 0));
    assert_eq!(buf.buffered_records(), 4);
    buf.broadcast(Element::Record(5, 0)); // one more per channel
    assert_eq!(buf.buffered_records(), 6);
    let mut left = 6;
    while let Some((_, batch)) = buf.pop_ready() {
        left -= count_records(&batch);
        assert_eq!(buf.buffered_records(), left);
    }
    buf.flush();
    while let Some((_, batch)) = buf.pop_ready() {
        left -= count_records(&batch);
    }
    assert_eq!(left, 0);
    assert_eq!(buf.buffered_records(), 0);
}

#[test]
fn zero_max_records_sends_every_element_alone() {
    let mut buf = OutputBuffer::new(1, 0);
    buf.push_record(0, 1, 0);
    buf.push_record(0, 2, 0);
    assert_eq!(drain(&mut buf).len(), 2);
}

#[test]
fn broadcast_on_no_channels_is_a_no_op() {
    let mut buf = OutputBuffer::<u32>::new(0, 8);
    buf.broadcast(Element::EndOfData);
    buf.flush();
    assert!(!buf.has_ready());
}
