"""Lab 09 (load-balancing): answers the proof's cases do not hold, judged right.

Other correct answers must pass: interleaved weighted round robin as LVS does it and
stride scheduling, least connections with random tie-breaks, one that counts a request
out only after its answer is written and gives up on a slow backend after 1 s, health
probes in a thread per backend and by HEAD, retries that go again for a GET whatever the
error, a balancer that prints a flood, a whole balancer on asyncio streams, a ring from
blake2b with fewer points, a Ketama ring and rendezvous hashing. Other wrong ones must
fail and say why: weights in bursts, a weighted random choice, a forking server, least
connections by requests served, health checks that stop probing a backend they took out
or read any answer as healthy, no fail-open, retries on the same backend, a refused
connection that takes a backend out, a balancer that answers itself instead of
forwarding, one that hangs, one that crashes as it starts, sticky users kept in a table
instead of the ring, a ring that hangs, jump consistent hashing (it cannot remove a node
from the middle). No server is needed: the checker runs the fleet. The proof (starter,
solution, wrong/) runs in test_lab_proofs.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import pytest

from sdtutor.content.loader import load_lab
from sdtutor.content.models import LabSpec
from sdtutor.lab.checks import run_checks
from sdtutor.lab.results import CheckResult
from tests.conftest import REPO

LAB_DIR = REPO / "labs" / "09-load-balancing"
SOLUTION = {p.name: p.read_text() for p in (LAB_DIR / "solution").glob("*.py")}


@pytest.fixture(scope="module")
def lab() -> LabSpec:
    return load_lab(LAB_DIR)


def judge(
    lab: LabSpec, check_id: str, files: dict[str, str], time_limit: float | None = None
) -> CheckResult:
    """One check over a workspace that is the solution with `files` laid over it;
    `time_limit` replaces the lab's (code that hangs need not be waited for 20 s)."""
    only = dataclasses.replace(lab, checks=tuple(c for c in lab.checks if c.id == check_id))
    if time_limit is not None:
        only = dataclasses.replace(only, time_limit=time_limit)
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab09-") as tmp:
        workspace = Path(tmp)
        shutil.copyfile(LAB_DIR / "README.md", workspace / "README.md")
        for name, text in {**SOLUTION, **files}.items():
            (workspace / name).write_text(text)
        [result] = run_checks(only, workspace, {}, deadline=60)
    return result


def variant(file: str, *edits: tuple[str, str]) -> str:
    """A solution file with each (old, new) edit made; every `old` must be there."""
    text = SOLUTION[file]
    for old, new in edits:
        assert old in text, f"the solution's {file} no longer has {old!r}"
        text = text.replace(old, new)
    return text


SMOOTH = '''        """Smooth weighted round robin (as in NGINX): interleaved, not in bursts."""
        total = 0
        for b in candidates:
            b.current += b.weight
            total += b.weight
        chosen = max(candidates, key=lambda b: b.current)
        chosen.current -= total
        return chosen
'''
LEAST = "chosen = min(candidates, key=lambda b: b.active / b.weight)"
HEALTH_LOOP = """    while True:
        started = time.monotonic()
        for backend in pool.backends:
            conn = http.client.HTTPConnection(backend.host, backend.port, timeout=timeout)
            try:
                conn.request("GET", path)
                ok = conn.getresponse().status == 200
            except (OSError, http.client.HTTPException):
                ok = False
            finally:
                conn.close()
            pool.health_result(backend, ok, fall, rise)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
"""
RETRY = """            except NotSent:
                continue  # nothing reached it: safe to try another, whatever the method
            except (OSError, http.client.HTTPException):
                if self.command in IDEMPOTENT:
                    continue  # it may have run: only a request that is safe twice goes again
"""

# ------------------------------------------------------------------ correct other ways

LVS_INTERLEAVED = variant(
    "balancer.py",
    (
        SMOOTH,
        '''        """LVS's interleaved weighted round robin: a falling bar, stepped by the gcd."""
        import math

        top = max(b.weight for b in candidates)
        step = math.gcd(*(b.weight for b in candidates))
        i, bar = getattr(self, "i", -1), getattr(self, "bar", 0)
        while True:
            i = (i + 1) % len(candidates)
            if i == 0:
                bar -= step
                if bar <= 0:
                    bar = top
            if candidates[i].weight >= bar:
                self.i, self.bar = i, bar
                return candidates[i]
''',
    ),
)

