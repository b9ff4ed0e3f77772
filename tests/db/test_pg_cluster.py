"""The primary/standby harness does what the replica tests need: replay, paused replay, a killed standby."""

from __future__ import annotations

import psycopg
import pytest

from tests._pg_cluster import PgCluster
from tests.db.conftest import need_pg_binaries

pytestmark = pytest.mark.postgres


@pytest.fixture
def rows(pg_cluster: PgCluster) -> PgCluster:
    """The cluster with an empty ``rows`` table on the primary (created once per module, emptied per test)."""
    pg_cluster.primary_query("CREATE TABLE IF NOT EXISTS rows (id int PRIMARY KEY, note text)")
    pg_cluster.primary_query("TRUNCATE rows")
    return pg_cluster


def _standby_count(cluster: PgCluster, row_id: int) -> int:
    return int(str(cluster.standby_query("SELECT count(*) FROM rows WHERE id = %s", row_id)))


def test_the_standby_is_a_hot_standby_of_the_primary(pg_cluster: PgCluster) -> None:
    assert pg_cluster.primary_query("SELECT pg_is_in_recovery()") is False
    assert pg_cluster.standby_query("SELECT pg_is_in_recovery()") is True
    assert pg_cluster.primary_query("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == 1
    assert pg_cluster.primary_port != pg_cluster.standby_port
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        pg_cluster.standby_query("CREATE TABLE refused (id int)")


def test_a_row_written_on_the_primary_appears_on_the_standby_after_wait_replayed(rows: PgCluster) -> None:
    pg_cluster = rows
    pg_cluster.primary_query("INSERT INTO rows VALUES (1, 'written')")
    lsn = pg_cluster.current_lsn()

    assert pg_cluster.wait_replayed(lsn) == lsn

    assert pg_cluster.replayed(lsn)
    assert pg_cluster.standby_query("SELECT note FROM rows WHERE id = 1") == "written"


def test_paused_replay_hides_the_row_until_resumed(rows: PgCluster) -> None:
    pg_cluster = rows
    pg_cluster.wait_replayed()
    pg_cluster.pause_replay()
    assert pg_cluster.replay_pause_state() in {"pause requested", "paused"}

    pg_cluster.primary_query("INSERT INTO rows VALUES (7, 'while paused')")
    lsn = pg_cluster.current_lsn()
    pg_cluster.wait_received(lsn)  # the WAL has arrived on the standby: only replay holds it back

    pg_cluster.wait_paused()  # the pause takes hold at the next WAL record
    assert not pg_cluster.replayed(lsn)
    assert (
        pg_cluster.primary_query("SELECT pg_current_wal_lsn() > %s::pg_lsn", pg_cluster.replay_lsn()) is True
    )
    assert _standby_count(pg_cluster, 7) == 0

    pg_cluster.resume_replay()
    pg_cluster.wait_replayed(lsn)

    assert pg_cluster.replay_pause_state() == "not paused"
    assert _standby_count(pg_cluster, 7) == 1


def test_a_killed_standby_refuses_connections_while_the_primary_keeps_working(rows: PgCluster) -> None:
    pg_cluster = rows
    pg_cluster.kill_standby()

    assert not pg_cluster.standby_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg_cluster.standby_url, connect_timeout=2).close()
    pg_cluster.primary_query("INSERT INTO rows VALUES (3, 'after the kill')")
    assert pg_cluster.primary_query("SELECT note FROM rows WHERE id = 3") == "after the kill"

    pg_cluster.restart_standby()
    pg_cluster.wait_replayed()

    assert _standby_count(pg_cluster, 3) == 1


def test_a_failing_test_still_stops_both_servers_and_removes_the_directory() -> None:
    need_pg_binaries()
    cluster = PgCluster()
    root, urls = cluster.root, (cluster.primary_url, cluster.standby_url)

    def failing_test() -> None:
        with cluster:
            assert cluster.primary_query("SELECT 1") == 1
            raise RuntimeError("the test failed")

    with pytest.raises(RuntimeError, match="the test failed"):
        failing_test()

    assert not root.exists()
    for url in urls:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2).close()
