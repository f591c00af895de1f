"""Checks for the file-storage lab: the checker plays the object store and the browser.

Never the learner's word. Presigned URLs: the learner's sign() makes URLs, the checks
tamper with them the way an attacker would, and verify() must return the signed key or
refuse; while verify runs, a spy on hmac.compare_digest says whether the signature was
compared in constant time. Uploads: the checker runs a small S3-like store on 127.0.0.1
that drops the connection at one part, damages another on the way in, and counts every
part that reached it; the object it assembles must equal the file. Cache headers: the
learner's Cache-Control values are parsed into directives and judged by what they mean.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.util
import json
import math
import secrets
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sdtutor.lab.checks import CheckContext, Evidence, Fail, Pass, check

HARNESS = Path(__file__).with_name("harness.py")
HARNESS_FILE = "sdtutor_file_storage_harness.py"  # its name in the sandbox
FILES: dict[str, str | bytes | Path] = {HARNESS_FILE: HARNESS}
PRESIGN, UPLOAD, CACHE = "presign.py", "upload.py", "cache.py"


def _ours() -> ModuleType:
    """The lab's harness, imported here too: the checks build the same attacks from the
    same signed URLs (it is the lab's code, never the learner's)."""
    spec = importlib.util.spec_from_file_location("sdtutor_file_storage_cases", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


H = _ours()


def _clip(text: Any, width: int = 70) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _listed(items: list[str], shown: int = 3) -> str:
    more = f"; and {len(items) - shown} more" if len(items) > shown else ""
    return "; ".join(items[:shown]) + more


def _ran(run: Any, what: str) -> Any:
    """A harness run's answer, or Fail saying how the learner's code fell over."""
    if run.timed_out or run.limit:
        raise Fail(
            f"{what} did not finish ({run.limit or 'it ran out of time'}). Does a loop "
            "never end (a retry without a bound), or does it wait on something?",
            Evidence("its output", "text", run.output or "(none)"),
        )
    if not run.ok:
        raise Fail(
            f"{what} could not run: {run.error}",
            Evidence("traceback", "text", run.traceback or run.output or "(none)"),
        )
    return run.value


# ------------------------------------------------------------------ task 1: presigned URLs


@dataclass
class _Verdicts:
    cases: list[dict[str, Any]]
    answers: list[dict[str, Any]]

    def group(self, *groups: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [
            (c, a) for c, a in zip(self.cases, self.answers, strict=True) if c["group"] in groups
        ]


def _refused(answer: dict[str, Any]) -> bool:
    """verify() said no: None as README.md asks (False or "" read the same way)."""
    return "error" not in answer and answer.get("result") in (None, False, "")


def _said(answer: dict[str, Any]) -> str:
    if "error" in answer:
        return f"raised {_clip(answer['error'], 50)}"
    if _refused(answer):
        return "refused"
    return f"returned {_clip(answer['result'], 40)!r}"


def _shape(signed: dict[str, str]) -> list[str]:
    """What is wrong with the shape of the signed URLs (the attacks rely on it)."""
    problems: list[str] = []
    bases: dict[str, str] = {}
    for label, method, key, expires in H.to_sign():
        if any(repr(key) in p for p in problems):
            continue  # one problem per key is enough
        url = signed.get(label, "")
        parts = urlsplit(url)
        params = parse_qsl(parts.query, keep_blank_values=True)
        exp = [v for k, v in params if k == "expires"]
        sig = [v for k, v in params if k == "signature"]
        base = H.prefix(url, key)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(f"sign({method!r}, {key!r}, ...) gave {_clip(url, 60)!r}: not a URL")
        elif base is None:
            problems.append(
                f"the URL for {key!r} has the path {_clip(parts.path, 50)!r}, which decodes to "
                f"{_clip(unquote(parts.path), 40)!r}, not ending in the key (percent-encode "
                "it: quote(key))"
            )
        elif len(exp) != 1 or not _number_is(exp[0], expires):
            problems.append(
                f"the URL for {key!r} needs one expires={expires}, it has {_clip(exp, 40)} "
                "(the checker reads the expiry from a parameter named exactly expires)"
            )
        elif len(sig) != 1 or not sig[0]:
            problems.append(
                f"the URL for {key!r} needs one non-empty signature=, it has {_clip(sig, 40)}"
            )
        else:
            bases.setdefault(base, key)
    if not problems and len(bases) > 1:
        (one, first), (two, second) = list(bases.items())[:2]
        problems.append(
            f"the path before the key differs between URLs ({one!r} for {first!r}, {two!r} "
            f"for {second!r}): the key must be all of the path after a fixed prefix"
        )
    return problems


def _number_is(text: str, value: int) -> bool:
    try:
        return float(text) == value
    except ValueError:
        return False


def _presign(ctx: CheckContext) -> _Verdicts:
    """sign() and verify() over every case, in one learner run shared by four checks."""

    def make() -> Any:
        ctx.read(PRESIGN)
        secret, other = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        return ctx.run(HARNESS_FILE, "presign", PRESIGN, secret, other, files=FILES)

    value = _ran(ctx.once("presign", make), "presign.py")
    if value["sign_errors"]:
        label, error = next(iter(value["sign_errors"].items()))
        raise Fail(f"sign() raised {error} when asked for {label!r}.")
    signed: dict[str, str] = value["signed"]
    problems = _shape(signed)
    if problems:
        raise Fail(
            f"The URLs sign() makes are not shaped as README.md asks: {_listed(problems, 2)}. "
            "The store reads the key from the end of the path, and expires and signature "
            "from the query (any other parameters, in any order, are fine).",
        )
    cases = H.attacks(signed)
    answers = value["verdicts"]
    if len(answers) != len(cases) or any(
        a.get("url") != c["url"] for a, c in zip(answers, cases, strict=False)
    ):
        raise Fail(
            "The URLs verify() was given are not the ones the checker built: something in "
            "presign.py changed how the harness runs. Leave the standard library alone."
        )
    return _Verdicts(cases, answers)


def _when(now: float) -> str:
    delta = now - H.NOW - H.LIFETIME
    if delta == 0:
        return "at expiry"
    return f"{abs(delta):g} s {'after' if delta > 0 else 'before'}"


def _table(rows: list[tuple[dict[str, Any], dict[str, Any]]], title: str) -> Evidence:
    return Evidence(
        title,
        "table",
        (
            ("the request", "method", "clock vs expiry", "verify"),
            [(c["what"], c["method"], _when(c["now"]), _said(a)) for c, a in rows],
        ),
    )


@check("urls-valid")
def urls_valid(ctx: CheckContext) -> Pass:
    """Every URL sign() made is accepted, for its own method, until it expires."""
    verdicts = _presign(ctx)
    rows = verdicts.group("valid")
    wrong = [f"{c['what']}: {_said(a)}" for c, a in rows if a.get("result") != c["want"]]
    if wrong:
        raise Fail(
            f"verify() turned down {len(wrong)} of {len(rows)} good URLs: {_listed(wrong)}. "
            "A key may hold spaces, +, &, ?, #, % and any letter: the URL carries it "
            "percent-encoded, and verify must decode it back to exactly the key that was "
            "signed (and return it).",
            _table(rows, "good URLs and what verify() said"),
        )
    return Pass(
        f"All {len(rows)} good URLs accepted, {len(H.KEYS)} keys among them with spaces, "
        "+, &, ?, #, % and non-Latin letters, the last 0.25 s before expiry.",
    )


BOUND = {
    "method": (
        "a URL signed for one method was accepted for another",
        "a GET link shared to download a file must not let its holder overwrite it: put "
        "the method in what you sign",
    ),
    "key": (
        "a URL was accepted for a key it was not signed for",
        "the signature must cover the key exactly as the store will use it, and verify "
        "must return that key, not a cleaned-up path",
    ),
    "expiry": (
        "a URL whose expires was moved later was accepted",
        "sign the expiry, and read it from the URL the same way when you check the "
        "signature and when you check the clock (one value, not the first for one and the "
        "last for the other)",
    ),
    "signature": (
        "a URL with a changed, shortened, empty or missing signature (or no expires) was accepted",
        "compare the whole signature you compute with the whole one in the URL",
    ),
    "secret": (
        "a URL signed with another secret was accepted",
        "verify must recompute the signature with its own secret",
    ),
    "joined": (
        "a forged URL made from another URL's signature was accepted",
        "method + key + expires glued together without separators gives the same bytes "
        "for 'report-7' until 1750000300 and for 'report-' until 71750000300, so one "
        "signature fits both. Join the fields with a separator that cannot occur in them "
        "(a newline; the key goes percent-encoded), or prefix each with its length",
    ),
}


@check("urls-bound")
def urls_bound(ctx: CheckContext) -> Pass:
    """Every tampered URL is refused: method, key, expiry, signature, secret, joins."""
    verdicts = _presign(ctx)
    groups = ("method", "key", "encoding", "expiry", "signature", "secret", "joined")
    rows = verdicts.group(*groups)
    accepted: dict[str, list[str]] = {}
    crashed = []
    for c, a in rows:
        if "error" in a:
            crashed.append(f"{c['what']}: {_said(a)}")
        elif not _refused(a) and not (c["either"] and a["result"] == c["want"]):
            group = "key" if c["group"] == "encoding" else c["group"]
            accepted.setdefault(group, []).append(f"{c['what']} ({_said(a)})")
    bad = [
        (c, a)
        for c, a in rows
        if "error" in a or (not _refused(a) and not (c["either"] and a["result"] == c["want"]))
    ]
    evidence = _table(bad, "tampered URLs that verify() accepted, or crashed on")
    if accepted:
        first = next(g for g in BOUND if g in accepted)
        seen, why = BOUND[first]
        others = [BOUND[g][0] for g in BOUND if g in accepted and g != first]
        also = f" Also: {'; '.join(others)}." if others else ""
        raise Fail(
            f"{seen[0].upper()}{seen[1:]}: {_listed(accepted[first], 2)}. A presigned URL is a "
            f"bearer token, so whoever holds it can edit it; {why}.{also}",
            evidence,
        )
    if crashed:
        raise Fail(
            f"verify() crashed on {len(crashed)} tampered URLs instead of refusing them: "
            f"{_listed(crashed, 2)}. The store would answer 500 where 403 belongs; return "
            "None for anything it cannot read.",
            evidence,
        )
    return Pass(
        f"All {len(rows)} tampered URLs refused: another method, key or secret, a later "
        "expiry, a forged or cut signature, and fields re-split across a join.",
    )


@check("urls-expire")
def urls_expire(ctx: CheckContext) -> Pass:
    """Refused from the second the URL expires on."""
    verdicts = _presign(ctx)
    rows = verdicts.group("expired")
    end = H.NOW + H.LIFETIME
    accepted = [c for c, a in rows if not _refused(a)]
    evidence = _table(rows, "expired URLs and what verify() said")
    if accepted:
        only_edge = all(c["now"] == end for c in accepted)
        why = (
            "expires_at is the first second the URL is dead, so compare now < expires_at "
            "(`<=` lets it live one more second)"
            if only_edge
            else "check the clock: refuse when now >= expires_at, before anything else"
        )
        did = "accepted or crashed on" if any("error" in a for _, a in rows) else "accepted"
        raise Fail(
            f"verify() {did} {len(accepted)} of {len(rows)} expired URLs: "
            f"{_listed([c['what'] for c in accepted])}. A leaked link must die on time; {why}.",
            evidence,
        )
    return Pass(f"All {len(rows)} expired URLs refused, the one at now == expires_at too.")


@check("urls-constant-time")
def urls_constant_time(ctx: CheckContext) -> Pass:
    """The signature check goes through hmac.compare_digest (or secrets.compare_digest)."""
    verdicts = _presign(ctx)
    valid = [(c, a) for c, a in verdicts.group("valid") if a.get("result") == c["want"]]
    forged = [
        (c, a)
        for c, a in verdicts.group("signature")
        if "character changed" in c["what"] and _refused(a)
    ]
    if not valid:
        raise Fail("verify() accepted no good URL, so there is no comparison to look at yet.")
    calls = sum(
        len(a["compared"]) for _, a in verdicts.group(*{c["group"] for c in verdicts.cases})
    )
    unmatched = [c["what"] for c, a in valid if True not in a["compared"]]
    unrefused = [c["what"] for c, a in forged if False not in a["compared"]]
    if unmatched or unrefused:
        said = (
            "verify() never called hmac.compare_digest"
            if not calls
            else f"verify() decided {len(unmatched) + len(unrefused)} URLs without "
            f"hmac.compare_digest saying so (among them: {_listed(unmatched + unrefused, 2)})"
        )
        raise Fail(
            f"{said}. `==` on strings stops at the first character that differs, so it "
            "answers a little sooner the more of a guess is wrong; timed over many "
            "requests, that lets an attacker find a valid signature one character at a "
            "time. Compare signatures with hmac.compare_digest: its time does not depend "
            "on where the inputs differ. (A loop of your own that XORs every character may "
            "well be constant time, but Python promises nothing about the time of its "
            "steps, and nothing short of timing it tells it from a loop that leaks: use the "
            "library's function, written and reviewed for exactly this.)",
        )
    return Pass(
        f"Every accepted URL ({len(valid)}) and every forged signature ({len(forged)}) was "
        "decided by hmac.compare_digest.",
    )


# ------------------------------------------------------------------ task 2: the store


@dataclass
class _Upload:
    key: str
    upload_id: str
    parts: dict[int, bytes] = field(default_factory=dict)
    state: str = "open"


@dataclass
class _Put:
    key: str
    upload_id: str
    part: int
    size: int
    checksum: str
    reply: str


@dataclass
class _Store:
    """An S3-like store with faults planned per key, counting every part it received."""

    part_size: dict[str, int]
    drop: dict[str, int]
    corrupt: dict[str, int]
    uploads: dict[str, _Upload] = field(default_factory=dict)
    objects: dict[str, bytes] = field(default_factory=dict)
    puts: list[_Put] = field(default_factory=list)
    refusals: list[tuple[str, str]] = field(default_factory=list)
    fired: set[tuple[str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(
        self, method: str, key: str, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        """One request: (status, headers, JSON body or bytes); status 0 drops it."""
        with self.lock:
            status, extra, reply = self._handle(method, key, query, headers, body)
            if status >= 400 and isinstance(reply, dict):
                what = "part " + query["partNumber"] if "partNumber" in query else method
                self.refusals.append((key, f"{what}: {status} {reply.get('error')}"))
            return status, extra, reply

    def _handle(
        self, method: str, key: str, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        if "uploads" in query and method == "POST":
            upload_id = secrets.token_hex(8)
            self.uploads[upload_id] = _Upload(key, upload_id)
            return 200, {}, {"upload_id": upload_id, "key": key}
        if "uploads" in query and method == "GET":
            open_ = [u for u in self.uploads.values() if u.key == key and u.state == "open"]
            return 200, {}, {"uploads": [{"upload_id": u.upload_id} for u in open_]}
        if "uploadId" not in query:
            if method in ("GET", "HEAD") and key in self.objects:
                return 200, {}, self.objects[key]
            if method in ("GET", "HEAD"):
                return 404, {}, {"error": "NoSuchKey"}
            return 405, {}, {"error": "this store takes multipart uploads only (README.md)"}
        upload = self.uploads.get(query["uploadId"])
        if upload is None or upload.key != key or upload.state != "open":
            return 404, {}, {"error": "NoSuchUpload"}
        if method == "PUT":
            return self._part(upload, query, headers, body)
        if method == "GET":
            parts = [
                {"part_number": n, "etag": _etag(b), "size": len(b)}
                for n, b in sorted(upload.parts.items())
            ]
            return 200, {}, {"parts": parts}
        if method == "DELETE":
            upload.state = "aborted"
            return 204, {}, b""
        if method == "POST":
            return self._complete(upload, body)
        return 405, {}, {"error": "MethodNotAllowed"}

    def _part(
        self, upload: _Upload, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        try:
            number = int(query.get("partNumber", ""))
        except ValueError:
            return 400, {}, {"error": "InvalidArgument: partNumber must be 1 to 10000"}
        if not 1 <= number <= 10_000:
            return 400, {}, {"error": "InvalidArgument: partNumber must be 1 to 10000"}
        checksum = next((name for header, name, _, _ in DIGESTS if headers.get(header)), "")
        put = _Put(upload.key, upload.upload_id, number, len(body), checksum, "")
        self.puts.append(put)
        fault = (upload.key, f"part {number}")
        if self.drop.get(upload.key) == number and fault not in self.fired:
            self.fired.add(fault)
            put.reply = "connection dropped"
            return 0, {}, None
        if self.corrupt.get(upload.key) == number and fault not in self.fired and body:
            self.fired.add(fault)
            body = bytes([body[0] ^ 0x01]) + body[1:]  # one bit flipped on the way
            put.reply = "damaged on the way: "
        limit = self.part_size.get(upload.key, 1 << 30)
        if len(body) > limit:
            put.reply += "400 EntityTooLarge"
            return 400, {}, {"error": f"EntityTooLarge: parts are at most {limit} bytes here"}
        problem = _digest_problem(headers, body)
        if problem:
            put.reply += f"400 {problem.split(':')[0]}"
            return 400, {}, {"error": problem}
        upload.parts[number] = body
        put.reply += "200"
        return 200, {"ETag": f'"{_etag(body)}"'}, {"etag": _etag(body)}

    def _complete(self, upload: _Upload, body: bytes) -> tuple[int, dict[str, str], Any]:
        try:
            listed = json.loads(body or b"{}")["parts"]
            wanted = [
                (int(p.get("part_number", p.get("PartNumber"))), str(p.get("etag", p.get("ETag"))))
                for p in listed
            ]
        except (ValueError, KeyError, TypeError, AttributeError):
            return 400, {}, {"error": 'MalformedXML: send {"parts": [{"part_number", "etag"}]}'}
        if not wanted or [n for n, _ in wanted] != sorted({n for n, _ in wanted}):
            return 400, {}, {"error": "InvalidPartOrder: list each part once, ascending"}
        limit = self.part_size.get(upload.key, 0)
        for index, (number, etag) in enumerate(wanted):
            part = upload.parts.get(number)
            if part is None or etag.strip('"') != _etag(part):
                return 400, {}, {"error": f"InvalidPart: part {number} with etag {etag}"}
            if index < len(wanted) - 1 and len(part) < limit:
                return 400, {}, {"error": f"EntityTooSmall: part {number} < {limit} bytes"}
        self.objects[upload.key] = b"".join(upload.parts[n] for n, _ in wanted)
        upload.state = "completed"
        return 200, {}, {"key": upload.key, "etag": _etag(self.objects[upload.key])}


def _etag(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


DIGESTS: tuple[tuple[str, str, Callable[[bytes], bytes], int], ...] = (
    ("x-amz-checksum-sha256", "sha256", lambda b: hashlib.sha256(b).digest(), 32),
    ("x-amz-checksum-sha1", "sha1", lambda b: hashlib.sha1(b).digest(), 20),
    ("x-amz-checksum-crc32", "crc32", lambda b: zlib.crc32(b).to_bytes(4, "big"), 4),
    ("Content-MD5", "md5", lambda b: hashlib.md5(b).digest(), 16),
)
"""The part checksums the store checks, as S3 does: (header, name, digest, its size)."""


def _decoded(value: str, size: int) -> bytes | None:
    """A digest sent as base64 (as S3 wants) or hex; None when it is neither."""
    value = value.strip()
    if len(value) == size * 2:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == size else None


def _digest_problem(headers: Any, body: bytes) -> str:
    """Why the part's checksum header does not match its bytes ('' when it does or is
    absent: like S3, the store takes a part without one, and cannot check it)."""
    for header, _, digest_of, size in DIGESTS:
        value = headers.get(header)
        if value is None:
            continue
        digest = _decoded(value, size)
        if digest is None:
            return f"InvalidDigest: {header} must be the base64 (or hex) of the {size}-byte digest"
        if digest != digest_of(body):
            return f"BadDigest: the part's bytes do not match its {header}"
    return ""


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline().strip():
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


BUCKET = "/bucket/"


@contextmanager
def _serving(store: _Store) -> Iterator[str]:
    """The store on a free port of 127.0.0.1, for as long as the block runs."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            body = _read_body(self)
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            extra: dict[str, str] = {}
            reply: Any
            if not parts.path.startswith(BUCKET):
                status, reply = 404, {"error": f"no bucket here; use {BUCKET}<key>"}
            else:
                key = unquote(parts.path[len(BUCKET) :])
                status, extra, reply = store.handle(self.command, key, query, self.headers, body)
            if status == 0:  # the connection drops: no answer at all
                self.close_connection = True
                return
            data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
            self.send_response(status)
            kind = "application/octet-stream" if isinstance(reply, bytes) else "application/json"
            for name, value in {
                **extra,
                "Content-Type": kind,
                "Content-Length": str(len(data)),
            }.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{BUCKET.rstrip('/')}"
    finally:
        server.shutdown()
        server.server_close()


