//! The registration macro and the conversions, end to end through the C ABI entry points.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use rustelixir_nif::etf::{self, Term};
use rustelixir_nif::resource::{Limits, ResourceTable};
use rustelixir_nif::CallInfo;
use rustelixir_nif::{call_entry, native, natives, Atom, NativeTable};

fn add(a: i64, b: i64) -> i64 {
    a + b
}

fn divide(a: f64, b: f64) -> Result<f64, String> {
    if b == 0.0 {
        Err("division by zero".into())
    } else {
        Ok(a / b)
    }
}

fn reverse(data: Vec<u8>) -> Vec<u8> {
    data.into_iter().rev().collect()
}

fn lengths(words: Vec<String>) -> HashMap<String, usize> {
    words.into_iter().map(|w| (w.clone(), w.len())).collect()
}

fn maybe(x: Option<i32>) -> (bool, Option<i32>) {
    (x.is_some(), x)
}

fn boom() -> i64 {
    panic!("it broke")
}

fn tag(name: Atom, value: Term) -> (Atom, Term) {
    (name, value)
}

fn long_work() -> bool {
    rustelixir_nif::cancelled()
}

fn nothing() {}

natives!(NATIVES = [quick add, quick divide, quick reverse, quick lengths, quick maybe, quick boom, quick tag, slow long_work, quick nothing]);

fn enc(t: &Term) -> Vec<u8> {
    let mut out = Vec::new();
    etf::encode::encode_into(t, &mut out).unwrap();
    out
}

fn call(name: &str, args: &[Term]) -> Term {
    call_with(name, args, None)
}

fn call_with(name: &str, args: &[Term], cancelled: Option<&AtomicBool>) -> Term {
    let table: &NativeTable = &NATIVES;
    let entry = table.entries().iter().find(|e| e.name() == name && e.arity as usize == args.len()).expect("native");
    let encoded: Vec<Vec<u8>> = args.iter().map(enc).collect();
    let slices: Vec<&[u8]> = encoded.iter().map(|v| v.as_slice()).collect();
    let resources = ResourceTable::new("test@127.0.0.1", 1, Limits::default());
    let (reply, _) = resources.with_host(&CallInfo::default(), |host| call_entry(entry, &slices, cancelled, host));
    etf::decode::decode_at_with(&reply, 0, &mut etf::decode::TermBuilder, &etf::Limits::default()).unwrap().0
}

fn ok(v: Term) -> Term {
    Term::Tuple(vec![Term::atom("ok"), v])
}

fn error(v: Term) -> Term {
    Term::Tuple(vec![Term::atom("error"), v])
}

fn badarg(index: i64, message: &str) -> Term {
    error(Term::Tuple(vec![Term::atom("badarg"), Term::Int(index), Term::Binary(message.into())]))
}

#[test]
fn table_lists_names_arities_and_kinds() {
    let listed: Vec<(String, u32, bool)> =
        NATIVES.entries().iter().map(|e| (e.name().to_string(), e.arity, e.is_slow())).collect();
    assert_eq!(listed[0], ("add".into(), 2, false));
    assert_eq!(listed[4], ("maybe".into(), 1, false));
    assert_eq!(listed[7], ("long_work".into(), 0, true));
    assert!(unsafe { NativeTable::from_address(&NATIVES as *const NativeTable as usize) }.is_ok());
    assert!(unsafe { NativeTable::from_address(0) }.is_err());
    // A table built for ABI 1 (no host in its frames) is refused with what to do.
    let old = NativeTable { abi_version: 1, ..NativeTable { ..copy_table(&NATIVES) } };
    let refused = unsafe { NativeTable::from_address(&old as *const NativeTable as usize) }.err().expect("refused");
    assert!(refused.contains("ABI 1") && refused.contains("rebuild the crate"), "{refused}");
}

#[test]
fn typed_arguments_and_results() {
    assert_eq!(call("add", &[Term::Int(1), Term::Int(2)]), ok(Term::Int(3)));
    assert_eq!(call("divide", &[Term::Float(1.0), Term::Float(4.0)]), ok(Term::Float(0.25)));
    assert_eq!(call("divide", &[Term::Float(1.0), Term::Float(0.0)]), error(Term::Binary(b"division by zero".to_vec())));
    assert_eq!(call("reverse", &[Term::Binary(vec![1, 2, 3])]), ok(Term::Binary(vec![3, 2, 1])));
    assert_eq!(call("reverse", &[Term::List(vec![Term::Int(1), Term::Int(2)])]), ok(Term::Binary(vec![2, 1])));
    assert_eq!(
        call("lengths", &[Term::List(vec![Term::Binary(b"abc".to_vec())])]),
        ok(Term::Map(vec![(Term::Binary(b"abc".to_vec()), Term::Int(3))]))
    );
    assert_eq!(call("maybe", &[Term::atom("nil")]), ok(Term::Tuple(vec![Term::atom("false"), Term::atom("nil")])));
    assert_eq!(call("maybe", &[Term::Int(7)]), ok(Term::Tuple(vec![Term::atom("true"), Term::Int(7)])));
    assert_eq!(
        call("tag", &[Term::atom("x"), Term::List(vec![Term::Int(1)])]),
        ok(Term::Tuple(vec![Term::atom("x"), Term::List(vec![Term::Int(1)])]))
    );
    assert_eq!(call("nothing", &[]), ok(Term::atom("ok")));
}