LEAST_RANDOM_TIES = variant(
    "balancer.py",
    (
        LEAST,
        """fewest = min(b.active for b in candidates)
                chosen = random.choice([b for b in candidates if b.active == fewest])""",
    ),
    ("import json\n", "import json\nimport random\n"),
)

PROBES_IN_PARALLEL = variant(
    "balancer.py",
    (
        HEALTH_LOOP,
        """    def watch(backend: Backend) -> None:
        while True:
            conn = http.client.HTTPConnection(backend.host, backend.port, timeout=timeout)
            try:
                conn.request("GET", path)
                ok = conn.getresponse().status == 200
            except (OSError, http.client.HTTPException):
                ok = False
            finally:
                conn.close()
            pool.health_result(backend, ok, fall, rise)
            time.sleep(interval)

    for backend in pool.backends:
        threading.Thread(target=watch, args=(backend,), daemon=True).start()
""",
    ),
)

RETRY_GET_ONLY = variant(
    "balancer.py",
    (
        RETRY,
        """            except (OSError, http.client.HTTPException, NotSent):
                if self.command == "GET":
                    continue
""",
    ),
)

RING_BLAKE2 = variant(
    "ring.py",
    ("VNODES = 160", "VNODES = 100"),
    (
        'return int.from_bytes(hashlib.md5(text.encode()).digest()[:8], "big")',
        'return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")',
    ),
)

RENDEZVOUS = '''
import hashlib


class HashRing:
    """Rendezvous (highest random weight) hashing: the node with the best score wins."""

    def __init__(self, nodes):
        self.nodes = list(nodes)

    def add(self, node):
        self.nodes.append(node)

    def remove(self, node):
        self.nodes.remove(node)

    def node_for(self, key):
        def score(node):
            return hashlib.sha256(f"{node}|{key}".encode()).digest()

        return max(self.nodes, key=score)
'''


STRIDE = variant(
    "balancer.py",
    (
        SMOOTH,
        """        \"\"\"Stride scheduling: each pick moves a backend on by lcm/weight; the least
        advanced goes next (ties: the heavier).\"\"\"
        import math

        span = math.lcm(*(b.weight for b in self.backends))
        done = self.__dict__.setdefault("advanced", {})
        chosen = min(candidates, key=lambda b: (done.get(b.name, 0), -b.weight))
        done[chosen.name] = done.get(chosen.name, 0) + span // chosen.weight
        return chosen
""",
    ),
)

FORWARD = "status, reply_headers, data = forward(backend, self.command, self.path, headers, body)"
PROXY_LOOP = """            tried += (backend,)
            try:
                FORWARD
            except NotSent:
                continue  # nothing reached it: safe to try another, whatever the method
            except (OSError, http.client.HTTPException):
                if self.command in IDEMPOTENT:
                    continue  # it may have run: only a request that is safe twice goes again
                self.reply(502, [], b'{"error": "the backend failed"}')
                return
            finally:
                self.pool.done(backend)
            self.reply(status, reply_headers, data)
            return
""".replace("FORWARD", FORWARD)

# Counts a request out only after its answer is written to the client (the check must
# wait for the balancer to close the connection, not for the answer), and gives up on a
# backend after 1 s: on a busy machine a held request can time out and its GET go to
# another backend, which the check must not read as a miscount.
LATE_DONE_SHORT_TIMEOUT = variant(
    "balancer.py",
    (
        PROXY_LOOP,
        """            tried += (backend,)
            try:
                try:
                    status, reply_headers, data = forward(
                        backend, self.command, self.path, headers, body
                    )
                except NotSent:
                    continue
                except (OSError, http.client.HTTPException):
                    if self.command in IDEMPOTENT:
                        continue
                    self.reply(502, [], b"{}")
                    return
                self.reply(status, reply_headers, data)
                return
            finally:
                self.pool.done(backend)
""",
    ),
    (
        "conn = http.client.HTTPConnection(backend.host, backend.port, timeout=10)",
        "conn = http.client.HTTPConnection(backend.host, backend.port, timeout=1)",
    ),
)

HEAD_PROBES = variant("balancer.py", ('conn.request("GET", path)', 'conn.request("HEAD", path)'))

FLOOD = variant(
    "balancer.py",
    ("    def proxy(self) -> None:\n", "    def proxy(self) -> None:\n        print('.' * 4000)\n"),
)

