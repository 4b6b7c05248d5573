//! The thread writer: a row of counters owned by one long-lived thread.
//!
//! # Which path to use
//!
//! * **[`Stats`]** (per-CPU shards) for thread pools, async runtimes and
//!   short-lived threads: any thread may record through any handle, and a
//!   thread costs nothing until it records. An add is an rseq section
//!   (Linux x86-64) or a locked add.
//! * **[`ThreadStats`]** (a thread row) for a fixed set of long-lived worker
//!   threads — one pinned thread per core, as most SFUs run their packet
//!   loops. The thread claims a row of the segment once and then records
//!   with plain loads and stores (no lock prefix, no rseq, the same on
//!   every architecture; costs: `benches/README.md`). Unlike a
//!   thread-local counter, the row lives in the segment: collectors in other
//!   processes read it at once, and nothing is lost when the thread or the
//!   process dies. Rows are bounded ([`SegmentOptions::thread_rows`],
//!   default 256) and reused, so a thread writer per *request* is wrong;
//!   one per worker thread is right.
//!
//! Both paths feed the same counters: collectors and the exporter add rows
//! and shards, so totals are exact whichever mix of paths, threads and
//! processes recorded them.
//!
//! Labeled series follow the same split: [`Stats::series`] gives a
//! [`SeriesHandle`] any thread may use (per-CPU value blocks);
//! [`ThreadStats::series`] gives a [`ThreadSeries`] that records a counter
//! or histogram into *series slots* of the thread's own row with plain
//! adds. Slots are few (64 per row) and stay bound to their series for the
//! segment's life, so a thread that reuses a row reuses its slots; a series
//! that finds none records per CPU instead, as every gauge does (a gauge's
//! parts belong to writer processes, so a dead one's part can leave the
//! value). Memory: 1 KiB of slots per row, 256 KiB with the default 256
//! rows, whatever the number of CPUs.
//!
//! # Lifecycle
//!
//! [`Stats::thread_writer`] claims a free row (or one whose owner died) and
//! keeps adding to what it holds — counters are ownerless, a reused row is
//! never zeroed. Dropping the handle gives the row back; a thread that dies
//! without dropping it (a killed process) frees it through the kernel's
//! lock release. A full table is [`Error::NoThreadRow`] from
//! `thread_writer`, never a failure on the hot path.
//!
//! # Fork
//!
//! A forked child must never write into its parent's rows: two writers on
//! one row lose counts. The hot path cannot afford `getpid`, so the handle
//! reads where its row is from a small *cell* in process-private memory
//! that the kernel zeroes in the child (`MADV_WIPEONFORK`, and a
//! `pthread_atfork` child handler as well). The cell holds the row's
//! distance from a scratch row inside the cell itself, so a zeroed cell
//! points at its own scratch: in a forked child every inherited thread
//! writer — Rust or C — adds into that private scratch, which nobody reads,
//! and dropping or closing it there releases nothing. (A distance rather
//! than a pointer keeps the hot path free of a null check: one load and the
//! two adds.) The child
//! opens its own thread writers (new rows) and records through those. The
//! parent's handles are untouched.
//!
//! [`SegmentOptions::thread_rows`]: crate::SegmentOptions::thread_rows
//! [`Error::NoThreadRow`]: crate::Error::NoThreadRow

use super::series::{observe_words, SeriesHandle};
use super::stats::Stats;
use super::writer::ThreadEntry;
use crate::error::{Error, Result};
use crate::schema::{Counter, Direction, FamilyId, Kind, COUNTERS};
use crate::segment::rows;
use crate::sync::AtomicU64;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Arc;

