"""`redis+cluster://` URLs: parsing, and qms on a real Redis Cluster (the
bundled redis-server as its nodes) with replicas.

The whole Redis-touching suite runs on a 3-primary Cluster as well
(``QMS_TEST_REDIS_CLUSTER=3``, a step of ``.ci/run``); what is here needs
a Cluster with replicas, or halls on every primary at once."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis as redis_sync
from redis.asyncio.cluster import RedisCluster
from websockets.asyncio.client import connect

from loadtests.failover import Options, run_scenario
from loadtests.redis_cluster import LocalCluster
from queue_core.config import load_hall_config
from queue_core.errors import QmsError
from queue_core.keys import HallKeys
from queue_core.models import WindowStatus
from queue_core.redis_client import (
    ClusterTarget,
    create_redis,
    describe_url,
    is_cluster,
    parse_cluster_url,
)
from queue_core.scripts import Scripts
from queue_core.store import HallStore
from tests.live import live_server, post
from tests.support import make_config, write_hall

# ------------------------------------------------------------------ parsing


def test_a_cluster_url_names_some_nodes_and_the_secrets() -> None:
    assert parse_cluster_url("redis+cluster://10.0.0.1:6379,[::1]:7000") == ClusterTarget(
        nodes=(("10.0.0.1", 6379), ("::1", 7000))
    )
    assert parse_cluster_url("rediss+cluster://qms:p%40ss@r1:6380") == ClusterTarget(
        nodes=(("r1", 6380),), username="qms", password="p@ss", tls=True
    )
    assert is_cluster("redis+cluster://r1:6379")
    assert not is_cluster("redis+sentinel://s1:26379/m")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://r1", "host:port"),
        ("redis+cluster://r1:0", "host:port"),
        ("redis+cluster://r1:6379/2", "only database 0"),
        ("redis+cluster://r1:6379?tls=1", "unknown option"),
    ],
)
def test_a_bad_cluster_url_says_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_cluster_url(url)


def test_cluster_passwords_never_reach_a_log() -> None:
    assert describe_url("redis+cluster://qms:s3cret@r1:6379,r2:6379") == (
        "redis+cluster://qms:***@r1:6379,r2:6379"
    )


# ------------------------------------------- 3 primaries, one replica each


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    started = LocalCluster.start(tmp_path_factory.mktemp("cluster"), primaries=3, replicas=1)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
async def client(cluster: LocalCluster) -> AsyncIterator[RedisCluster]:
    made = create_redis(cluster.url, max_connections=8, socket_timeout=2.0)
    assert isinstance(made, RedisCluster)
    try:
        await made.initialize()
        yield made
    finally:
        await made.aclose()


def halls_on_every_primary(client: RedisCluster, tmp_path: Path) -> list[Path]:
    """Hall files whose ids put one hall on each primary of the Cluster."""
    found: dict[str, Path] = {}
    primaries = {n.name for n in client.get_primaries()}
    while set(found) != primaries:
        hall = f"h{uuid.uuid4().hex[:8]}"
        node = client.get_node_from_key(HallKeys(hall).seq)
        assert node is not None
        if node.name not in found:
            found[node.name] = write_hall(tmp_path, hall)
    return list(found.values())


@pytest.mark.slow
@pytest.mark.redis
async def test_halls_on_every_primary_work_and_changes_wait_for_their_replica(
    client: RedisCluster, tmp_path: Path
) -> None:
    scripts = Scripts.register(client)
    for path in halls_on_every_primary(client, tmp_path):
        config = load_hall_config(path)
        # WAIT goes to the hall's own primary, on the script's connection:
        # its one replica confirms.
        store = HallStore(client, scripts, config, min_replicas=1, wait_ms=2000)
        issued = await store.issue("social-security", idempotency=f"{config.id}-1")
        await store.set_window("2", WindowStatus.OPEN)
        called = (await store.call_next("2")).value
        assert called is not None and called.ticket.id == issued.value.ticket.id

    assert len(halls_on_every_primary(client, tmp_path)) == 3


@pytest.mark.slow
@pytest.mark.redis
async def test_a_retry_is_acknowledged_only_once_the_first_attempt_is_replicated(
    cluster: LocalCluster, client: RedisCluster, tmp_path: Path
) -> None:
    config = make_config(tmp_path)
    scripts = Scripts.register(client)
    store = HallStore(client, scripts, config, min_replicas=1, wait_ms=200)
    await store.snapshot()
    primary = client.get_node_from_key(store.keys.seq)
    assert primary is not None
    replica = cluster.replica_of(int(primary.port))
    replica.send_signal(signal.SIGSTOP)  # connected, but it acknowledges nothing
    try:
        with pytest.raises(QmsError) as first:
            await store.issue("social-security", idempotency="k")
        assert first.value.code == "not_replicated"
        # The retry comes from another client (another qms replica) and only
        # replays. A bare WAIT on a fresh connection would confirm at once;
        # after the script it waits for the first attempt's change.
        other = create_redis(cluster.url, max_connections=2, socket_timeout=2.0)
        try:
            retry = HallStore(other, Scripts.register(other), config, min_replicas=1, wait_ms=200)
            with pytest.raises(QmsError) as again:
                await retry.issue("social-security", idempotency="k")
            assert again.value.code == "not_replicated"
        finally:
            await other.aclose()
    finally:
        replica.send_signal(signal.SIGCONT)
    done = await store.issue("social-security", idempotency="k")
    assert done.replayed and done.value.ticket.number == "A001"
    assert (await store.snapshot()).waiting_by_group["natural"] == 1


@pytest.mark.slow
@pytest.mark.redis
async def test_qms_serves_api_and_screens_over_a_cluster(
    cluster: LocalCluster, client: RedisCluster, tmp_path: Path
) -> None:
    configs = [load_hall_config(p) for p in halls_on_every_primary(client, tmp_path)]
    async with live_server(configs, cluster.url) as live:
        for config in configs:
            url = f"{live.ws}/ws/halls/{config.id}/display?token=display-token"
            async with connect(url) as ws:
                snap = json.loads(await ws.recv())
                assert snap["type"] == "snapshot"
                ticket = await post(live, config.id, "/tickets", "kiosk-token", service="household")
                event = json.loads(await ws.recv())
                assert (event["type"], event["number"]) == ("issued", ticket["number"])
        assert (await live.api.get("/readyz")).status_code == 200


@pytest.mark.slow
@pytest.mark.redis
def test_a_cluster_shard_failover_under_load_loses_no_acknowledged_change(tmp_path: Path) -> None:
    """The hall's primary cut off from its two replicas, then killed, under
    kiosks and clerks (`loadtests.failover`, as the benchmark runs it): with
    QMS_REDIS_MIN_REPLICAS=1 nothing acknowledged is lost, no number or call
    is made twice, every request is answered, and qms follows the Cluster's
    promotion by itself."""
    opts = Options(tmp_path, steady_s=1.5, after_s=1.0)
    result = run_scenario(opts, min_replicas=1, cut_off=True, cluster=True)
    found = result["findings"]
    assert found["acknowledged"] > 0
    assert found["unanswered"] == 0
    assert found["not_error_shape"] == 0 and found["unexpected"] == {}
    assert found["tickets_lost"] == found["numbers_issued_twice"] == 0
    assert found["tickets_called_twice"] == found["calls_lost"] == 0
    assert result["timeline"]["first_success_s"] is not None


@pytest.mark.slow
@pytest.mark.redis
async def test_halls_on_other_shards_keep_working_while_one_shard_is_down(
    tmp_path: Path,
) -> None:
    """A shard with no primary at all (no replica to promote) stops its own
    halls, with fast 503s, and no other: the nodes run with
    cluster-require-full-coverage no, as k8s/components/redis-cluster does,
    and the client does not insist on every slot either."""
    cluster = LocalCluster.start(tmp_path / "cluster", primaries=3, node_timeout_ms=1000)
    client = create_redis(cluster.url, max_connections=8, socket_timeout=2.0, connect_timeout=0.5)
    try:
        assert isinstance(client, RedisCluster)
        await client.initialize()
        scripts = Scripts.register(client)
        stores = [
            HallStore(client, scripts, load_hall_config(p))
            for p in halls_on_every_primary(client, tmp_path)
        ]
        down, *up = stores
        node = client.get_node_from_key(down.keys.seq)
        assert node is not None
        cluster.procs[cluster.ports.index(int(node.port))].kill()
        other = next(port for port in cluster.ports if port != int(node.port))
        deadline = time.monotonic() + 30
        while not marked_failed(other):
            assert time.monotonic() < deadline, "the other nodes never marked it failed"
            await asyncio.sleep(0.1)
        for store in up:
            issued = await store.issue("social-security")
            assert issued.value.ticket.number == "A001"
        with pytest.raises(QmsError) as refused:
            await down.issue("social-security")
        assert refused.value.code == "redis_unavailable"
    finally:
        await client.aclose()
        cluster.stop()


def marked_failed(port: int) -> bool:
    """Whether the node on ``port`` sees a node flagged ``fail`` (not ``fail?``)."""
    with redis_sync.Redis(port=port, decode_responses=True) as client:
        nodes = str(client.execute_command("CLUSTER", "NODES"))
    return any("fail" in line.split()[2].split(",") for line in nodes.splitlines() if line)
