//! The restartable-sequences (rseq) write path: per-CPU adds without the
//! lock prefix, on Linux x86-64.
//!
//! # What rseq gives us
//!
//! A thread registers a `struct rseq` area with the kernel (glibc ≥ 2.35
//! does it for every thread and publishes where: `__rseq_offset` from the
//! thread pointer). The kernel keeps `cpu_id` in it current, and before it
//! returns to user space after **preempting, migrating or signalling** the
//! thread it looks at `rseq_cs`: if that points to a descriptor whose
//! `[start_ip, start_ip + post_commit_offset)` contains the interrupted
//! instruction pointer, the thread resumes at the descriptor's `abort_ip`
//! instead. A critical section is therefore either run from its start to
//! its last instruction (the *commit*) on one CPU without any other thread
//! running on that CPU in between, or abandoned before the commit retired.
//!
//! # Why a plain add is correct here
//!
//! In a segment created in [`WriteMode::Rseq`](crate::segment::WriteMode),
//! shard `i` is written only by threads running on CPU `i`, and only from
//! inside such a section that loads `cpu_id`, reads the old value and
//! stores the new one, the store being the commit:
//!
//! * **Threads of this process.** Only one thread runs on a CPU at a time.
//!   Another thread can touch shard `i` between our load and our store only
//!   by running on CPU `i` in between, which needs ours to be preempted (or
//!   migrated) first — and that aborts our section, so our store never
//!   happens with a stale value; we retry from the top and read `cpu_id`
//!   again. A signal handler that records is the same case: the kernel
//!   aborts the section before it delivers the signal.
//! * **Other processes.** The argument never used "same address space":
//!   preemption is per CPU, whatever process the next thread belongs to,
//!   and a shared mapping is the same physical memory in every process.
//! * **Readers.** Collectors load each counter with an 8-byte atomic load.
//!   Our stores are naturally aligned 8-byte read-modify-write adds,
//!   which x86-64 performs as single-copy-atomic 8-byte accesses, so a
//!   reader sees each counter either before or after an add — exactly what
//!   a relaxed `fetch_add` would give it.
//! * **Memory ordering.** None is needed between CPUs: no two CPUs write
//!   one shard, and a reader's sum makes no snapshot promise. Program order
//!   on one CPU (x86 is TSO) keeps a thread's own adds in order.
//!
//! What would break it, and is refused at creation and attach: a writer
//! that adds with `lock add` (or any non-rseq store) to a shard that rseq
//! writers use — its add can land between an rseq writer's load and store
//! and be overwritten — and two CPUs mapping to one shard. Hence the write
//! mode is a property of the segment ([`WriteMode`]), and an rseq segment
//! has a shard for every possible CPU id.
//!
//! # Two counters, two sections
//!
//! `record_packets` adds to packets *and* bytes. rseq makes only the last
//! instruction of a section the commit, so one section cannot hold two
//! `add [mem], reg` instructions: an abort between them would leave packets
//! added, and the retry would add them again (an abort handler cannot tell
//! how far the section got: the kernel always resumes at the one
//! `abort_ip`). Each counter therefore gets its own section, committed by
//! its own non-locked add: every increment lands exactly once.
//!
//! Committing both with one 16-byte `movdqa` store (load the pair, `paddq`,
//! store) also works, and an earlier version did that. It was dropped
//! because, back to back, the vector store-to-load forwarding that chains
//! one call to the next made it slower than two scalar sections on the
//! machines measured (numbers and their history: `benches/README.md`).
//! The one thing it gave — a reader never seeing
//! packets without their bytes — the collector does not promise anyway (a
//! sum, not a snapshot), and atomic mode does not give it either: a reader
//! or a kill between the two adds can see bytes one call behind.
//!
//! A single counter commits with `add qword ptr [shard + off], n`, one
//! read-modify-write instruction (not `lock`ed: no other CPU writes there).
//!
//! # Registration
//!
//! glibc registers every thread it creates and records the area's offset
//! from the thread pointer in `__rseq_offset`; we use its area and its
//! signature (x86: `0x53053053`, which must precede every abort handler).
//! If registration is disabled (`GLIBC_TUNABLES=glibc.pthread.rseq=0`,
//! `__rseq_size == 0`) glibc still reserves the area and leaves a negative
//! `cpu_id` in it. The section checks for that before touching memory and
//! leaves; a cold path then registers the area itself with the `rseq`
//! system call and retries — once per thread, never on the steady-state
//! hot path, and with no `thread_local!` lookup. If that registration is
//! refused (another library registered a different area for the thread, or
//! a seccomp filter forbids the call) the process aborts with a message, as
//! glibc does when its own registration fails; a writer must not fall back
//! to a locked add on an rseq segment. Creating a [`Stats`](crate::Stats)
//! handle on an rseq segment registers the creating thread, so an
//! environment that refuses rseq is an error at setup, not an abort later.
//!
//! # Safety
//!
//! The invariants every `unsafe` block here relies on:
//! * A section's target word is `counter + ((cpu_id & mask) << shift)`,
//!   and the caller guarantees (each function's `# Safety`) that this is an
//!   aligned word inside a live region for every `cpu_id & mask`.
//! * Every writer of those words uses these sections, and no two CPU ids
//!   map to one block (the segment's write mode and shard count, checked at
//!   attach), which is what makes the non-locked add atomic (see above).
//! * `fs:[__rseq_offset]` is this thread's `struct rseq`, which glibc keeps
//!   in the thread's static TLS for the thread's whole life.
//! * Descriptors and abort handlers follow the kernel's rseq ABI (version
//!   0, 32-byte aligned, signature before `abort_ip`, `abort_ip` outside the
//!   section); no section uses the stack or writes an input.
//!
//! # Gauges
//!
//! Writer-slot gauges (rooms, participants, tracks) are not per CPU: each
//! slot belongs to one writer process and every change to it is a locked
//! `fetch_add` in both modes, so they need no rseq.

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub(crate) use imp::{glibc_registered_area, Area, SHARD_SHIFT};