/// What the hot path reads: where the row is, as its distance (wrapping)
/// from `scratch` — 0, as in a zeroed cell, means no row (a closed handle,
/// or any handle in a forked child) and makes adds land in `scratch` —, and
/// one word for the embedding layer (the C ABI keeps its handle there).
/// Lives in a wipe-on-fork page.
#[repr(C, align(64))]
#[derive(Debug)]
pub(crate) struct RowCell {
    /// Relaxed atomics (plain loads on the hot path): `Stats::maintain`
    /// re-points a live writer's cell from another thread.
    row_delta: AtomicUsize,
    owner: *mut (),
    /// The row's series slots (bindings, then values); null when the
    /// segment's rows have none, or there is no row.
    series: AtomicPtr<AtomicU64>,
    /// Where a row-less handle's adds go: private, read by no one.
    scratch: [AtomicU64; COUNTERS],
}

/// Bytes of one cell page: a run of whole pages, mapped on first use.
const PAGE_BYTES: usize = 64 * 1024;
/// Cells in one page.
const CELLS_PER_PAGE: usize = PAGE_BYTES / size_of::<RowCell>();
/// Pages at most: thread writers open at once in this process.
const MAX_PAGES: usize = 36;
/// Most thread writers open at once in one process.
const MAX_CELLS: usize = MAX_PAGES * CELLS_PER_PAGE;

/// The cell pages, allocated on first use and never freed.
static PAGES: [AtomicPtr<RowCell>; MAX_PAGES] =
    [const { AtomicPtr::new(ptr::null_mut()) }; MAX_PAGES];
/// Which cells are handed out. Ordinary memory: a child inherits it, so a
/// cell in use at the fork is never handed out again there (its inherited
/// handle keeps reading zero).
static TAKEN: [AtomicBool; MAX_CELLS] = [const { AtomicBool::new(false) }; MAX_CELLS];
/// The embedding layer's owner word of each cell, also in ordinary memory:
/// in a forked child the cell's copy is wiped, but closing an inherited C
/// handle there must still free its memory (releasing nothing).
static OWNERS: [AtomicPtr<()>; MAX_CELLS] = [const { AtomicPtr::new(ptr::null_mut()) }; MAX_CELLS];

/// Zeroes every cell page: in a forked child, before any of its code runs
/// (for kernels without `MADV_WIPEONFORK`, and forks that kept the pages).
extern "C" fn wipe_cells_in_child() {
    for page in &PAGES {
        let p = page.load(Ordering::Relaxed);
        if !p.is_null() {
            // SAFETY: `p` is a mapped, writable page of PAGE_BYTES bytes
            // holding only cells; the child is single-threaded here.
            unsafe { ptr::write_bytes(p.cast::<u8>(), 0, PAGE_BYTES) };
        }
    }
}

