//! The maximum buffer size is configurable (its own test binary: the setting is global).

mod common;

use common::*;

#[test]
fn the_maximum_buffer_size_can_be_lowered_and_raised() {
    setup();
    assert_eq!(
        rustelixir_collections::max_buffer_size(),
        rustelixir_collections::DEFAULT_MAX_BUFFER_SIZE
    );
    rustelixir_collections::set_max_buffer_size(1024);
    assert_eq!(
        call("buffer_new", &[int(1025)]),
        badarg(1, "size 1025 is over the maximum buffer size of 1024 bytes")
    );
    let buf = new_buffer(1024);
    assert_eq!(call("buffer_size", &[buf]), ok(int(1024)));
    rustelixir_collections::set_max_buffer_size(2 << 30);
    let big = new_buffer((1 << 30) + 1);
    assert_eq!(call("buffer_size", &[big.clone()]), ok(int((1 << 30) + 1)));
    assert_eq!(
        call("buffer_read", &[big.clone(), int(1 << 30), int(1)]),
        ok(rustelixir_nif::etf::Term::Binary(vec![0]))
    );
    assert!(common::table().free(match &big {
        rustelixir_nif::etf::Term::Ref(r) => r,
        _ => unreachable!(),
    }));
    rustelixir_collections::set_max_buffer_size(rustelixir_collections::DEFAULT_MAX_BUFFER_SIZE);
}