PART = 32 * 1024
RESUME: dict[str, Any] = {"name": "talk.mp4", "size": 6 * PART + 7_000, "part": 4, "seed": 18}
DAMAGE: dict[str, Any] = {"name": "scan.tiff", "size": 4 * PART + 512, "part": 3, "seed": 81}


@dataclass
class _Uploads:
    store: _Store
    keys: dict[str, str]
    calls: dict[str, list[str]]


def _uploads(ctx: CheckContext) -> _Uploads:
    """Both scenarios in one learner run, shared by the two upload checks."""

    def make() -> tuple[Any, _Store, dict[str, str]]:
        ctx.read(UPLOAD)
        tag = secrets.token_hex(3)
        keys = {"resume": f"videos/{tag}/talk.mp4", "damage": f"scans/{tag}/scan.tiff"}
        store = _Store(
            part_size={k: PART for k in keys.values()},
            drop={keys["resume"]: int(RESUME["part"])},
            corrupt={keys["damage"]: int(DAMAGE["part"])},
        )
        scenarios = [
            {**s, "key": keys[n], "part_size": PART, "attempts": 3}
            for n, s in (("resume", RESUME), ("damage", DAMAGE))
        ]
        with _serving(store) as url:
            run = ctx.run(HARNESS_FILE, "uploads", UPLOAD, url, scenarios, files=FILES)
        return run, store, keys

    run, store, keys = ctx.once("uploads", make)
    calls = _ran(run, "upload()")
    return _Uploads(store, keys, {"resume": calls[0], "damage": calls[1]})


