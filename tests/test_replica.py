"""A lab with a primary and a streaming replica on the local provider: the replica holds
the primary's data, the learner's login works on both, writes go only to the primary,
and a replica the external provider cannot give is refused before anything starts."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from sdtutor.content.models import InstanceSpec, LabSpec
from sdtutor.errors import ProviderError
from sdtutor.lab import runtime
from sdtutor.providers import check_supports
from sdtutor.providers.external import ExternalProvider
from sdtutor.providers.local import LocalProvider


def replica_lab(tmp_path: Path, delay_ms: int = 0) -> LabSpec:
    (tmp_path / "setup.sql").write_text("CREATE TABLE notes (id int PRIMARY KEY, body text);\n")
    settings = {"recovery_min_apply_delay_ms": str(delay_ms)}
    return LabSpec(
        path=tmp_path,
        topic="replication-sharding",
        title="Read your own writes",
        instances=(
            InstanceSpec("primary", "postgres"),
            InstanceSpec("replica", "postgres", replica_of="primary", settings=settings),
        ),
        setup={"primary": "setup.sql"},
        workspace=(),
        apply=(),
        checks=(),
        hints=(),
    )


def test_external_provider_refuses_a_replica_before_starting(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="replica"):
        check_supports(ExternalProvider, replica_lab(tmp_path).instances)


def test_local_provider_refuses_settings_its_servers_do_not_run_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A home's servers are shared by its labs: a lab cannot change their settings, so
    one that needs others is refused before any server starts."""
    monkeypatch.setenv("SDTUTOR_HOME", str(tmp_path / "home"))
    provider = LocalProvider()
    asks_more = (InstanceSpec("bank", "postgres", settings={"max_prepared_transactions": "20"}),)
    with pytest.raises(ProviderError, match="max_prepared_transactions = 20") as caught:
        provider.start("twopc", asks_more)
    assert "it runs with 10" in caught.value.message
    redis_setting = (InstanceSpec("cache", "redis", settings={"maxmemory": "1mb"}),)
    with pytest.raises(ProviderError, match="maxmemory = 1mb"):
        provider.start("tiny", redis_setting)
    assert not list((tmp_path / "home").rglob("*.json"))  # no server was made
    # What the servers do run with passes: the two-phase commit lab's setting, and a
    # replica's own apply delay (the replica's, whatever the primary runs with).
    server = provider._server("postgres", "main")
    assert server.unmet_settings({"max_prepared_transactions": "10"}) == []
    replica = replica_lab(tmp_path, delay_ms=1500).instances
    provider._require_settings(replica, {"primary": "main", "replica": "replica"})


@pytest.mark.slow
def test_a_replica_streams_the_primary_with_its_delay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SDTUTOR_HOME", str(tmp_path / "home"))
    lab = replica_lab(tmp_path, delay_ms=1500)
    provider = LocalProvider()
    endpoints = provider.start("replication-sharding", lab.instances)
    try:
        assert endpoints["primary"].url != endpoints["replica"].url
        access = runtime._provision(lab, "replication-sharding", endpoints, lambda *a: None, True)
        primary, replica = access["primary"].url, access["replica"].url
        # The learner's own login on both servers, never an admin's.
        assert primary.split("@")[0] == replica.split("@")[0]
        assert primary.split("@")[1] != replica.split("@")[1]
        with psycopg.connect(primary, autocommit=True) as conn:
            conn.execute("INSERT INTO notes VALUES (1, 'hello')")
        with psycopg.connect(replica, autocommit=True) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            # The apply delay is visible on the replica itself.
            assert conn.execute("SELECT count(*) FROM notes").fetchone() == (0,)
            deadline = time.monotonic() + 20
            while conn.execute("SELECT count(*) FROM notes").fetchone() != (1,):
                assert time.monotonic() < deadline, "the row never reached the replica"
                time.sleep(0.2)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("INSERT INTO notes VALUES (2, 'no')")
    finally:
        provider.stop("replication-sharding", endpoints)
        provider.stop_all()
