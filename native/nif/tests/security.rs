//! The resource table against a hostile peer: references it makes (resources and monitors)
//! tell nothing about one another, and a MONITOR_P_EXIT ends a hold only when it comes from
//! the holder the monitor was made for, over that holder's node's connection.

use std::collections::HashSet;

use rustelixir_nif::etf::{self, Atom, Pid, Term};
use rustelixir_nif::resource::{holder_of, Limits, MonitorExit, ResourceTable};
use rustelixir_nif::CallInfo;
use rustelixir_nif::{call_entry, natives, Resource, ResourceArc};

// One type per test, as each counts only its own (each test has a table of its own).
struct Token;
struct Secret;

impl Resource for Token {
    const TYPE_NAME: &'static str = "token";
}

impl Resource for Secret {
    const TYPE_NAME: &'static str = "secret";
}

fn token_new() -> ResourceArc<Token> {
    ResourceArc::new(Token)
}

fn secret_new() -> ResourceArc<Secret> {
    ResourceArc::new(Secret)
}

natives!(NATIVES = [quick token_new, quick secret_new]);

const NODE: &str = "py@127.0.0.1";

fn pid(node: &str, id: u32) -> Pid {
    Pid { node: Atom::new(node), id, serial: 0, creation: 1 }
}

/// `native` (`token_new` or `secret_new`) called by `caller`: the new resource's reference.
fn create(table: &ResourceTable, native: &str, caller: &Pid) -> etf::Reference {
    let entry = NATIVES.entries().iter().find(|e| e.name() == native).unwrap();
    let holder = holder_of(caller);
    let (reply, _) = table.with_host(&CallInfo::from_caller(Some(&holder)), |host| call_entry(entry, &[], None, host));
    let (term, _) = etf::decode::decode_at_with(&reply, 0, &mut etf::decode::TermBuilder, &etf::Limits::default()).unwrap();
    match &term {
        Term::Tuple(items) if items.len() == 2 => match &items[1] {
            Term::Ref(r) => etf::Reference::clone(r),
            other => panic!("not a reference: {other:?}"),
        },
        other => panic!("not {{ok, Ref}}: {other:?}"),
    }
}

fn live_secrets(table: &ResourceTable) -> u64 {
    table.counts().iter().find(|c| c.0 == "secret").map_or(0, |c| c.1)
}

/// Checks that `words` (each reference's three id words, in the order they were made) look
/// like independent draws of 18 + 32 + 32 random bits, not a counter or a constant.
fn assert_random(words: &[[u32; 3]]) {
    let n = words.len();
    assert_eq!(words.iter().collect::<HashSet<_>>().len(), n, "two references are equal");
    assert!(words.iter().all(|w| w[0] < 1 << 18), "the first word holds more than 18 bits");
    // Every one of the 82 bits is set in about half of them (a constant or a counter's
    // high bits are never or always set): 100,000 fair coins stay within 47..53%.
    for (word, bits) in [(0, 18), (1, 32), (2, 32)] {
        for bit in 0..bits {
            let set = words.iter().filter(|w| w[word] >> bit & 1 == 1).count();
            assert!((n * 47 / 100..n * 53 / 100).contains(&set), "word {word} bit {bit} set in {set} of {n}");
        }
    }
    // No reference is a small step from the one made before it, in any word (a random
    // 18-bit word is within +-16 of the last about once in 8,000).
    for (word, limit) in [(0, n / 1000 + 5), (1, 2), (2, 2)] {
        let near = words.windows(2).filter(|p| p[1][word].wrapping_sub(p[0][word]).wrapping_add(16) <= 32).count();
        assert!(near <= limit, "word {word}: {near} references within 16 of the one before");
    }
}

fn ids(reference: &etf::Reference) -> [u32; 3] {
    reference.ids.as_slice().try_into().expect("three id words")
}

