//! The natives this node serves: tables of the C ABI (`rustelixir_nif::NativeTable`), from
//! the node itself (built-ins, test natives) and from crates loaded with `--module`. The
//! fast path looks natives up here without Python.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use rustelixir_nif::{NativeEntry, NativeTable};

/// Names the call contract keeps for itself.
pub const RESERVED: &[&str] = &["functions", "info", "release", "share", "resource_info"];

#[derive(Default)]
struct Registry {
    // arity -> name -> entry, so a lookup borrows the name from the call's bytes.
    by_arity: HashMap<u32, HashMap<Box<[u8]>, &'static NativeEntry>>,
}

fn registry() -> &'static RwLock<Registry> {
    static REGISTRY: OnceLock<RwLock<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Adds every native of `table`; refuses (adding none) a reserved name or one already served.
pub fn register(table: &'static NativeTable) -> Result<Vec<(String, u32, bool)>, String> {
    let mut reg = registry().write().unwrap();
    let entries = table.entries();
    for e in entries {
        if RESERVED.contains(&e.name()) {
            return Err(format!("native {}/{}: the name is reserved by the call contract", e.name(), e.arity));
        }
        let existing = reg.by_arity.get(&e.arity).and_then(|m| m.get(e.name().as_bytes()));
        if existing.is_some_and(|x| !std::ptr::eq(*x, e)) {
            return Err(format!("native {}/{} is defined twice", e.name(), e.arity));
        }
    }
    for e in entries {
        reg.by_arity.entry(e.arity).or_default().insert(e.name().as_bytes().into(), e);
    }
    Ok(entries.iter().map(|e| (e.name().to_string(), e.arity, e.is_slow())).collect())
}

pub fn find(name: &[u8], arity: usize) -> Option<&'static NativeEntry> {
    let reg = registry().read().unwrap();
    reg.by_arity.get(&(arity as u32))?.get(name).copied()
}
