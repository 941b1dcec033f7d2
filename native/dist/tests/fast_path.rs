//! The fast path against frames a peer may send: the common call answered from the bytes,
//! absurd counts refused without allocating by them, and messages over the size limit
//! discarded as they stream in, their caller answered `{error, overloaded}`, the connection
//! kept.

mod common;
use common::*;

use etf::Term;

#[test]
fn a_quick_call_is_answered_from_the_bytes() {
    let mut fast = fast_path(1 << 20);
    let (out, to_python) = feed_in_pieces(&mut fast, &call_frame(&Term::Tuple(vec![atom("add"), Term::Int(1), Term::Int(2)]), 1), 1 << 20);
    assert!(to_python.is_empty());
    assert_eq!(replies(&out), vec![(vec![1, 7, 9], ok(Term::Int(3)))]);
    assert_eq!(stats(&fast), (1, 0, 0));
}

/// The frame that aborted the node: a request tuple claiming 0xFFFFFFFF elements. It is no
/// call the fast path can answer (the elements are not there), so it goes to Python whole,
/// and nothing was sized by the claim.
#[test]
fn a_request_claiming_four_billion_elements_allocates_nothing_by_it() {
    let mut request = vec![105, 0xFF, 0xFF, 0xFF, 0xFF];
    request.extend(bytes(&atom("add")));
    request.extend(bytes(&Term::Int(1)));
    let body = gen_call_body(&request, 2);
    let mut fast = fast_path(1 << 20);
    let (out, to_python) = feed_in_pieces(&mut fast, &frame(&body), 1 << 20);
    assert!(out.is_empty());
    assert_eq!(to_python, vec![body]);
}

#[test]
fn absurd_counts_in_every_length_field_of_a_call_are_survived() {
    // Every offset of a real call, each 1, 2 and 4-byte window set to absurd values: the
    // fast path answers, leaves the frame to Python or refuses it, and never panics.
    let body = gen_call_body(&bytes(&Term::Tuple(vec![atom("echo"), Term::List(vec![Term::Int(1); 3])])), 3);
    let mut cases = 0;
    for at in 0..body.len() {
        for width in [1usize, 2, 4] {
            for value in [0u32, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF] {
                if at + width > body.len() {
                    continue;
                }
                let mut b = body.clone();
                let be = value.to_be_bytes();
                b[at..at + width].copy_from_slice(&be[4 - width..]);
                let mut fast = fast_path(1 << 16);
                let mut out = Vec::new();
                let mut to_python = Vec::new();
                let _ = fast.feed(&frame(&b), &mut out, &mut to_python);
                cases += 1;
            }
        }
    }
    assert!(cases > 1000);
}

#[test]
fn an_oversized_frame_is_skipped_and_its_caller_answered_overloaded() {
    let limit = 100_000;
    let big = Term::Tuple(vec![atom("echo"), Term::Binary(vec![7; 300_000])]);
    let mut data = call_frame(&big, 4);
    data.extend(call_frame(&Term::Tuple(vec![atom("add"), Term::Int(2), Term::Int(2)]), 5));
    for piece in [1, 3, 4096, 65_536, 1 << 20] {
        let mut fast = fast_path(limit);
        let (out, to_python) = feed_in_pieces(&mut fast, &data, piece);
        assert!(to_python.is_empty(), "piece {piece}");
        assert_eq!(replies(&out), vec![(vec![4, 7, 9], overloaded()), (vec![5, 7, 9], ok(Term::Int(4)))], "piece {piece}");
        assert_eq!(stats(&fast), (2, 1, 1));
        assert_eq!(fast.buffered(), 0);
    }
}

#[test]
fn an_oversized_message_that_is_no_call_is_discarded_quietly() {
    let control = Term::Tuple(vec![Term::Int(22), Term::from(caller()), Term::from(server_pid())]);
    let body = header_body(&control, Some(&bytes(&Term::Binary(vec![1; 200_000]))));
    let mut data = frame(&body);
    data.extend(call_frame(&atom("add"), 6)); // add/0 does not exist: the only reply
    let mut fast = fast_path(100_000);
    let (out, to_python) = feed_in_pieces(&mut fast, &data, 8192);
    let undef = Term::Tuple(vec![atom("error"), Term::Tuple(vec![atom("undef"), atom("add"), Term::Int(0)])]);
    assert_eq!(replies(&out), vec![(vec![6, 7, 9], undef)]);
    assert!(to_python.is_empty());
    assert_eq!(fast.oversized, 1);
}

