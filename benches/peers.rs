//! packets + bytes per call: our rseq and atomic paths (in Rust and through
//! the C ABI) against the counters media servers and Rust services use, at
//! 1..=N threads, in one criterion run so the ratios come from one run.
//!
//! Every case adds 1 packet and 1200 bytes to two counters per call:
//!
//! * `nodestats_rseq` / `nodestats_atomic`: `Stats::record_packets` on a
//!   segment in rseq / atomic write mode.
//! * `c_abi_rseq` / `c_abi_atomic`: `nodestats_record_packets` through an
//!   `extern "C"` function pointer hidden from the optimiser, as a C caller
//!   pays it.
//! * `nodestats_thread`: `ThreadStats::record_packets`, each thread on its
//!   own thread row (plain load/add/store).
//! * `c_abi_thread`: `nodestats_thread_record_packets` through a function
//!   pointer, each thread with its own `nodestats_thread_t`.
//! * `floor_call`: the floor below through a non-inlined `extern "C"`
//!   function reached by a function pointer — what any C call that does
//!   two plain adds costs; `c_abi_thread`'s yardstick.
//! * `shared_atomic`: two `fetch_add`s on one shared pair (LiveKit's Go
//!   counters).
//! * `prometheus_counter`: `IntCounter::inc_by` ×2.
//! * `prometheus_vec`: `IntCounterVec::with_label_values(..).inc_by` ×2.
//! * `prometheus_local`: `LocalIntCounter::inc_by` ×2 on per-thread locals
//!   (flushed after each batch; the flush is inside the timing).
//! * `metrics_macro`: `metrics::counter!(..).increment` ×2 per call, with a
//!   real recorder installed (a `metrics_util::registry::Registry` of
//!   atomics, the storage metrics-exporter-prometheus uses) — without one,
//!   `counter!` is a no-op and the number would be meaningless.
//! * `metrics_handle`: the same counters registered once, `increment` ×2.
//! * `fast_counter`: `fast_counter::ConcurrentCounter::add` ×2.
//! * `mutex`: one `Mutex<(u64, u64)>` locked per call.
//! * `floor`: a plain add to each of two words on a cache line only the
//!   calling thread touches — what an add costs with no sharing at all.
//!
//! `packet_loop` adds the work around a record: copy a 1200-byte packet
//! with `copy_from_slice`, then record it.
//!
//! Multi-threaded cases report wall time per call per thread: all threads
//! run `iters` calls at once and the clock runs until the last one is done,
//! so aggregate throughput = threads / time.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use nodestats::__testing::ffi::{
    nodestats_close, nodestats_direction, nodestats_open_with, nodestats_options,
    nodestats_options_init, nodestats_record_packets, nodestats_status, nodestats_t,
    nodestats_thread_close, nodestats_thread_open, nodestats_thread_record_packets,
    nodestats_thread_t, nodestats_write_mode, DirectionArg, WriteModeArg,
};
use nodestats::{Direction, SegmentOptions, Stats, WriteMode};
use prometheus::{IntCounter, IntCounterVec, Opts};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

const PACKET: u64 = 1200;

#[repr(align(128))]
struct Shared {
    packets: AtomicU64,
    bytes: AtomicU64,
}

/// A cache line only its thread touches.
#[repr(align(128))]
struct Line {
    packets: u64,
    bytes: u64,
}

impl Line {
    /// Two plain adds that really reach memory (volatile: the compiler
    /// may not keep the counters in registers across the loop).
    #[inline(always)]
    fn add(&mut self, p: u64, b: u64) {
        // SAFETY: both pointers come from `&mut self`: valid, aligned,
        // exclusive.
        unsafe {
            let pp = &raw mut self.packets;
            let bp = &raw mut self.bytes;
            pp.write_volatile(pp.read_volatile() + p);
            bp.write_volatile(bp.read_volatile() + b);
        }
    }
}

/// Runs `f(iters)` on `threads` threads released together; returns the
/// wall time from the release until the last thread is done. (Timing each
/// thread separately would hide contention whenever the scheduler happens
/// to run the threads one after the other.)
fn parallel<F: Fn(u64) + Sync>(threads: usize, iters: u64, f: F) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    f(iters);
                })
            })
            .collect();
        barrier.wait();
        let t = Instant::now();
        for h in hs {
            h.join().unwrap();
        }
        t.elapsed()
    })
}

/// A `metrics` recorder backed by the registry of atomics that
/// metrics-exporter-prometheus uses: `counter!` does the same lookup and
/// atomic add it does in production.
struct RegistryRecorder(
    metrics_util::registry::Registry<metrics::Key, metrics_util::registry::AtomicStorage>,
);

