//! Thread rows: rows of counters, each written by one thread writer only.
//!
//! A per-CPU shard is shared by every thread that runs on its CPU, so each
//! add must be atomic (a locked add) or restartable (rseq). A media server
//! that records from a fixed set of long-lived, pinned worker threads can do
//! better: each worker claims a **row** of its own — `COUNTERS` words laid
//! out exactly like a [`Shard`], 128-byte aligned — and adds to it with a
//! plain load, add and store. One writer per row means no add can be lost;
//! the store is an atomic store (`Relaxed`), so a reader in another process
//! never sees a torn value, and on every architecture it compiles to an
//! ordinary `mov`. Readers sum the rows with the shards
//! ([`sum_all`] — the same sum, because rows are shards).
//!
//! Counters are ownerless: a row keeps its counts when its writer releases
//! it or dies, and the next owner keeps adding to them (a reused row is
//! never zeroed). So the row table only bounds how many thread writers are
//! *live* at once, never how many there have been.
//!
//! # Row states
//!
//! Each row has a state word in a separate table (claims never touch the
//! counter lines): bits 0–31 the owner's process id (0 = FREE), bits
//! 32–63 a generation that every claim advances. A claim is a
//! compare-and-swap from the state it saw, with Acquire; a release is a
//! compare-and-swap back to FREE (generation kept), with Release. That pair
//! is the hand-off: the new owner's first load of a counter sees the last
//! store of the previous owner in this process, so no count is lost on
//! reuse. Which rows a claimer may take (free ones, and ones whose owner is
//! dead) is the segment's business ([`Segment::claim_row`]): a per-row lock
//! byte for named segments, the owner's pid for anonymous ones.
//!
//! # Series slots
//!
//! Beside its counters, each row has `row_series_slots` **series slots**
//! (a region of their own: per row, that many binding words, then as many
//! value words) for the labeled series its thread writer records into. A
//! slot is bound to one word of the labeled values (the binding is the
//! value index plus one; 0 is unbound) by the row's owner, once, and stays bound for the
//! segment's life: like the counters, a slot's value is ownerless, so the
//! next owner of the row finds the binding and keeps adding. Owners bind
//! the first unbound slots in order, so the bound slots of a row are a
//! prefix and a reader stops at the first 0. A binding is stored with
//! Release before the owner's first add to the value; a reader loads it
//! with Acquire, then the value — it never adds a value to the wrong
//! series, at worst it misses adds made after its own load of the binding
//! (a later read has them). Readers add the bound slots' values to their
//! series ([`bound_slots`]), as they add rows to shards.
//!
//! [`Shard`]: super::shard::Shard
//! [`Segment::claim_row`]: super::Segment::claim_row

use super::shard::Shard;
use crate::schema::COUNTERS;
use crate::sync::{AtomicU64, Ordering};

/// A thread row: the same `COUNTERS` words, size and alignment as a shard.
pub(crate) type Row = Shard;

/// State of a row nobody holds (generation 0). Any state with pid 0 is free.
#[cfg(any(test, loom))]
pub(crate) const FREE: u64 = 0;

/// The owner's process id in a state word (0: free).
pub(crate) const fn owner(state: u64) -> u32 {
    state as u32
}

/// The generation in a state word.
pub(crate) const fn generation(state: u64) -> u32 {
    (state >> 32) as u32
}

/// The state that claims a row seen in `seen` for `pid`: next generation.
const fn claimed(seen: u64, pid: u32) -> u64 {
    ((generation(seen).wrapping_add(1) as u64) << 32) | pid as u64
}

/// Claims the row whose state word `state` was seen as `seen`, for process
/// `pid` (non-zero). Returns the new state, or `None` if the word changed
/// since it was seen. Acquire: the claimer sees every count the previous
/// owner stored before it released the row.
pub(crate) fn try_claim(state: &AtomicU64, seen: u64, pid: u32) -> Option<u64> {
    debug_assert_ne!(pid, 0);
    let next = claimed(seen, pid);
    state
        .compare_exchange(seen, next, Ordering::Acquire, Ordering::Relaxed)
        .ok()
        .map(|_| next)
}

