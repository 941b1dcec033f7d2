"""Resource objects held by BEAM processes (shared/DESIGN.md section 2), against real
nodes: holders are the creating caller, whoever passes the reference in a call, and pids it
is shared with; the node monitors them, and the last one gone frees the object."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from beamnodes import TEST_NATIVES, DistClient, ServedNode, calling, client_fixture, node_fixture
from conftest import runtime_or_skip
from rustelixir import Atom

pytestmark = pytest.mark.beam

COOKIE = "rustelixir-resources-cookie"


node = node_fixture("resources-node", cookie=COOKIE, extra=["--module", TEST_NATIVES, "--module", "natives_fixture"])
client = client_fixture("resources-client", ping=True)


def info(client: DistClient) -> dict[Atom, object]:
    ok, value = client.eval("gen_server:call({rustelixir, Node}, info).")
    assert ok == Atom("ok")
    return value[Atom("resources")]  # type: ignore[no-any-return,index]


def live(client: DistClient, kind: str | None = None) -> int:
    resources = info(client)
    if kind is None:
        return resources[Atom("live")]  # type: ignore[no-any-return]
    by_type = resources[Atom("by_type")]
    return by_type.get(Atom(kind), {}).get(Atom("live"), 0)  # type: ignore[no-any-return,union-attr]


def dropped(client: DistClient) -> int:
    ok, n = client.eval("gen_server:call({rustelixir, Node}, {test_probes_dropped}).")
    return n  # type: ignore[no-any-return]


def wait_for(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(predicate())  # type: ignore[operator]


# Erlang helpers evaluated in the client: a process that runs Fun, then waits to be told to stop.
SPAWN_HOLDER = (
    "Holder = fun(F) -> Parent = self(), spawn(fun() -> R = F(), Parent ! {self(), R},"
    " receive stop -> ok end end) end,"
    "Result = fun(P) -> receive {P, R} -> R after 5000 -> timeout end end,"
)


def test_creator_and_user_hold_it_the_last_one_gone_frees_it(client: DistClient) -> None:
    start_live, start_dropped = live(client, "probe"), dropped(client)
    # A creates; B uses it (and so holds it); A exits: still alive; B exits: freed.
    client.eval(
        SPAWN_HOLDER + "A = Holder(fun() -> {ok, R} = gen_server:call({rustelixir, Node}, {test_probe_new}), R end),"
        "Ref = Result(A),"
        "B = Holder(fun() -> gen_server:call({rustelixir, Node}, {test_probe_use, Ref}) end),"
        "{ok, true} = Result(B),"
        "put(a, A), put(b, B), put(ref, Ref), ok."
    )
    assert live(client, "probe") == start_live + 1
    a_then_b_exit_and_the_probe_is_freed(client, start_live, start_dropped)


def a_then_b_exit_and_the_probe_is_freed(client: DistClient, start_live: int, start_dropped: int) -> None:
    """`get(a)` exits: the probe `get(ref)` lives on, held by `get(b)`; B exits: it is
    freed, its destructor ran (in the crate that made it), and its reference is dead."""
    client.eval("get(a) ! stop, ok.")
    time.sleep(0.5)
    assert live(client, "probe") == start_live + 1  # B still holds it
    assert client.eval("gen_server:call({rustelixir, Node}, {resource_info, get(ref)}).")[0] == Atom("ok")
    assert dropped(client) == start_dropped
    client.eval("get(b) ! stop, ok.")
    assert wait_for(lambda: live(client, "probe") == start_live)
    assert dropped(client) == start_dropped + 1  # the destructor ran
    assert client.eval("gen_server:call({rustelixir, Node}, {test_probe_use, get(ref)}).") == (
        Atom("error"),
        (Atom("badresource"), client.eval("get(ref).")),
    )


def test_a_resource_of_a_crate_of_its_own_lives_in_the_nodes_table(client: DistClient) -> None:
    # The test natives are a crate built as its own extension with its own copy of
    # rustelixir-nif, as a user's crate is: its Probe goes into the node's one table through
    # the host of each call, and is dropped by that crate once its last holder exits.
    start_live, start_dropped = live(client, "probe"), dropped(client)
    # A creates it and passes it back in a later call; it is shared with B, which uses it.
    info_map, a, b = client.eval(
        SPAWN_HOLDER + "Call = fun(Req) -> gen_server:call({rustelixir, Node}, Req) end,"
        "A = Holder(fun() -> {ok, R} = Call({test_probe_new}), {ok, true} = Call({test_probe_use, R}), R end),"
        "Ref = Result(A),"
        "B = Holder(fun() -> receive go -> Call({test_probe_use, Ref}) end end),"
        "{ok, ok} = Call({share, Ref, B}), B ! go, {ok, true} = Result(B),"
        "{ok, Info} = Call({resource_info, Ref}),"
        "put(a, A), put(b, B), put(ref, Ref), {Info, A, B}."
    )
    assert info_map[Atom("type")] == Atom("probe")
    assert sorted(map(repr, info_map[Atom("holders")])) == sorted(map(repr, [a, b]))
    assert live(client, "probe") == start_live + 1
    a_then_b_exit_and_the_probe_is_freed(client, start_live, start_dropped)


def test_types_of_two_crates_are_told_apart(client: DistClient) -> None:
    # A probe (the test crate's) where a buffer (the node's built-in) is expected, and back.
    probe_as_buffer, buffer_as_probe = client.eval(
        "{ok, P} = gen_server:call({rustelixir, Node}, {test_probe_new}),"
        "{ok, Buf} = gen_server:call({rustelixir, Node}, {buffer_new, 4}),"
        "R = {gen_server:call({rustelixir, Node}, {buffer_size, P}),"
        "     gen_server:call({rustelixir, Node}, {test_probe_use, Buf})},"
        "gen_server:call({rustelixir, Node}, {release, P}),"
        "gen_server:call({rustelixir, Node}, {release, Buf}), R."
    )
    assert probe_as_buffer == (Atom("error"), (Atom("badarg"), 1, b"expected a buffer resource, got a probe resource"))
    assert buffer_as_probe == (Atom("error"), (Atom("badarg"), 1, b"expected a probe resource, got a buffer resource"))


def test_resource_info_reports_type_holders_and_size(client: DistClient) -> None:
    result = client.eval(
        "{ok, Buf} = gen_server:call({rustelixir, Node}, {buffer_new, 1000}),"
        "{ok, Info} = gen_server:call({rustelixir, Node}, {resource_info, Buf}),"
        "gen_server:call({rustelixir, Node}, {release, Buf}),"
        "{Info, self()}."
    )
    info_map, me = result
    assert info_map[Atom("type")] == Atom("buffer")
    assert info_map[Atom("holders")] == [me]
    assert info_map[Atom("size")] == 1000


def test_release_twice_is_badresource(client: DistClient) -> None:
    assert client.eval(
        "{ok, R} = gen_server:call({rustelixir, Node}, {test_probe_new}),"
        "{ok, ok} = gen_server:call({rustelixir, Node}, {release, R}),"
        "gen_server:call({rustelixir, Node}, {release, R}) =:= {error, {badresource, R}}."
    ) is True


def test_foreign_and_unknown_references_are_badresource(client: DistClient) -> None:
    assert client.eval(
        "R = make_ref(), gen_server:call({rustelixir, Node}, {buffer_size, R}) =:= {error, {badresource, R}}."
    ) is True


def test_share_with_a_pid_on_a_second_node_freed_when_it_disconnects(client: DistClient, node: ServedNode, tmp_path: Path) -> None:
    runtime = runtime_or_skip("otp25")
    other = DistClient(runtime.erl, tmp_path, cookie=COOKIE, erlc=runtime.erlc)
    start = live(client, "probe")
    try:
        other.set("Node", node.atom)
        other.eval("pong = net_adm:ping(Node), register(keeper, self()), ok.")
        client.set("Keeper", other.eval("self()."))
        client.eval(
            "{ok, R} = gen_server:call({rustelixir, Node}, {test_probe_new}),"
            "{ok, ok} = gen_server:call({rustelixir, Node}, {share, R, Keeper}),"
            "{ok, ok} = gen_server:call({rustelixir, Node}, {release, R}), put(shared, R), ok."
        )
        time.sleep(0.3)
        assert live(client, "probe") == start + 1  # the other node's process holds it
    finally:
        other.close()  # its node goes away
    assert wait_for(lambda: live(client, "probe") == start)


def test_share_with_an_unconnected_node_is_refused(client: DistClient) -> None:
    from rustelixir import Pid

    client.set("Far", Pid("nowhere@127.0.0.1", 1, 0, 1))
    result = client.eval(
        "{ok, R} = gen_server:call({rustelixir, Node}, {test_probe_new}),"
        "Reply = gen_server:call({rustelixir, Node}, {share, R, Far}),"
        "gen_server:call({rustelixir, Node}, {release, R}), Reply."
    )
    assert result[0] == Atom("error") and result[1][0] == Atom("badarg") and b"not connected" in result[1][2]


def test_10000_resources_from_100_short_lived_processes_are_all_freed(client: DistClient, node: ServedNode) -> None:
    def rss_kib() -> int:
        for line in Path(f"/proc/{node.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def make_10000_probes_from_100_processes() -> None:
        client.eval(
            "Self = self(),"
            "Pids = [spawn(fun() -> [{ok, _} = gen_server:call({rustelixir, Node}, {test_probe_new}) || _ <- lists:seq(1, 100)],"
            "                       Self ! {made, self()} end) || _ <- lists:seq(1, 100)],"
            "[receive {made, P} -> ok end || P <- Pids], ok.",
            timeout=120,
        )

    start_live, start_dropped = live(client, "probe"), dropped(client)
    make_10000_probes_from_100_processes()
    rss_after_first = rss_kib()
    assert wait_for(lambda: live(client, "probe") == start_live, timeout=15)
    assert dropped(client) == start_dropped + 10_000
    # A second round costs no more memory than the first: nothing of it stayed behind.
    make_10000_probes_from_100_processes()
    assert wait_for(lambda: live(client, "probe") == start_live, timeout=15)
    assert rss_kib() < rss_after_first + 8 * 1024
    assert info(client)[Atom("holders")] <= 2  # the test's long-lived processes at most


def test_100000_concurrent_operations_on_one_buffer(client: DistClient) -> None:
    # 50 processes, 2,000 writes each into their own 8-byte slot of one shared buffer, then
    # the content is exactly what the last write of each put there.
    assert client.eval(
        "{ok, Buf} = gen_server:call({rustelixir, Node}, {buffer_new, 400}),"
        "Self = self(),"
        "Pids = [spawn(fun() ->"
        "   [{ok, ok} = gen_server:call({rustelixir, Node}, {buffer_write, Buf, I * 8, <<I:32, J:32>>})"
        "    || J <- lists:seq(1, 2000)],"
        "   Self ! {done, self()} end) || I <- lists:seq(0, 49)],"
        "[receive {done, P} -> ok end || P <- Pids],"
        "{ok, Bin} = gen_server:call({rustelixir, Node}, {buffer_to_binary, Buf}),"
        "gen_server:call({rustelixir, Node}, {release, Buf}),"
        "Bin =:= << <<I:32, 2000:32>> || I <- lists:seq(0, 49) >>.",
        timeout=300,
    ) is True


def test_python_objects_as_resources(client: DistClient) -> None:
    closed_before = client.eval("{ok, N} = gen_server:call({rustelixir, Node}, counters_closed), N.")
    start = live(client, "python")
    result = client.eval(
        SPAWN_HOLDER + "A = Holder(fun() -> {ok, R} = gen_server:call({rustelixir, Node}, counter_new), R end),"
        "Ref = Result(A),"
        "B = Holder(fun() -> [gen_server:call({rustelixir, Node}, {counter_incr, Ref}) || _ <- [1, 2]] end),"
        "Counts = Result(B),"
        "{ok, Buf} = gen_server:call({rustelixir, Node}, {buffer_new, 4}),"
        "Wrong = gen_server:call({rustelixir, Node}, {counter_incr, Buf}),"
        "gen_server:call({rustelixir, Node}, {release, Buf}),"
        "A ! stop, B ! stop, put(counter, Ref), {Counts, Wrong}."
    )
    counts, wrong = result
    assert counts == [(Atom("ok"), 1), (Atom("ok"), 2)]
    assert wrong[0] == Atom("error") and wrong[1][0] == Atom("badarg") and b"python resource" in wrong[1][2]
    assert wait_for(lambda: live(client, "python") == start)
    assert wait_for(
        lambda: client.eval("{ok, N} = gen_server:call({rustelixir, Node}, counters_closed), N.") == closed_before + 1
    )
    assert client.eval("gen_server:call({rustelixir, Node}, {counter_incr, get(counter)}).") == (
        Atom("error"),
        (Atom("badresource"), client.eval("get(counter).")),
    )


def test_limits_answer_overloaded_and_the_node_stays_healthy(tmp_path: Path) -> None:
    runtime = runtime_or_skip("otp25")
    limited = ServedNode(
        tmp_path, cookie=COOKIE, extra=["--max-resources", "3", "--max-holders", "2", "--max-buffer-bytes", "100"]
    )
    c = DistClient(runtime.erl, tmp_path / "client", cookie=COOKIE, erlc=runtime.erlc)
    try:
        c.set("Node", limited.atom)
        result = c.eval(
            "Rx = {rustelixir, Node},"
            "Sets = [element(2, {ok, _} = gen_server:call(Rx, {sorted_set_new})) || _ <- [1, 2, 3]],"
            "Full = gen_server:call(Rx, {sorted_set_new}),"
            "[S1 | _] = Sets,"
            "Other = spawn(fun() -> receive stop -> ok end end),"
            "Third = spawn(fun() -> receive stop -> ok end end),"
            "{ok, ok} = gen_server:call(Rx, {share, S1, Other}),"
            "TooMany = gen_server:call(Rx, {share, S1, Third}),"
            "[{ok, ok} = gen_server:call(Rx, {release, S}) || S <- Sets],"
            "BigBuffer = gen_server:call(Rx, {buffer_new, 200}),"
            "{ok, Small} = gen_server:call(Rx, {buffer_new, 60}),"
            "Second = gen_server:call(Rx, {buffer_new, 60}),"
            "{ok, ok} = gen_server:call(Rx, {release, Small}),"
            "{ok, Again} = gen_server:call(Rx, {buffer_new, 60}),"
            "{Full, TooMany, BigBuffer, Second, gen_server:call(Rx, {add, 1, 1}), is_reference(Again)}."
        )
        overloaded = (Atom("error"), Atom("overloaded"))
        assert result == (overloaded, overloaded, overloaded, overloaded, (Atom("ok"), 2), True)
    finally:
        c.close()
        limited.stop()


def test_a_cast_that_makes_a_resource_makes_its_sender_the_holder(client: DistClient) -> None:
    start = live(client, "probe")
    client.eval(
        "P = spawn(fun() -> gen_server:cast({rustelixir, Node}, {test_probe_new}), receive stop -> ok end end),"
        "put(caster, P), ok."
    )
    assert wait_for(lambda: live(client, "probe") == start + 1)
    client.eval("get(caster) ! stop, ok.")
    assert wait_for(lambda: live(client, "probe") == start)


# --- Resources that monitor processes (ResourceArc::monitor and Resource::down) -------------

# A process that waits to be told to stop; a watcher resource of the test crate (its `down`
# sends {down, Pid, Monitor} to whoever made it), held by this client's process.
WATCH = (
    "Waiter = fun() -> spawn(fun() -> receive stop -> ok end end) end,"
    "Call = fun(Req) -> gen_server:call({rustelixir, Node}, Req) end,"
    "Downs = fun D(Acc) -> receive {down, _, _} = M -> D([M | Acc]) after 300 -> lists:reverse(Acc) end end,"
)


def test_a_resource_hears_of_the_exit_of_a_process_it_monitors(client: DistClient) -> None:
    got = client.eval(
        WATCH + "{ok, W} = Call({test_watcher_new, self()}),"
        "P = Waiter(), {ok, M} = Call({test_watch, W, P}),"
        "[] = Downs([]),"  # nothing before it exits
        "P ! stop, Got = Downs([]), Call({release, W}), {P, M, Got}."
    )
    pid, monitor, downs = got
    assert downs == [(Atom("down"), pid, monitor)]


def test_a_process_already_gone_is_down_at_once_and_a_removed_monitor_never_fires(client: DistClient) -> None:
    got = client.eval(
        WATCH + "{ok, W} = Call({test_watcher_new, self()}),"
        "Dead = Waiter(), Dead ! stop, timer:sleep(50),"
        "{ok, M1} = Call({test_watch, W, Dead}), First = Downs([]),"
        "P = Waiter(), {ok, M2} = Call({test_watch, W, P}),"
        "{ok, Other} = Call({test_watcher_new, self()}), {ok, false} = Call({test_unwatch, Other, M2}),"  # not its monitor
        "{ok, true} = Call({test_unwatch, W, M2}), {ok, false} = Call({test_unwatch, W, M2}), Call({release, Other}),"
        "P ! stop, Second = Downs([]), Call({release, W}), {Dead, M1, First, Second}."
    )
    dead, m1, first, second = got
    assert first == [(Atom("down"), dead, m1)]
    assert second == []


def test_a_freed_resource_hears_of_nothing(client: DistClient) -> None:
    # The watcher is made and held by H alone; H exits (the watcher is freed), then the
    # watched process exits: no down, and the monitor is gone.
    got = client.eval(
        WATCH + SPAWN_HOLDER + "Me = self(), P = Waiter(),"
        "H = Holder(fun() -> {ok, W} = Call({test_watcher_new, Me}), {ok, M} = Call({test_watch, W, P}), {W, M} end),"
        "{W, M} = Result(H), H ! stop, timer:sleep(200),"
        "P ! stop, {Downs([]), Call({test_unwatch, W, M})}."
    )
    downs, unwatch = got
    assert downs == []
    assert unwatch[0] == Atom("error") and unwatch[1][0] == Atom("badresource")


def test_a_monitored_process_on_a_node_that_disconnects_is_down(client: DistClient, node: ServedNode, tmp_path: Path) -> None:
    with calling(runtime_or_skip("otp25"), tmp_path, node, ping=True) as other:
        far = other.eval("self().")
        client.set("Far", far)
        client.eval(WATCH + "{ok, W} = Call({test_watcher_new, self()}), put(w, W), {ok, M} = Call({test_watch, W, Far}), put(m, M), ok.")
    downs = client.eval(WATCH + "R = Downs([]), timer:sleep(0), R.", timeout=30)
    if not downs:  # the node's disconnect can take a moment to be seen
        downs = client.eval(WATCH + "receive {down, _, _} = D -> [D] after 5000 -> [] end.")
    assert downs == [(Atom("down"), far, client.eval("get(m)."))]
    client.eval("gen_server:call({rustelixir, Node}, {release, get(w)}).")