def _parts_evidence(store: _Store, key: str, title: str) -> Evidence:
    ids: dict[str, int] = {}
    rows = []
    for put in [p for p in store.puts if p.key == key][:40]:
        number = ids.setdefault(put.upload_id, len(ids) + 1)
        rows.append((f"#{number}", put.part, put.size, put.checksum or "none", put.reply))
    return Evidence(
        title, "table", (("upload", "part", "bytes", "checksum", "the store answered"), rows)
    )


def _object_problem(store: _Store, key: str, data: bytes, calls: list[str]) -> str:
    """What is wrong with the object the store holds for `key` ('' when it equals data)."""
    got = store.objects.get(key)
    if got is None:
        refused = [r for k, r in store.refusals if k == key]
        said = (
            f" (the store refused {len(refused)} requests, first {_clip(refused[0], 90)})"
            if refused
            else ""
        )
        return (
            f"after {len(calls)} calls of upload() ({_listed(calls, 3)}), the store holds no "
            f"object at {key}: the upload was never completed{said}"
        )
    if got != data:
        at = next((i for i, (a, b) in enumerate(zip(got, data, strict=False)) if a != b), None)
        where = (
            f"from byte {at} (part {at // PART + 1})"
            if at is not None
            else f"in length ({len(got)} bytes, not {len(data)})"
        )
        return f"the object the store assembled differs from your file {where}"
    return ""