#[test]
fn a_fragmented_message_past_the_limit_is_discarded_and_its_caller_answered() {
    let limit = 200_000;
    let big = gen_call_body(&bytes(&Term::Tuple(vec![atom("echo"), Term::Binary(vec![9; 500_000])])), 8);
    let small = gen_call_body(&bytes(&Term::Tuple(vec![atom("echo"), Term::Binary(vec![3; 150_000])])), 9);
    let big_frames = fragments(&big, 64 * 1024, 1);
    let small_frames = fragments(&small, 64 * 1024, 2);
    let mut fast = fast_path(limit);
    let mut out = Vec::new();
    let mut to_python = Vec::new();
    // The big one passes the limit at its fourth fragment: answered then, not at its end.
    for (i, f) in big_frames.iter().enumerate() {
        fast.feed(f, &mut out, &mut to_python).unwrap();
        let expected = if i >= 3 { vec![(vec![8, 7, 9], overloaded())] } else { vec![] };
        assert_eq!(replies(&out), expected, "after fragment {i}");
    }
    assert_eq!(fast.open_sequences(), 0);
    // The connection goes on: a message under the limit, fragmented too, arrives whole.
    for f in &small_frames {
        fast.feed(f, &mut out, &mut to_python).unwrap();
    }
    let all = replies(&out);
    assert_eq!(all.len(), 2);
    assert_eq!(all[1], (vec![9, 7, 9], ok(Term::Binary(vec![3; 150_000]))));
    assert_eq!(fast.oversized, 1);
    assert!(to_python.is_empty());
}

#[test]
fn unfinished_messages_together_stay_within_the_limit() {
    // Two messages of 120 kB each under a limit of 200 kB, interleaved: the one whose
    // fragment would pass the limit (the first, at its third fragment) is refused, and the
    // other completes.
    let limit = 200_000;
    let one = gen_call_body(&bytes(&Term::Tuple(vec![atom("echo"), Term::Binary(vec![1; 120_000])])), 10);
    let two = gen_call_body(&bytes(&Term::Tuple(vec![atom("echo"), Term::Binary(vec![2; 120_000])])), 11);
    let (a, b) = (fragments(&one, 40_000, 1), fragments(&two, 40_000, 2));
    assert_eq!((a.len(), b.len()), (4, 4));
    let mut fast = fast_path(limit);
    let mut out = Vec::new();
    let mut to_python = Vec::new();
    for i in 0..4 {
        fast.feed(&a[i], &mut out, &mut to_python).unwrap();
        fast.feed(&b[i], &mut out, &mut to_python).unwrap();
    }
    let all = replies(&out);
    assert_eq!(all, vec![(vec![10, 7, 9], overloaded()), (vec![11, 7, 9], ok(Term::Binary(vec![2; 120_000])))]);
    assert_eq!(fast.open_sequences(), 0);
}

#[test]
fn a_fragment_frame_over_the_limit_closes_the_connection() {
    let body = gen_call_body(&bytes(&Term::Tuple(vec![atom("echo"), Term::Binary(vec![1; 300_000])])), 12);
    let frames = fragments(&body, 250_000, 1);
    let mut fast = fast_path(100_000);
    let mut out = Vec::new();
    let mut to_python = Vec::new();
    assert!(fast.feed(&frames[0], &mut out, &mut to_python).is_err());
}

#[test]
fn fragments_out_of_order_still_close_the_connection() {
    let body = gen_call_body(&bytes(&Term::Tuple(vec![atom("echo"), Term::Binary(vec![1; 300_000])])), 13);
    let frames = fragments(&body, 64 * 1024, 1);
    let mut fast = fast_path(1 << 20);
    let mut out = Vec::new();
    let mut to_python = Vec::new();
    fast.feed(&frames[0], &mut out, &mut to_python).unwrap();
    assert!(fast.feed(&frames[2], &mut out, &mut to_python).is_err());
}

#[test]
fn a_discarded_message_still_checks_its_fragments_order() {
    let body = gen_call_body(&bytes(&Term::Tuple(vec![atom("echo"), Term::Binary(vec![1; 500_000])])), 14);
    let frames = fragments(&body, 64 * 1024, 1);
    let mut fast = fast_path(100_000);
    let mut out = Vec::new();
    let mut to_python = Vec::new();
    for f in &frames[..3] {
        fast.feed(f, &mut out, &mut to_python).unwrap();
    }
    assert_eq!(fast.oversized, 1);
    assert!(fast.feed(&frames[4], &mut out, &mut to_python).is_err());
}

#[test]
fn a_compressed_argument_is_left_to_python() {
    // No BEAM compresses a term inside a distribution message; Python decodes (and bounds) it.
    let mut request = vec![104, 2];
    request.extend(bytes(&atom("echo")));
    request.extend([80, 0, 0, 0, 1, 0x78, 0x9c, 0x03, 0, 0, 0, 0, 1]);
    let body = gen_call_body(&request, 15);
    let mut fast = fast_path(1 << 20);
    let (out, to_python) = feed_in_pieces(&mut fast, &frame(&body), 1 << 20);
    assert!(out.is_empty());
    assert_eq!(to_python.len(), 1);
}

#[test]
fn tiny_limits_do_not_break_the_framing() {
    // Whatever the limit, whatever the frame: an answer, a refusal or an error, never a panic.
    for limit in 0..6 {
        for len in 0..8usize {
            for first in [0u8, 131, 112] {
                let mut body = vec![first, 69, 0, 0];
                body.resize(len, 0);
                let mut fast = fast_path(limit);
                let mut data = frame(&body);
                data.extend(frame(&[]));
                let _ = fast.feed(&data, &mut Vec::new(), &mut Vec::new());
            }
        }
    }
}
