//! The natives a server serves, Rust and Python alike, in one table by (name, arity): the
//! C ABI tables of `rustelixir_nif` (the node's built-ins, crates loaded with `--module`)
//! and the Python natives, which the server hands to Python as jobs by their index.

use std::collections::HashMap;

use rustelixir_nif::{NativeEntry, NativeTable};

use crate::contract::RESERVED;
use crate::stats::NativeStats;

#[derive(Clone, Copy)]
pub enum Native {
    /// Runs on the connection's thread, straight from the call's bytes.
    Quick(&'static NativeEntry),
    /// Runs on the server's worker pool, from the call's bytes.
    Slow(&'static NativeEntry),
    /// An `async fn`: started on the connection's thread, its task polled by the server's
    /// runtime.
    Async(&'static NativeEntry),
    /// Runs in Python, on its event loop (handed over as a job): the index Python gave it
    /// when it registered it.
    Python(u32),
    /// Runs in Python on the server's worker pool (with the GIL): a slow Python native.
    PythonSlow(u32),
}

impl Native {
    /// A Rust native, as its entry says it runs.
    pub fn of(entry: &'static NativeEntry) -> Native {
        match (entry.is_async(), entry.is_slow()) {
            (true, _) => Native::Async(entry),
            (_, true) => Native::Slow(entry),
            _ => Native::Quick(entry),
        }
    }
}

#[derive(Default)]
pub struct Registry {
    // arity -> name -> native (and its statistics), so a lookup borrows the name from the
    // call's bytes.
    by_arity: HashMap<u32, HashMap<Box<[u8]>, (Native, &'static NativeStats)>>,
    /// Each name/arity ever served, its statistics: kept across reloads (the native's
    /// record goes on), and never freed (a node serves a bounded set of names).
    stats: HashMap<(String, u32), &'static NativeStats>,
    /// The natives each served module gave, by (name, arity): what a reload replaces.
    modules: HashMap<String, Vec<(String, u32)>>,
}

/// A Python native of a module: (name, arity, the index Python knows it by, slow).
pub type PythonNative = (String, u32, u32, bool);

impl Registry {
    /// Whether `name/arity` may be served, a native of `replaced` not counting as taken.
    fn check(&self, name: &str, arity: u32, replaced: &[(String, u32)]) -> Result<(), String> {
        if name.is_empty() || name.chars().count() > 255 {
            return Err(format!("native name {name:?}: an atom has 1 to 255 characters"));
        }
        if RESERVED.contains(&name) {
            return Err(format!("native {name}/{arity}: the name is reserved by the call contract"));
        }
        let mine = replaced.iter().any(|(n, a)| n == name && *a == arity);
        if !mine && self.find(name.as_bytes(), arity as usize).is_some() {
            return Err(format!("native {name}/{arity} is defined twice"));
        }
        Ok(())
    }

    /// Serves `module`'s natives (the tables of its Rust crate, its Python natives) in place
    /// of what it served before, if anything, all at once: on an error (a reserved name, a
    /// native another module serves, one defined twice) nothing changes. Returns [(name,
    /// arity, slow)].
    pub fn set_module(
        &mut self,
        module: &str,
        tables: &[&'static NativeTable],
        python: &[PythonNative],
    ) -> Result<Vec<(String, u32, bool)>, String> {
        let mut natives: Vec<(String, u32, Native)> = Vec::new();
        for table in tables {
            for e in table.entries() {
                natives.push((e.name().to_string(), e.arity, Native::of(e)));
            }
        }
        for (name, arity, index, slow) in python {
            natives.push((name.clone(), *arity, if *slow { Native::PythonSlow(*index) } else { Native::Python(*index) }));
        }
        let replaced = self.modules.get(module).cloned().unwrap_or_default();
        for (i, (name, arity, _)) in natives.iter().enumerate() {
            self.check(name, *arity, &replaced)?;
            if natives[..i].iter().any(|(n, a, _)| n == name && a == arity) {
                return Err(format!("native {name}/{arity} is defined twice"));
            }
        }
        for (name, arity) in &replaced {
            if let Some(names) = self.by_arity.get_mut(arity) {
                names.remove(name.as_bytes());
            }
        }
        for (name, arity, native) in &natives {
            self.insert(name, *arity, *native);
        }
        self.modules.insert(module.to_string(), natives.iter().map(|(n, a, _)| (n.clone(), *a)).collect());
        Ok(natives
            .iter()
            .map(|(n, a, native)| (n.clone(), *a, matches!(native, Native::Slow(_) | Native::PythonSlow(_))))
            .collect())
    }

    fn insert(&mut self, name: &str, arity: u32, native: Native) {
        let stats = *self.stats.entry((name.to_string(), arity)).or_insert_with(|| Box::leak(Box::default()));
        self.by_arity.entry(arity).or_default().insert(name.as_bytes().into(), (native, stats));
    }

    /// Adds every native of `table`, as a module of its own that is never replaced; refuses
    /// (adding none) a reserved name or one already served. Returns [(name, arity, slow)].
    pub fn add_table(&mut self, table: &'static NativeTable) -> Result<Vec<(String, u32, bool)>, String> {
        // A name no Python module has, and a new one each time (a table added again is
        // refused, its natives being served already).
        let key = format!("\0table #{}", self.modules.len());
        self.set_module(&key, &[table], &[])
    }

    /// Whether the served module `module` (as named when served) has a native `name/arity`.
    pub fn serves(&self, module: &[u8], name: &[u8], arity: usize) -> bool {
        let Ok(module) = std::str::from_utf8(module) else { return false };
        self.modules.get(module).is_some_and(|natives| natives.iter().any(|(n, a)| n.as_bytes() == name && *a as usize == arity))
    }

    pub fn find(&self, name: &[u8], arity: usize) -> Option<Native> {
        self.find_counted(name, arity).map(|(native, _)| native)
    }

    /// `find`, with the statistics its calls are counted in.
    pub fn find_counted(&self, name: &[u8], arity: usize) -> Option<(Native, &'static NativeStats)> {
        self.by_arity.get(&u32::try_from(arity).ok()?)?.get(name).copied()
    }

    /// The statistics of every native served now, sorted by name and arity.
    pub fn stats(&self) -> Vec<(String, u32, &'static NativeStats)> {
        self.listing().into_iter().filter_map(|(n, a)| Some((n.clone(), a, *self.stats.get(&(n, a))?))).collect()
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
