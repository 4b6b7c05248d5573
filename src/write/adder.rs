//! The one per-CPU adder: where and how every counter write lands.
//!
//! A region written per CPU is `mask + 1` blocks of `1 << shift` bytes:
//! the shards (fixed counters, a constant stride) or the labeled series'
//! value blocks (a stride validated at attach). An [`Adder`] adds to word
//! `index` of the block of the CPU the thread runs on, in the segment's
//! write mode — a non-locked add inside a restartable sequence on an rseq
//! segment, `fetch_add(Relaxed)` otherwise. One mode per segment, so no
//! word ever sees both.
//!
//! The stride is a type parameter so that the fixed counters' shift is an
//! immediate in the rseq section ([`ShardStride`]) while series blocks shift
//! by a register ([`BlockStride`]): one adder, both instantiations as fast
//! as hand-written ones.

use crate::cpu::CpuSource;
use crate::schema::COUNTERS;
use crate::sync::{AtomicU64, Ordering};
use std::ptr::NonNull;

/// The distance between two CPUs' blocks.
pub(crate) trait Stride: Copy + std::fmt::Debug {
    /// Words in one block.
    fn words(self) -> usize;
    /// log2 of the block size in bytes.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    fn shift(self) -> u32;
}

/// The shard stride: `COUNTERS` words, known at compile time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShardStride;

impl Stride for ShardStride {
    #[inline(always)]
    fn words(self) -> usize {
        COUNTERS
    }
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[inline(always)]
    fn shift(self) -> u32 {
        crate::rseq::SHARD_SHIFT
    }
}

/// A series value block: a power-of-two number of words, from the header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockStride {
    words: usize,
}

impl BlockStride {
    /// A stride of `words` words; `words` must be a power of two (the
    /// header validation guarantees it).
    pub(crate) fn new(words: usize) -> Self {
        debug_assert!(words.is_power_of_two());
        BlockStride { words }
    }
}

impl Stride for BlockStride {
    #[inline(always)]
    fn words(self) -> usize {
        self.words
    }
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[inline(always)]
    fn shift(self) -> u32 {
        (self.words * 8).trailing_zeros()
    }
}

/// Adds to word `index` of the current CPU's block of a per-CPU region.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Adder<S: Stride> {
    /// Word 0 of block 0.
    base: NonNull<AtomicU64>,
    stride: S,
    /// Blocks − 1 (the block count is a power of two).
    mask: usize,
    cpu: CpuSource,
    /// This thread's rseq area on an rseq-mode segment; `None` in atomic
    /// mode.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    rseq: Option<crate::rseq::Area>,
}

/// Whether the adder uses rseq sections, and with which area.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub(crate) type Rseq = Option<crate::rseq::Area>;
/// Rseq exists only on Linux x86-64: elsewhere there is never an area.
#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
pub(crate) type Rseq = Option<std::convert::Infallible>;

impl<S: Stride> Adder<S> {
    /// An adder for the region at `base` of `blocks` blocks.
    ///
    /// # Safety
    ///
    /// * `base` points to word 0 of a region of `blocks` blocks of
    ///   `stride.words()` words each (`blocks` a power of two), which stays
    ///   mapped for as long as this adder (or a copy) is used; callers keep
    ///   it alive by holding the segment.
    /// * With `rseq` set: the segment is in rseq mode, `blocks` covers every
    ///   possible CPU id, and the area came from `Area::for_writer`.
    pub(crate) unsafe fn new(
        base: NonNull<AtomicU64>,
        stride: S,
        blocks: usize,
        cpu: CpuSource,
        rseq: Rseq,
    ) -> Self {
        debug_assert!(blocks.is_power_of_two());
        #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
        let _ = rseq;
        Adder {
            base,
            stride,
            mask: blocks - 1,
            cpu,
            #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
            rseq,
        }
    }

    /// Word `index` of the current CPU's block (atomic mode, and the
    /// histogram sum, which every writer updates with compare-and-swap in
    /// both modes).
    #[inline(always)]
    pub(crate) fn word(&self, index: usize) -> &AtomicU64 {
        debug_assert!(index < self.stride.words());
        let block = self.cpu.current() & self.mask;
        // SAFETY: block <= mask and index < words (callers pass a counter
        // index or a series base plus an offset below its value count,
        // checked at registration), so the word is inside the region, which
        // `new`'s contract keeps mapped.
        unsafe { &*self.base.as_ptr().add(block * self.stride.words() + index) }
    }

    /// Address of word `index` in block 0, as the rseq sections want it.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[inline(always)]
    fn ptr(&self, index: usize) -> *mut u64 {
        // SAFETY: index < words, inside block 0. The words are atomics
        // (UnsafeCell), so writing through the pointer is allowed.
        unsafe { self.base.as_ptr().cast::<u64>().add(index) }
    }

    /// Adds `n` to word `index` of the current CPU's block.
    #[inline(always)]
    pub(crate) fn add(&self, index: usize, n: u64) {
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        if let Some(area) = self.rseq {
            // SAFETY: `ptr(index)` is word `index` of block 0; blocks are
            // `1 << shift` bytes apart and `mask + 1` of them exist, so every
            // `(cpu & mask) << shift` stays inside the region; the segment
            // is in rseq mode with a block for every possible CPU and `area`
            // came from `Area::for_writer` (`new`'s contract).
            unsafe { area.add_strided(self.ptr(index), self.mask, self.stride.shift(), n) };
            return;
        }
        self.word(index).fetch_add(n, Ordering::Relaxed);
    }

    /// Adds `a` to word `index` and `b` to `index + 1`, each exactly once
    /// (two rseq sections, or two `fetch_add`s); a reader may see the first
    /// before the second.
    #[inline(always)]
    pub(crate) fn add_pair(&self, index: usize, a: u64, b: u64) {
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        if let Some(area) = self.rseq {
            // SAFETY: as in `add`, for the words `index` and `index + 1`.
            unsafe { area.add_pair(self.ptr(index), self.mask, self.stride.shift(), a, b) };
            return;
        }
        self.add_pair_atomic(index, a, b);
    }

    /// The atomic-mode half of [`add_pair`](Self::add_pair), out of line:
    /// its CPU lookup may call `sched_getcpu`, and inlined, that call makes
    /// every caller save registers, the rseq path included. Two locked adds
    /// dwarf the extra call.
    #[inline(never)]
    fn add_pair_atomic(&self, index: usize, a: u64, b: u64) {
        let first = self.word(index);
        first.fetch_add(a, Ordering::Relaxed);
        // SAFETY: `index + 1` is in the same block (callers pass pairs that
        // lie inside one block), the next word after `first`.
        let second = unsafe { &*(first as *const AtomicU64).add(1) };
        second.fetch_add(b, Ordering::Relaxed);
    }

    /// The rseq area, word 0 of block 0 and the mask (test support).
    #[cfg(all(
        target_os = "linux",
        target_arch = "x86_64",
        any(test, feature = "testing")
    ))]
    pub(crate) fn rseq_parts(&self) -> Option<(crate::rseq::Area, *mut u64, usize)> {
        Some((self.rseq?, self.ptr(0), self.mask))
    }
}