/// Cell page `k`, mapping it on first use.
fn page(k: usize) -> Result<*mut RowCell> {
    let p = PAGES[k].load(Ordering::Acquire);
    if !p.is_null() {
        return Ok(p);
    }
    static ATFORK: std::sync::Once = std::sync::Once::new();
    ATFORK.call_once(|| {
        // SAFETY: registers a handler that only zeroes our own pages.
        unsafe { libc::pthread_atfork(None, None, Some(wipe_cells_in_child)) };
    });
    // SAFETY: a fresh private anonymous mapping; no pointers passed in.
    let m = unsafe {
        libc::mmap(
            ptr::null_mut(),
            PAGE_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if m == libc::MAP_FAILED {
        return Err(Error::last_os("map thread writer cells"));
    }
    // Best effort: the atfork handler covers kernels without it.
    #[cfg(target_os = "linux")]
    // SAFETY: `m` is our page-aligned mapping of PAGE_BYTES bytes.
    unsafe {
        libc::madvise(m, PAGE_BYTES, libc::MADV_WIPEONFORK)
    };
    let m = m.cast::<RowCell>();
    match PAGES[k].compare_exchange(ptr::null_mut(), m, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Ok(m),
        Err(theirs) => {
            // SAFETY: our own mapping, never published.
            unsafe { libc::munmap(m.cast(), PAGE_BYTES) };
            Ok(theirs)
        }
    }
}

/// Hands out a zeroed cell: its index and address.
fn alloc_cell() -> Result<(usize, NonNull<RowCell>)> {
    for (i, taken) in TAKEN.iter().enumerate() {
        if taken
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        return match page(i / CELLS_PER_PAGE) {
            // SAFETY: the index is inside the page's CELLS_PER_PAGE cells.
            Ok(p) => Ok((i, unsafe {
                NonNull::new_unchecked(p.add(i % CELLS_PER_PAGE))
            })),
            Err(e) => {
                taken.store(false, Ordering::Release);
                Err(e)
            }
        };
    }
    Err(Error::Config(format!(
        "{MAX_CELLS} thread writers are open in this process; close some"
    )))
}

/// Zeroes cell `i` at `cell` and hands it back.
///
/// # Safety
/// `cell` is cell `i` from [`alloc_cell`], used by no one any more.
unsafe fn free_cell(i: usize, cell: NonNull<RowCell>) {
    // SAFETY: per the contract, a live cell nobody else uses.
    unsafe { ptr::write_bytes(cell.as_ptr(), 0, 1) };
    OWNERS[i].store(ptr::null_mut(), Ordering::Relaxed);
    TAKEN[i].store(false, Ordering::Release);
}

/// A claimed row's counters, as the hot path writes them (or the cell's
/// scratch row, for a handle without a row).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowRef<'a>(&'a [AtomicU64; COUNTERS]);

impl<'a> RowRef<'a> {
    /// The row of the cell at `cell`: its claimed row, or its own scratch
    /// row when it has none (closed, or inherited in a forked child).
    ///
    /// # Safety
    /// `cell` is a cell of a live thread writer (or of one inherited from
    /// the parent in a forked child), used only on the writer's own thread.
    #[inline(always)]
    pub(crate) unsafe fn of(cell: *const RowCell) -> RowRef<'a> {
        // SAFETY: per the contract the cell is mapped. Its distance is 0
        // (the scratch row, in the cell) or was set by `ThreadStats::open`
        // from a row whose provenance it exposed, which the writer's segment
        // (held by the writer) keeps mapped.
        unsafe {
            let scratch = ptr::addr_of!((*cell).scratch);
            let delta = (*cell).row_delta.load(Ordering::Relaxed);
            let row = scratch.addr().wrapping_add(delta);
            RowRef(&*ptr::with_exposed_provenance::<[AtomicU64; COUNTERS]>(row))
        }
    }

    /// Whether the cell at `cell` holds a row (false for a closed handle
    /// and in a forked child).
    ///
    /// # Safety
    /// As for [`of`](Self::of).
    #[inline(always)]
    pub(crate) unsafe fn held(cell: *const RowCell) -> bool {
        // SAFETY: per the contract the cell is mapped.
        unsafe { (*cell).row_delta.load(Ordering::Relaxed) != 0 }
    }

    /// See [`ThreadStats::record_packets`].
    #[inline(always)]
    pub(crate) fn record_packets(self, dir: Direction, packets: u64, bytes: u64, retransmit: bool) {
        let i = Counter::packets(dir, retransmit);
        rows::add(&self.0[i], packets);
        rows::add(&self.0[i + 1], bytes);
    }

    /// See [`ThreadStats::record_rtcp`].
    #[inline(always)]
    pub(crate) fn record_rtcp(self, dir: Direction, nack: u32, pli: u32, fir: u32) {
        let d = dir as usize;
        if nack > 0 {
            rows::add(&self.0[Counter::NackIn as usize + d], nack as u64);
        }
        if pli > 0 {
            rows::add(&self.0[Counter::PliIn as usize + d], pli as u64);
        }
        if fir > 0 {
            rows::add(&self.0[Counter::FirIn as usize + d], fir as u64);
        }
    }
}

/// A thread writer: a row of the segment's counters that only the calling
/// thread writes. Use it for long-lived worker threads (one pinned thread
/// per core); use [`Stats`] itself from thread pools and short-lived
/// threads.
///
/// Not `Send`: it records on the thread that made it, and gives its row
/// back when dropped there.
///
/// ```
/// use nodestats::{Collector, Direction, Stats};
/// let stats = Stats::anonymous().unwrap();
/// std::thread::scope(|s| {
///     for _ in 0..2 {
///         s.spawn(|| {
///             // One per long-lived worker thread, made on that thread.
///             let t = stats.thread_writer().unwrap();
///             for _ in 0..1000 {
///                 t.record_packets(Direction::Incoming, 1, 1200, false);
///             }
///         });
///     }
/// });
/// stats.record_packets(Direction::Incoming, 1, 1200, false); // per-CPU path
/// let ns = Collector::new(stats.segment().clone(), Default::default()).unwrap().update();
/// assert_eq!(ns.packets_in, 2001);
/// ```
#[derive(Debug)]
pub struct ThreadStats {
    cell: NonNull<RowCell>,
    cell_index: usize,
    /// This writer's entry in its `Writer`'s list of thread writers, which
    /// holds the row claim (`maintain` replaces it).
    entry: u64,
    stats: Stats,
    /// Neither `Send` nor `Sync`: one writer per row.
    _one_thread: PhantomData<*const ()>,
}

impl ThreadStats {
    pub(crate) fn open(stats: &Stats) -> Result<ThreadStats> {
        let segment = stats.segment();
        // Held from the claim to the registration: `maintain` moves rows.
        let mut follow = stats.writer.follow();
        let claim = segment.claim_row()?;
        let (cell_index, cell) = match alloc_cell() {
            Ok(c) => c,
            Err(e) => {
                segment.release_row(claim);
                return Err(e);
            }
        };
        // SAFETY: a cell just handed to us alone; the row stays mapped while
        // `stats` (which holds the segment) lives in this handle.
        unsafe { point(cell, segment, claim.row) };
        follow.next_thread += 1;
        let entry = follow.next_thread;
        follow.threads.push(ThreadEntry {
            id: entry,
            cell: cell.cast(),
            claim: Some(claim),
            bindings: Vec::new(),
        });
        drop(follow);
        Ok(ThreadStats {
            cell,
            cell_index,
            entry,
            stats: stats.clone(),
            _one_thread: PhantomData,
        })
    }

    #[inline(always)]
    fn row(&self) -> RowRef<'_> {
        // SAFETY: our own live cell, read on the owning thread.
        unsafe { RowRef::of(self.cell.as_ptr()) }
    }

    /// The row this writer holds.
    pub fn row_index(&self) -> usize {
        self.row_in(&self.stats.writer.follow())
    }

    /// The row this writer holds, from the writer's list.
    fn row_in(&self, follow: &super::writer::Follow) -> usize {
        follow
            .threads
            .iter()
            .find(|t| t.id == self.entry)
            .and_then(|t| t.claim.as_ref())
            .map_or(usize::MAX, |c| c.row)
    }

    /// The per-CPU writer this thread writer was made from: for gauges,
    /// events and labeled series, which live outside the row.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Records `packets` packets totalling `bytes` bytes, as
    /// [`Stats::record_packets`] does, into this thread's row: two plain
    /// load-add-stores (relaxed atomic loads and stores) on one cache line
    /// only this thread writes. Hot path: no lock prefix, no fence, no
    /// system call, no allocation, cannot fail; a no-op in a forked child.
    #[inline]
    pub fn record_packets(&self, dir: Direction, packets: u64, bytes: u64, retransmit: bool) {
        self.row().record_packets(dir, packets, bytes, retransmit);
    }

    /// Records one packet of `bytes` bytes. Hot path.
    #[inline]
    pub fn record_packet(&self, dir: Direction, bytes: u64, retransmit: bool) {
        self.record_packets(dir, 1, bytes, retransmit);
    }

    /// Records RTCP feedback into this thread's row, as
    /// [`Stats::record_rtcp`] does. Hot path.
    #[inline]
    pub fn record_rtcp(&self, dir: Direction, nack: u32, pli: u32, fir: u32) {
        self.row().record_rtcp(dir, nack, pli, fir);
    }

    /// Forwarding latency, ns: a gauge of the writer slot, set through
    /// [`Stats::forward_latency`].
    #[inline]
    pub fn forward_latency(&self, ns: u32) {
        self.stats.forward_latency(ns);
    }

    /// Forwarding jitter, ns, through [`Stats::forward_jitter`].
    #[inline]
    pub fn forward_jitter(&self, ns: u32) {
        self.stats.forward_jitter(ns);
    }

    /// A labeled series recorded from this thread: resolves it as
    /// [`Stats::series`] does (slow path, same errors), then binds it to
    /// series slots of this thread's row, so that recording is plain
    /// loads and stores like [`record_packets`](Self::record_packets). See
    /// [`ThreadSeries`].
    pub fn series(&self, family: impl Into<FamilyId>, labels: &[&str]) -> Result<ThreadSeries<'_>> {
        let shared = self.stats.series(family, labels)?;
        Ok(ThreadSeries {
            raw: ThreadSeriesRaw::bind(self, shared),
            _thread: PhantomData,
        })
    }

    /// The cell the C ABI hands out as its handle.
    pub(crate) fn cell(&self) -> *mut RowCell {
        self.cell.as_ptr()
    }

    /// Stores the C ABI's owner word in the cell (and beside it, in
    /// ordinary memory, for [`take_owner`]).
    pub(crate) fn set_owner(&self, owner: *mut ()) {
        // SAFETY: our own live cell, written on the owning thread.
        unsafe { (*self.cell.as_ptr()).owner = owner };
        OWNERS[self.cell_index].store(owner, Ordering::Relaxed);
    }
}

