"""The replication-sharding lab (10): other answers than the reference, judged.

- The lab needs a streaming replica: the external provider refuses it before anything
  starts, and a proof on that provider is skipped with the reason instead of failing.
- Other correct routers pass (a longer wait, a time window on the primary, the cursor
  API on connections of its own, another WAL function) and other correct shard
  functions pass (jump hash, a ring with many points, rendezvous with sha256).
- Other wrong ones fail with a message that teaches: a position taken before the write
  or before its COMMIT, a session forgotten after its first read, a window shorter than
  the lag, rows answered from memory, writes sent to the replica, random placement, a
  shard index for a name, placement by key alone, rendezvous scores from crc32.

The lab runs on the local provider's private primary and replica, started once for the
module under the shared test home.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdtutor.content.loader import load_lab
from sdtutor.content.models import LabSpec
from sdtutor.lab.checks import run_checks
from sdtutor.lab.proof import skip_reason
from sdtutor.lab.results import CheckResult
from sdtutor.lab.runtime import replica_access
from sdtutor.providers import provider_class, unsupported
from sdtutor.services.base import Target, kind
from sdtutor.services.names import Names
from tests.conftest import REPO

LAB_DIR = REPO / "labs" / "10-replication-sharding"
SOLUTION = {p.name: p.read_text() for p in (LAB_DIR / "solution").glob("*.py")}
ROUTER_CHECKS = ("own-writes", "reads-reach-replica", "bounded-wait")
SHARD_CHECKS = ("even-spread", "stable-placement", "add-a-shard", "hot-tenant")


# ------------------------------------------------------------------ no server needed


def test_external_provider_refuses_the_lab_for_its_replica(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lab = load_lab(LAB_DIR)
    assert "streaming replica" in unsupported(provider_class("external"), lab.instances)
    assert unsupported(provider_class("local"), lab.instances) == ""
    assert unsupported(provider_class("docker"), lab.instances) == ""
    monkeypatch.delenv("SDTUTOR_PROVIDER", raising=False)
    assert "streaming replica" in skip_reason(lab, "external")
    assert skip_reason(lab, "local") == ""


# ------------------------------------------------------------------ on private servers


@dataclasses.dataclass
class Pair:
    lab: LabSpec
    urls: dict[str, str]


@pytest.fixture(scope="module")
def pair(local_home: Path) -> Iterator[Pair]:
    """The lab's primary and replica on the local provider, seeded, in a namespace of
    this module."""
    previous = os.environ.get("SDTUTOR_HOME")
    os.environ["SDTUTOR_HOME"] = str(local_home)
    provider = provider_class("local")()
    lab = load_lab(LAB_DIR)
    slug = f"replication-test-{secrets.token_hex(2)}"
    endpoints = provider.start(slug, lab.instances)
    names = Names.for_lab(slug)
    targets = [
        Target(endpoints[i.name].url, names, i.name, lab, endpoints[i.name].handle)
        for i in lab.instances
        if not i.replica_of
    ]
    try:
        access = {t.instance: kind("postgres").provision(t, fresh=True) for t in targets}
        servers = {name: endpoint.url for name, endpoint in endpoints.items()}
        access.update(replica_access(lab, servers, access))
        yield Pair(lab, {name: a.url for name, a in access.items()})
    finally:
        for target in targets:
            kind("postgres").teardown(target, purge=True)
        provider.stop(slug, endpoints)
        if previous is None:
            os.environ.pop("SDTUTOR_HOME", None)
        else:
            os.environ["SDTUTOR_HOME"] = previous


def judge(pair: Pair, check_ids: tuple[str, ...], files: dict[str, str]) -> list[CheckResult]:
    """Run some checks of the lab on a workspace: the solution with `files` laid over it."""
    lab = dataclasses.replace(
        pair.lab, checks=tuple(c for c in pair.lab.checks if c.id in check_ids)
    )
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab10-") as tmp:
        workspace = Path(tmp)
        shutil.copyfile(LAB_DIR / "README.md", workspace / "README.md")
        for name, text in {**SOLUTION, **files}.items():
            (workspace / name).write_text(text)
        return run_checks(lab, workspace, dict(pair.urls))


def _router(body: str, imports: str = "import time") -> str:
    return f"""{imports}

MAX_WAIT = 0.2