impl metrics::Recorder for RegistryRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        self.0
            .get_or_create_counter(key, |c| metrics::Counter::from_arc(c.clone()))
    }
    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        self.0
            .get_or_create_gauge(key, |g| metrics::Gauge::from_arc(g.clone()))
    }
    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        self.0
            .get_or_create_histogram(key, |h| metrics::Histogram::from_arc(h.clone()))
    }
}

type RecordPackets = unsafe extern "C" fn(*mut nodestats_t, DirectionArg, u64, u64, bool);
type ThreadRecordPackets =
    unsafe extern "C" fn(*mut nodestats_thread_t, DirectionArg, u64, u64, bool);
type FloorCall = unsafe extern "C" fn(*mut Line, DirectionArg, u64, u64, bool);

/// The floor through a call: a NULL check and two plain adds to a line
/// only this thread touches, out of line, with the same signature as
/// `nodestats_thread_record_packets`.
///
/// # Safety
/// `line` is NULL or valid and exclusive for the call.
#[inline(never)]
unsafe extern "C" fn floor_call(line: *mut Line, _: DirectionArg, p: u64, b: u64, _: bool) {
    // SAFETY: per the contract.
    if let Some(line) = unsafe { line.as_mut() } {
        line.add(p, b);
    }
}

/// A C handle on a new anonymous segment in `mode`.
struct CHandle(*mut nodestats_t);

// SAFETY: a nodestats_t may be used from any thread (it wraps a Stats).
unsafe impl Sync for CHandle {}

impl CHandle {
    fn open(mode: nodestats_write_mode) -> CHandle {
        let mut opts = std::mem::MaybeUninit::<nodestats_options>::uninit();
        let mut handle = std::ptr::null_mut();
        // SAFETY: options_init writes a whole default nodestats_options;
        // its name is NULL (anonymous); `handle` is writable.
        let st = unsafe {
            nodestats_options_init(opts.as_mut_ptr());
            let mut opts = opts.assume_init();
            opts.write_mode = WriteModeArg(mode as u32);
            nodestats_open_with(&opts, &mut handle)
        };
        assert_eq!(st, nodestats_status::Ok);
        CHandle(handle)
    }

    fn ptr(&self) -> *mut nodestats_t {
        self.0
    }
}

impl Drop for CHandle {
    fn drop(&mut self) {
        // SAFETY: live, and not used afterwards.
        unsafe { nodestats_close(self.0) };
    }
}