/// Points the cell at row `row` of `segment` (its counters and series
/// slots).
///
/// # Safety
/// `cell` is a live cell; `segment` keeps the row mapped while the cell
/// may be read (the thread writer holds it).
pub(crate) unsafe fn point(cell: NonNull<RowCell>, segment: &crate::segment::Segment, row: usize) {
    let counters = ptr::from_ref(&segment.rows()[row].counters);
    let series = segment
        .row_series_of(row)
        .first()
        .map_or(ptr::null_mut(), |w| ptr::from_ref(w).cast_mut());
    // SAFETY: per the contract.
    unsafe { point_at(cell, counters, series) };
}

/// Points the cell at the row `counters` and its series slots `series`
/// (null: none).
///
/// # Safety
/// As for [`point`]; `counters` is never inside the cell.
pub(crate) unsafe fn point_at(
    cell: NonNull<RowCell>,
    counters: *const [AtomicU64; COUNTERS],
    series: *mut AtomicU64,
) {
    // SAFETY: per the contract the cell is live. The row is outside the
    // cell, so its distance from the scratch row is not 0.
    unsafe {
        let scratch = ptr::addr_of!((*cell.as_ptr()).scratch);
        let delta = counters.expose_provenance().wrapping_sub(scratch.addr());
        debug_assert_ne!(delta, 0);
        (*cell.as_ptr()).series.store(series, Ordering::Relaxed);
        (*cell.as_ptr()).row_delta.store(delta, Ordering::Release);
    }
}

