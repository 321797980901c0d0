//! Counts the bytes the current thread has allocated, so a test can bound what a parser holds.
//!
//! The unit-test binary's global allocator is the system allocator wrapped with a per-thread
//! meter. The meter is off unless a test turns it on around a call with [`peak_bytes`], and it is
//! per thread because tests run in parallel. This is the only unsafe code in the crate: the four
//! `GlobalAlloc` methods forward their arguments unchanged to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Metered;

#[global_allocator]
static GLOBAL: Metered = Metered;

/// Per-thread counters. `const` initialised and without `Drop`, so touching them never allocates.
struct Meter {
    on: Cell<bool>,
    /// Bytes allocated minus bytes freed since the meter was turned on (negative when older
    /// memory was freed).
    live: Cell<isize>,
    /// The highest `live` seen.
    peak: Cell<isize>,
}

thread_local! {
    static METER: Meter = const {
        Meter {
            on: Cell::new(false),
            live: Cell::new(0),
            peak: Cell::new(0),
        }
    };
}

fn record(grown: usize, shrunk: usize) {
    let _ = METER.try_with(|m| {
        if m.on.get() {
            let delta = (grown as isize).wrapping_sub(shrunk as isize);
            let live = m.live.get().saturating_add(delta);
            m.live.set(live);
            m.peak.set(m.peak.get().max(live));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments, so `System`'s guarantees
// hold; the bookkeeping neither allocates nor touches the memory.
unsafe impl GlobalAlloc for Metered {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, which is `System.alloc`'s.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            record(layout.size(), 0);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            record(layout.size(), 0);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        record(0, layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds the rest.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            record(new_size, layout.size());
        }
        new
    }
}

/// Runs `f` with the meter on and returns its result and the most bytes it held at once
/// (allocations made by `f` on this thread and not yet freed, at their peak).
pub(crate) fn peak_bytes<T>(f: impl FnOnce() -> T) -> (T, usize) {
    METER.with(|m| {
        m.live.set(0);
        m.peak.set(0);
        m.on.set(true);
    });
    let result = f();
    let peak = METER.with(|m| {
        m.on.set(false);
        m.peak.get()
    });
    (result, peak.unsigned_abs())
}

mod tests {
    use super::peak_bytes;

    #[test]
    fn sees_what_a_call_holds_at_its_peak() {
        let (len, peak) = peak_bytes(|| {
            let big = vec![1u8; 1 << 20];
            let small = vec![2u8; 1024];
            drop(big);
            small.len()
        });
        assert_eq!(len, 1024);
        assert!((1 << 20..(1 << 20) + 4096).contains(&peak), "{peak}");
        // Off outside `peak_bytes`: nothing is counted for the next call.
        let ((), peak) = peak_bytes(|| {});
        assert_eq!(peak, 0);
    }
}
