//! Calling the collection natives the way the node does: ETF arguments through the C ABI
//! entry points, the reply decoded back into a term.
#![allow(dead_code)]

use rustelixir_collections::COLLECTIONS;
use rustelixir_nif::etf::{self, Term};
use rustelixir_nif::resource::{Limits, ResourceTable};
use rustelixir_nif::{call_entry, NativeEntry};

/// The resource table the natives are called on here (a node's, as the server owns one).
pub fn table() -> &'static ResourceTable {
    static TABLE: std::sync::OnceLock<ResourceTable> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| ResourceTable::new("test@127.0.0.1", 1, Limits::default()))
}

pub fn setup() {
    table();
}

pub fn enc(t: &Term) -> Vec<u8> {
    let mut out = Vec::new();
    etf::encode::encode_into(t, &mut out).unwrap();
    out
}

pub fn entry(name: &str, arity: usize) -> &'static NativeEntry {
    COLLECTIONS
        .entries()
        .iter()
        .find(|e| e.name() == name && e.arity as usize == arity)
        .unwrap_or_else(|| panic!("no native {name}/{arity}"))
}

pub fn call(name: &str, args: &[Term]) -> Term {
    let encoded: Vec<Vec<u8>> = args.iter().map(enc).collect();
    let slices: Vec<&[u8]> = encoded.iter().map(|v| v.as_slice()).collect();
    let (reply, _) = table().with_host(&rustelixir_nif::CallInfo::default(), |host| call_entry(entry(name, args.len()), &slices, None, host));
    etf::decode::decode_at_with(
        &reply,
        0,
        &mut etf::decode::TermBuilder,
        &etf::Limits::default(),
    )
    .unwrap()
    .0
}

/// The value of an `{ok, V}` reply (panics on anything else).
pub fn ok_value(reply: Term) -> Term {
    match &reply {
        Term::Tuple(items) if items.len() == 2 && items[0] == Term::atom("ok") => items[1].clone(),
        _ => panic!("expected {{ok, _}}, got {reply:?}"),
    }
}

pub fn ok(v: Term) -> Term {
    Term::Tuple(vec![Term::atom("ok"), v])
}

pub fn error(v: Term) -> Term {
    Term::Tuple(vec![Term::atom("error"), v])
}

pub fn badarg(index: i64, message: &str) -> Term {
    error(Term::Tuple(vec![
        Term::atom("badarg"),
        Term::Int(index),
        Term::Binary(message.into()),
    ]))
}

pub fn int(v: i64) -> Term {
    Term::Int(v)
}

pub fn bin(s: &str) -> Term {
    Term::Binary(s.as_bytes().to_vec())
}

pub fn list(items: Vec<Term>) -> Term {
    Term::List(items)
}

pub fn tuple(items: Vec<Term>) -> Term {
    Term::Tuple(items)
}

pub fn new_set() -> Term {
    ok_value(call("sorted_set_new", &[]))
}

pub fn new_buffer(size: i64) -> Term {
    ok_value(call("buffer_new", &[int(size)]))
}