/// Where the cell points: its row's counters and series slots.
///
/// # Safety
/// `cell` is a live cell.
pub(crate) unsafe fn aim(cell: NonNull<RowCell>) -> (*const [AtomicU64; COUNTERS], *mut AtomicU64) {
    // SAFETY: per the contract.
    unsafe {
        let c = cell.as_ptr();
        (
            ptr::from_ref(RowRef::of(c).0),
            (*c).series.load(Ordering::Relaxed),
        )
    }
}

/// The owner word of the cell at `cell` for the hot path: null in a forked
/// child (the cell is wiped), so inherited handles do nothing there.
///
/// # Safety
/// `cell` is a cell of a live thread writer, or one inherited in a child.
#[inline(always)]
pub(crate) unsafe fn cell_owner(cell: *const RowCell) -> *mut () {
    // SAFETY: per the contract the cell is mapped.
    unsafe { (*cell).owner }
}

/// Takes the owner word of the cell at `cell` out of ordinary memory: the
/// owner to free on close, in the process that opened the handle *and* in
/// a forked child (where dropping it releases nothing). Null if the cell is
/// not one of ours or was taken already.
pub(crate) fn take_owner(cell: *const RowCell) -> *mut () {
    for (k, page) in PAGES.iter().enumerate() {
        let p = page.load(Ordering::Acquire).cast_const();
        if p.is_null() {
            break;
        }
        let offset = (cell as usize).wrapping_sub(p as usize);
        if offset < CELLS_PER_PAGE * size_of::<RowCell>() {
            let i = k * CELLS_PER_PAGE + offset / size_of::<RowCell>();
            return OWNERS[i].swap(ptr::null_mut(), Ordering::Relaxed);
        }
    }
    ptr::null_mut()
}

