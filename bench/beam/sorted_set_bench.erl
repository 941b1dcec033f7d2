%% The SortedSet benchmark's workload, run inside a real BEAM node (the caller) two ways:
%% - gb: a :gb_sets set held in the caller's own process (the baseline: no messages at all);
%% - ours: a SortedSet resource on the rustelixir node, every operation one
%%   gen_server:call({rustelixir, Node}, {sorted_set_..., Set, ...}).
%%
%% Members are the even integers 0, 2, ..., 2N-2, added in a shuffled order (the same
%% seed on both sides). Timed phases, each over the same pre-drawn keys:
%%   add_many  build the set from empty in batches of 1,000
%%             (gb: gb_sets:union(S, gb_sets:from_list(Batch)))
%%   add       K odd numbers (absent members), one call each
%%   remove    the same K again, so the size is back to N
%%   index_of  K random members. gb_sets has no index: the baseline walks an iterator from
%%             the smallest member and counts, O(index) per lookup
%%   slice     K windows of 100 members from a random index. gb_sets has no index either:
%%             the baseline is what a gb_sets user does, gb_sets:iterator_from(Element)
%%             and take 100 (it is handed the start element, 2 * Start, for free)
%%   size      K calls (ours: the round-trip floor of one call; gb: gb_sets:size)
%% A phase stops early when its time budget is spent (the O(index) baseline at 1,000,000
%% members); the reply says how many operations were done in how many microseconds.
-module(sorted_set_bench).
-export([run/5]).

-define(BATCH, 1000).

%% Who: gb | {ours, Node}. Returns [{Phase, Ops, Micros}].
run(Who, N, K, BudgetMs, Seed) ->
    rand:seed(exsss, {Seed, Seed * 7 + 1, Seed * 13 + 2}),
    Members = shuffle([I * 2 || I <- lists:seq(0, N - 1)]),
    Odds = [rand:uniform(N) * 2 - 1 || _ <- lists:seq(1, K)],
    Picks = [(rand:uniform(N) - 1) * 2 || _ <- lists:seq(1, K)],
    Starts = [rand:uniform(max(1, N - 100)) - 1 || _ <- lists:seq(1, K)],
    Batches = chunks(Members, ?BATCH),
    Budget = BudgetMs * 1000,
    S0 = new(Who),
    %% The building and the add/remove round trip run to the end: what follows needs
    %% exactly the even members.
    {S1, AddMany} = timed_fold(fun(B, S) -> add_many(Who, S, B) end, S0, Batches, infinity),
    N = size(Who, S1),
    {S2, Add} = timed_fold(fun(X, S) -> add(Who, S, X) end, S1, Odds, infinity),
    {S3, Remove} = timed_fold(fun(X, S) -> remove(Who, S, X) end, S2, Odds, infinity),
    N = size(Who, S3),
    {_, IndexOf} = timed_fold(fun(X, S) -> X = 2 * index_of(Who, S, X), S end, S3, Picks, Budget),
    {_, Slice} = timed_fold(fun(St, S) -> [St2 | _] = slice(Who, S, St), St2 = 2 * St, S end, S3, Starts, Budget),
    {_, Size} = timed_fold(fun(_, S) -> size(Who, S), S end, S3, Picks, Budget),
    release(Who, S3),
    [{add_many, AddMany}, {add, Add}, {remove, Remove}, {index_of, IndexOf}, {slice, Slice}, {size, Size}].

%% --- the two implementations ---------------------------------------------------------------

call(Node, Request) ->
    {ok, Value} = gen_server:call({rustelixir, Node}, Request, 120000),
    Value.

new(gb) -> gb_sets:new();
new({ours, Node}) -> call(Node, sorted_set_new).

add_many(gb, S, Batch) -> gb_sets:union(S, gb_sets:from_list(Batch));
add_many({ours, Node}, S, Batch) -> call(Node, {sorted_set_add_many, S, Batch}), S.

add(gb, S, X) -> gb_sets:add(X, S);
add({ours, Node}, S, X) -> call(Node, {sorted_set_add, S, X}), S.

remove(gb, S, X) -> gb_sets:delete_any(X, S);
remove({ours, Node}, S, X) -> call(Node, {sorted_set_remove, S, X}), S.

index_of(gb, S, X) -> walk_to(gb_sets:next(gb_sets:iterator(S)), X, 0);
index_of({ours, Node}, S, X) -> call(Node, {sorted_set_index_of, S, X}).

walk_to(none, _, _) -> nil;
walk_to({Y, _}, X, I) when Y == X -> I;
walk_to({_, Iter}, X, I) -> walk_to(gb_sets:next(Iter), X, I + 1).

slice(gb, S, Start) -> take(gb_sets:next(gb_sets:iterator_from(2 * Start, S)), 100);
slice({ours, Node}, S, Start) -> call(Node, {sorted_set_slice, S, Start, 100}).

take(none, _) -> [];
take(_, 0) -> [];
take({Y, Iter}, K) -> [Y | take(gb_sets:next(Iter), K - 1)].

size(gb, S) -> gb_sets:size(S);
size({ours, Node}, S) -> call(Node, {sorted_set_size, S}).

release(gb, _) -> ok;
release({ours, Node}, S) -> call(Node, {release, S}).

%% --- helpers ---------------------------------------------------------------------------------

%% Folds F over Items until they are done or BudgetUs (or infinity) has passed:
%% {Acc, {Ops, Micros}}.
timed_fold(F, Acc0, Items, BudgetUs) ->
    T0 = erlang:monotonic_time(microsecond),
    Deadline = case BudgetUs of infinity -> infinity; _ -> T0 + BudgetUs end,
    timed_fold(F, Acc0, Items, T0, Deadline, 0).

timed_fold(_, Acc, [], T0, _, Ops) -> {Acc, {Ops, erlang:monotonic_time(microsecond) - T0}};
timed_fold(F, Acc, [X | Rest], T0, Deadline, Ops) ->
    Acc1 = F(X, Acc),
    case Deadline =/= infinity andalso Ops band 15 =:= 15 andalso erlang:monotonic_time(microsecond) > Deadline of
        true -> {Acc1, {Ops + 1, erlang:monotonic_time(microsecond) - T0}};
        false -> timed_fold(F, Acc1, Rest, T0, Deadline, Ops + 1)
    end.

shuffle(L) -> [X || {_, X} <- lists:sort([{rand:uniform(), X} || X <- L])].

chunks(L, K) -> chunks(L, K, K, [], []).

chunks([], _, _, [], Done) -> lists:reverse(Done);
chunks([], _, _, Cur, Done) -> lists:reverse([lists:reverse(Cur) | Done]);
chunks(L, K, 0, Cur, Done) -> chunks(L, K, K, [], [lists:reverse(Cur) | Done]);
chunks([X | Rest], K, Left, Cur, Done) -> chunks(Rest, K, Left - 1, [X | Cur], Done).
