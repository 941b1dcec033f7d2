%% A real distributed Erlang node driven by the Python tests: over stdin/stdout ({packet, 4}
%% frames of term_to_binary'd requests) it evaluates Erlang expressions and answers with
%% their value, so tests can call the rustelixir node the way any BEAM process would.
-module(dist_client).
-export([main/0]).

main() ->
    Port = open_port({fd, 0, 1}, [binary, {packet, 4}, eof]),
    loop(Port, erl_eval:new_bindings()).

loop(Port, Bindings) ->
    receive
        {Port, {data, Request}} ->
            {Reply, Bindings1} =
                try handle(binary_to_term(Request), Bindings)
                catch Class:Reason:Stack -> {{error, {Class, Reason, Stack}}, Bindings}
                end,
            Port ! {self(), {command, term_to_binary(Reply)}},
            loop(Port, Bindings1);
        {Port, eof} ->
            halt(0)
    end.
%% Other messages stay in the mailbox: a later eval may `receive` them.

%% {eval, Source}: the value of the last expression, evaluated with the variables bound by
%% {set, Name, Value} (a term sent from Python); what an eval binds is forgotten after it.
handle({eval, Source}, Bindings) ->
    {ok, Tokens, _} = erl_scan:string(unicode:characters_to_list(Source)),
    {ok, Exprs} = erl_parse:parse_exprs(Tokens),
    {value, Value, _} = erl_eval:exprs(Exprs, Bindings),
    {{ok, Value}, Bindings};
handle({set, Name, Value}, Bindings) ->
    {{ok, ok}, erl_eval:add_binding(Name, Value, Bindings)};
handle(ping, Bindings) ->
    {{ok, node()}, Bindings}.
