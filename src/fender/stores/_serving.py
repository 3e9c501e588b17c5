"""Is Redis serving? The one question the store and the rate limiter ask, and how shells ask.

A server (standalone, or the master Sentinel names) is asked ``PING``. A cluster is not:
redis-py's cluster client sends ``PING`` to one node, its default node (the owner of slot 0),
so any live node answers for the whole cluster while another shard is down. A cluster is
asked ``CLUSTER INFO`` on every primary the client knows, and it serves when every one of them
answers and reports ``cluster_state:ok``. Both halves matter: past ``cluster-node-timeout``
with ``cluster-require-full-coverage yes`` every node reports ``fail``; with ``no`` the
survivors report ``ok``, and only the lost primary's silence tells.

The question is a command like the shells' others (an :data:`~fender.stores._commands.Op`),
and its answer is judged by a pure method (:meth:`ServingCheck.verify`): the sync and the
asyncio shells share both, and run them in their flows (see :mod:`fender.stores._commands`).

Example:
    >>> check = ServingCheck(cluster=True)
    >>> check.command
    ('execute_command', ('CLUSTER INFO',), {'target_nodes': 'primaries'})
    >>> check.verify({"10.0.0.1:6379": {"cluster_state": "ok"}})
    >>> check.verify({"10.0.0.1:6379": {"cluster_state": "fail"}})
    Traceback (most recent call last):
    ...
    redis.exceptions.ClusterDownError: cluster_state is not ok on 10.0.0.1:6379
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any, Final

from fender.stores._clients import is_cluster
from fender.stores._commands import Op

__all__ = ["CLUSTER_INFO", "PING", "ServingCheck"]

PING: Final[Op] = ("ping", (), {})
"""The question for a server."""
CLUSTER_INFO: Final[Op] = (
    "execute_command",
    ("CLUSTER INFO",),
    # redis-py's node flag (RedisCluster.PRIMARIES, the same string on the sync and the asyncio
    # client), spelled here so that this module loads without redis-py.
    {"target_nodes": "primaries"},
)
"""The question for a cluster: ``CLUSTER INFO`` on every primary (one reply per node)."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ServingCheck:
    """The question "is Redis serving?" for one kind of client, and the judge of the answer.

    Args:
        cluster: Ask a cluster (every primary) rather than a server.
    """

    cluster: bool = False

    @classmethod
    def for_client(cls, client: object) -> ServingCheck:
        """The check that fits ``client`` (see :func:`is_cluster`)."""
        return cls(cluster=is_cluster(client))

    @property
    def command(self) -> Op:
        """What to send: :data:`PING`, or :data:`CLUSTER_INFO` on a cluster."""
        return CLUSTER_INFO if self.cluster else PING

    def verify(self, reply: object) -> None:
        """Return if ``reply`` (to :attr:`command`) says Redis serves; raise otherwise.

        Raises:
            redis.exceptions.ClusterDownError: a primary reports a state other than ``ok``
                (an error of :data:`~fender.redis.OUTAGE_ERRORS`, as an unreachable
                primary's ``ConnectionError`` is).
            redis.exceptions.ClusterError: the reply is not a ``CLUSTER INFO`` reply.
            redis.exceptions.ConnectionError: PING answered something other than PONG.
        """
        if not self.cluster:
            if not reply:
                raise _errors().ConnectionError(f"PING answered {reply!r}")
            return
        if not isinstance(reply, Mapping) or not reply:
            raise _errors().ClusterError(f"not a CLUSTER INFO reply: {reply!r:.200}")
        # redis-py returns the one node's info as is when a single primary answered.
        infos: Mapping[Any, Any] = reply
        if "cluster_state" in reply:
            infos = {"the only primary": reply}
        failing = sorted(
            str(node)
            for node, info in infos.items()
            if not isinstance(info, Mapping) or info.get("cluster_state") != "ok"
        )
        if failing:
            raise _errors().ClusterDownError(f"cluster_state is not ok on {', '.join(failing)}")


def _errors() -> types.ModuleType:
    """redis-py's exceptions, looked up when a reply fails (a client exists: redis-py is loaded)."""
    from redis import exceptions

    return exceptions
