//! `weir delay-packets`: latency for a host of a [`Network`](super::Network), as `tc netem
//! delay` would add it.
//!
//! An iptables rule in the host sends every packet it emits to a netfilter queue
//! (`-j NFQUEUE`); this process, started inside the host's namespace, takes each packet's
//! metadata from the queue and gives the kernel its verdict (accept) once the packet has waited
//! the delay, in the order the packets came. The packets themselves never leave the kernel. The
//! queue fails open (a packet that finds it full passes at once rather than being dropped) and
//! when this process ends (its stdin closed) it first releases every packet it holds.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;

/// Packets the kernel queues before the queue fails open.
const QUEUE_LENGTH: u32 = 65_536;
/// How often an idle delayer looks for new packets.
const IDLE_POLL: Duration = Duration::from_micros(200);

#[derive(Debug, Args)]
pub(crate) struct DelayArgs {
    /// The netfilter queue to take packets from.
    #[arg(long, default_value_t = 0)]
    queue: u16,
    /// How long each packet waits, in microseconds.
    #[arg(long)]
    delay_us: u64,
}

/// Delays the queue's packets until stdin closes.
pub(crate) fn run(args: DelayArgs) -> anyhow::Result<()> {
    let delay = Duration::from_micros(args.delay_us);
    let mut queue = nfq::Queue::open().context("cannot open a netfilter queue socket (root needed)")?;
    queue.bind(args.queue).with_context(|| format!("cannot bind netfilter queue {}", args.queue))?;
    // Metadata only: the verdict names the packet by id.
    queue.set_copy_range(args.queue, 0)?;
    queue.set_queue_max_len(args.queue, QUEUE_LENGTH)?;
    queue.set_fail_open(args.queue, true)?;
    queue.set_nonblocking(true);

    let stop = Arc::new(AtomicBool::new(false));
    let stopper = Arc::clone(&stop);
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while stdin.read(&mut sink).is_ok_and(|n| n > 0) {}
        stopper.store(true, Ordering::Release);
    });

    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    loop {
        let stopping = stop.load(Ordering::Acquire);
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| stopping || *due <= now) {
            let (_, mut message) = held.pop_front().expect("front");
            message.set_verdict(nfq::Verdict::Accept);
            queue.verdict(message)?;
        }
        if stopping {
            return Ok(());
        }
        match queue.recv() {
            Ok(message) => held.push_back((Instant::now() + delay, message)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let next = held.front().map_or(IDLE_POLL, |(due, _)| due.saturating_duration_since(now));
                std::thread::sleep(next.min(IDLE_POLL));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("reading the netfilter queue"),
        }
    }
}
