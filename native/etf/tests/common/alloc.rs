//! A tracking global allocator, for every test binary that includes `common`: per thread,
//! the largest single allocation (as asked for) and the peak of live bytes as glibc's malloc
//! takes them (each block with its 8-byte header, rounded up to 16, at least 32), so
//! "nothing huge is allocated" and "within the budget" are measured, not assumed. A
//! `realloc` counts as a free then an allocation (see `decode::cost`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// What malloc takes for `size` bytes.
fn block(size: usize) -> isize {
    ((size + 8 + 15) & !15).max(32) as isize
}

fn on_alloc(size: usize) {
    let _ = LARGEST.try_with(|c| c.set(c.get().max(size)));
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + block(size));
        let _ = PEAK.try_with(|p| p.set(p.get().max(live.get())));
    });
}

fn on_dealloc(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get() - block(size)));
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_dealloc(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        on_dealloc(layout.size());
        on_alloc(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// What `f` allocated on this thread: (result, largest single allocation, peak of live
/// bytes above what was live when it started).
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize, usize) {
    LARGEST.with(|c| c.set(0));
    let base = LIVE.with(|c| c.get());
    PEAK.with(|c| c.set(base));
    let r = f();
    let largest = LARGEST.with(|c| c.get());
    let peak = PEAK.with(|c| c.get()) - base;
    (r, largest, peak.max(0) as usize)
}
