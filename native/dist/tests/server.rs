//! The server answers the call contract from the bytes of a connection: the reserved
//! requests, shapes it does not know, natives that run elsewhere (the worker pool, Python),
//! and the callers that give up on them.

mod common;
use common::*;

use std::time::{Duration, Instant};

use etf::Term;
use rustelixir_dist::registry::Native;
use rustelixir_dist::server::JobEvent;

fn tuple(items: Vec<Term>) -> Term {
    Term::Tuple(items)
}

fn error(reason: Term) -> Term {
    tuple(vec![atom("error"), reason])
}

fn call(fast: &mut rustelixir_dist::FastPath, request: &Term, mref: u32) -> Vec<(Vec<u32>, Term)> {
    let (out, to_python) = feed_in_pieces(fast, &call_frame(request, mref), 1 << 20);
    assert!(to_python.is_empty(), "answered without Python");
    replies(&out)
}

/// `{DEMONITOR_P, Caller, rustelixir, Mref}`: the caller gave up.
fn demonitor_frame(mref: u32) -> Vec<u8> {
    let control = tuple(vec![Term::Int(20), Term::from(caller()), atom("rustelixir"), Term::from(monitor_ref(mref))]);
    frame(&header_body(&control, None))
}

/// Waits (5 s at most) for what the connection was sent outside the fast path's output.
fn sent_replies(sent: &Sent, count: usize) -> Vec<(Vec<u32>, Term)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut all = Vec::new();
    while all.len() < count && Instant::now() < deadline {
        all.extend(replies(&sent.take()));
        std::thread::sleep(Duration::from_millis(2));
    }
    all
}

#[test]
fn reserved_requests_and_unknown_shapes_are_answered_here() {
    let (mut fast, _) = fast_path_with(1 << 20, &[]);
    let (_, functions) = call(&mut fast, &atom("functions"), 1).remove(0);
    assert_eq!(
        functions,
        ok(Term::List(vec![
            tuple(vec![atom("add"), Term::Int(2)]),
            tuple(vec![atom("echo"), Term::Int(1)]),
            tuple(vec![atom("sleep"), Term::Int(1)]),
        ]))
    );
    let badrequest = |m: &str| error(tuple(vec![atom("badrequest"), Term::Binary(m.as_bytes().to_vec())]));
    assert_eq!(call(&mut fast, &Term::Int(42), 2)[0].1, badrequest("expected an atom or a tuple starting with an atom"));
    assert_eq!(
        call(&mut fast, &tuple(vec![atom("functions"), Term::Int(1)]), 3)[0].1,
        badrequest("functions/1 is reserved and takes other arguments")
    );
    assert_eq!(
        call(&mut fast, &tuple(vec![atom("nope"), Term::Int(1)]), 4)[0].1,
        error(tuple(vec![atom("undef"), atom("nope"), Term::Int(1)]))
    );
    let reference = Term::from(monitor_ref(99));
    assert_eq!(
        call(&mut fast, &tuple(vec![atom("release"), reference.clone()]), 5)[0].1,
        error(tuple(vec![atom("badresource"), reference]))
    );
    assert_eq!(stats(&fast), (5, 4, 0));
}

#[test]
fn a_slow_native_runs_on_the_pool_and_answers_through_its_connection() {
    let (mut fast, sent) = fast_path_with(1 << 20, &[]);
    let (out, _) = feed_in_pieces(&mut fast, &call_frame(&tuple(vec![atom("sleep"), Term::Int(20)]), 7), 1 << 20);
    assert!(replies(&out).is_empty(), "not answered inline");
    assert_eq!(sent_replies(&sent, 1), vec![(vec![7, 7, 9], ok(atom("ok")))]);
    assert_eq!(fast.server.as_ref().unwrap().in_flight(), 0);
}

