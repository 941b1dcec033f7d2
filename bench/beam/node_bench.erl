%% Both sides of the node benchmark, in real BEAM nodes:
%% - the baseline server: a plain gen_server answering {add, A, B}, {echo, X} and
%%   {sleep, Ms} the way the rustelixir node does ({ok, Value}; {ok, ok} after Ms
%%   milliseconds for sleep), registered as `bench_server` on a second BEAM node;
%% - the load: sequential latency and concurrent throughput of gen_server:call from the
%%   client node, against either server.
-module(node_bench).
-behaviour(gen_server).
-export([start_server/0, latency/3, erpc_latency/4, throughput/4, init/1, handle_call/3, handle_cast/2]).

start_server() ->
    {ok, Pid} = gen_server:start({local, bench_server}, ?MODULE, [], []),
    unlink(Pid),
    Pid.

init([]) -> {ok, nostate}.
handle_call({add, A, B}, _From, S) -> {reply, {ok, A + B}, S};
handle_call({echo, X}, _From, S) -> {reply, {ok, X}, S};
handle_call({sleep, Ms}, _From, S) -> timer:sleep(Ms), {reply, {ok, ok}, S}.
handle_cast(_, S) -> {noreply, S}.

%% N sequential calls; the latencies in microseconds, sorted.
latency(Target, Request, N) ->
    lists:sort([begin
                    T0 = erlang:monotonic_time(microsecond),
                    {ok, _} = gen_server:call(Target, Request, 120000),
                    erlang:monotonic_time(microsecond) - T0
                end || _ <- lists:seq(1, N)]).

%% N sequential erpc:call(Node, Module, Fun, Args) (a distributed spawn each); the
%% latencies in microseconds, sorted.
erpc_latency(Node, {Module, Fun}, Args, N) ->
    lists:sort([begin
                    T0 = erlang:monotonic_time(microsecond),
                    _ = erpc:call(Node, Module, Fun, Args, 120000),
                    erlang:monotonic_time(microsecond) - T0
                end || _ <- lists:seq(1, N)]).

%% Concurrency processes calling in a loop for Millis; the number of calls answered.
throughput(Target, Request, Concurrency, Millis) ->
    Self = self(),
    Deadline = erlang:monotonic_time(millisecond) + Millis,
    Pids = [spawn_link(fun() -> Self ! {done, self(), loop(Target, Request, Deadline, 0)} end)
            || _ <- lists:seq(1, Concurrency)],
    lists:sum([receive {done, P, Count} -> Count end || P <- Pids]).

loop(Target, Request, Deadline, Count) ->
    case erlang:monotonic_time(millisecond) < Deadline of
        true ->
            {ok, _} = gen_server:call(Target, Request, 30000),
            loop(Target, Request, Deadline, Count + 1);
        false ->
            Count
    end.
