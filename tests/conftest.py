"""Shared fixtures: isolated state folders and the real PostgreSQL the tests talk to."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.homes import stop_all

if TYPE_CHECKING:
    from sdtutor.services.names import Names
    from tests.background_proofs import BackgroundProofs

REPO = Path(__file__).resolve().parent.parent
SYSTEM_POSTGRES = os.environ.get(
    "SDTUTOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SYSTEM_REDIS = os.environ.get("SDTUTOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SYSTEM_AMQP = os.environ.get("SDTUTOR_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
LABS = sorted(p for p in (REPO / "labs").iterdir() if (p / "lab.yaml").is_file())
PROOF_TEST = "test_the_lab_proves_itself"
EXTERNAL_CASES = ("starter", "solution")
"""What the proofs on the external provider prove. Every case, wrong ones included, is
proved on the local provider (what a new learner gets, on the same server versions);
what differs on external is how a lab's namespaces, logins and seeds are made on servers
shared with others, which the starter and the solution exercise in full. Proving every
wrong case twice cost CI about a quarter of its CPU."""


def starts_no_server(lab: Path) -> bool:
    """A lab with `services: []`: every provider gives it the same (nothing), so it is
    proved on the local provider only."""
    import yaml

    return not yaml.safe_load((lab / "lab.yaml").read_text(encoding="utf-8")).get("services")


# A minimal valid lab.yaml, for loader and linter tests that build labs in tmp_path.
LAB_YAML = """\
format_version: 1
topic: indexing
title: A tiny lab
services: [postgres]
setup:
  postgres: setup.sql
workspace: [indexes.sql]
apply: [indexes.sql]
checks:
  - id: has-index
    title: The index exists
hints:
  - Look at the plan first.
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh SDTUTOR_HOME for one test. Whatever labs it started, or stopped keeping
    their seeded copies, are removed afterwards: a shared server keeps nothing of a test."""
    path = tmp_path / "home"
    monkeypatch.setenv("SDTUTOR_HOME", str(path))
    for var in ("SDTUTOR_PROVIDER", "SDTUTOR_POSTGRES_URL", "SDTUTOR_COURSE", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    yield path
    if (path / "labs").is_dir():
        stop_all(path)


@pytest.fixture
def external_env(home: Path, system_postgres: str) -> dict[str, str]:
    """The environment of a learner using the external provider on the machine's server."""
    return {
        "SDTUTOR_HOME": str(home),
        "SDTUTOR_PROVIDER": "external",
        "SDTUTOR_POSTGRES_URL": system_postgres,
    }


@pytest.fixture(scope="session")
def system_postgres() -> str:
    """The machine's PostgreSQL, which the external provider uses; it must be up."""
    import psycopg

    try:
        with psycopg.connect(SYSTEM_POSTGRES, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"The tests need PostgreSQL at {SYSTEM_POSTGRES} ({exc}). Start it (see .ci/run) "
            "or set SDTUTOR_TEST_POSTGRES_URL."
        )
    return SYSTEM_POSTGRES


@pytest.fixture(scope="session")
def local_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One SDTUTOR_HOME shared by the local-provider tests, so each server starts once."""
    path = tmp_path_factory.mktemp("local-home")
    yield path
    stop_all(path)  # destroys its private servers: processes, data (/var/lib/sdtutor too)


SHARD_ENV = "SDTUTOR_TEST_SHARD"
"""`i/n`: run only the i-th of n shares of the test files (the lab proofs go with the
first). CI runs two shares at once: a session mostly waits, on timeouts, locks and
brokers, and leaves a core idle about half the time."""


def _shard(items: list[pytest.Item], config: pytest.Config) -> None:
    text = os.environ.get(SHARD_ENV, "").strip()
    if not text:
        return
    index, total = (int(part) for part in text.split("/"))
    files = sorted({item.path.name for item in items})
    mine = {name for n, name in enumerate(files) if n % total == index - 1}
    mine.discard("test_lab_proofs.py")
    if index == 1:
        mine.add("test_lab_proofs.py")
    kept = [item for item in items if item.path.name in mine]
    config.hook.pytest_deselected(items=[item for item in items if item.path.name not in mine])
    items[:] = kept


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Lab proofs run in the background from the session's start (tests/background_proofs.py):
    their tests go last, so the other tests run while the proofs do."""
    _shard(items, config)
    proofs = [i for i in items if getattr(i, "originalname", "") == PROOF_TEST]
    if proofs:
        items[:] = [i for i in items if i not in proofs] + proofs


@pytest.fixture(scope="session", autouse=True)
def proofs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BackgroundProofs | None]:
    """The session's lab proofs, started now, the labs with the most cases first (the
    longest go first, so that none is left running alone at the end); None when the
    session runs no proof."""
    from tests.background_proofs import BackgroundProofs

    wanted = [
        (item.callspec.params["lab"], item.callspec.params["provider"])
        for item in request.session.items
        if getattr(item, "originalname", "") == PROOF_TEST
    ]
    if not wanted:
        yield None
        return
    # The proofs' own local servers, apart from local_home's: a check that holds a
    # replica's replay back, or a server stopped when another test's last lab stops,
    # must not reach into a proof running meanwhile (and the other way round).
    proof_home = tmp_path_factory.mktemp("proof-local-home")
    postgres: str = request.getfixturevalue("system_postgres")
    pool = BackgroundProofs(BackgroundProofs.jobs())
    wanted.sort(key=lambda pair: -sum(1 for p in (pair[0] / "wrong").glob("*/case.yaml")))
    try:
        for lab, provider in wanted:
            slug = lab.name.split("-", 1)[1]
            if provider == "external" and starts_no_server(lab):
                continue
            if provider == "local":
                env = {"SDTUTOR_HOME": str(proof_home), "SDTUTOR_PROVIDER": "local"}
                pool.submit(slug, provider, env)
            else:
                env = {
                    "SDTUTOR_HOME": str(tmp_path_factory.mktemp(f"proof-{slug}") / "home"),
                    "SDTUTOR_PROVIDER": "external",
                    "SDTUTOR_POSTGRES_URL": postgres,
                    "SDTUTOR_REDIS_URL": SYSTEM_REDIS,
                    "SDTUTOR_AMQP_URL": SYSTEM_AMQP,
                }
                pool.submit(slug, provider, env, own_home=True, cases=EXTERNAL_CASES)
        yield pool
    finally:
        pool.stop()
        stop_all(proof_home)  # destroys the proofs' private servers: processes and data


def sdtutor(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run the real `sdtutor` command in a subprocess, as a learner would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SDTUTOR_")}
    full_env.update({"COLUMNS": "100", "NO_COLOR": "1"})
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sdtutor", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kwargs,  # type: ignore[arg-type]
    )


def lab_names(home: Path, slug: str) -> Names:
    """The names a lab gets in this SDTUTOR_HOME (its home id is made on first use)."""
    from sdtutor.services.names import Names

    previous = os.environ.get("SDTUTOR_HOME")
    os.environ["SDTUTOR_HOME"] = str(home)
    try:
        return Names.for_lab(slug)
    finally:
        if previous is None:
            os.environ.pop("SDTUTOR_HOME", None)
        else:
            os.environ["SDTUTOR_HOME"] = previous


def databases(url: str) -> set[str]:
    """Names of the databases on a server."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


def plain(text: str) -> str:
    """Terminal output without panel borders, with white space folded (for phrase checks)."""
    for ch in "│╭╮╰╯─┃━┏┓┗┛":
        text = text.replace(ch, " ")
    return " ".join(text.split())
