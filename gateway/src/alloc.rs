//! The gateway's allocator: the system's, except that a huge allocation reserves address space
//! instead of memory.
//!
//! The `kafka-protocol` decoders reserve a vector from an array length read off the wire before
//! reading its elements (`Vec::with_capacity(n)`): a 20-byte frame declaring 2^31 elements of
//! a 200-byte struct asks for 400 GB. The system allocator refuses that, and Rust aborts the
//! process on a refused allocation: one hostile frame would end every client's connection.
//! Here an allocation of [`HUGE`] bytes or more is an anonymous `mmap` with `MAP_NORESERVE`:
//! the kernel reserves no memory for it (Linux does not count such mappings against its
//! overcommit heuristic), pages cost memory only when touched, and the decoder, which fills
//! the vector only as far as the frame's bytes go, fails on the missing bytes and frees it.
//! A length whose byte size passes `isize::MAX` panics instead ("capacity overflow"), which
//! [`crate::server`] catches around every decode.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations of this many bytes or more are mapped, not allocated.
pub const HUGE: usize = 1 << 30;

/// The allocator (installed by the `kafdo-gateway` binary with `#[global_allocator]`).
pub struct Allocator;

fn mapped(layout: Layout) -> bool {
    layout.size() >= HUGE && layout.align() <= 4096
}

unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping of `size` bytes, no file, no fixed address.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        ptr.cast()
    }
}

// SAFETY: every block is either the system allocator's (below `HUGE` or over-aligned) or a
// mapping of exactly `layout.size()` bytes, and the same test on the same layout tells which
// when it is freed or resized.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if mapped(layout) {
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if mapped(layout) {
            // Anonymous mappings are zero-filled.
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if mapped(layout) {
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !mapped(layout) && !mapped(new_layout) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}