@check("upload-resumes")
def upload_resumes(ctx: CheckContext) -> Pass:
    """After the connection drops, only the missing parts reach the store again."""
    up = _uploads(ctx)
    key, calls = up.keys["resume"], up.calls["resume"]
    data = H.content(RESUME["seed"], RESUME["size"])
    parts = math.ceil(len(data) / PART)
    dropped = int(RESUME["part"])
    evidence = _parts_evidence(up.store, key, f"every part that reached the store for {key}")
    problem = _object_problem(up.store, key, data, calls)
    cut = any(p.key == key and p.reply == "connection dropped" for p in up.store.puts)
    if problem:
        story = (
            f"The store dropped the connection during part {dropped} of {parts}; " if cut else ""
        )
        problem = f"{story}{problem}" if story else problem[0].upper() + problem[1:]
        raise Fail(
            f"{problem}. When a call fails, the next one must pick the upload up where it "
            "stopped and complete it.",
            evidence,
        )
    counts: dict[int, int] = {}
    for put in up.store.puts:
        if put.key == key:
            counts[put.part] = counts.get(put.part, 0) + 1
    again = [n for n, c in sorted(counts.items()) if c > (2 if n == dropped else 1)]
    if again:
        stale = [u for u in up.store.uploads.values() if u.key == key and u.state == "open"]
        left = (
            f" {len(stale)} unfinished upload(s) still hold parts, billed until aborted."
            if stale
            else ""
        )
        raise Fail(
            f"The store dropped the connection during part {dropped} of {parts}, and then "
            f"received part(s) {', '.join(map(str, again))} again although it already held "
            f"them ({sum(counts.values())} part uploads for {parts} parts).{left} On a 5 GB "
            "file that is gigabytes sent twice. Resume: find the upload already open for "
            "this key (GET ?uploads), ask which parts it holds (GET ?uploadId=), and send "
            "only the others.",
            evidence,
        )
    return Pass(
        f"The connection dropped at part {dropped} of {parts}; the upload resumed with only "
        f"the missing parts ({sum(counts.values())} part uploads in all) and the object "
        "matches the file.",
        evidence,
    )