#[test]
fn references_of_resources_and_monitors_are_random() {
    let table = ResourceTable::new(NODE, 5, Limits::default());
    let creator = pid("app@127.0.0.1", 1);
    let made: Vec<etf::Reference> = (0..100_000).map(|_| create(&table, "token_new", &creator)).collect();
    assert!(made.iter().all(|r| r.node.0 == NODE && r.creation == 5));
    let resource_words: Vec<[u32; 3]> = made.iter().map(ids).collect();
    assert_random(&resource_words);

    // Monitor references, one per holder, from the same source: random too, and none of
    // them is a resource's reference.
    let monitor_words: Vec<[u32; 3]> = (0..20_000)
        .map(|i| {
            let holder = pid("many@127.0.0.1", i);
            create(&table, "token_new", &holder);
            ids(&table.take_monitor_for(&holder_of(&holder)).expect("a monitor"))
        })
        .collect();
    let resource_set: HashSet<_> = resource_words.iter().collect();
    assert!(monitor_words.iter().all(|w| !resource_set.contains(w)));
    assert_eq!(monitor_words.iter().collect::<HashSet<_>>().len(), 20_000);
    for bit in 0..32 {
        let set = monitor_words.iter().filter(|w| w[2] >> bit & 1 == 1).count();
        assert!((9_000..11_000).contains(&set), "monitor word 2 bit {bit} set in {set} of 20000");
    }

    for r in &made {
        assert!(table.release(r, &holder_of(&creator)));
    }
    table.node_down("many@127.0.0.1");
}

#[test]
fn a_monitor_exit_counts_only_from_its_holder_on_its_node() {
    let table = ResourceTable::new(NODE, 5, Limits::default());
    let a = pid("alpha@127.0.0.1", 1);
    let b = pid("alpha@127.0.0.1", 2);
    let c = pid("gamma@127.0.0.1", 1);
    let ref_a = create(&table, "secret_new", &a);
    let ref_b = create(&table, "secret_new", &b);
    let ref_c = create(&table, "secret_new", &c);
    let monitor_a = table.take_monitor_for(&holder_of(&a)).unwrap();
    let monitor_c = table.take_monitor_for(&holder_of(&c)).unwrap();
    let alpha: &[u8] = b"alpha@127.0.0.1";
    let gamma: &[u8] = b"gamma@127.0.0.1";
    let forged_before = table.forged_exits();

    // A's monitor, said to be B's exit (B's own node), A's exit sent over gamma's
    // connection, or C's exit over alpha's; a pid that is no pid; a reference of another
    // node; a reference next to A's monitor: nothing is freed.
    assert_eq!(table.monitor_down(&monitor_a, &holder_of(&b), alpha), MonitorExit::Forged);
    assert_eq!(table.monitor_down(&monitor_a, &holder_of(&a), gamma), MonitorExit::Forged);
    assert_eq!(table.monitor_down(&monitor_c, &holder_of(&c), alpha), MonitorExit::Forged);
    assert_eq!(table.monitor_down(&monitor_c, &holder_of(&a), alpha), MonitorExit::Forged);
    assert_eq!(table.monitor_down(&monitor_a, b"\x64\x00\x01x", alpha), MonitorExit::Forged);
    assert_eq!(table.monitor_down(&monitor_a, b"", alpha), MonitorExit::Forged);
    let elsewhere = etf::Reference { node: Atom::new("other@127.0.0.1"), ..monitor_a.clone() };
    assert_eq!(table.monitor_down(&elsewhere, &holder_of(&a), alpha), MonitorExit::Unknown);
    let mut next_to_it = monitor_a.clone();
    next_to_it.ids[0] ^= 1;
    assert_eq!(table.monitor_down(&next_to_it, &holder_of(&a), alpha), MonitorExit::Unknown);
    // B has no monitor yet: its resource's reference is not one.
    assert_eq!(table.monitor_down(&ref_b, &holder_of(&b), alpha), MonitorExit::Unknown);
    assert_eq!(table.forged_exits(), forged_before + 6);
    for (r, holder) in [(&ref_a, &a), (&ref_b, &b), (&ref_c, &c)] {
        let (_, holders, _) = table.info(r).expect("still live");
        assert_eq!(holders, vec![holder_of(holder)]);
    }
    assert_eq!(live_secrets(&table), 3);

    // The holder's own exit, over its node's connection, ends its hold: its resource goes.
    assert_eq!(table.monitor_down(&monitor_a, &holder_of(&a), alpha), MonitorExit::Down);
    assert!(table.info(&ref_a).is_none());
    assert_eq!(table.monitor_down(&monitor_a, &holder_of(&a), alpha), MonitorExit::Unknown);
    assert_eq!(table.monitor_down(&monitor_c, &holder_of(&c), gamma), MonitorExit::Down);
    assert!(table.info(&ref_c).is_none());
    assert!(table.info(&ref_b).is_some());
    assert!(table.release(&ref_b, &holder_of(&b)));
    assert_eq!(live_secrets(&table), 0);
    table.node_down("alpha@127.0.0.1");
}