/// Whether this process can write an rseq segment: Linux x86-64 with glibc
/// ≥ 2.35, whether or not glibc registered its threads (we register them
/// ourselves if it did not). Never under Miri, which runs no inline
/// assembly.
pub(crate) fn supported() -> bool {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    return !cfg!(miri) && imp::glibc_area().is_some();
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    return false;
}

/// Whether glibc registered rseq for this process's threads, so that rseq
/// costs nothing to set up: the condition for rseq being the default mode.
pub(crate) fn registered_by_glibc() -> bool {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    return supported() && imp::glibc_area().is_some_and(|(_, size)| size >= 16);
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    return false;
}

/// One rseq add section as an `asm!` template: publish the descriptor,
/// read `cpu_id` (leave early if it is negative), turn it into a block
/// offset with `$shift`, run `$stall`, commit with one non-locked add.
/// The descriptor (`__rseq_cs`) and the abort handler (`__rseq_failure`,
/// after the signature) go to their own sections; the handler runs
/// `$on_abort` and restarts. Operands the caller supplies: `area`,
/// `counter`, `mask`, `n`, `cpu` (out), `sig`, and whatever `$shift`,
/// `$stall` and `$on_abort` name.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
macro_rules! rseq_add_section {
    (shift: $shift:literal, stall: [$($stall:literal),*], on_abort: [$($abort:literal),*], $($operands:tt)*) => {
        core::arch::asm!(
            "2:",
            "lea {cpu}, [rip + 5f]",
            "mov qword ptr fs:[{area} + 8], {cpu}",
            "3:",
            "movsxd {cpu}, dword ptr fs:[{area} + 4]",
            "test {cpu}, {cpu}",
            "js 4f",
            "and {cpu:e}, {mask:e}",
            $shift,
            $($stall,)*
            // The commit.
            "add qword ptr [{counter} + {cpu}], {n}",
            "4:",
            ".pushsection __rseq_cs, \"aw\"",
            ".balign 32",
            "5:",
            ".long 0, 0",
            ".quad 3b, 4b - 3b, 6f",
            ".popsection",
            ".pushsection __rseq_failure, \"ax\"",
            // `ud1 0x53053053(%rip), %edi`: the signature, in a form
            // disassemblers decode.
            ".byte 0x0f, 0xb9, 0x3d",
            ".long {sig}",
            "6:",
            $($abort,)*
            "jmp 2b",
            ".popsection",
            $($operands)*
        )
    };
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod imp {
    use crate::schema::COUNTERS;
    use core::arch::asm;

    /// glibc's rseq signature on x86: the kernel was given it at
    /// registration and checks it in the four bytes before every abort
    /// handler.
    pub(crate) const RSEQ_SIG: u32 = 0x5305_3053;
    /// Size of the original `struct rseq` (the registration length glibc
    /// reserves room for).
    const RSEQ_AREA_LEN: u32 = 32;
    /// log2 of the shard stride (a shard is `COUNTERS` words):
    /// `cpu << SHARD_SHIFT` is a shard's offset. Sections with this stride
    /// shift by an immediate.
    pub(crate) const SHARD_SHIFT: u32 = (COUNTERS * 8).trailing_zeros();
    const _: () = assert!(1 << SHARD_SHIFT == COUNTERS * 8);

    /// `(__rseq_offset, __rseq_size)` if this glibc has rseq support.
    pub(crate) fn glibc_area() -> Option<(isize, u32)> {
        // SAFETY: dlsym with RTLD_DEFAULT and NUL-terminated names has no
        // preconditions; null means the symbol is absent (glibc < 2.35,
        // another libc, or a static binary).
        let (size, offset) = unsafe {
            (
                libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_size".as_ptr()),
                libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_offset".as_ptr()),
            )
        };
        if size.is_null() || offset.is_null() {
            return None;
        }
        // SAFETY: glibc defines `__rseq_size` as `const unsigned int` and
        // `__rseq_offset` as `const ptrdiff_t`, both set before main and
        // never changed after. The offset is set whether or not glibc
        // registered the area.
        Some(unsafe { (*(offset as *const isize), *(size as *const u32)) })
    }

    /// glibc's area if glibc registers one for its threads (`__rseq_size`
    /// set), without registering anything: where to read `cpu_id`.
    pub(crate) fn glibc_registered_area() -> Option<Area> {
        glibc_area()
            .filter(|&(_, size)| size >= 8)
            .map(|(offset, _)| Area { offset })
    }

    /// This thread's rseq area: where the kernel finds it, and where our
    /// sections read `cpu_id` and write `rseq_cs` (`%fs`-relative).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct Area {
        /// `__rseq_offset`: the area of *every* thread is at this offset
        /// from that thread's pointer.
        offset: isize,
    }

    impl Area {
        /// glibc's area, with the calling thread registered (by glibc, or
        /// now by us). Setup path: may make one system call.
        pub(crate) fn for_writer() -> Result<Area, &'static str> {
            let Some((offset, _)) = glibc_area() else {
                return Err("this libc publishes no rseq area (glibc >= 2.35 is needed)");
            };
            let area = Area { offset };
            if area.cpu_id() < 0 {
                area.register_current_thread()?;
                if area.cpu_id() < 0 {
                    return Err("the kernel accepted rseq registration but set no cpu_id");
                }
            }
            Ok(area)
        }

        fn ptr(self) -> *mut u8 {
            let tp: usize;
            // SAFETY: on x86-64 Linux the first word of the thread control
            // block, addressed by %fs, holds the thread pointer itself (the
            // TLS ABI). Reading it has no side effects.
            unsafe {
                asm!("mov {}, qword ptr fs:0", out(reg) tp, options(nostack, readonly, preserves_flags, pure));
            }
            tp.wrapping_add_signed(self.offset) as *mut u8
        }

        /// `cpu_id` of the calling thread: negative if it is not registered.
        #[inline(always)]
        pub(crate) fn cpu_id(self) -> i32 {
            // SAFETY: `ptr()` is this thread's `struct rseq`, which glibc
            // keeps in the thread's static TLS block for the thread's whole
            // life, 32-byte aligned; `cpu_id` is the u32 at byte 4. The
            // kernel writes it asynchronously, so it is read atomically.
            unsafe {
                (*(self.ptr().add(4) as *const core::sync::atomic::AtomicU32))
                    .load(core::sync::atomic::Ordering::Relaxed) as i32
            }
        }

        /// Registers glibc's area for the calling thread with glibc's
        /// signature. Cold: once per thread, only when glibc did not.
        fn register_current_thread(self) -> Result<(), &'static str> {
            // SAFETY: the area is this thread's `struct rseq` (see `cpu_id`),
            // 32 bytes, 32-byte aligned, and lives until the thread exits,
            // which is when the kernel stops using it. Registration only
            // makes the kernel write `cpu_id_start`/`cpu_id` (and later
            // clear `rseq_cs`), which is what the area is for.
            let r =
                unsafe { libc::syscall(libc::SYS_rseq, self.ptr(), RSEQ_AREA_LEN, 0, RSEQ_SIG) };
            if r == 0 {
                return Ok(());
            }
            match std::io::Error::last_os_error().raw_os_error() {
                // Already registered with this very area and signature.
                Some(libc::EBUSY) => Ok(()),
                Some(libc::EINVAL) => Err("this thread is already registered for rseq with another area (another library registered it); use atomic mode"),
                Some(libc::EPERM) => Err("this thread is registered for rseq with another signature; use atomic mode"),
                Some(libc::ENOSYS) => Err("the kernel has no rseq (Linux >= 4.18 is needed); use atomic mode"),
                _ => Err("the rseq system call failed (is it blocked by seccomp?); use atomic mode"),
            }
        }

        /// Registers the calling thread, or aborts the process: a writer
        /// of an rseq segment has no correct fallback.
        #[cold]
        #[inline(never)]
        fn register_or_abort(self) {
            if let Err(why) = self.register_current_thread() {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "nodestats: fatal: cannot register rseq for a writer thread on an rseq segment: {why}"
                );
                std::process::abort();
            }
        }

        /// Adds `a` to the word at `counter` and `b` to the next one, in
        /// the block of the current CPU: two sections, each committed by
        /// its own add, so each increment lands exactly once (see the
        /// module docs for why not one section).
        ///
        /// # Safety
        ///
        /// As for [`add_strided`](Self::add_strided), for both `counter`
        /// and `counter + 1`.
        #[inline(always)]
        pub(crate) unsafe fn add_pair(
            self,
            counter: *mut u64,
            mask: usize,
            shift: u32,
            a: u64,
            b: u64,
        ) {
            // SAFETY: the caller's contract covers both words.
            unsafe {
                if !self.try_add(counter, mask, shift, a) {
                    return self.add_pair_cold(counter, mask, shift, a, b);
                }
                let second = counter.add(1);
                if !self.try_add(second, mask, shift, b) {
                    self.add_cold(second, mask, shift, b);
                }
            }
        }

        /// Adds `n` to the word at `counter` in the block of the current
        /// CPU, where blocks are `1 << shift` bytes apart (shards, or the
        /// labeled series' value blocks), committing with one non-locked
        /// `add`.
        ///
        /// # Safety
        ///
        /// * `counter` points to an 8-byte-aligned word in block 0 of a live
        ///   region of `mask + 1` blocks, and `counter + (i << shift)` is
        ///   inside it for every `i <= mask`.
        /// * Every writer of those words uses these rseq sections, and
        ///   `mask + 1` covers every possible CPU id (no two CPUs share a
        ///   block).
        /// * `self` came from [`Area::for_writer`].
        #[inline(always)]
        pub(crate) unsafe fn add_strided(self, counter: *mut u64, mask: usize, shift: u32, n: u64) {
            // SAFETY: forwarded from this function's contract.
            unsafe {
                if !self.try_add(counter, mask, shift, n) {
                    self.add_cold(counter, mask, shift, n);
                }
            }
        }

        /// [`add_strided`](Self::add_strided) for a thread that found itself
        /// unregistered: register it (once per thread), then add. Out of
        /// line, so the hot path keeps no registers alive across a call.
        ///
        /// # Safety
        ///
        /// As for [`add_strided`](Self::add_strided).
        #[cold]
        #[inline(never)]
        unsafe fn add_cold(self, counter: *mut u64, mask: usize, shift: u32, n: u64) {
            loop {
                self.register_or_abort();
                // SAFETY: forwarded from this function's contract.
                if unsafe { self.try_add(counter, mask, shift, n) } {
                    return;
                }
            }
        }

        /// [`add_pair`](Self::add_pair) for a thread that found itself
        /// unregistered before the first add committed. Both adds happen
        /// here, so `add_pair` leaves through this call and keeps nothing
        /// alive across it (no registers to save on the hot path).
        ///
        /// # Safety
        ///
        /// As for [`add_pair`](Self::add_pair).
        #[cold]
        #[inline(never)]
        unsafe fn add_pair_cold(self, counter: *mut u64, mask: usize, shift: u32, a: u64, b: u64) {
            // SAFETY: forwarded from this function's contract.
            unsafe {
                self.add_cold(counter, mask, shift, a);
                self.add_strided(counter.add(1), mask, shift, b);
            }
        }

        /// One section: adds `n` to `counter + ((cpu_id & mask) << shift)`
        /// and returns true, or returns false without touching memory if
        /// the thread is not registered (negative `cpu_id`).
        ///
        /// # Safety
        ///
        /// As for [`add_strided`](Self::add_strided).
        #[inline(always)]
        unsafe fn try_add(self, counter: *mut u64, mask: usize, shift: u32, n: u64) -> bool {
            let cpu: usize;
            // SAFETY: see the module docs for why the section is atomic
            // with respect to every other writer; memory safety: the
            // address is `counter + ((cpu_id & mask) << shift)`, a word
            // inside the region by the caller's contract, 8-byte
            // aligned. `fs:[offset + 4]` and `fs:[offset + 8]` are
            // `cpu_id` and `rseq_cs` of this thread's area (glibc's TLS,
            // live as long as the thread). The descriptor and the abort
            // handler follow the kernel's ABI: `struct rseq_cs` version
            // 0, flags 0, 32-byte aligned; the signature in the 4 bytes
            // before `abort_ip`; `abort_ip` outside the section. No
            // stack is used, inputs are never written.
            //
            // The shard stride is an immediate (which leaves `rcx` free);
            // series blocks shift by `cl`.
            if shift == SHARD_SHIFT {
                // SAFETY: as above.
                unsafe {
                    rseq_add_section!(
                        shift: "shl {cpu}, {shift}", stall: [], on_abort: [],
                        area = in(reg) self.offset,
                        counter = in(reg) counter,
                        mask = in(reg) mask,
                        n = in(reg) n,
                        cpu = out(reg) cpu,
                        shift = const SHARD_SHIFT,
                        sig = const RSEQ_SIG,
                        options(nostack),
                    );
                }
            } else {
                // SAFETY: as above.
                unsafe {
                    rseq_add_section!(
                        shift: "shl {cpu}, cl", stall: [], on_abort: [],
                        area = in(reg) self.offset,
                        counter = in(reg) counter,
                        mask = in(reg) mask,
                        n = in(reg) n,
                        in("ecx") shift,
                        cpu = out(reg) cpu,
                        sig = const RSEQ_SIG,
                        options(nostack),
                    );
                }
            }
            // `cpu` is the sign-extended `cpu_id` if the section left early
            // (negative: the thread is not registered), else the block
            // offset `(cpu_id & mask) << shift` (< 2^63).
            (cpu as isize) >= 0
        }

        /// [`add_strided`](Self::add_strided) at the shard stride, with a
        /// busy loop of `spins` iterations
        /// between choosing the shard and the commit, and a count of the
        /// aborts taken. Test support: the window is wide enough for
        /// preemption, migration and signals to land in it, and a section
        /// that did not abort would add to the shard of a CPU it may no
        /// longer run on.
        ///
        /// # Safety
        ///
        /// As for [`add_strided`](Self::add_strided) with `SHARD_SHIFT`.
        #[cfg(any(test, feature = "testing"))]
        pub(crate) unsafe fn add_stalled(
            self,
            counter: *mut u64,
            mask: usize,
            n: u64,
            spins: u64,
        ) -> u64 {
            let mut aborts = 0u64;
            loop {
                let cpu: usize;
                // SAFETY: as in `try_add` with the shard stride; the spin
                // loop only uses the `i` register and flags.
                unsafe {
                    rseq_add_section!(
                        shift: "shl {cpu}, {shift}",
                        stall: ["mov {i}, {spins}", "7:", "dec {i}", "jnz 7b"],
                        on_abort: ["inc {aborts}"],
                        area = in(reg) self.offset,
                        counter = in(reg) counter,
                        mask = in(reg) mask,
                        n = in(reg) n,
                        spins = in(reg) spins.max(1),
                        i = out(reg) _,
                        cpu = out(reg) cpu,
                        aborts = inout(reg) aborts,
                        shift = const SHARD_SHIFT,
                        sig = const RSEQ_SIG,
                        options(nostack),
                    );
                }
                if (cpu as isize) >= 0 {
                    return aborts;
                }
                self.register_or_abort();
            }
        }

        /// The current CPU's shard index, or `None` if the thread is not
        /// registered. Test support (the control that adds without rseq).
        #[cfg(any(test, feature = "testing"))]
        pub(crate) fn current_cpu(self) -> Option<usize> {
            let c = self.cpu_id();
            (c >= 0).then_some(c as usize)
        }
    }
}