class Router:
    def __init__(self, primary, replica):
        self.primary = primary
        self.replica = replica
        self.pending = {{}}
{body}"""


WAITS_OUT_THE_LAG = SOLUTION["router.py"].replace("MAX_WAIT = 0.2", "MAX_WAIT = 1.5")

PRIMARY_FOR_A_WHILE = _router("""
    def write(self, session, sql, params=()):
        cur = self.primary.execute(sql, params)
        rows = cur.fetchall() if cur.description else []
        self.pending[session] = time.monotonic() + 3.0  # a session cookie with a TTL
        return rows

    def read(self, session, sql, params=()):
        if self.pending.get(session, 0) > time.monotonic():
            return self.primary.execute(sql, params).fetchall()
        return self.replica.execute(sql, params).fetchall()
""")

OWN_CONNECTIONS_CURSORS = _router(
    """        # Connections of its own, from the environment, through cursors.
        self.primary = psycopg.connect(os.environ["SDTUTOR_URL_PRIMARY"], autocommit=True)
        self.replica = psycopg.connect(os.environ["SDTUTOR_URL_REPLICA"], autocommit=True)

    def write(self, session, sql, params=()):
        with self.primary.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall() if cur.description else []
            cur.execute("SELECT pg_current_wal_insert_lsn()")
            self.pending[session] = str(cur.fetchone()[0])
        return rows

    def read(self, session, sql, params=()):
        lsn = self.pending.get(session)
        conn = self.replica
        if lsn is not None:
            with self.replica.cursor() as cur:
                cur.execute("SELECT pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn())", (lsn,))
                if cur.fetchone()[0] > 0:
                    conn = self.primary
                else:
                    del self.pending[session]
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
""",
    imports="import os\n\nimport psycopg",
)

FORGETS_AFTER_FIRST_READ = (
    SOLUTION["router.py"]
    .replace("lsn = self.pending.get(session)", "lsn = self.pending.pop(session, None)")
    .replace(
        "            del self.pending[session]  # the replica has it: no need to ask again\n", ""
    )
)

WINDOW_SHORTER_THAN_LAG = PRIMARY_FOR_A_WHILE.replace("+ 3.0", "+ 0.3")

FROM_MEMORY = _router("""
    def write(self, session, sql, params=()):
        cur = self.primary.execute(sql, params)
        rows = cur.fetchall() if cur.description else []
        if sql.startswith("INSERT"):
            self.pending[session] = [[rows[0][0], params[1]]]
        elif sql.startswith("UPDATE") and session in self.pending:
            self.pending[session] = [[self.pending[session][0][0], params[0]]]
        return rows

    def read(self, session, sql, params=()):
        if session in self.pending and params and params[0] == session:
            return self.pending[session]  # what they wrote, straight from memory
        return self.replica.execute(sql, params).fetchall()
""")

ALL_TO_REPLICA = _router("""
    def write(self, session, sql, params=()):
        cur = self.replica.execute(sql, params)
        return cur.fetchall() if cur.description else []

    def read(self, session, sql, params=()):
        return self.replica.execute(sql, params).fetchall()
""")

JUMP_HASH = '''
import hashlib


def shard_for(tenant, key, shards):
    """Jump consistent hash (Lamping and Veach) over the shards' positions."""
    h = int.from_bytes(hashlib.sha1(f"{tenant}:{key}".encode()).digest()[:8], "big")
    b, j = -1, 0
    while j < len(shards):
        b = j
        h = (h * 2862933555777941757 + 1) % 2**64
        j = int((b + 1) * (2**31 / ((h >> 33) + 1)))
    return shards[b]
