//! The resource table's holders, end to end through natives: who holds what, monitors,
//! exits, disconnects, release and share, and that nothing stays behind (a leak check).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustelixir_nif::etf::{self, Atom, Pid, Reference, Term};
use rustelixir_nif::resource::{holder_of, Limits, MonitorExit, ResourceTable};
use rustelixir_nif::host::{self, Found, RefParts, ResourceType, HOST_OK, HOST_WRONG_TYPE};
use rustelixir_nif::{call_entry, natives, CallInfo, Messenger, Resource, ResourceArc};

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

/// The other test's type (the tests run at once: each counts only its own).
struct Tag;

impl Resource for Tag {
    const TYPE_NAME: &'static str = "tag";
}

fn tag_new() -> ResourceArc<Tag> {
    ResourceArc::new(Tag)
}

fn tag_use(_t: ResourceArc<Tag>) -> bool {
    true
}

/// A type that monitors processes; its `down`s are recorded (the monitors test's own type).
struct Watcher;

static DOWNS: Mutex<Vec<(Pid, Reference)>> = Mutex::new(Vec::new());

impl Resource for Watcher {
    const TYPE_NAME: &'static str = "watcher";
    fn down(&self, pid: Pid, monitor: Reference) {
        DOWNS.lock().unwrap().push((pid, monitor));
    }
}

fn watcher_new() -> ResourceArc<Watcher> {
    ResourceArc::new(Watcher)
}

fn watch(w: ResourceArc<Watcher>, pid: Pid) -> Option<Reference> {
    w.monitor(&pid)
}

natives!(NATIVES = [quick probe_new, quick probe_use, quick tag_new, quick tag_use, quick watcher_new, quick watch]);

/// A node whose monitors always go out: it records them (and the demonitors).
#[derive(Default)]
struct Recorder(Mutex<Vec<Vec<u8>>>, Mutex<Vec<Vec<u8>>>);

impl Messenger for Recorder {
    fn send(&self, _to: &[u8], _message: &[u8]) -> i32 {
        HOST_OK
    }
    fn monitor(&self, pid: &[u8], _reference: &[u8]) -> i32 {
        self.0.lock().unwrap().push(pid.to_vec());
        HOST_OK
    }
    fn demonitor(&self, pid: &[u8], _reference: &[u8]) -> i32 {
        self.1.lock().unwrap().push(pid.to_vec());
        HOST_OK
    }
}

fn pid(node: &str, id: u32) -> Pid {
    Pid { node: Atom::new(node), id, serial: 0, creation: 1 }
}

fn call(table: &ResourceTable, name: &str, args: &[Term], caller: &Pid) -> Term {
    call_with(table, name, args, caller, None)
}

