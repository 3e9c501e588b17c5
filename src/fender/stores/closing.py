"""Closing a ``redis.asyncio`` client so that every connection is closed, a cluster's included.

redis-py 8.1's asyncio ``RedisCluster`` marks itself for re-initialisation after a connection
error (``_initialize``: "read the slot map again before the next command"), and its
``aclose()`` does nothing while that flag is set. A cluster client closed after it lost a
node (the moment a service shuts down in an outage) would leave its connections to the
surviving nodes open, for the garbage collector to find (``ResourceWarning: unclosed
ClusterNode``). :func:`aclose_client` also closes the node manager's connections, the nodes of
the slot map and the startup nodes, as ``RedisCluster.aclose()`` itself does when the flag is
clear; closing a closed node again is a no-op.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio.cluster

__all__ = ["aclose_client"]


async def aclose_client(client: Any) -> None:
    """Close ``client`` (any ``redis.asyncio`` client) and every connection it holds.

    Errors of the client's own ``aclose()`` propagate, after the cluster's nodes are closed.
    """
    try:
        await client.aclose()
    finally:
        if isinstance(client, redis.asyncio.cluster.RedisCluster):
            manager = client.nodes_manager
            try:
                await manager.aclose()
            finally:
                await manager.aclose("startup_nodes")
