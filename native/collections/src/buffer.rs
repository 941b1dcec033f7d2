//! A fixed-size byte buffer with random access: the storage behind the `buffer_*` natives.

use std::sync::atomic::{AtomicU64, Ordering};

/// The default largest buffer `buffer_new` makes: 1 GiB.
pub const DEFAULT_MAX_BUFFER_SIZE: u64 = 1 << 30;

static MAX_BUFFER_SIZE: AtomicU64 = AtomicU64::new(DEFAULT_MAX_BUFFER_SIZE);

/// Sets the largest size `buffer_new` accepts (bytes); larger requests are a badarg.
pub fn set_max_buffer_size(bytes: u64) {
    MAX_BUFFER_SIZE.store(bytes, Ordering::Relaxed);
}

pub fn max_buffer_size() -> u64 {
    MAX_BUFFER_SIZE.load(Ordering::Relaxed)
}

/// `size` zero bytes, or None when the allocator cannot give them (a failed allocation
/// must be an error for the caller, not an abort of the node).
pub fn zeroed(size: usize) -> Option<Vec<u8>> {
    if size == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<u8>(size).ok()?;
    // SAFETY: the layout has a non-zero size; a non-null result is `size` zeroed bytes
    // allocated by the global allocator with the layout of a `Vec<u8>` of capacity `size`,
    // which is what `from_raw_parts` requires. (alloc_zeroed lets the allocator hand out
    // fresh zero pages instead of writing every byte.)
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout);
        if ptr.is_null() {
            None
        } else {
            Some(Vec::from_raw_parts(ptr, size, size))
        }
    }
}

/// The range `offset..offset+length` of a buffer of `size` bytes, checked.
pub fn range(
    offset: i64,
    length: i64,
    size: usize,
    what: &str,
) -> Result<std::ops::Range<usize>, (usize, String)> {
    if offset < 0 {
        return Err((2, format!("offset must not be negative, got {offset}")));
    }
    if length < 0 {
        return Err((3, format!("length must not be negative, got {length}")));
    }
    let (offset, length) = (offset as u64, length as u64);
    if offset > size as u64 {
        return Err((
            2,
            format!("offset {offset} out of range for a buffer of {size} bytes"),
        ));
    }
    if offset + length > size as u64 {
        return Err((
            3,
            format!("{what} {length} bytes at offset {offset} runs past the end of a buffer of {size} bytes"),
        ));
    }
    Ok(offset as usize..(offset + length) as usize)
}