ASYNCIO = """'''An asyncio L7 balancer on raw streams: one event loop, no threads.'''

import asyncio
import hashlib
import json
import os
import sys

from ring import HashRing

IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}


class Backend:
    def __init__(self, spec):
        self.name = spec["name"]
        host, port = spec["url"].removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.weight = int(spec.get("weight", 1))
        self.active = self.current = self.fails = self.passes = 0
        self.healthy = True


class Balancer:
    def __init__(self, config):
        self.backends = [Backend(s) for s in config["backends"]]
        self.by_name = {b.name: b for b in self.backends}
        self.policy = config["policy"]
        self.header = config.get("hash_header", "X-User").lower()
        self.health = config.get("health", {})
        self.ring = HashRing([b.name for b in self.backends])

    def pick(self, key, tried):
        left = [b for b in self.backends if b not in tried]
        pool = [b for b in left if b.healthy] or left
        if not pool:
            return None
        if key is not None and self.by_name[self.ring.node_for(key)] in pool:
            return self.by_name[self.ring.node_for(key)]
        if self.policy == "least_connections":
            return min(pool, key=lambda b: b.active)
        total = sum(b.weight for b in pool)
        for b in pool:
            b.current += b.weight
        best = max(pool, key=lambda b: b.current)
        best.current -= total
        return best

    async def probe_forever(self):
        interval = float(self.health.get("interval", 1))
        fall, rise = int(self.health.get("fall", 2)), int(self.health.get("rise", 2))
        while True:
            results = await asyncio.gather(*(self.probe(b) for b in self.backends))
            for b, ok in zip(self.backends, results):
                if ok:
                    b.passes, b.fails = b.passes + 1, 0
                    if b.passes >= rise:
                        b.healthy = True
                else:
                    b.fails, b.passes = b.fails + 1, 0
                    if b.fails >= fall:
                        b.healthy = False
            await asyncio.sleep(interval)

    async def probe(self, b):
        try:
            path = self.health.get("path", "/health")
            status, _ = await asyncio.wait_for(
                self.send(b, f"GET {path} HTTP/1.0\\r\\n\\r\\n".encode()),
                float(self.health.get("timeout", 1)),
            )
            return status == 200
        except (OSError, asyncio.TimeoutError, ValueError):
            return False

    async def send(self, b, raw):
        reader, writer = await asyncio.open_connection(b.host, b.port)
        try:
            writer.write(raw)
            await writer.drain()
            answer = await reader.read()
        finally:
            writer.close()
        if not answer:
            raise ConnectionResetError("the backend hung up")
        return int(answer.split(b" ", 2)[1]), answer

    async def serve(self, reader, writer):
        try:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            lines = head.decode("latin-1").split("\\r\\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get("content-length", 0)))
            raw = f"{method} {target} HTTP/1.0\\r\\n".encode()
            for k, v in headers.items():
                if k not in ("connection", "keep-alive"):
                    raw += f"{k}: {v}\\r\\n".encode()
            raw += b"\\r\\n" + body
            answer = await self.route(method, headers.get(self.header), raw)
            writer.write(answer)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def route(self, method, key, raw):
        tried = []
        while True:
            b = self.pick(key, tried)
            if b is None:
                return b"HTTP/1.0 502 Bad Gateway\\r\\nContent-Length: 2\\r\\n\\r\\n{}"
            tried.append(b)
            b.active += 1
            try:
                _, answer = await self.send(b, raw)
                return answer
            except ConnectionRefusedError:
                continue
            except (OSError, ValueError):
                if method in IDEMPOTENT:
                    continue
                return b"HTTP/1.0 502 Bad Gateway\\r\\nContent-Length: 2\\r\\n\\r\\n{}"
            finally:
                b.active -= 1


async def main():
    with open(sys.argv[1]) as f:
        balancer = Balancer(json.load(f))
    server = await asyncio.start_server(balancer.serve, "127.0.0.1", int(os.environ["PORT"]))
    asyncio.get_running_loop().create_task(balancer.probe_forever())
    print("asyncio balancer up", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
"""

KETAMA = """
import bisect
import hashlib


class HashRing:
    \"\"\"Ketama: 40 md5 digests per node, four 32-bit points from each.\"\"\"

    def __init__(self, nodes):
        self.points = []  # sorted (point, node)
        for node in nodes:
            self.add(node)

    def add(self, node):
        for i in range(40):
            digest = hashlib.md5(f"{node}-{i}".encode()).digest()
            for j in range(4):
                point = int.from_bytes(digest[4 * j : 4 * j + 4], "little")
                bisect.insort(self.points, (point, node))

    def remove(self, node):
        self.points = [p for p in self.points if p[1] != node]

    def node_for(self, key):
        h = int.from_bytes(hashlib.md5(key.encode()).digest()[:4], "little")
        i = bisect.bisect_left(self.points, (h, ""))
        return self.points[i % len(self.points)][1]
"""