'''

RING_MANY_POINTS = """
import bisect
import hashlib

POINTS = 128
_rings = {}


def _h(text):
    return int.from_bytes(hashlib.md5(text.encode()).digest()[:8], "big")


def shard_for(tenant, key, shards):
    ring = _rings.get(tuple(shards))
    if ring is None:
        ring = _rings[tuple(shards)] = sorted(
            (_h(f"{shard}#{i}"), shard) for shard in shards for i in range(POINTS)
        )
    i = bisect.bisect(ring, (_h(f"{tenant}/{key}"),)) % len(ring)
    return ring[i][1]
"""

RENDEZVOUS_CRC32 = """
import zlib


def shard_for(tenant, key, shards):
    return max(shards, key=lambda s: zlib.crc32(f"{tenant}|{key}|{s}".encode()))
"""

RENDEZVOUS_SHA256 = """
import hashlib


def shard_for(tenant, key, shards):
    def score(shard):
        return hashlib.sha256(f"{tenant}|{key}|{shard}".encode()).hexdigest()

    return sorted(shards, key=score)[-1]
"""

RANDOM_SHARD = """
import random


def shard_for(tenant, key, shards):
    return random.choice(shards)
"""

INDEX_NOT_NAME = """
import zlib


def shard_for(tenant, key, shards):
    return max(range(len(shards)), key=lambda i: zlib.crc32(f"{tenant}|{key}|{shards[i]}".encode()))
"""

KEY_ONLY = """
import zlib


def shard_for(tenant, key, shards):
    return max(shards, key=lambda s: zlib.crc32(f"{key}|{s}".encode()))
"""

CORRECT_ROUTERS = {
    "waits-out-the-lag": WAITS_OUT_THE_LAG,
    "primary-for-a-while": PRIMARY_FOR_A_WHILE,
    "own-connections-cursors": OWN_CONNECTIONS_CURSORS,
}

# Not here: a router that takes the primary's position before its write (or before its
# COMMIT) is wrong, but shows only while no other session writes: with the lab's proofs
# writing on the same primary beside these tests, the replica's replay often carries
# its write past the stale position in time, and it passes by luck.
WRONG_ROUTERS = {
    "forgets-after-first-read": (
        FORGETS_AFTER_FIRST_READ,
        {"own-writes"},
        "the write was missing",
    ),
    "window-shorter-than-lag": (
        WINDOW_SHORTER_THAN_LAG,
        {"own-writes"},
        "the write was missing",
    ),
    "from-memory": (FROM_MEMORY, {"own-writes"}, "neither server received its SELECT"),
    "all-to-replica": (ALL_TO_REPLICA, {"own-writes"}, "The replica refuses every write"),
}

SHARDS_JUDGED = {
    "jump-hash": (JUMP_HASH, set(), ""),
    "ring-many-points": (RING_MANY_POINTS, set(), ""),
    "rendezvous-sha256": (RENDEZVOUS_SHA256, set(), ""),
    # crc32 is linear: the scores of one key on different shards move together.
    "rendezvous-crc32": (RENDEZVOUS_CRC32, {"even-spread"}, "such as crc32"),
    "random-shard": (
        RANDOM_SHARD,
        {"stable-placement", "add-a-shard"},
        "landed on another shard",
    ),
    "index-not-name": (INDEX_NOT_NAME, set(SHARD_CHECKS), "one of the shard names"),
    "key-only": (KEY_ONLY, {"even-spread"}, "split unevenly"),
}


def test_the_variants_differ_from_the_solution() -> None:
    for text in (WAITS_OUT_THE_LAG, FORGETS_AFTER_FIRST_READ):
        assert text != SOLUTION["router.py"]
    assert WINDOW_SHORTER_THAN_LAG != PRIMARY_FOR_A_WHILE


def _failed(results: list[CheckResult]) -> dict[str, str]:
    return {r.id: r.message for r in results if not r.passed}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CORRECT_ROUTERS))
def test_other_correct_routers_pass(name: str, pair: Pair) -> None:
    # Waiting out the lag costs a second a write: judged where waiting shows.
    checks = ("own-writes",) if name == "waits-out-the-lag" else ROUTER_CHECKS
    results = judge(pair, checks, {"router.py": CORRECT_ROUTERS[name]})
    assert _failed(results) == {}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(WRONG_ROUTERS))
def test_other_wrong_routers_fail_and_say_why(name: str, pair: Pair) -> None:
    text, fails, phrase = WRONG_ROUTERS[name]
    checks = tuple(sorted(fails))
    failed = _failed(judge(pair, checks, {"router.py": text}))
    assert set(failed) == set(checks), failed
    assert any(phrase in message for message in failed.values()), failed


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SHARDS_JUDGED))
def test_other_shard_functions_are_judged(name: str, pair: Pair) -> None:
    text, fails, phrase = SHARDS_JUDGED[name]
    failed = _failed(judge(pair, SHARD_CHECKS, {"shard.py": text}))
    assert set(failed) == fails, failed
    assert not phrase or any(phrase in message for message in failed.values()), failed