#[test]
fn a_caller_that_gives_up_cancels_its_slow_call_and_gets_no_reply() {
    let (mut fast, sent) = fast_path_with(1 << 20, &[]);
    let server = fast.server.clone().unwrap();
    feed_in_pieces(&mut fast, &call_frame(&tuple(vec![atom("sleep"), Term::Int(60_000)]), 8), 1 << 20);
    assert_eq!(server.in_flight(), 1);
    feed_in_pieces(&mut fast, &demonitor_frame(8), 1 << 20);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.in_flight() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(server.in_flight(), 0, "the sleep stopped at its cancellation");
    assert_eq!(server.stats.cancelled.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(replies(&sent.take()).is_empty(), "its reply dropped");
}

#[test]
fn a_disconnected_peer_abandons_its_calls() {
    let (mut fast, _) = fast_path_with(1 << 20, &[]);
    let server = fast.server.clone().unwrap();
    for mref in 10..13 {
        feed_in_pieces(&mut fast, &call_frame(&tuple(vec![atom("sleep"), Term::Int(60_000)]), mref), 1 << 20);
    }
    assert_eq!(server.in_flight(), 3);
    server.peer_down(&fast.peer);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.in_flight() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(server.in_flight(), 0);
    assert!(server.peer_names().is_empty());
}

#[test]
fn a_python_native_is_a_job_answered_by_ticket() {
    let (mut fast, sent) = fast_path_with(1 << 20, &[]);
    let server = fast.server.clone().unwrap();
    server.set_module("greetings", &[], &[("greet".into(), 1, 0, false)]).unwrap();
    assert!(server.set_module("other", &[], &[("info".into(), 0, 1, false)]).is_err(), "a reserved name is refused");
    assert!(server.set_module("other", &[], &[("greet".into(), 1, 1, false)]).is_err(), "another module's native is refused");
    let (out, _) = feed_in_pieces(&mut fast, &call_frame(&tuple(vec![atom("greet"), Term::Int(5)]), 20), 1 << 20);
    assert!(replies(&out).is_empty());
    let mut jobs = server.take_jobs();
    assert_eq!(jobs.len(), 1);
    let JobEvent::Run(job) = jobs.remove(0) else { panic!("a job to run") };
    assert_eq!((job.index, job.args.clone()), (0, vec![bytes(&Term::Int(5))]));
    let mut reply = Vec::new();
    rustelixir_nif::reply::write_ok_head(&mut reply);
    reply.extend(bytes(&atom("hello")));
    server.complete(job.ticket, Some(reply));
    assert_eq!(sent_replies(&sent, 1), vec![(vec![20, 7, 9], ok(atom("hello")))]);

    // A caller that gives up: the job's flag is set and Python is told to cancel it.
    feed_in_pieces(&mut fast, &call_frame(&tuple(vec![atom("greet"), Term::Int(6)]), 21), 1 << 20);
    let JobEvent::Run(job) = server.take_jobs().remove(0) else { panic!("a job to run") };
    feed_in_pieces(&mut fast, &demonitor_frame(21), 1 << 20);
    assert!(job.cancel.load(std::sync::atomic::Ordering::Relaxed));
    assert!(matches!(server.take_jobs().as_slice(), [JobEvent::Cancel(t)] if *t == job.ticket));
    server.complete(job.ticket, None);
    assert_eq!(server.in_flight(), 0);
}

#[test]
fn past_its_calls_in_flight_the_server_answers_overloaded() {
    let server = {
        let config = rustelixir_dist::ServerConfig {
            node: NODE.into(),
            creation: 3,
            pid: bytes(&Term::from(server_pid())),
            max_in_flight: 2,
            workers: 2,
            max_resources: 1000,
            max_holders: 10,
        };
        let server = rustelixir_dist::Server::new(config, Box::new(|| {}));
        server.add_table(&rustelixir_dist::builtins::SLOW_BUILTINS).unwrap();
        server
    };
    let sent = Sent::default();
    let peer = std::sync::Arc::new(rustelixir_dist::Peer::new(peer_config(1 << 20), Box::new(sent.clone())));
    server.peer_up(peer.clone());
    let mut fast = rustelixir_dist::FastPath::new(peer.clone(), Some(server.clone()));
    let mut answered = Vec::new();
    for mref in 30..33 {
        let (out, _) = feed_in_pieces(&mut fast, &call_frame(&tuple(vec![atom("sleep"), Term::Int(60_000)]), mref), 1 << 20);
        answered.extend(replies(&out));
    }
    assert_eq!(answered, vec![(vec![32, 7, 9], overloaded())]);
    server.peer_down(&peer);
}

#[test]
fn a_module_set_again_serves_its_new_natives_in_place_of_its_old_ones_or_keeps_them() {
    let (fast, _) = fast_path_with(1 << 20, &[]);
    let server = fast.server.clone().unwrap();
    server.set_module("m", &[], &[("old".into(), 1, 0, false), ("kept".into(), 0, 1, true)]).unwrap();
    server.set_module("n", &[], &[("theirs".into(), 0, 2, false)]).unwrap();
    // Reloaded: `old` is gone, `kept` is the new build's, `new` is there.
    let listed = server.set_module("m", &[], &[("kept".into(), 0, 3, false), ("new".into(), 2, 4, false)]).unwrap();
    assert_eq!(listed, vec![("kept".to_string(), 0, false), ("new".to_string(), 2, false)]);
    assert!(server.find(b"old", 1).is_none());
    assert!(matches!(server.find(b"kept", 0), Some(Native::Python(3))));
    // A build that would take another module's native, or a reserved name, changes nothing.
    assert!(server.set_module("m", &[], &[("theirs".into(), 0, 5, false)]).is_err());
    assert!(server.set_module("m", &[], &[("fresh".into(), 0, 5, false), ("reload".into(), 1, 6, false)]).is_err());
    assert!(matches!(server.find(b"new", 2), Some(Native::Python(4))));
    assert!(server.find(b"fresh", 0).is_none());
}

/// An async native of this test: waits `ms` on the crate's timer, then answers `ms`.
#[rustelixir_nif::native]
async fn nap(ms: u64) -> u64 {
    rustelixir_nif::sleep(Duration::from_millis(ms)).await;
    ms
}

rustelixir_nif::natives!(ASYNC_NATIVES = [nap]);

#[test]
fn async_natives_wait_together_on_the_runtime_and_a_caller_that_gives_up_drops_its_task() {
    let (mut fast, sent) = fast_path_with(1 << 20, &[&ASYNC_NATIVES]);
    let server = fast.server.clone().unwrap();
    let started = Instant::now();
    for mref in 100..150 {
        let (out, _) = feed_in_pieces(&mut fast, &call_frame(&tuple(vec![atom("nap"), Term::Int(300)]), mref), 1 << 20);
        assert!(replies(&out).is_empty(), "not answered inline");
    }
    let mut got = sent_replies(&sent, 50);
    got.sort_by_key(|(alias, _)| alias.clone());
    assert_eq!(got.len(), 50);
    assert!(got.iter().all(|(_, reply)| *reply == ok(Term::Int(300))));
    // Fifty naps of 300 ms, one after another, would take 15 s.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(server.in_flight(), 0);

    // A caller that gives up: its task goes at once, and no reply.
    feed_in_pieces(&mut fast, &call_frame(&tuple(vec![atom("nap"), Term::Int(60_000)]), 200), 1 << 20);
    assert_eq!(server.in_flight(), 1);
    feed_in_pieces(&mut fast, &demonitor_frame(200), 1 << 20);
    assert_eq!(server.in_flight(), 0, "dropped as the caller gave up");
    std::thread::sleep(Duration::from_millis(50));
    assert!(replies(&sent.take()).is_empty());
    // A wrong argument is answered at once, by the entry.
    let (out, _) = feed_in_pieces(&mut fast, &call_frame(&tuple(vec![atom("nap"), atom("x")]), 201), 1 << 20);
    assert!(replies(&out).is_empty());
    assert_eq!(sent_replies(&sent, 1)[0].1, error(tuple(vec![atom("badarg"), Term::Int(1), Term::Binary(b"expected an integer, got an atom".to_vec())])));
}