fn peers(c: &mut Criterion) {
    let max_threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rseq = Stats::open(&SegmentOptions::new().write_mode(WriteMode::Rseq)).unwrap();
    let atomic = Stats::open(&SegmentOptions::new().write_mode(WriteMode::Atomic)).unwrap();
    let c_rseq = CHandle::open(nodestats_write_mode::Rseq);
    let c_atomic = CHandle::open(nodestats_write_mode::Atomic);
    let record: RecordPackets = black_box(nodestats_record_packets);
    let thread_record: ThreadRecordPackets = black_box(nodestats_thread_record_packets);
    let floor_fn: FloorCall = black_box(floor_call);
    let incoming = DirectionArg(nodestats_direction::Incoming as u32);
    let shared = Shared {
        packets: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    };
    let prom_p = IntCounter::new("packets_total", "packets").unwrap();
    let prom_b = IntCounter::new("bytes_total", "bytes").unwrap();
    let labels = ["direction", "transmission", "country"];
    let vec_p = IntCounterVec::new(Opts::new("livekit_packet_total", "packets"), &labels).unwrap();
    let vec_b = IntCounterVec::new(Opts::new("livekit_packet_bytes", "bytes"), &labels).unwrap();
    metrics::set_global_recorder(RegistryRecorder(metrics_util::registry::Registry::atomic()))
        .unwrap();
    let m_p = metrics::counter!("packets_total", "direction" => "incoming");
    let m_b = metrics::counter!("bytes_total", "direction" => "incoming");
    let fast_p = fast_counter::ConcurrentCounter::new(max_threads);
    let fast_b = fast_counter::ConcurrentCounter::new(max_threads);
    let mutex = Mutex::new((0u64, 0u64));

    let mut g = c.benchmark_group("peers");
    for threads in 1..=max_threads {
        let mut case = |name: &str, f: &(dyn Fn(u64) + Sync)| {
            g.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &t| {
                b.iter_custom(|iters| parallel(t, iters, f))
            });
        };
        case("nodestats_rseq", &|n| {
            for _ in 0..n {
                rseq.record_packets(Direction::Incoming, black_box(1), black_box(PACKET), false);
            }
        });
        case("nodestats_atomic", &|n| {
            for _ in 0..n {
                atomic.record_packets(Direction::Incoming, black_box(1), black_box(PACKET), false);
            }
        });
        case("c_abi_rseq", &|n| {
            for _ in 0..n {
                // SAFETY: the handle is live until the end of this function.
                unsafe {
                    record(
                        c_rseq.ptr(),
                        incoming,
                        black_box(1),
                        black_box(PACKET),
                        false,
                    )
                }
            }
        });
        case("c_abi_atomic", &|n| {
            for _ in 0..n {
                // SAFETY: as above.
                unsafe {
                    record(
                        c_atomic.ptr(),
                        incoming,
                        black_box(1),
                        black_box(PACKET),
                        false,
                    )
                }
            }
        });
        case("nodestats_thread", &|n| {
            let t = atomic.thread_writer().unwrap();
            for _ in 0..n {
                t.record_packets(Direction::Incoming, black_box(1), black_box(PACKET), false);
            }
        });
        case("c_abi_thread", &|n| {
            let mut t = std::ptr::null_mut();
            // SAFETY: the handle is live; `t` is writable.
            let st = unsafe { nodestats_thread_open(c_atomic.ptr(), &mut t) };
            assert_eq!(st, nodestats_status::Ok);
            for _ in 0..n {
                // SAFETY: this thread's live thread writer.
                unsafe { thread_record(t, incoming, black_box(1), black_box(PACKET), false) }
            }
            // SAFETY: live, and not used afterwards.
            unsafe { nodestats_thread_close(t) };
        });
        case("floor_call", &|n| {
            let mut line = Line {
                packets: 0,
                bytes: 0,
            };
            for _ in 0..n {
                // SAFETY: `line` is this thread's own.
                unsafe { floor_fn(&mut line, incoming, black_box(1), black_box(PACKET), false) }
            }
            black_box(&line);
        });
        case("shared_atomic", &|n| {
            for _ in 0..n {
                shared.packets.fetch_add(black_box(1), Ordering::Relaxed);
                shared.bytes.fetch_add(black_box(PACKET), Ordering::Relaxed);
            }
        });
        case("prometheus_counter", &|n| {
            for _ in 0..n {
                prom_p.inc_by(black_box(1));
                prom_b.inc_by(black_box(PACKET));
            }
        });
        case("prometheus_vec", &|n| {
            for _ in 0..n {
                let l = black_box(["incoming", "initial", ""]);
                vec_p.with_label_values(&l).inc_by(1);
                vec_b.with_label_values(&l).inc_by(PACKET);
            }
        });
        case("prometheus_local", &|n| {
            let (p, b) = (prom_p.local(), prom_b.local());
            for _ in 0..n {
                p.inc_by(black_box(1));
                b.inc_by(black_box(PACKET));
            }
            p.flush();
            b.flush();
        });
        case("metrics_macro", &|n| {
            for _ in 0..n {
                metrics::counter!("packets_total", "direction" => "incoming")
                    .increment(black_box(1));
                metrics::counter!("bytes_total", "direction" => "incoming")
                    .increment(black_box(PACKET));
            }
        });
        case("metrics_handle", &|n| {
            for _ in 0..n {
                m_p.increment(black_box(1));
                m_b.increment(black_box(PACKET));
            }
        });
        case("fast_counter", &|n| {
            for _ in 0..n {
                fast_p.add(black_box(1));
                fast_b.add(black_box(PACKET as isize));
            }
        });
        case("mutex", &|n| {
            for _ in 0..n {
                let mut g = mutex.lock().unwrap();
                g.0 += black_box(1);
                g.1 += black_box(PACKET);
            }
        });
        case("floor", &|n| {
            let mut line = Line {
                packets: 0,
                bytes: 0,
            };
            for _ in 0..n {
                line.add(black_box(1), black_box(PACKET));
            }
            black_box(&line);
        });
    }
    g.finish();

    let mut g = c.benchmark_group("packet_loop");
    for threads in 1..=max_threads {
        let mut case = |name: &str, f: &(dyn Fn(u64) + Sync)| {
            g.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &t| {
                b.iter_custom(|iters| parallel(t, iters, f))
            });
        };
        // Each thread copies from its own source to its own destination.
        let copy_loop = |n: u64, rec: &dyn Fn()| {
            let src = Arc::new([7u8; PACKET as usize]);
            let mut dst = [0u8; PACKET as usize];
            for _ in 0..n {
                dst.copy_from_slice(black_box(&src[..]));
                black_box(&mut dst);
                rec();
            }
        };
        case("copy_only", &|n| copy_loop(n, &|| {}));
        case("copy_rseq", &|n| {
            copy_loop(n, &|| {
                rseq.record_packets(Direction::Incoming, 1, PACKET, false)
            })
        });
        case("copy_atomic", &|n| {
            copy_loop(n, &|| {
                atomic.record_packets(Direction::Incoming, 1, PACKET, false)
            })
        });
        case("copy_floor", &|n| {
            let line = std::cell::RefCell::new(Line {
                packets: 0,
                bytes: 0,
            });
            copy_loop(n, &|| line.borrow_mut().add(1, PACKET));
        });
    }
    g.finish();
    drop((c_rseq, c_atomic));
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = peers
}
criterion_main!(benches);