@check("upload-checksums")
def upload_checksums(ctx: CheckContext) -> Pass:
    """Every part carries a checksum; the damaged one is refused, sent again, and the
    object equals the file."""
    up = _uploads(ctx)
    key, calls = up.keys["damage"], up.calls["damage"]
    data = H.content(DAMAGE["seed"], DAMAGE["size"])
    damaged = int(DAMAGE["part"])
    puts = [p for p in up.store.puts if p.key == key]
    evidence = _parts_evidence(up.store, key, f"every part that reached the store for {key}")
    bare = [p for p in puts if not p.checksum]
    problem = _object_problem(up.store, key, data, calls)
    hit = next((p for p in puts if p.part == damaged), None)
    if bare:
        if hit is not None and not hit.checksum and problem:
            story = (
                f"One bit of part {damaged} flipped on the way, and the store, with nothing "
                f"to check it against, kept it; {problem}."
            )
        elif hit is not None and not hit.checksum:
            story = (
                f"One bit of part {damaged} flipped on the way and the store, with nothing to "
                "check it against, stored it; your object came out right only because that "
                "part was sent again afterwards (an ETag is not always the MD5 of the bytes: "
                "S3 with KMS encryption, for one)."
            )
        else:
            story = "Any of those could be damaged on the way and kept."
        raise Fail(
            f"{len(bare)} of {len(puts)} part uploads carried no checksum. {story} Send each "
            "part's digest with it (x-amz-checksum-sha256: base64 of its SHA-256; "
            "-sha1, -crc32 or Content-MD5 work too), so the store refuses damaged bytes "
            "at the door and you send "
            "that part again.",
            evidence,
        )
    if problem:
        refused = hit is not None and "BadDigest" in hit.reply
        first = (
            f"Part {damaged} was damaged on the way and the store refused it (400 BadDigest); "
            if refused
            else ""
        )
        if not first:
            problem = problem[0].upper() + problem[1:]
        raise Fail(
            f"{first}{problem}. A refused part must be sent again (a bounded number of "
            "times), and every part must reach the store intact before you complete.",
            evidence,
        )
    return Pass(
        f"Every part carried a checksum; part {damaged}, damaged on the way, was refused and "
        "sent again, and the object matches the file.",
        evidence,
    )