impl Drop for ThreadStats {
    fn drop(&mut self) {
        // In a forked child the cell reads as zero: the row and the cell
        // are the parent's, and stay so.
        // SAFETY: our own cell, read on the owning thread.
        if !unsafe { RowRef::held(self.cell.as_ptr()) } {
            return;
        }
        let mut follow = self.stats.writer.follow();
        let entry = follow
            .threads
            .iter()
            .position(|t| t.id == self.entry)
            .map(|i| follow.threads.swap_remove(i));
        drop(follow);
        if let Some(claim) = entry.and_then(|e| e.claim) {
            self.stats.segment().release_row(claim);
        }
        // SAFETY: our cell, which nothing uses after this.
        unsafe { free_cell(self.cell_index, self.cell) };
    }
}

/// How a thread series records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowMode {
    /// Into the row's series slots from value word `offset` of the row's
    /// slot words on: a counter (one slot).
    Counter(usize),
    /// A histogram's buckets and sum (consecutive slots); a native one's
    /// native words per CPU.
    Histogram(usize),
    /// A native histogram's every word (consecutive slots).
    Native(usize),
    /// Through the per-CPU series handle: a gauge (its words are per
    /// writer slot, shared by the process's threads), or a series that
    /// found no free slots in the row.
    Shared,
    /// Nothing: the writer is one inherited in a forked child, or the C
    /// ABI's thread writer was closed before this handle.
    Off,
}

/// A thread series without the borrow of its thread writer: what the C ABI
/// keeps (it orders the lifetimes itself).
#[derive(Debug)]
pub(crate) struct ThreadSeriesRaw {
    cell: NonNull<RowCell>,
    pub(crate) mode: RowMode,
    shared: SeriesHandle,
}

impl ThreadSeriesRaw {
    /// Binds `shared`'s series to slots of `t`'s row where it can.
    pub(crate) fn bind(t: &ThreadStats, shared: SeriesHandle) -> ThreadSeriesRaw {
        let kind = shared.kind();
        // SAFETY: the writer's own cell, read on its thread.
        let held = unsafe { RowRef::held(t.cell.as_ptr()) };
        let mode = match kind {
            // An inherited writer in a forked child: the row (and its
            // bindings) are the parent's; bind nothing, record nothing.
            _ if !held => RowMode::Off,
            Kind::Gauge => RowMode::Shared,
            _ => {
                let classic = shared.bounds().len() + 2;
                // A native histogram's whole run if it fits, else its
                // classic words.
                let whole = shared.native().map(|n| classic + n.words());
                let runs: &[usize] = match (kind, &whole) {
                    (Kind::Counter, _) => &[1],
                    (_, Some(whole)) => &[*whole, classic],
                    _ => &[classic],
                };
                // Under the writer's lock: `maintain` moves rows and their
                // bindings together.
                let mut follow = t.stats.writer.follow();
                let words = t.stats.segment().row_series_of(t.row_in(&follow));
                let slots = words.len() / 2;
                let (bound, n) = runs
                    .iter()
                    .find_map(|&n| {
                        rows::bind_run(words, slots, shared.base() as u64, n).map(|s| (s, n))
                    })
                    .map_or((None, 0), |(s, n)| (Some(s), n));
                if let (Some(s), Some(e)) =
                    (bound, follow.threads.iter_mut().find(|e| e.id == t.entry))
                {
                    if !e.bindings.iter().any(|b| b.0 == s) {
                        e.bindings.push((s, n, Arc::downgrade(shared.cell())));
                    }
                }
                drop(follow);
                match bound {
                    Some(s) if kind == Kind::Counter => RowMode::Counter(slots + s),
                    Some(s) if n > classic => RowMode::Native(slots + s),
                    Some(s) => RowMode::Histogram(slots + s),
                    None => RowMode::Shared,
                }
            }
        };
        ThreadSeriesRaw {
            cell: t.cell,
            mode,
            shared,
        }
    }