#[test]
fn badarg_names_the_argument() {
    assert_eq!(call("add", &[Term::Int(1), Term::atom("two")]), badarg(2, "expected an integer, got an atom"));
    assert_eq!(call("divide", &[Term::atom("one"), Term::Float(2.0)]), badarg(1, "expected a number, got an atom"));
    // An integer where a float is expected is taken, as Rustler takes it.
    assert_eq!(call("divide", &[Term::Int(1), Term::Float(2.0)]), ok(Term::Float(0.5)));
    assert_eq!(
        call("maybe", &[Term::Int(1 << 40)]),
        badarg(1, "integer 1099511627776 out of range for i32 (-2147483648..=2147483647)")
    );
    assert_eq!(call("lengths", &[Term::List(vec![Term::Binary(vec![0xff])])]), badarg(1, "expected a UTF-8 binary"));
}

#[test]
fn a_panic_is_an_error_term() {
    assert_eq!(call("boom", &[]), error(Term::Tuple(vec![Term::atom("panic"), Term::Binary(b"it broke".to_vec())])));
    assert_eq!(call("add", &[Term::Int(2), Term::Int(2)]), ok(Term::Int(4)));
}

#[test]
fn cancellation_flag_reaches_the_native() {
    let flag = AtomicBool::new(false);
    assert_eq!(call_with("long_work", &[], Some(&flag)), ok(Term::atom("false")));
    flag.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(call_with("long_work", &[], Some(&flag)), ok(Term::atom("true")));
    assert_eq!(call_with("long_work", &[], None), ok(Term::atom("false")));
}

fn copy_table(t: &NativeTable) -> NativeTable {
    NativeTable { magic: t.magic, abi_version: t.abi_version, count: t.count, entries: t.entries }
}

/// Adds two integers.
///
/// Overflow is an error.
#[native]
fn described_add(first: i64, _second: i64) -> Result<i64, String> {
    first.checked_add(_second).ok_or_else(|| "overflow".to_string())
}

#[native(slow, name = "described?")]
fn described_flag(items: Vec<Option<u8>>) -> bool {
    !items.is_empty()
}

/// Where its arguments' bytes are: a borrowed binary lies in the call's own bytes.
#[native]
fn borrowed(data: &[u8], text: &str, n: i64) -> (u64, String, i64) {
    (data.as_ptr() as u64, text.to_uppercase(), n + data.len() as i64)
}

natives!(DESCRIBED = [described_add, described_flag, quick add, borrowed]);

#[test]
fn a_binary_argument_is_borrowed_from_the_call_without_a_copy() {
    let entry = DESCRIBED.entries().iter().find(|e| e.name() == "borrowed").unwrap();
    let (data, text) = (enc(&Term::Binary(vec![7; 1000])), enc(&Term::Binary("żółw".as_bytes().to_vec())));
    let table = ResourceTable::new("n@h", 1, Limits::default());
    let run = |args: &[&[u8]]| {
        let reply = table.with_host(&CallInfo::default(), |host| call_entry(entry, args, None, host)).0;
        etf::decode::decode_at_with(&reply, 0, &mut etf::decode::TermBuilder, &etf::Limits::default()).unwrap().0
    };
    let address = data.as_ptr() as i64 + 5; // past the tag and the length
    assert_eq!(
        run(&[&data, &text, &enc(&Term::Int(1))]),
        ok(Term::Tuple(vec![Term::Int(address), Term::Binary("ŻÓŁW".as_bytes().to_vec()), Term::Int(1001)]))
    );
    assert_eq!(run(&[&enc(&Term::Int(1)), &text, &enc(&Term::Int(1))]), badarg(1, "expected a binary, got an integer"));
    assert_eq!(run(&[&data, &enc(&Term::Binary(vec![0xff])), &enc(&Term::Int(1))]), badarg(2, "expected a UTF-8 binary"));
    assert_eq!(run(&[&data, &text, &enc(&Term::atom("x"))]), badarg(3, "expected an integer, got an atom"));
}

#[test]
fn a_native_attribute_records_its_signature_and_docs() {
    let entries = DESCRIBED.entries();
    let summary: Vec<(&str, u32, bool)> = entries.iter().map(|e| (e.name(), e.arity, e.is_slow())).collect();
    assert_eq!(summary, [("described_add", 2, false), ("described?", 1, true), ("add", 2, false), ("borrowed", 3, false)]);
    let add = entries[0].describe().unwrap();
    assert_eq!(add.doc, "Adds two integers.\n\nOverflow is an error.");
    assert_eq!(add.args, [("first".to_string(), "i64".to_string()), ("second".to_string(), "i64".to_string())]);
    assert_eq!(add.returns, "Result<i64,String>");
    let flag = entries[1].describe().unwrap();
    assert_eq!((flag.doc.as_str(), flag.args[0].1.as_str(), flag.returns.as_str()), ("", "Vec<Option<u8>>", "bool"));
    assert!(entries[2].describe().is_none());
    // And they are natives like the others.
    let table = ResourceTable::new("n@h", 1, Limits::default());
    let reply = table.with_host(&CallInfo::default(), |host| call_entry(&entries[0], &[&enc(&Term::Int(2)), &enc(&Term::Int(3))], None, host)).0;
    assert_eq!(etf::decode::decode_at_with(&reply, 0, &mut etf::decode::TermBuilder, &etf::Limits::default()).unwrap().0, ok(Term::Int(5)));
}