# ------------------------------------------------------------------ task 3: Cache-Control

YEAR = 31_536_000
HASHED = (
    "/assets/app.3f9a1c7e.js",
    "/assets/vendor.0a1b2c3d4e5f6a7b.js",
    "/static/css/main.a1b2c3d4.css",
    "/assets/logo.8f14e45f.svg",
    "/assets/fonts/inter-d41d8cd98f00b204.woff2",
    "/assets/chunk-5b7e0c1a.js",
)
PLAIN = (
    "/assets/app.js",
    "/favicon.ico",
    "/robots.txt",
    "/img/logo-2024.png",
    "/assets/decade.css",
)
HTML = ("/index.html", "/", "/about/", "/blog/2024/hello.html", "/docs/index.html")


def _items(value: str) -> list[str]:
    """A header value split at its commas, except those inside a quoted string
    (no-cache="Set-Cookie, Authorization" is one directive)."""
    items, current, quoted = [], "", False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append(current)
            current = ""
        else:
            current += char
    return [*items, current]


def _directives(value: Any) -> dict[str, str | None] | str:
    """A Cache-Control value as {directive: value}, or why it cannot be read."""
    if not isinstance(value, str) or not value.strip():
        return f"no Cache-Control (got {_clip(value, 30)!r})"
    out: dict[str, str | None] = {}
    for item in _items(value):
        name, eq, arg = item.strip().partition("=")
        name = name.strip().lower()
        if not name:
            continue
        if name in out:
            return f"{name} appears twice in {value!r}"
        out[name] = arg.strip().strip('"') if eq else None
    for name in ("max-age", "s-maxage", "stale-while-revalidate"):
        seconds = out.get(name)
        if name in out and (seconds is None or not seconds.isdigit()):
            return f"{name} needs a number of seconds in {value!r}"
    return out