fn call_with(table: &ResourceTable, name: &str, args: &[Term], caller: &Pid, messenger: Option<&Arc<dyn Messenger>>) -> Term {
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
    let info = CallInfo { caller: Some(&holder), messenger, ..CallInfo::default() };
    let (reply, _) = table.with_host(&info, |host| call_entry(entry, &slices, None, host));
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

fn live_probes(table: &ResourceTable) -> u64 {
    table.counts().iter().find(|c| c.0 == "probe").map_or(0, |c| c.1)
}

#[test]
fn holders_monitors_exits_and_no_leaks() {
    let table = ResourceTable::new("py@127.0.0.1", 3, Limits::default());
    let a = pid("app@127.0.0.1", 1);
    let b = pid("app@127.0.0.1", 2);
    let c = pid("other@127.0.0.1", 3);

    // A creates, B uses: both hold it; each needs one monitor, the second ask gives none.
    let r = ok_value(call(&table, "probe_new", &[], &a));
    assert_eq!(ok_value(call(&table, "probe_use", &[r.clone()], &b)), Term::atom("true"));
    let (_, holders, _) = table.info(&reference(&r)).unwrap();
    assert_eq!(holders, { let mut h = vec![holder_of(&a), holder_of(&b)]; h.sort(); h });
    let monitor_a = table.take_monitor_for(&holder_of(&a)).expect("a monitor for A");
    let monitor_b = table.take_monitor_for(&holder_of(&b)).expect("a monitor for B");
    assert!(table.take_monitor_for(&holder_of(&a)).is_none());

    // A exits: alive; B exits: freed, destructor run, holders forgotten.
    let app = b"app@127.0.0.1";
    assert_eq!(table.monitor_down(&monitor_a, &holder_of(&a), app), MonitorExit::Down);
    assert_eq!(live_probes(&table), 1);
    assert_eq!(table.monitor_down(&monitor_b, &holder_of(&b), app), MonitorExit::Down);
    assert_eq!(live_probes(&table), 0);
    assert_eq!(DROPPED.load(Ordering::SeqCst), 1);
    assert_eq!(table.monitor_down(&monitor_b, &holder_of(&b), app), MonitorExit::Unknown); // not ours any more
    assert_eq!(table.holder_count(), 0);
    let gone = call(&table, "probe_use", &[r.clone()], &b);
    assert_eq!(gone, Term::Tuple(vec![Term::atom("error"), Term::Tuple(vec![Term::atom("badresource"), r.clone()])]));

    // Shared with a process on another node, released by its creator, freed when that node
    // disconnects.
    let r2 = ok_value(call(&table, "probe_new", &[], &a));
    assert!(table.share(&reference(&r2), &holder_of(&c)).is_ok());
    assert!(table.release(&reference(&r2), &holder_of(&a)));
    assert!(!table.release(&reference(&r2), &holder_of(&a))); // A holds it no more
    assert_eq!(live_probes(&table), 1);
    table.node_down("other@127.0.0.1");
    assert_eq!(live_probes(&table), 0);
    assert_eq!(DROPPED.load(Ordering::SeqCst), 2);

    // Many creations by many callers, all released: nothing stays.
    for i in 0..1000 {
        let p = pid("app@127.0.0.1", 100 + i % 50);
        let r = ok_value(call(&table, "probe_new", &[], &p));
        assert!(table.release(&reference(&r), &holder_of(&p)));
    }
    for i in 0..50 {
        let _ = table.take_monitor_for(&holder_of(&pid("app@127.0.0.1", 100 + i)));
    }
    table.node_down("app@127.0.0.1");
    assert_eq!(live_probes(&table), 0);
    assert_eq!(DROPPED.load(Ordering::SeqCst), 1002);
    assert_eq!(table.holder_count(), 0);

    // Limits: past max_live, :overloaded.
    table.set_limits(Limits { max_live: 1, max_holders: 10 });
    let first = ok_value(call(&table, "probe_new", &[], &a));
    assert_eq!(
        call(&table, "probe_new", &[], &a),
        Term::Tuple(vec![
            Term::atom("error"),
            Term::Tuple(vec![Term::atom("panic"), Term::Binary(b"the resource table is full (max live resources reached)".to_vec())])
        ])
    );
    assert!(table.release(&reference(&first), &holder_of(&a)));
    table.set_limits(Limits::default());
}

#[test]
fn two_tables_are_two_and_types_are_told_apart_by_their_crate() {
    let one = ResourceTable::new("one@127.0.0.1", 1, Limits::default());
    let twin = ResourceTable::new("one@127.0.0.1", 1, Limits::default());
    let a = pid("app@127.0.0.1", 1);
    let r = ok_value(call(&one, "tag_new", &[], &a));
    // Another table, even of a node with the same name and creation, has no such resource.
    let badresource = Term::Tuple(vec![Term::atom("error"), Term::Tuple(vec![Term::atom("badresource"), r.clone()])]);
    assert_eq!(call(&twin, "tag_use", &[r.clone()], &a), badresource);
    assert!(twin.counts().is_empty() && twin.holder_count() == 0);
    assert_eq!(ok_value(call(&one, "tag_use", &[r.clone()], &a)), Term::atom("true"));

    // A type of the same name from another crate (another copy of rustelixir-nif): the
    // node tells it from ours and says what the resource is.
    let ours = host::resource_type::<Tag>();
    let theirs = ResourceType {
        crate_id: ours.crate_id + 1,
        key: ours.key,
        name: ours.name,
        retain: ours.retain,
        release: ours.release,
        size: ours.size,
        down: ours.down,
    };
    let reference = reference(&r);
    let lookup = |ty: &ResourceType| {
        one.with_host(&CallInfo::from_caller(Some(&holder_of(&a))), |h| {
            let mut found = Found::default();
            let status = unsafe {
(h.lookup)(h, &RefParts::of(&reference), ty, &mut found)
            };
            if status == HOST_OK {
                unsafe { (ty.release)(found.object) }; // the count it gave us
            }
            (status, unsafe { String::from_utf8_lossy(found.type_name.as_bytes()).into_owned() })
        })
        .0
    };
    assert_eq!(lookup(&theirs), (HOST_WRONG_TYPE, "tag".to_string()));
    assert_eq!(lookup(ours).0, HOST_OK);
    assert!(one.release(&reference, &holder_of(&a)));
    assert!(one.info(&reference).is_none());
}

#[test]
fn a_resource_hears_only_of_genuine_exits_of_the_processes_it_monitors() {
    let table = ResourceTable::new("node@h", 7, Limits::default());
    let recorder = Arc::new(Recorder::default());
    let messenger: Arc<dyn Messenger> = recorder.clone();
    let (owner, a, b) = (pid("c@h", 1), pid("a@h", 2), pid("b@h", 3));
    let w = ok_value(call_with(&table, "watcher_new", &[], &owner, Some(&messenger)));
    let watch = |p: &Pid| {
        let monitor = ok_value(call_with(&table, "watch", &[w.clone(), Term::Pid(Box::new(p.clone()))], &owner, Some(&messenger)));
        monitor.as_reference().cloned().expect("a monitor")
    };
    let (on_a, on_b) = (watch(&a), watch(&b));
    assert_eq!(*recorder.0.lock().unwrap(), vec![holder_of(&a), holder_of(&b)]); // MONITOR_P sent for each
    // Without a node to send the MONITOR_P, there is no monitor.
    assert_eq!(ok_value(call(&table, "watch", &[w.clone(), Term::Pid(Box::new(a.clone()))], &owner)), Term::atom("nil"));
    let downs = || DOWNS.lock().unwrap().iter().filter(|(_, m)| m == &on_a || m == &on_b).count();

    // Forged: another process than the one watched, or the right one over another connection.
    assert_eq!(table.monitor_down(&on_a, &holder_of(&b), b"a@h"), MonitorExit::Forged);
    assert_eq!(table.monitor_down(&on_a, &holder_of(&a), b"b@h"), MonitorExit::Forged);
    assert_eq!(downs(), 0);
    // Genuine: once.
    assert_eq!(table.monitor_down(&on_a, &holder_of(&a), b"a@h"), MonitorExit::Down);
    assert_eq!(DOWNS.lock().unwrap().iter().filter(|(p, m)| p == &a && m == &on_a).count(), 1);
    assert_eq!(table.monitor_down(&on_a, &holder_of(&a), b"a@h"), MonitorExit::Unknown);
    // b's node disconnects: b is down.
    table.node_down("b@h");
    assert_eq!(DOWNS.lock().unwrap().iter().filter(|(p, m)| p == &b && m == &on_b).count(), 1);
    assert_eq!(downs(), 2);
    assert_eq!(table.forged_exits(), 2);

    // A resource freed with a monitor still on: the watched process's node is told.
    let c = pid("a@h", 9);
    let on_c = watch(&c);
    assert!(table.free(w.as_reference().unwrap()));
    assert_eq!(*recorder.1.lock().unwrap(), vec![holder_of(&c)]);
    assert_eq!(table.monitor_down(&on_c, &holder_of(&c), b"a@h"), MonitorExit::Unknown);
}
