"""The node's membership in a BEAM `:pg` scope, so `:pg.get_members(scope, group)` on the
nodes it is connected to lists its `rustelixir` server.

A `:pg` scope process finds its peers by `nodeup` and `nodes()`, which never name a hidden
node; so this side starts the exchange, in pg's own message shapes (kernel's `pg.erl`, the
same from OTP 23 to 28):

    us -> {Scope, Node}     {discover, Us}
    scope -> us             {'$gen_cast', {sync, Scope, [{Group, [Pid]}]}}    (its members)
    scope -> us             {discover, Scope} (or {discover, Scope, Features}, OTP 26+)
    us -> scope             {'$gen_cast', {sync, Us, [{Group, [Server]}]}}    (ours: it adds them)
    us -> scope             {leave, Us, Server, [Group]}                      (at shutdown)

The scope monitors us (so our members leave when the connection goes), and we monitor it:
when it restarts, we discover the new one. A scope that is not there yet (`:pg` is started
by the application, maybe after we connected) is asked again, backing off, for as long as
the connection lasts. A malformed message crashes a real scope process, so nothing else is
ever sent to one; what a scope (or anyone) sends us that is not one of these shapes is
dropped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from rustelixir.protocol import control as c
from rustelixir.terms import Atom, Pid, Reference

if TYPE_CHECKING:
    from rustelixir.transport import DistProtocol

from rustelixir.node import GEN_CAST, Node, Process

__all__ = ["PgMembership", "DEFAULT_SCOPE"]

log = logging.getLogger("rustelixir.pg")

DEFAULT_SCOPE = "pg"
DISCOVER = Atom("discover")
SYNC = Atom("sync")
LEAVE = Atom("leave")
NOCONNECTION = Atom("noconnection")
# Seconds between discovers to a node whose scope has not answered (yet): backing off to the
# last, which is then kept while the connection lasts.
RETRY_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class PgMembership(Process):
    """`member` (the server's pid) in `groups` of the `:pg` scope `scope`, on every node
    this node is connected to that runs that scope."""

    def __init__(self, node: Node, scope: str, groups: list[str], member: Pid) -> None:
        super().__init__(node)
        self.scope = Atom(scope)
        self.groups = [Atom(g) for g in dict.fromkeys(groups)]
        self.member = member
        # Per connected node: its scope process, once it answered, and our monitor of it (a
        # node has one scope process: one heard from later replaces it).
        self.scopes: dict[str, tuple[Pid, Reference]] = {}
        self._retries: dict[str, tuple[int, asyncio.TimerHandle]] = {}
        node.add_peer_watcher(self)
        for proto in list(node.peers.values()):
            self.peer_up(proto)

    # --- Connections ---------------------------------------------------------------------

    def peer_up(self, proto: DistProtocol) -> None:
        if proto.peer_name is not None:
            self._discover(proto.peer_name, 0)

    def peer_down(self, peer_name: str) -> None:
        self.scopes.pop(peer_name, None)  # and its monitor, gone with the connection
        self._cancel_retry(peer_name)

    def _discover(self, peer_name: str, attempt: int) -> None:
        """Asks `peer_name`'s scope for an exchange, and again later until one answers."""
        self._retries.pop(peer_name, None)
        proto = self.node.peer_for(peer_name)
        if proto is None or peer_name in self.scopes:
            return
        proto.send(c.RegSend(from_pid=self.pid, to_name=self.scope, message=(DISCOVER, self.pid)))
        assert self.node.loop is not None
        delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
        timer = self.node.loop.call_later(delay, self._discover, peer_name, attempt + 1)
        self._retries[peer_name] = (attempt, timer)

    def _cancel_retry(self, peer_name: str) -> None:
        entry = self._retries.pop(peer_name, None)
        if entry is not None:
            entry[1].cancel()

    # --- Messages ------------------------------------------------------------------------

    def deliver(self, message: Any, sender: Pid | None, peer: DistProtocol | None) -> None:
        if peer is None or type(message) is not tuple:
            return
        if len(message) in (2, 3) and message[0] == DISCOVER and self._from_peer(message[1], peer):
            # A scope asks for our members (in answer to ours, or on its own): tell it.
            scope: Pid = message[1]
            ours = [(group, [self.member]) for group in self.groups]
            peer.send(c.Send(to_pid=scope, message=(GEN_CAST, (SYNC, self.pid, ours))))
            self._known(scope, peer)
        elif len(message) == 2 and message[0] == GEN_CAST and type(message[1]) is tuple:
            body = message[1]
            if len(body) == 3 and body[0] == SYNC and self._from_peer(body[1], peer):
                self._known(body[1], peer)
        # join/leave/update of the scope's own members, and anything else: nothing to do.

    def _from_peer(self, scope: Any, peer: DistProtocol) -> bool:
        """A scope pid of the node this came from (no peer speaks for another node's)."""
        return isinstance(scope, Pid) and scope.node.name == peer.peer_name

    def _known(self, scope: Pid, peer: DistProtocol) -> None:
        name = scope.node.name
        known = self.scopes.get(name)
        if known is not None and known[0] == scope:
            return
        self._cancel_retry(name)
        if known is not None:
            # The scope heard from before is replaced; its monitor goes (else a peer naming
            # ever new "scopes" would grow them without bound).
            peer.send(c.DemonitorP(from_pid=self.pid, to_proc=known[0], ref=known[1]))
        ref = self.node.make_ref()
        self.scopes[name] = (scope, ref)
        peer.send(c.MonitorP(from_pid=self.pid, to_proc=scope, ref=ref))
        log.info("in :pg scope %s on %s: %s", self.scope.name, name, ", ".join(g.name for g in self.groups),
                 extra={"peer": name, "scope": self.scope.name})  # fmt: skip

    def monitor_exit(self, ref: Reference, reason: Any, from_proc: Any, peer: DistProtocol) -> None:
        known = self.scopes.get(peer.peer_name or "")
        if known is None or known != (from_proc, ref):
            return  # not the scope we watch on the node this came from
        scope = known[0]
        del self.scopes[scope.node.name]
        if reason != NOCONNECTION:
            # The scope process restarted (or will): join the new one when it is there.
            log.info(":pg scope %s on %s exited (%r): rejoining", self.scope.name, scope.node.name, reason,
                     extra={"peer": scope.node.name, "scope": self.scope.name})  # fmt: skip
            self._cancel_retry(scope.node.name)
            self._discover(scope.node.name, 0)

    # --- Shutdown ------------------------------------------------------------------------

    def leave(self) -> None:
        """Leaves every scope joined (before the node closes its connections: if a leave is
        lost with them, the scope's monitor of us removes our members all the same)."""
        self.node.remove_peer_watcher(self)
        for name in list(self._retries):
            self._cancel_retry(name)
        for name, (scope, _) in list(self.scopes.items()):
            proto = self.node.peer_for(name)
            if proto is not None:
                proto.send(c.Send(to_pid=scope, message=(LEAVE, self.pid, self.member, self.groups)))
        self.scopes.clear()
        self.node.exit_process(self)