def _age(d: dict[str, str | None], name: str) -> int | None:
    arg = d.get(name)
    return int(arg) if arg is not None else None


def _cache(ctx: CheckContext) -> dict[str, Any]:
    def make() -> Any:
        ctx.read(CACHE)
        return ctx.run(HARNESS_FILE, "cache", CACHE, [*HASHED, *PLAIN, *HTML], files=FILES)

    answers = _ran(ctx.once("cache", make), "cache_control()")
    out = {}
    for path, answer in zip([*HASHED, *PLAIN, *HTML], answers, strict=True):
        out[path] = answer.get("result") if "result" in answer else f"raised {answer['error']}"
    return out


def _rows(got: dict[str, Any], paths: tuple[str, ...]) -> Evidence:
    return Evidence(
        "what cache_control() returned",
        "table",
        (("path", "Cache-Control"), [(p, _clip(got[p], 60)) for p in paths]),
    )


def _asset_problem(value: Any) -> str:
    d = _directives(value)
    if isinstance(d, str):
        return d
    for bad in ("no-store", "no-cache", "private"):
        if bad in d:
            return f"{bad!r} in {value!r}"
    if (_age(d, "max-age") or 0) < YEAR:
        return f"{value!r} keeps it for less than a year"
    if "immutable" not in d:
        return f"{value!r} has no immutable, so browsers revalidate it on reload"
    return ""