@pytest.mark.parametrize(
    ("check_id", "files"),
    [
        pytest.param("weighted", {"balancer.py": LVS_INTERLEAVED}, id="lvs-interleaved"),
        pytest.param(
            "least-connections", {"balancer.py": LEAST_RANDOM_TIES}, id="least-random-ties"
        ),
        pytest.param("health-checks", {"balancer.py": PROBES_IN_PARALLEL}, id="probe-threads"),
        pytest.param("retries", {"balancer.py": RETRY_GET_ONLY}, id="retry-get-only"),
        pytest.param("hash-ring", {"ring.py": RING_BLAKE2}, id="ring-blake2b"),
        pytest.param("hash-ring", {"ring.py": RENDEZVOUS}, id="rendezvous"),
        pytest.param("sticky", {"ring.py": RENDEZVOUS}, id="sticky-rendezvous"),
        pytest.param("weighted", {"balancer.py": STRIDE}, id="stride"),
        pytest.param(
            "least-connections",
            {"balancer.py": LATE_DONE_SHORT_TIMEOUT},
            id="late-done-short-timeout",
        ),
        pytest.param("health-checks", {"balancer.py": HEAD_PROBES}, id="head-probes"),
        pytest.param("weighted", {"balancer.py": FLOOD}, id="prints-a-flood"),
        pytest.param("least-connections", {"balancer.py": ASYNCIO}, id="asyncio-least"),
        pytest.param("retries", {"balancer.py": ASYNCIO}, id="asyncio-retries"),
        pytest.param("hash-ring", {"ring.py": KETAMA}, id="ketama"),
    ],
)
def test_other_correct_answers_pass(lab: LabSpec, check_id: str, files: dict[str, str]) -> None:
    result = judge(lab, check_id, files)
    assert result.passed, result.message


# ------------------------------------------------------------------ wrong other ways

BURSTS = variant(
    "balancer.py",
    (
        SMOOTH,
        """        slots = [b for b in candidates for _ in range(b.weight)]
        self.turn = getattr(self, "turn", -1) + 1
        return slots[self.turn % len(slots)]
""",
    ),
)

WEIGHTED_RANDOM = variant(
    "balancer.py",
    (SMOOTH, "        return random.choices(candidates, [b.weight for b in candidates])[0]\n"),
    ("import json\n", "import json\nimport random\n"),
)

ANSWERS_ITSELF = variant(
    "balancer.py",
    (
        "                status, reply_headers, data = forward(",
        "                data = json.dumps({'backend': backend.name}).encode()\n"
        "                status, reply_headers = 200, []\n"
        "                _ = (",
    ),
)

HANGS = variant(
    "balancer.py",
    ("    def proxy(self) -> None:\n", "    def proxy(self) -> None:\n        time.sleep(60)\n"),
)

LEAST_SERVED = variant(
    "balancer.py",
    (
        LEAST,
        """chosen = min(candidates, key=lambda b: getattr(b, "served", 0))
                chosen.served = getattr(chosen, "served", 0) + 1""",
    ),
)

STOPS_PROBING = variant(
    "balancer.py",
    (
        "        for backend in pool.backends:\n            conn",
        "        for backend in [b for b in pool.backends if b.healthy]:\n            conn",
    ),
)

NO_FAIL_OPEN = variant(
    "balancer.py",
    (
        "candidates = [b for b in left if b.healthy] or left",
        "candidates = [b for b in left if b.healthy]",
    ),
)

RETRY_SAME = variant(
    "balancer.py",
    (
        RETRY,
        """            except NotSent:  # try the same backend once more
                try:
                    status, reply_headers, data = forward(
                        backend, self.command, self.path, headers, body
                    )
                except (NotSent, OSError, http.client.HTTPException):
                    self.reply(502, [], b"{}")
                    return
            except (OSError, http.client.HTTPException):
                if self.command in IDEMPOTENT:
                    continue
""",
    ),
)

CRASHES = variant("balancer.py", ("    pool = Pool(config)\n", "    pool = Pool(config['pool'])\n"))

PASSIVE_EJECTION = variant(
    "balancer.py",
    (
        "                continue  # nothing reached it: safe to try another, whatever the method",
        "                backend.healthy = False  # out until the health checks bring it back\n"
        "                continue",
    ),
)

