%% The BEAM side of the codec's differential tests: a real VM answering, over stdin/stdout
%% ({packet, 4} frames of term_to_binary'd requests), what binary_to_term/term_to_binary and
%% term order make of bytes the Python side sends, and making random terms of every kind.
-module(etf_harness).
-export([main/0]).

-define(OPTS, [{minor_version, 2}]).

main() ->
    Port = open_port({fd, 0, 1}, [binary, {packet, 4}, eof]),
    loop(Port).

loop(Port) ->
    receive
        {Port, {data, Request}} ->
            Reply = try handle(binary_to_term(Request))
                    catch Class:Reason -> {error, {Class, Reason}}
                    end,
            Port ! {self(), {command, term_to_binary(Reply)}},
            loop(Port);
        {Port, eof} ->
            halt(0)
    end.

handle({roundtrip, Bin}) ->
    try binary_to_term(Bin) of
        T -> {ok, term_to_binary(T, ?OPTS)}
    catch error:badarg -> {error, badarg}
    end;
handle({equal, Bin1, Bin2}) ->
    {ok, binary_to_term(Bin1) =:= binary_to_term(Bin2)};
handle({sort, Bins}) ->
    Indexed = lists:zip([binary_to_term(B) || B <- Bins], lists:seq(0, length(Bins) - 1)),
    Sorted = lists:sort(fun({A, _}, {B, _}) -> A =< B end, Indexed),
    {ok, [I || {_, I} <- Sorted]};
handle({map_key_order, Bins}) ->
    Keys = [binary_to_term(B) || B <- Bins],
    Map = maps:from_list(lists:zip(Keys, lists:seq(0, length(Keys) - 1))),
    {ok, [maps:get(K, Map) || K <- maps:keys(Map)]};
handle({random, Seed, Count, Size}) ->
    rand:seed(exsss, {Seed, Seed * 7 + 1, Seed * 13 + 2}),
    {ok, [term_to_binary(random_term(Size), ?OPTS) || _ <- lists:seq(1, Count)]};
handle({compress, Bin}) ->
    {ok, term_to_binary(binary_to_term(Bin), [compressed | ?OPTS])};
handle({encode, Term}) ->
    {ok, term_to_binary(Term, ?OPTS)};
handle(otp_release) ->
    {ok, list_to_binary(erlang:system_info(otp_release))}.

%% A random term of any kind; Size bounds the nesting.
random_term(Size) when Size =< 0 -> random_leaf();
random_term(Size) ->
    case rand:uniform(10) of
        N when N =< 4 -> random_leaf();
        5 -> list_to_tuple(random_list(Size));
        6 -> random_list(Size);
        7 -> random_map(Size);
        8 -> improper(Size);
        9 -> random_fun(Size);
        10 -> [random_term(Size - 1) | random_term(Size - 1)]
    end.

random_list(Size) ->
    [random_term(Size - 1) || _ <- lists:seq(1, rand:uniform(6) - 1)].

improper(Size) ->
    Items = [random_term(Size - 1) || _ <- lists:seq(1, rand:uniform(3))],
    Items ++ random_leaf_not_list().

random_map(Size) ->
    N = case rand:uniform(8) of 1 -> 33 + rand:uniform(40); _ -> rand:uniform(6) - 1 end,
    maps:from_list([{random_term(Size - 2), random_term(Size - 1)} || _ <- lists:seq(1, N)]).

random_fun(Size) ->
    Y = random_term(Size - 1),
    case rand:uniform(4) of
        1 -> fun(X) -> {X, Y} end;
        2 -> fun lists:map/2;
        3 -> fun erlang:self/0;
        4 -> Z = rand:uniform(1000), fun(A, B) -> A + B + Z end
    end.

random_leaf_not_list() ->
    case random_leaf() of
        L when is_list(L) -> rand:uniform(1000);
        T -> T
    end.

random_leaf() ->
    case rand:uniform(22) of
        1 -> rand:uniform(256) - 1;
        2 -> rand:uniform(1 bsl 31) - (1 bsl 30);
        3 -> (rand:uniform(1 bsl 62) - (1 bsl 61)) * (1 bsl rand:uniform(70));
        4 -> -(1 bsl (rand:uniform(3000)));
        5 -> (rand:uniform() - 0.5) * math:pow(10, rand:uniform(600) - 300);
        6 -> random_atom();
        7 -> rand:bytes(rand:uniform(20) - 1);
        8 -> Bits = rand:uniform(7), B = rand:bytes(rand:uniform(5)), <<B/binary, 3:Bits>>;
        9 -> self();
        10 -> spawn(fun() -> ok end);
        11 -> make_ref();
        12 -> alias();
        13 -> hd(erlang:ports());
        14 -> [];
        15 -> [rand:uniform(256) - 1 || _ <- lists:seq(1, rand:uniform(10))];
        16 -> [rand:uniform(100000) || _ <- lists:seq(1, rand:uniform(5))];
        17 -> true;
        18 -> nil;
        19 -> 0.0;
        20 -> binary:copy(<<"x">>, rand:uniform(300));
        21 -> unicode:characters_to_binary("héllo ✓ " ++ integer_to_list(rand:uniform(99)));
        22 -> {}
    end.

random_atom() ->
    case rand:uniform(5) of
        1 -> ok;
        2 -> list_to_atom("atom_" ++ integer_to_list(rand:uniform(1000)));
        3 -> list_to_atom("ünïcødé_✓_" ++ integer_to_list(rand:uniform(50)));
        4 -> list_to_atom(lists:duplicate(rand:uniform(255), $a));
        5 -> list_to_atom(lists:duplicate(rand:uniform(100), 16#1F600))
    end.