def _plain_problem(value: Any) -> str:
    d = _directives(value)
    if isinstance(d, str):
        return d
    if "immutable" in d:
        return f"{value!r} says immutable, yet this URL's content changes at a deploy"
    fresh = max(_age(d, "max-age") or 0, _age(d, "s-maxage") or 0)
    if "no-cache" not in d and "no-store" not in d and fresh > 86_400:
        return f"{value!r} keeps a file whose URL never changes for {fresh // 86_400} days"
    return ""


@check("cache-assets")
def cache_assets(ctx: CheckContext) -> Pass:
    """Content-hashed files: a year, immutable, shareable. Other files: neither."""
    got = _cache(ctx)
    hashed = [f"{p}: {w}" for p in HASHED if (w := _asset_problem(got[p]))]
    plain = [f"{p}: {w}" for p in PLAIN if (w := _plain_problem(got[p]))]
    evidence = _rows(got, HASHED + PLAIN)
    if hashed:
        raise Fail(
            f"{len(hashed)} of {len(HASHED)} content-hashed files are not cached as they "
            f"could be: {_listed(hashed, 2)}. Their name changes whenever their bytes do, "
            "so any copy is right forever: let every cache keep it a year "
            "(max-age=31536000) and say immutable, so no browser asks again.",
            evidence,
        )
    if plain:
        raise Fail(
            f"{len(plain)} files without a hash in their name are cached as if they never "
            f"changed: {_listed(plain, 2)}. The next deploy changes them under the same URL, "
            "and users keep the old copy. Only a name with a content hash earns a year and "
            "immutable; keep these to a short max-age (or no-cache).",
            evidence,
        )
    return Pass(
        f"All {len(HASHED)} content-hashed files get a year and immutable; the "
        f"{len(PLAIN)} files without a hash do not.",
        evidence,
    )


def _html_problem(value: Any) -> tuple[str, str]:
    """(kind, why) when HTML with this Cache-Control may be used without revalidation,
    judged as RFC 9111 reads it; ("", "") when every use is revalidated."""
    d = _directives(value)
    if isinstance(d, str):
        return "unreadable", d
    if "no-store" in d:
        return "no-store", f"{value!r} has no-store"
    if "immutable" in d:
        return "stale", f"{value!r} says immutable"
    if "no-cache" in d and not d["no-cache"]:
        return "", ""  # stored, but never used without a successful revalidation
    # no-cache="Set-Cookie" (with field names) only withholds those fields: the page
    # itself may be reused like any other response (RFC 9111, 5.2.2.4).
    only = " (no-cache with field names covers only those fields)" if d.get("no-cache") else ""
    if "max-age" not in d:
        return "stale", f"{value!r} gives browsers no lifetime, so they guess one{only}"
    fresh = max(_age(d, "max-age") or 0, _age(d, "s-maxage") or 0)
    if fresh:
        return "stale", f"{value!r} lets caches reuse it {fresh} s unchecked{only}"
    if _age(d, "stale-while-revalidate"):
        return "stale", f"{value!r} lets caches serve it stale for a while"
    return "", ""  # max-age=0: stale at once, so revalidated before use


@check("cache-html")
def cache_html(ctx: CheckContext) -> Pass:
    """HTML may be stored but is revalidated before each use (no-cache, or max-age=0),
    never no-store, never kept unchecked."""
    got = _cache(ctx)
    found = [(path, *_html_problem(got[path])) for path in HTML]
    wrong = [f"{path}: {why}" for path, kind, why in found if kind]
    stored = [f"{path}: {why}" for path, kind, why in found if kind == "no-store"]
    evidence = _rows(got, HTML)
    bare = " (no field names)" if any("with field names" in w for w in wrong) else ""
    if stored:
        raise Fail(
            f"HTML marked no-store: {_listed(stored, 2)}. Nothing is wrong with keeping a "
            "copy; what matters is checking it before use. no-store makes every visit "
            "download the whole page again; no-cache keeps the copy and revalidates it "
            "(If-None-Match, a 304 of a few bytes when the page has not changed).",
            evidence,
        )
    if wrong:
        raise Fail(
            f"Caches may serve this HTML stale: {_listed(wrong, 2)}. The HTML names this "
            "deploy's asset files; a copy used unchecked after a deploy, even for a minute, "
            "shows the old page and points users at the old assets (or at files already "
            f"deleted). Use no-cache{bare}, so every use is revalidated (max-age=0, "
            "must-revalidate works the same way; with no lifetime at all, caches guess one).",
            evidence,
        )
    return Pass(f"All {len(HTML)} HTML paths are revalidated before each use.", evidence)
