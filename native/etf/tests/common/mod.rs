//! Helpers shared by the integration tests.

/// A NEW_FUN_EXT whose one free variable is `inner` (a term, no version byte).
pub fn fun_around(inner: &[u8]) -> Vec<u8> {
    let mut body = vec![1u8]; // arity
    body.extend_from_slice(&[7; 16]); // uniq
    body.extend_from_slice(&0u32.to_be_bytes()); // index
    body.extend_from_slice(&1u32.to_be_bytes()); // one free variable
    body.extend_from_slice(&[119, 1, b'm', 97, 0, 97, 0]); // module, old index, old uniq
    body.extend_from_slice(&[88, 119, 3, b'a', b'@', b'b', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    body.extend_from_slice(inner);
    let mut fun = vec![112];
    fun.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    fun.extend_from_slice(&body);
    fun
}

// Not every test binary measures allocations, or generates terms.
#[allow(dead_code)]
pub mod alloc;
#[allow(dead_code)]
pub mod terms;
