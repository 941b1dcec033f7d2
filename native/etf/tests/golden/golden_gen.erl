%% Writes the golden files for ../golden.rs from a real VM (OTP 25):
%%   <name>.bin         term_to_binary(T, [{minor_version, 2}])
%%   legacy_<name>.bin  term_to_binary(binary_to_term(In), [{minor_version, 2}]) for a
%%                      hand-made input In in a legacy or non-canonical encoding (the same
%%                      input bytes are written out literally in golden.rs)
%% Regenerate with:
%%   cd native/etf/tests/golden && erlc golden_gen.erl && \
%%     erl -noshell -pa . -eval 'golden_gen:main(), halt().' && rm golden_gen.beam
-module(golden_gen).
-export([main/0, adder/1, tagger/2]).

%% Funs with a captured environment: Y (and Z) are free variables of the fun.
adder(Y) -> fun(X) -> X + Y end.
tagger(Y, Z) -> fun(X) -> {X, Y, Z} end.

w(Name, T) ->
    ok = file:write_file(atom_to_list(Name) ++ ".bin", term_to_binary(T, [{minor_version, 2}])).

legacy(Name, In) ->
    T = binary_to_term(In),  % crashes the script if the VM refuses the hand-made bytes
    ok = file:write_file("legacy_" ++ atom_to_list(Name) ++ ".bin", term_to_binary(T, [{minor_version, 2}])).

pad31(Text) -> <<Text/binary, 0:((31 - byte_size(Text)) * 8)>>.

