//! An owned memory mapping, unmapped on drop.

use crate::error::{Error, Result};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

/// `len` bytes mapped `MAP_SHARED` at `ptr`.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory that is only ever accessed
// through atomics; the pointer is not tied to the creating thread.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` hands out only shared references to atomics.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Anonymous shared memory for an in-process segment, zero-filled.
    pub(crate) fn anonymous(len: usize) -> Result<Self> {
        // SAFETY: a fresh anonymous mapping aliases nothing; the arguments
        // are valid for mmap.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        Self::from_raw(p, len)
    }

    /// Maps `len` bytes of `fd` from offset 0, read-write or read-only.
    pub(crate) fn file(fd: BorrowedFd<'_>, len: usize, writable: bool) -> Result<Self> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: fd is a valid open descriptor for the duration of the call;
        // a new shared mapping aliases no Rust object.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        Self::from_raw(p, len)
    }

    fn from_raw(p: *mut libc::c_void, len: usize) -> Result<Self> {
        if p == libc::MAP_FAILED {
            return Err(Error::last_os("mmap segment"));
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or(Error::BadLayout("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }

    /// Maps `fd` from offset 0, read-write and shared, over this whole
    /// mapping in one `mmap(MAP_FIXED)`: the range shows the new file at
    /// once, with no moment at which it is unmapped, so a concurrent atomic
    /// store lands either in the old memory or the new.
    #[cfg(target_os = "linux")]
    pub(crate) fn remap_file(&self, fd: BorrowedFd<'_>) -> Result<()> {
        // SAFETY: the range is this mapping's own (page-aligned, `len`
        // bytes); the callers' handles only ever access it through atomics,
        // which accept whatever the new file holds.
        let p = unsafe {
            libc::mmap(
                self.ptr.as_ptr().cast(),
                self.len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::last_os("remap segment"));
        }
        Ok(())
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned, and every reference
        // into the mapping borrows the owning Segment, which is being dropped.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