RING_HANGS = (
    "import time\n\n\nclass HashRing:\n    def __init__(self, nodes):\n        time.sleep(60)\n"
)

STICKY_SALTED = variant(
    "balancer.py",
    (
        "chosen = self.by_name[self.ring.node_for(key)]",
        "chosen = candidates[hash(key) % len(candidates)]",
    ),
)


FORKING = variant(
    "balancer.py",
    (
        "from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer\n",
        "import socketserver\n"
        "from http.server import BaseHTTPRequestHandler, HTTPServer\n\n\n"
        "class ThreadingHTTPServer(socketserver.ForkingMixIn, HTTPServer):\n"
        "    pass  # a process per request: what it picks is forgotten with it\n",
    ),
)

ANY_ANSWER_HEALTHY = variant(
    "balancer.py",
    ("ok = conn.getresponse().status == 200", "ok = conn.getresponse() is not None"),
)

STICKY_TABLE = variant(
    "balancer.py",
    (
        "chosen = self.by_name[self.ring.node_for(key)]",
        'chosen = self.__dict__.setdefault("seen", {}).setdefault(key, self._smooth(candidates))',
    ),
)

JUMP_HASH = """
import hashlib


class HashRing:
    \"\"\"Jump consistent hash (Lamping and Veach): a key picks a position in the list.\"\"\"

    def __init__(self, nodes):
        self.nodes = list(nodes)

    def add(self, node):
        self.nodes.append(node)

    def remove(self, node):
        self.nodes.remove(node)

    def node_for(self, key):
        k = int.from_bytes(hashlib.md5(key.encode()).digest()[:8], "big")
        b, j = -1, 0
        while j < len(self.nodes):
            b = j
            k = (k * 2862933555777941757 + 1) % (1 << 64)
            j = int((b + 1) * ((1 << 31) / ((k >> 33) + 1)))
        return self.nodes[b]
"""


@pytest.mark.parametrize(
    ("check_id", "files", "says"),
    [
        pytest.param("weighted", {"balancer.py": BURSTS}, "in a row", id="bursts"),
        pytest.param("weighted", {"balancer.py": WEIGHTED_RANDOM}, "", id="weighted-random"),
        pytest.param("weighted", {"balancer.py": ANSWERS_ITSELF}, "reached a backend", id="lies"),
        pytest.param("weighted", {"balancer.py": HANGS}, "got no answer", id="hangs"),
        pytest.param("retries", {"balancer.py": CRASHES}, "KeyError: 'pool'", id="crashes"),
        pytest.param(
            "retries",
            {"balancer.py": PASSIVE_EJECTION},
            "only the health checks take a backend out",
            id="refused-takes-b-out",
        ),
        pytest.param(
            "least-connections",
            {"balancer.py": LEAST_SERVED},
            "fewest requests in flight",
            id="least-served",
        ),
        pytest.param(
            "health-checks", {"balancer.py": STOPS_PROBING}, "never learns", id="stops-probing"
        ),
        pytest.param(
            "health-checks", {"balancer.py": NO_FAIL_OPEN}, "fail open", id="no-fail-open"
        ),
        pytest.param("retries", {"balancer.py": RETRY_SAME}, "never reached b", id="retry-same"),
        pytest.param("hash-ring", {"ring.py": RING_HANGS}, "did not finish", id="ring-hangs"),
        pytest.param("sticky", {"balancer.py": STICKY_SALTED}, "hash()", id="sticky-salted"),
        pytest.param(
            "weighted", {"balancer.py": FORKING}, "proportionally more", id="forking-server"
        ),
        pytest.param(
            "health-checks",
            {"balancer.py": ANY_ANSWER_HEALTHY},
            "still received",
            id="any-answer-healthy",
        ),
        pytest.param(
            "sticky",
            {"balancer.py": STICKY_TABLE},
            "HashRing(['a', 'b', 'c']) gives",
            id="sticky-table",
        ),
        pytest.param(
            "hash-ring", {"ring.py": JUMP_HASH}, "Only the removed node's keys", id="jump-hash"
        ),
    ],
)
def test_other_wrong_answers_fail(
    lab: LabSpec, check_id: str, files: dict[str, str], says: str
) -> None:
    hangs = RING_HANGS in files.values()
    result = judge(lab, check_id, files, time_limit=3 if hangs else None)
    assert not result.passed, result.message
    assert says in result.message, result.message
