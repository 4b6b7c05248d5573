//! Per-CPU shards: the storage of the fixed counters (SEGMENT.md §6), and
//! their sum. The adds themselves (the hot path) are the writers' adder,
//! `write/adder.rs`.
//!
//! A shard is one CPU's row of counters. Every writer, in any thread of any
//! process, adds to the shard of the CPU it runs on, in the segment's
//! [`WriteMode`](crate::segment::WriteMode):
//!
//! * **atomic**: `fetch_add(Relaxed)`. Threads migrate between reading the
//!   CPU number and the add, so two CPUs' writers can meet on one shard: the
//!   locked add keeps that correct, it only costs a shared cache line for a
//!   moment.
//! * **rseq** (Linux x86-64): a plain add inside a restartable sequence
//!   that the kernel aborts on preemption, migration or signal, so only the
//!   thread running on CPU `i` ever writes shard `i` (see [`crate::rseq`]).
//!
//! Counters are ownerless: when a writer dies, what it added stays in the
//! sum.
//!
//! # Why 128-byte alignment
//!
//! On x86-64 the adjacent-line prefetcher pulls cache lines in pairs, so two
//! CPUs writing to neighbouring 64-byte lines still contend; some Arm cores
//! have 128-byte lines. Each shard therefore starts on a 128-byte boundary
//! and is a whole number of 128-byte blocks. A packet's packets and bytes
//! counters sit next to each other in the first block, so one record touches
//! one line.

use crate::schema::COUNTERS;
use crate::sync::{AtomicU64, Ordering};

/// One CPU's counters: `COUNTERS` words, 128-byte aligned.
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) counters: [AtomicU64; COUNTERS],
}

#[cfg(not(loom))]
const _: () = {
    assert!(size_of::<Shard>() == COUNTERS * 8);
    assert!(align_of::<Shard>() == 128);
    assert!(size_of::<Shard>() % 128 == 0);
};

impl Shard {
    /// A zeroed shard (heap storage for tests and models).
    #[cfg(any(test, loom))]
    pub(crate) fn new() -> Self {
        Shard {
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Adds `n` to counter `c` with `fetch_add` (heap storage for tests;
    /// `Stats` picks the add of the segment's write mode).
    #[cfg(any(test, loom))]
    pub(crate) fn add(&self, c: crate::schema::Counter, n: u64) {
        self.counters[c as usize].fetch_add(n, Ordering::Relaxed);
    }
}

/// Sums every counter over `shards` in one pass.
pub(crate) fn sum_all(shards: &[Shard]) -> [u64; COUNTERS] {
    let mut out = [0u64; COUNTERS];
    for s in shards {
        for (o, c) in out.iter_mut().zip(s.counters.iter()) {
            *o = o.wrapping_add(c.load(Ordering::Relaxed));
        }
    }
    out
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::schema::Counter;

    #[test]
    fn sum_adds_every_shard() {
        let shards: Vec<Shard> = (0..8).map(|_| Shard::new()).collect();
        for (i, s) in shards.iter().enumerate() {
            s.add(Counter::BytesOutInitial, i as u64 + 1);
        }
        let sums = sum_all(&shards);
        assert_eq!(sums[Counter::BytesOutInitial as usize], 36);
        assert_eq!(sums[Counter::BytesInInitial as usize], 0);
    }
}
