%% The load side of bench/resource_bench.py, run in a real BEAM client node.
-module(resource_bench).
-export([pairs/3, calls/3, make/3, writes/4]).

%% Concurrency processes each making and releasing resources for Millis: pairs done.
pairs(Node, Concurrency, Millis) ->
    run(Concurrency, Millis, fun() ->
        {ok, R} = gen_server:call({rustelixir, Node}, {sorted_set_new}),
        {ok, ok} = gen_server:call({rustelixir, Node}, {release, R})
    end).

%% The same number of calls without resources: two {add, 1, 2} per iteration.
calls(Node, Concurrency, Millis) ->
    run(Concurrency, Millis, fun() ->
        {ok, 3} = gen_server:call({rustelixir, Node}, {add, 1, 2}),
        {ok, 3} = gen_server:call({rustelixir, Node}, {add, 1, 2})
    end).

%% Count resources made by Concurrency processes (held by this process: they stay live).
make(Node, Count, Concurrency) ->
    Self = self(),
    Per = Count div Concurrency,
    Pids = [spawn_link(fun() ->
                [begin {ok, R} = gen_server:call({rustelixir, Node}, {sorted_set_new}),
                       {ok, ok} = gen_server:call({rustelixir, Node}, {share, R, Self}),
                       {ok, ok} = gen_server:call({rustelixir, Node}, {release, R}) end
                 || _ <- lists:seq(1, Per)],
                Self ! {made, self()} end) || _ <- lists:seq(1, Concurrency)],
    [receive {made, P} -> ok end || P <- Pids],
    Per * Concurrency.

%% Concurrency processes writing Size-byte chunks into one buffer (Mode = write) or echoing
%% them (Mode = echo, the baseline: the same bytes over the same wire) for Millis: bytes.
writes(Node, Mode, Concurrency, Millis) ->
    Size = 4096,
    {ok, Buf} = gen_server:call({rustelixir, Node}, {buffer_new, Size * Concurrency}),
    Chunk = binary:copy(<<7>>, Size),
    N = run_indexed(Concurrency, Millis, fun(I) ->
        case Mode of
            write -> {ok, ok} = gen_server:call({rustelixir, Node}, {buffer_write, Buf, I * Size, Chunk});
            echo -> {ok, _} = gen_server:call({rustelixir, Node}, {echo, Chunk})
        end
    end),
    gen_server:call({rustelixir, Node}, {release, Buf}),
    N * Size.

run(Concurrency, Millis, Fun) ->
    run_indexed(Concurrency, Millis, fun(_) -> Fun() end).

run_indexed(Concurrency, Millis, Fun) ->
    Self = self(),
    Deadline = erlang:monotonic_time(millisecond) + Millis,
    Pids = [spawn_link(fun() -> Self ! {done, self(), loop(Fun, I, Deadline, 0)} end)
            || I <- lists:seq(0, Concurrency - 1)],
    lists:sum([receive {done, P, C} -> C end || P <- Pids]).

loop(Fun, I, Deadline, Count) ->
    case erlang:monotonic_time(millisecond) < Deadline of
        true -> Fun(I), loop(Fun, I, Deadline, Count + 1);
        false -> Count
    end.
