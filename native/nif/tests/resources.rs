//! The resource table's holders, end to end through natives: who holds what, monitors,
//! exits, disconnects, release and share, and that nothing stays behind (a leak check).

use std::sync::atomic::{AtomicU64, Ordering};

use rustelixir_nif::etf::{self, Atom, Pid, Term};
use rustelixir_nif::resource::{self, holder_of, MonitorExit};
use rustelixir_nif::{call_entry, natives, Resource, ResourceArc};

static DROPPED: AtomicU64 = AtomicU64::new(0);

struct Probe;

impl Resource for Probe {
    const TYPE_NAME: &'static str = "probe";
}

impl Drop for Probe {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

fn probe_new() -> ResourceArc<Probe> {
    ResourceArc::new(Probe)
}

fn probe_use(_p: ResourceArc<Probe>) -> bool {
    true
}

natives!(NATIVES = [quick probe_new, quick probe_use]);

fn pid(node: &str, id: u32) -> Pid {
    Pid { node: Atom::new(node), id, serial: 0, creation: 1 }
}

fn call(name: &str, args: &[Term], caller: &Pid) -> Term {
    let entry = NATIVES.entries().iter().find(|e| e.name() == name).unwrap();
    let encoded: Vec<Vec<u8>> = args
        .iter()
        .map(|t| {
            let mut v = Vec::new();
            etf::encode::encode_into(t, &mut v).unwrap();
            v
        })
        .collect();
    let slices: Vec<&[u8]> = encoded.iter().map(|v| v.as_slice()).collect();
    let holder = holder_of(caller);
    let (reply, _) = resource::with_caller(Some(&holder), || call_entry(entry, &slices, None));
    etf::decode::decode_at_with(&reply, 0, &mut etf::decode::TermBuilder, &etf::Limits::default()).unwrap().0
}

fn ok_value(t: Term) -> Term {
    match &t {
        Term::Tuple(items) if items.len() == 2 && items[0] == Term::atom("ok") => items[1].clone(),
        other => panic!("not ok: {other:?}"),
    }
}

fn reference(t: &Term) -> etf::Reference {
    match t {
        Term::Ref(r) => etf::Reference::clone(r),
        other => panic!("not a reference: {other:?}"),
    }
}

fn live_probes() -> u64 {
    resource::counts().iter().find(|c| c.0 == "probe").map_or(0, |c| c.1)
}

// One test: the table is global to the process.
#[test]
fn holders_monitors_exits_and_no_leaks() {
    resource::set_identity("py@127.0.0.1", 3);
    let a = pid("app@127.0.0.1", 1);
    let b = pid("app@127.0.0.1", 2);
    let c = pid("other@127.0.0.1", 3);

    // A creates, B uses: both hold it; each needs one monitor, the second ask gives none.
    let r = ok_value(call("probe_new", &[], &a));
    assert_eq!(ok_value(call("probe_use", &[r.clone()], &b)), Term::atom("true"));
    let (_, holders, _) = resource::info(&reference(&r)).unwrap();
    assert_eq!(holders, { let mut h = vec![holder_of(&a), holder_of(&b)]; h.sort(); h });
    let monitor_a = resource::take_monitor_for(&holder_of(&a)).expect("a monitor for A");
    let monitor_b = resource::take_monitor_for(&holder_of(&b)).expect("a monitor for B");
    assert!(resource::take_monitor_for(&holder_of(&a)).is_none());

    // A exits: alive; B exits: freed, destructor run, holders forgotten.
    let app = b"app@127.0.0.1";
    assert_eq!(resource::monitor_down(&monitor_a, &holder_of(&a), app), MonitorExit::Down);
    assert_eq!(live_probes(), 1);
    assert_eq!(resource::monitor_down(&monitor_b, &holder_of(&b), app), MonitorExit::Down);
    assert_eq!(live_probes(), 0);
    assert_eq!(DROPPED.load(Ordering::SeqCst), 1);
    assert_eq!(resource::monitor_down(&monitor_b, &holder_of(&b), app), MonitorExit::Unknown); // not ours any more
    assert_eq!(resource::holder_count(), 0);
    let gone = call("probe_use", &[r.clone()], &b);
    assert_eq!(gone, Term::Tuple(vec![Term::atom("error"), Term::Tuple(vec![Term::atom("badresource"), r.clone()])]));

    // Shared with a process on another node, released by its creator, freed when that node
    // disconnects.
    let r2 = ok_value(call("probe_new", &[], &a));
    assert!(resource::share(&reference(&r2), &holder_of(&c)).is_ok());
    assert!(resource::release(&reference(&r2), &holder_of(&a)));
    assert!(!resource::release(&reference(&r2), &holder_of(&a))); // A holds it no more
    assert_eq!(live_probes(), 1);
    resource::node_down("other@127.0.0.1");
    assert_eq!(live_probes(), 0);
    assert_eq!(DROPPED.load(Ordering::SeqCst), 2);

    // Many creations by many callers, all released: nothing stays.
    for i in 0..1000 {
        let p = pid("app@127.0.0.1", 100 + i % 50);
        let r = ok_value(call("probe_new", &[], &p));
        assert!(resource::release(&reference(&r), &holder_of(&p)));
    }
    for i in 0..50 {
        let _ = resource::take_monitor_for(&holder_of(&pid("app@127.0.0.1", 100 + i)));
    }
    resource::node_down("app@127.0.0.1");
    assert_eq!(live_probes(), 0);
    assert_eq!(DROPPED.load(Ordering::SeqCst), 1002);
    assert_eq!(resource::holder_count(), 0);

    // Limits: past max_live, :overloaded.
    resource::set_limits(1, 10);
    let first = ok_value(call("probe_new", &[], &a));
    assert_eq!(
        call("probe_new", &[], &a),
        Term::Tuple(vec![
            Term::atom("error"),
            Term::Tuple(vec![Term::atom("panic"), Term::Binary(b"the resource table is full (max live resources reached)".to_vec())])
        ])
    );
    assert!(resource::release(&reference(&first), &holder_of(&a)));
    resource::set_limits(1_000_000, 10_000);
}