    /// The row's series slot words, if this process may write them.
    #[inline(always)]
    fn slots(&self) -> Option<NonNull<AtomicU64>> {
        // SAFETY: the cell of a live thread writer (or one wiped in a
        // forked child, which reads null); read on the owning thread.
        NonNull::new(unsafe { (*self.cell.as_ptr()).series.load(Ordering::Relaxed) })
    }

    /// Whether this process's thread writer still holds its row (false in
    /// a forked child, where inherited handles record nothing).
    #[inline(always)]
    fn live(&self) -> bool {
        // SAFETY: as in `slots`.
        unsafe { RowRef::held(self.cell.as_ptr()) }
    }

    #[inline(always)]
    fn word(w: NonNull<AtomicU64>, offset: usize) -> &'static AtomicU64 {
        // SAFETY: `offset` came from `bind` and lies inside the row's
        // series slots, which the thread writer's segment keeps mapped while
        // the handle may be used (its contract).
        unsafe { &*w.as_ptr().add(offset) }
    }

    /// See [`ThreadSeries::in_row`]; false once the handle records nothing
    /// (closed or inherited thread writer).
    pub(crate) fn in_row(&self) -> bool {
        matches!(
            self.mode,
            RowMode::Counter(_) | RowMode::Histogram(_) | RowMode::Native(_)
        ) && self.slots().is_some()
    }

    /// See [`ThreadSeries::inc_by`].
    #[inline]
    pub(crate) fn inc_by(&self, n: u64) {
        match self.mode {
            RowMode::Counter(off) => {
                if let Some(w) = self.slots() {
                    rows::add(Self::word(w, off), n);
                }
            }
            RowMode::Shared if self.live() => self.shared.inc_by(n),
            _ => {}
        }
    }

    /// See [`ThreadSeries::add`]: the delta's two's complement, added as
    /// [`inc_by`](Self::inc_by) adds (as `SeriesHandle::add` does).
    #[inline]
    pub(crate) fn add(&self, delta: i64) {
        self.inc_by(delta as u64);
    }

    /// See [`ThreadSeries::observe`].
    #[inline]
    pub(crate) fn observe(&self, value: f64) {
        match self.mode {
            RowMode::Histogram(off) => {
                if let Some(w) = self.slots() {
                    let classic = self.shared.bounds().len() + 2;
                    // A native histogram's native words did not fit the
                    // row: they take the per-CPU path (SEGMENT.md §8b).
                    let sum =
                        observe_words(self.shared.bounds(), self.shared.native(), value, |o| {
                            if o < classic {
                                rows::add(Self::word(w, off + o), 1)
                            } else {
                                self.shared.add_word(o, 1)
                            }
                        });
                    rows::add_f64(Self::word(w, off + sum), value);
                }
            }
            // The same as above with every word in the row: a separate arm
            // keeps the per-word range check off this path (1 ns, measured).
            RowMode::Native(off) => {
                if let Some(w) = self.slots() {
                    let sum =
                        observe_words(self.shared.bounds(), self.shared.native(), value, |o| {
                            rows::add(Self::word(w, off + o), 1)
                        });
                    rows::add_f64(Self::word(w, off + sum), value);
                }
            }
            RowMode::Shared if self.live() => self.shared.observe(value),
            _ => {}
        }
    }
}