/// Releases a row claimed as `held`: FREE, generation kept. Release: the
/// next owner sees this owner's last counts. Returns false (and changes
/// nothing) if the row is no longer `held` — it was taken over, which
/// happens only if this owner was wrongly judged dead.
pub(crate) fn release(state: &AtomicU64, held: u64) -> bool {
    let free = held & !(u32::MAX as u64);
    state
        .compare_exchange(held, free, Ordering::Release, Ordering::Relaxed)
        .is_ok()
}

/// Claims the first row whose state is free, or whose owner `dead` says is
/// gone (the claim path without lock bytes: anonymous segments). Returns
/// the row and its new state.
pub(crate) fn claim_first(
    states: &[AtomicU64],
    pid: u32,
    mut dead: impl FnMut(u32) -> bool,
) -> Option<(usize, u64)> {
    for (i, state) in states.iter().enumerate() {
        let seen = state.load(Ordering::Relaxed);
        let who = owner(seen);
        let takeable = who == 0 || (who != pid && dead(who));
        if takeable {
            if let Some(next) = try_claim(state, seen, pid) {
                return Some((i, next));
            }
        }
    }
    None
}

/// The thread writer's add: `word += n` by its only writer, as a load and
/// a store. Both are atomic (`Relaxed`), so a concurrent reader sees the
/// old or the new value, never a torn one, and each compiles to a plain
/// `mov`: no lock prefix, no fence, no restartable sequence. Correct only
/// while one thread at a time writes the row (its owner).
#[inline(always)]
pub(crate) fn add(word: &AtomicU64, n: u64) {
    word.store(
        word.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// The slot of a row's series slots (`words`: `slots` bindings, then
/// `slots` values) whose run of `n` slots holds the value words `base ..
/// base + n`: one bound earlier (by this owner or a previous one), or the
/// first `n` unbound slots, bound now. `None` if neither exists (the row's
/// slots are full). Only the row's owner calls this.
pub(crate) fn bind_run(words: &[AtomicU64], slots: usize, base: u64, n: usize) -> Option<usize> {
    let bindings = words.get(..slots)?;
    let mut first_free = slots;
    for (s, b) in bindings.iter().enumerate() {
        let bound = b.load(Ordering::Acquire);
        if bound == 0 {
            first_free = s;
            break;
        }
        if bound == base + 1 {
            // Runs are bound whole: check anyway (a hostile segment).
            let run = bindings.get(s..s + n)?;
            let whole = run
                .iter()
                .zip(1..)
                .all(|(w, k)| w.load(Ordering::Relaxed) == base + k);
            return whole.then_some(s);
        }
    }
    if first_free + n > slots {
        return None;
    }
    for (k, b) in bindings[first_free..first_free + n].iter().enumerate() {
        b.store(base + 1 + k as u64, Ordering::Release);
    }
    Some(first_free)
}

/// Calls `f(value index, value)` for each bound slot of a row's series
/// slots (`words`: `slots` bindings, then `slots` values), in order, up to
/// the first unbound one. Bindings past `values` (a hostile segment) are
/// skipped.
#[inline]
pub(crate) fn bound_slots(
    words: &[AtomicU64],
    slots: usize,
    values: usize,
    mut f: impl FnMut(usize, u64),
) {
    let (Some(bindings), Some(vals)) = (words.get(..slots), words.get(slots..2 * slots)) else {
        return;
    };
    for (b, v) in bindings.iter().zip(vals) {
        let bound = b.load(Ordering::Acquire);
        if bound == 0 {
            return;
        }
        let index = (bound - 1) as usize;
        if index < values {
            f(index, v.load(Ordering::Relaxed));
        }
    }
}

/// The thread writer's `f64` add: like [`add`], for a value stored as bits.
#[inline(always)]
pub(crate) fn add_f64(word: &AtomicU64, v: f64) {
    let sum = f64::from_bits(word.load(Ordering::Relaxed)) + v;
    word.store(sum.to_bits(), Ordering::Relaxed);
}

/// Sums every counter over `rows` (relaxed loads; a sum, not a snapshot).
pub(crate) fn sum_all(rows: &[Row]) -> [u64; COUNTERS] {
    super::shard::sum_all(rows)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::schema::Counter;

    fn states(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(FREE)).collect()
    }

    #[test]
    fn claim_release_reuse() {
        let s = states(2);
        let (i, a) = claim_first(&s, 7, |_| false).unwrap();
        assert_eq!((i, owner(a), generation(a)), (0, 7, 1));
        let (j, b) = claim_first(&s, 7, |_| false).unwrap();
        assert_eq!((j, generation(b)), (1, 1));
        assert!(claim_first(&s, 7, |_| false).is_none(), "table full");
        assert!(release(&s[0], a));
        assert!(!release(&s[0], a), "released twice");
        assert_eq!(
            s[0].load(Ordering::Relaxed),
            1 << 32,
            "free, generation kept"
        );
        let (k, c) = claim_first(&s, 8, |_| false).unwrap();
        assert_eq!((k, owner(c), generation(c)), (0, 8, 2));
    }

    #[test]
    fn rows_of_dead_owners_are_taken_over_live_ones_never() {
        let s = states(2);
        let (_, a) = claim_first(&s, 5, |_| false).unwrap();
        let (_, _) = claim_first(&s, 6, |_| false).unwrap();
        // Process 5 died; 6 lives; this process (9) takes 5's row.
        let (i, b) = claim_first(&s, 9, |pid| pid == 5).unwrap();
        assert_eq!((i, owner(b), generation(b)), (0, 9, 2));
        assert!(!release(&s[0], a), "the dead owner's release is refused");
        // Our own rows are never judged dead.
        assert!(claim_first(&s, 9, |_| true).is_some());
        assert!(claim_first(&s, 9, |_| true).is_none());
    }

    #[test]
    fn series_slots_bind_once_and_are_found_again() {
        let w: Vec<AtomicU64> = (0..8).map(|_| AtomicU64::new(0)).collect();
        assert_eq!(bind_run(&w, 4, 10, 2), Some(0));
        assert_eq!(bind_run(&w, 4, 20, 1), Some(2));
        assert_eq!(bind_run(&w, 4, 10, 2), Some(0), "found, not bound twice");
        assert_eq!(bind_run(&w, 4, 30, 2), None, "one slot left");
        assert_eq!(bind_run(&w, 4, 30, 1), Some(3));
        assert_eq!(bind_run(&w, 4, 40, 1), None, "full");
        add(&w[4 + 1], 7);
        add(&w[4 + 3], 9);
        let mut seen = vec![];
        bound_slots(&w, 4, 31, |i, v| seen.push((i, v)));
        assert_eq!(seen, [(10, 0), (11, 7), (20, 0), (30, 9)]);
        let mut seen = vec![];
        bound_slots(&w, 4, 30, |i, v| seen.push((i, v)));
        assert_eq!(seen.len(), 3, "bindings past the values are skipped");
        // A run whose tail was damaged is not handed out.
        w[1].store(99, Ordering::Relaxed);
        assert_eq!(bind_run(&w, 4, 10, 2), None);
    }

    #[test]
    fn a_reused_row_keeps_its_counts() {
        let rows: Vec<Row> = (0..2).map(|_| Row::new()).collect();
        let i = Counter::PacketsInInitial as usize;
        add(&rows[0].counters[i], 5);
        add(&rows[0].counters[i], 6);
        add(&rows[1].counters[i], u64::MAX);
        assert_eq!(sum_all(&rows)[i], 10, "wrapping sum");
    }
}
