//! The natives a server serves, Rust and Python alike, in one table by (name, arity): the
//! C ABI tables of `rustelixir_nif` (the node's built-ins, crates loaded with `--module`)
//! and the Python natives, which the server hands to Python as jobs by their index.

use std::collections::HashMap;

use rustelixir_nif::{NativeEntry, NativeTable};

use crate::contract::RESERVED;

#[derive(Clone, Copy)]
pub enum Native {
    /// Runs on the connection's thread, straight from the call's bytes.
    Quick(&'static NativeEntry),
    /// Runs on the server's worker pool, from the call's bytes.
    Slow(&'static NativeEntry),
    /// Runs in Python, on its event loop (handed over as a job): the index Python gave it
    /// when it registered it.
    Python(u32),
    /// Runs in Python on the server's worker pool (with the GIL): a slow Python native.
    PythonSlow(u32),
}

#[derive(Default)]
pub struct Registry {
    // arity -> name -> native, so a lookup borrows the name from the call's bytes.
    by_arity: HashMap<u32, HashMap<Box<[u8]>, Native>>,
}

impl Registry {
    fn check(&self, name: &str, arity: u32) -> Result<(), String> {
        if RESERVED.contains(&name) {
            return Err(format!("native {name}/{arity}: the name is reserved by the call contract"));
        }
        if self.find(name.as_bytes(), arity as usize).is_some() {
            return Err(format!("native {name}/{arity} is defined twice"));
        }
        Ok(())
    }

    fn insert(&mut self, name: &str, arity: u32, native: Native) {
        self.by_arity.entry(arity).or_default().insert(name.as_bytes().into(), native);
    }

    /// Adds every native of `table`; refuses (adding none) a reserved name or one already
    /// served. Returns [(name, arity, slow)].
    pub fn add_table(&mut self, table: &'static NativeTable) -> Result<Vec<(String, u32, bool)>, String> {
        let entries = table.entries();
        for (i, e) in entries.iter().enumerate() {
            self.check(e.name(), e.arity)?;
            if entries[..i].iter().any(|o| o.name() == e.name() && o.arity == e.arity) {
                return Err(format!("native {}/{} is defined twice", e.name(), e.arity));
            }
        }
        for e in entries {
            let native = if e.is_slow() { Native::Slow(e) } else { Native::Quick(e) };
            self.insert(e.name(), e.arity, native);
        }
        Ok(entries.iter().map(|e| (e.name().to_string(), e.arity, e.is_slow())).collect())
    }

    /// Adds a Python native, known to Python by `index`; a `slow` one runs on the pool.
    pub fn add_python(&mut self, name: &str, arity: u32, index: u32, slow: bool) -> Result<(), String> {
        if name.is_empty() || name.chars().count() > 255 {
            return Err(format!("native name {name:?}: an atom has 1 to 255 characters"));
        }
        self.check(name, arity)?;
        self.insert(name, arity, if slow { Native::PythonSlow(index) } else { Native::Python(index) });
        Ok(())
    }

    pub fn find(&self, name: &[u8], arity: usize) -> Option<Native> {
        self.by_arity.get(&u32::try_from(arity).ok()?)?.get(name).copied()
    }

    /// Every (name, arity), sorted.
    pub fn listing(&self) -> Vec<(String, u32)> {
        let mut all: Vec<(String, u32)> = self
            .by_arity
            .iter()
            .flat_map(|(arity, names)| names.keys().map(move |n| (String::from_utf8_lossy(n).into_owned(), *arity)))
            .collect();
        all.sort();
        all
    }
}