main() ->
    Pid = list_to_pid("<0.77.5>"),
    %% integers
    w(small0, 0), w(small255, 255), w(int256, 256), w(intm1, -1),
    w(i32max, 2147483647), w(i32min, -2147483648),
    w(i32max1, 2147483648), w(i32min1, -2147483649),
    w(i64max, 9223372036854775807), w(i64min, -9223372036854775808),
    w(i64max1, 9223372036854775808), w(i64min1, -9223372036854775809),
    w(u64max, 18446744073709551615),
    w(big2_100, 1 bsl 100), w(negbig2_100, -(1 bsl 100)),
    w(big255b, (1 bsl 2040) - 1), w(big256b, 1 bsl 2040), w(neglarge, -(1 bsl 2100)),
    %% floats
    w(f15, 1.5), w(fm0, -0.0), w(f0, 0.0), w(fpi, 3.141592653589793),
    w(fmax, 1.7976931348623157e308), w(fmin, 5.0e-324), w(fneg, -2.5e-10),
    %% atoms
    w(atom_ok, ok), w(atom_empty, ''), w(atom_uni, 'héllo'), w(atom_true, true),
    w(atom_long, list_to_atom(lists:duplicate(100, 16#2713))),
    w(atom255, list_to_atom(lists:duplicate(255, $a))),
    w(atom_255uni, list_to_atom(lists:duplicate(255, 16#e9))),
    %% binaries and bitstrings
    w(bin, <<1, 2, 3>>), w(bin_empty, <<>>),
    w(bits3, <<5:3>>), w(bits9, <<255, 1:1>>), w(bits7, <<16#7f:7>>),
    %% tuples
    w(tuple0, {}), w(tuple2, {a, 1}),
    w(tuple255, list_to_tuple(lists:seq(1, 255))), w(tuple256, erlang:make_tuple(256, 0)),
    %% lists
    w(nil, []), w(string, "abc"), w(string_bytes, [0, 255, 128]),
    w(list, [1, 1000]), w(list_nested, [[1], a]), w(list_neg, [1, -1]), w(list_256, [1, 256]),
    w(improper, [1 | 2]), w(improper2, [a, b | c]), w(improper_bin, [1 | <<"x">>]),
    w(string_long, lists:duplicate(65535, 7)), w(list_long, lists:duplicate(65536, 7)),
    %% maps (up to 32 keys: key order, integers before floats; over 32: hash order)
    w(map0, #{}), w(map1, #{a => 1}),
    w(map_num, #{1 => a, 1.0 => b, 2 => c, 0.5 => d, -1 => e, 3.0 => f, (1 bsl 70) => g}),
    w(map_mixed, #{<<"b">> => 1, [] => 2, {} => 3, 1 => 4, [a] => 5, #{} => 6, x => 7, 2.0 => 8}),
    w(map_atoms, #{b => 1, a => 2, c => 3}),
    w(map33, maps:from_list([{I, I} || I <- lists:seq(1, 33)])),
    %% identifiers
    w(pid, Pid),
    w(port, list_to_port("#Port<0.5>")),
    w(reference, list_to_ref("#Ref<0.1.2.3>")),
    %% funs
    w(fun_adder, adder(7)),
    w(fun_tagger, tagger(<<"bin">>, [x, {y}])),
    w(fun_noenv, fun() -> ok end),
    %% The fun `erl -eval` makes: an erl_eval closure whose environment holds the bindings
    %% (Y = 7) and the fun's abstract code.
    {ok, Tokens, _} = erl_scan:string("fun(X) -> X + Y end."),
    {ok, [Expr]} = erl_parse:parse_exprs(Tokens),
    {value, EvalFun, _} = erl_eval:expr(Expr, erl_eval:add_binding('Y', 7, erl_eval:new_bindings())),
    w(fun_eval, EvalFun),
    w(export, fun lists:map/2),
    %% compressed (and the same terms uncompressed)
    CT1 = lists:duplicate(50, 1000),
    CT2 = {lists:seq(1, 300), <<0:8000>>, 'héllo', 1 bsl 100},
    ok = file:write_file("compressed1.bin", term_to_binary(CT1, [compressed, {minor_version, 2}])),
    ok = file:write_file("compressed2.bin", term_to_binary(CT2, [compressed, {minor_version, 2}])),
    w(uncompressed1, CT1), w(uncompressed2, CT2),

    %% legacy and non-canonical encodings, checked by binary_to_term
    N = <<119, 3, "a@b">>,
    legacy(float_c, <<131, 99, (pad31(<<"1.50000000000000000000e+00">>))/binary>>),
    legacy(float_erl, <<131, 99, (pad31(list_to_binary(io_lib:format("~.20e", [3.141592653589793]))))/binary>>),
    legacy(float_neg, <<131, 99, (pad31(<<"-2.50000000000000000000e-10">>))/binary>>),
    legacy(atom_ext, <<131, 100, 0, 2, "ok">>),
    legacy(atom_ext_latin1, <<131, 100, 0, 5, $h, 16#e9, $l, $l, $o>>),
    legacy(atom_ext_ff, <<131, 100, 0, 1, 255>>),
    legacy(small_atom_ext, <<131, 115, 1, 16#e9>>),
    legacy(pid_ext, <<131, 103, N/binary, 0, 0, 0, 1, 0, 0, 0, 2, 3>>),
    legacy(port_ext, <<131, 102, N/binary, 0, 0, 0, 9, 3>>),
    legacy(new_port_ext, <<131, 89, N/binary, 0, 0, 0, 9, 0, 0, 0, 3>>),
    legacy(v4_port_ext, <<131, 120, N/binary, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3>>),
    legacy(v4_port_small, <<131, 120, N/binary, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 3>>),
    legacy(ref_ext, <<131, 101, N/binary, 0, 0, 0, 9, 3>>),
    legacy(new_ref_ext, <<131, 114, 0, 2, N/binary, 3, 0, 0, 0, 1, 0, 0, 0, 2>>),
    legacy(new_ref_ext3, <<131, 114, 0, 3, N/binary, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3>>),
    legacy(newer_ref1, <<131, 90, 0, 1, N/binary, 0, 0, 0, 1, 0, 0, 0, 1>>),
    legacy(newer_ref4, <<131, 90, 0, 4, N/binary, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4>>),
    legacy(newer_ref5, <<131, 90, 0, 5, N/binary, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5>>),
    legacy(big_nonminimal, <<131, 110, 8, 0, 5, 0, 0, 0, 0, 0, 0, 0>>),
    legacy(big_zero, <<131, 110, 0, 0>>),
    legacy(big_neg_zero, <<131, 110, 0, 1>>),
    legacy(large_big_small, <<131, 111, 0, 0, 0, 1, 0, 5>>),
    legacy(big_i64_as_large, <<131, 111, 0, 0, 0, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128>>),
    legacy(large_tuple_small, <<131, 105, 0, 0, 0, 2, 97, 1, 97, 2>>),
    legacy(integer_small, <<131, 98, 0, 0, 0, 5>>),
    legacy(bits_empty, <<131, 77, 0, 0, 0, 0, 0>>),
    legacy(bits_whole_byte, <<131, 77, 0, 0, 0, 1, 8, 5>>),
    legacy(bits_dirty, <<131, 77, 0, 0, 0, 1, 3, 16#ff>>),
    legacy(list_split_tail, <<131, 108, 0, 0, 0, 1, 97, 1, 108, 0, 0, 0, 1, 97, 2, 106>>),
    legacy(list_string_tail, <<131, 108, 0, 0, 0, 1, 97, 1, 107, 0, 2, 2, 3>>),
    legacy(list_empty_with_tail, <<131, 108, 0, 0, 0, 0, 97, 1>>),
    legacy(list_empty_nil, <<131, 108, 0, 0, 0, 0, 106>>),
    legacy(list_of_bytes, <<131, 108, 0, 0, 0, 2, 97, 1, 97, 2, 106>>),
    legacy(string_empty, <<131, 107, 0, 0>>),
    legacy(map_unsorted, <<131, 116, 0, 0, 0, 2, 119, 1, $b, 97, 1, 119, 1, $a, 97, 2>>),
    legacy(export_old_atoms, <<131, 113, 100, 0, 1, $m, 115, 1, $f, 97, 1>>),
    ok.