/// A labeled series recorded from one thread writer's thread: a counter
/// or histogram series lives in series slots of the writer's row, so
/// recording is a plain load and store (no lock prefix, no rseq) on memory
/// only this thread writes, like [`ThreadStats::record_packets`]; readers
/// add the slots to the series. Made by [`ThreadStats::series`]; borrows
/// the thread writer, and is not `Send`.
///
/// A row has a fixed number of series slots (64 unless the segment was made
/// with [`SegmentOptions::thread_row_series_slots`](crate::SegmentOptions::thread_row_series_slots):
/// a counter takes one, a histogram its bucket count plus two, a native
/// histogram all its words if they fit — else its classic ones, its native
/// buckets then going per CPU). A slot stays bound to its series
/// for the segment's life, so threads that reuse the row and record the
/// same series reuse its slots. A series that finds no free slots records
/// through the per-CPU path instead ([`SeriesHandle`]): it never fails and
/// never loses a count. Gauge series always take the per-CPU path: a
/// gauge's words are per writer slot (so a dead process's part leaves the
/// value), shared by the process's threads.
///
/// In a forked child, a thread series inherited from the parent records
/// nothing, as its thread writer does.
///
/// ```
/// use nodestats::{Family, Stats};
/// let stats = Stats::anonymous().unwrap();
/// let t = stats.thread_writer().unwrap();
/// // Slow path, once per worker thread: resolve the series.
/// let nacks = t.series(Family::NackTotal, &["incoming", "FR"]).unwrap();
/// let rtt = t.series(Family::RttMs, &["outgoing", "MICROPHONE", "AUDIO", "FR"]).unwrap();
/// assert!(nacks.in_row() && rtt.in_row());
/// // Hot path: plain adds to this thread's row.
/// nacks.inc_by(3);
/// rtt.observe(42.0);
/// ```
#[derive(Debug)]
pub struct ThreadSeries<'t> {
    raw: ThreadSeriesRaw,
    _thread: PhantomData<&'t ThreadStats>,
}

impl ThreadSeries<'_> {
    /// The family this series belongs to.
    pub fn family(&self) -> FamilyId {
        self.raw.shared.family()
    }

    /// Whether this series records into the thread's row (plain adds), or
    /// else through the per-CPU path (a gauge, or a row whose series slots
    /// were full).
    pub fn in_row(&self) -> bool {
        matches!(
            self.raw.mode,
            RowMode::Counter(_) | RowMode::Histogram(_) | RowMode::Native(_)
        )
    }

    /// Adds `n` to a counter series (or to this process's part of a gauge;
    /// nothing on a histogram). Hot path: no lock, no allocation, no system
    /// call, cannot fail.
    #[inline]
    pub fn inc_by(&self, n: u64) {
        self.raw.inc_by(n);
    }

    /// Adds a signed delta to a gauge series (a counter takes its two's
    /// complement; nothing on a histogram). Hot path.
    #[inline]
    pub fn add(&self, delta: i64) {
        self.raw.add(delta);
    }

    /// Observes a value in a histogram series (nothing on a counter or a
    /// gauge). Hot path.
    #[inline]
    pub fn observe(&self, value: f64) {
        self.raw.observe(value);
    }
}

/// Thread writers.
impl Stats {
    /// A thread writer for the calling thread: claims a row of the
    /// segment's counters for it (see [`ThreadStats`]). Fails with
    /// [`Error::NoThreadRow`] when every row is held by a live thread
    /// writer.
    pub fn thread_writer(&self) -> Result<ThreadStats> {
        ThreadStats::open(self)
    }
}
