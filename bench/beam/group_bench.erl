%% The load of the group benchmark, in a real BEAM node: Concurrency processes calling
%% the members of a :pg group for Millis, each call to a member picked at random from
%% pg:get_members/2 (what a BEAM caller without the Elixir client does); the number of
%% calls answered.
-module(group_bench).
-export([throughput/5]).

throughput(Scope, Group, Request, Concurrency, Millis) ->
    Self = self(),
    Deadline = erlang:monotonic_time(millisecond) + Millis,
    Pids = [spawn_link(fun() -> Self ! {done, self(), loop(Scope, Group, Request, Deadline, 0)} end)
            || _ <- lists:seq(1, Concurrency)],
    lists:sum([receive {done, P, Count} -> Count end || P <- Pids]).

loop(Scope, Group, Request, Deadline, Count) ->
    case erlang:monotonic_time(millisecond) < Deadline of
        true ->
            Members = pg:get_members(Scope, Group),
            Member = lists:nth(rand:uniform(length(Members)), Members),
            {ok, _} = gen_server:call(Member, Request, 30000),
            loop(Scope, Group, Request, Deadline, Count + 1);
        false ->
            Count
    end.
