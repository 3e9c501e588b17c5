"""The stores load redis-py only when a client is built: an app without REDIS_URL never does."""

from __future__ import annotations

import subprocess
import sys

import redis.cluster

from fender.stores._serving import CLUSTER_INFO


def test_the_cluster_question_names_redis_pys_primaries_flag():
    assert CLUSTER_INFO[2]["target_nodes"] == redis.cluster.RedisCluster.PRIMARIES


def test_a_memory_only_store_loads_no_redis_py():
    code = (
        "import sys\n"
        "from fender.settings import load_settings\n"
        "from fender.stores._factory import async_resilient_redis, resilient_redis\n"
        "import fender.stores._cache, fender.stores._health, fender.stores._url\n"
        "settings = load_settings({'FENDER_ENV': 'development'}, env_file=None)\n"
        "store = resilient_redis(settings)\n"
        "store.set('k', b'v')\n"
        "assert store.get('k') == b'v'\n"
        "store.close()\n"
        "async_resilient_redis(settings)\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] == 'redis'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
