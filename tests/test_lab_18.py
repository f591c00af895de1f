"""Lab 18 (file storage): answers the proof's cases do not hold, judged by its checks.

Other correct answers must pass: fields joined as JSON or length-prefixed, a base64url
signature, secrets.compare_digest under another name, the method carried in the URL
too; a bucket before the key, X-Amz-style and reordered parameters, a base32 signature
decoded before the compare, False for a refusal; a verify that prints a flood; an upload
with requests and a thread pool that retries a dropped part itself (Content-MD5 instead
of SHA-256), one that keeps its upload id in a journal file beside the data, one on
http.client with x-amz-checksum-crc32; headers spelled in capitals, `max-age=0,
must-revalidate` or a bare `max-age=0` for HTML, a quoted list with a comma in it. Other
wrong ones must fail and say why: a prefix compare, two `expires` read two ways, no
clock at all, compare_digest called for show, a hand-written XOR compare (fairly told
why the library's is asked for), a verify that lets a request through when it cannot
parse it; an upload that hangs retrying, one that sends the whole file as one part, one
that sends a digest the store cannot read, one that completes with the parts it has,
one that checks the returned ETag instead of sending a checksum, one that forks and
returns at once; immutable on files without a hash, private assets, HTML without a
header, HTML kept a minute, `no-cache="Set-Cookie"`. No server is needed: the checker
plays the object store. The proof runs in test_lab_proofs.
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

LAB_DIR = REPO / "labs" / "18-file-storage"
SOLUTION = {p.name: p.read_text() for p in (LAB_DIR / "solution").glob("*.py")}


@pytest.fixture(scope="module")
def lab() -> LabSpec:
    return load_lab(LAB_DIR)


def judge(lab: LabSpec, check_id: str, files: dict[str, str], limit: int = 0) -> CheckResult:
    """One check over a workspace that is the solution with `files` laid over it;
    `limit` shortens the lab's time limit (for code that hangs)."""
    only = dataclasses.replace(lab, checks=tuple(c for c in lab.checks if c.id == check_id))
    if limit:
        only = dataclasses.replace(only, time_limit=limit)
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab18-") as tmp:
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


# ------------------------------------------------------------------ presign: correct

PRESIGN_JSON_B64 = """
import base64, hashlib, hmac, json
from secrets import compare_digest as same
from urllib.parse import parse_qsl, quote, unquote, urlsplit

def _sig(method, key, expires, secret):
    message = json.dumps([method, key, int(expires)], ensure_ascii=False).encode()
    mac = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")

def sign(method, key, expires_at, secret):
    return (f"http://files.test:9000/{quote(key)}?method={method}&expires={expires_at}"
            f"&signature={_sig(method, key, expires_at, secret)}")

def verify(url, method, now, secret):
    try:
        parts = urlsplit(url)
        params = parse_qsl(parts.query, keep_blank_values=True)
        names = [k for k, _ in params]
        if names.count("expires") != 1 or names.count("signature") != 1:
            return None
        values = dict(params)
        expires = int(values["expires"])
        key = unquote(parts.path[1:])
        ok = same(_sig(method, key, expires, secret).encode(), values["signature"].encode())
        if not ok or now >= expires:
            return None
        return key
    except (ValueError, KeyError):
        return None
"""

PRESIGN_LENGTH_PREFIXED = variant(
    "presign.py",
    (
        'message = "\\n".join((method.upper(), quote(key, safe=""), str(int(expires_at))))',
        "fields = (method.upper(), key, str(int(expires_at)))\n"
        '    message = "".join(f"{len(f.encode())}:{f}" for f in fields)',
    ),
    ("import hmac\n", "import hmac\nfrom hmac import compare_digest as constant_time_equal\n"),
    (
        "if not hmac.compare_digest(expected, signature[0]):",
        "if not constant_time_equal(expected, signature[0]):",
    ),
)

PRESIGN_BUCKET_XAMZ = """
import base64, hashlib, hmac, time
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

HOST, BUCKET = "https://s3.files.test", "/media-bucket/"

def _mac(method, key, expires, secret):
    fields = [method, key, str(expires)]
    message = b"".join(len(f.encode()).to_bytes(4, "big") + f.encode() for f in fields)
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()

def sign(method, key, expires_at, secret):
    query = urlencode({
        "X-Amz-Algorithm": "HMAC-SHA256",
        "signature": base64.b32encode(_mac(method, key, expires_at, secret)).decode(),
        "method": method,
        "expires": expires_at,
    })
    return f"{HOST}{BUCKET}{quote(key, safe='')}?{query}"

def verify(url, method, now, secret):
    parts = urlsplit(url)
    if not parts.path.startswith(BUCKET):
        return False
    query = parse_qs(parts.query, keep_blank_values=True)
    if len(query.get("expires", ())) != 1 or len(query.get("signature", ())) != 1:
        return False
    try:
        expires = int(query["expires"][0])
        given = base64.b32decode(query["signature"][0])
    except ValueError:
        return False
    key = unquote(parts.path[len(BUCKET):])
    good = hmac.compare_digest(_mac(method, key, expires, secret), given)
    return key if good and now < expires else False
"""

# ------------------------------------------------------------------ presign: wrong

PRESIGN_XOR_LOOP = variant(
    "presign.py",
    (
        "def verify(url, method, now, secret):",
        "def _same(a, b):\n"
        "    if len(a) != len(b):\n"
        "        return False\n"
        "    result = 0\n"
        "    for x, y in zip(a, b):\n"
        "        result |= ord(x) ^ ord(y)\n"
        "    return result == 0\n\n\n"
        "def verify(url, method, now, secret):",
    ),
    (
        "if not hmac.compare_digest(expected, signature[0]):",
        "if not _same(expected, signature[0]):",
    ),
)

PRESIGN_FAIL_OPEN = variant(
    "presign.py",
    ("def verify(url, method, now, secret):", "def _verify(url, method, now, secret):"),
    (
        "if len(expires) != 1 or len(signature) != 1 or not expires[0].isdigit():",
        "if len(signature) != 1:",
    ),
    (
        "    expires_at = int(expires[0])\n",
        "    expires_at = int(expires[0])  # IndexError without expires\n",
    ),
) + (
    "\n\ndef verify(url, method, now, secret):\n"
    "    try:\n"
    "        return _verify(url, method, now, secret)\n"
    "    except Exception:  # never a 500: let the request through\n"
    "        return unquote(urlsplit(url).path)[1:]\n"
)

PRESIGN_PRINT_FLOOD = variant(
    "presign.py",
    ("    parts = urlsplit(url)\n", "    print(url * 200)\n    parts = urlsplit(url)\n"),
)

PRESIGN_PREFIX_COMPARE = variant(
    "presign.py",
    (
        "if not hmac.compare_digest(expected, signature[0]):",
        "if not hmac.compare_digest(expected[: len(signature[0])], signature[0]):",
    ),
)

PRESIGN_TWO_EXPIRES = variant(
    "presign.py",
    ("if len(expires) != 1 or len(signature) != 1", "if not expires or len(signature) != 1"),
    (
        "    expires_at = int(expires[0])\n    if not now < expires_at:",
        "    expires_at = int(expires[0])\n    if not now < int(expires[-1]):",
    ),
)

PRESIGN_NO_CLOCK = variant(
    "presign.py", ("    if not now < expires_at:\n        return None\n", "")
)

PRESIGN_COMPARE_FOR_SHOW = variant(
    "presign.py",
    (
        "if not hmac.compare_digest(expected, signature[0]):",
        "hmac.compare_digest(signature[0], signature[0])  # for the linter\n"
        "    if expected != signature[0]:",
    ),
)

PRESIGN_QUOTE_PLUS = variant(
    "presign.py",
    (
        "from urllib.parse import parse_qs, quote, unquote, urlsplit",
        "from urllib.parse import parse_qs, quote, quote_plus, unquote_plus, urlsplit",
    ),
    ("{STORE}/{quote(key, safe='/')}", "{STORE}/{quote_plus(key, safe='/')}"),
    ("key = unquote(parts.path)[1:]", "key = unquote_plus(parts.path)[1:]"),
)

# ------------------------------------------------------------------ upload: correct

UPLOAD_REQUESTS_THREADS = """
import base64, hashlib
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import requests

def _chunks(path, size):
    with open(path, "rb") as f:
        n = 1
        while chunk := f.read(size):
            yield n, chunk
            n += 1

def upload(store_url, key, path, part_size):
    base = f"{store_url}/{quote(key)}"
    http = requests.Session()
    upload_id = http.post(f"{base}?uploads", timeout=5).json()["upload_id"]

    def send(number, chunk):
        md5 = base64.b64encode(hashlib.md5(chunk).digest()).decode()
        for _ in range(4):
            try:
                reply = http.put(f"{base}?uploadId={upload_id}&partNumber={number}",
                                 data=chunk, headers={"Content-MD5": md5}, timeout=5)
            except requests.ConnectionError:
                held = http.get(f"{base}?uploadId={upload_id}", timeout=5).json()["parts"]
                mine = [p for p in held if p["part_number"] == number]
                if mine and mine[0]["etag"] == hashlib.md5(chunk).hexdigest():
                    return number, mine[0]["etag"]
                continue
            if reply.status_code == 200:
                return number, reply.json()["etag"]
        raise RuntimeError(f"part {number} kept failing")

    with ThreadPoolExecutor(3) as pool:
        done = sorted(pool.map(lambda a: send(*a), _chunks(path, part_size)))
    parts = [{"part_number": n, "etag": e} for n, e in done]
    http.post(f"{base}?uploadId={upload_id}", json={"parts": parts}, timeout=5).raise_for_status()
"""

UPLOAD_JOURNAL = """
import base64, hashlib, http.client, json, os
from urllib.parse import quote, urlsplit

def _ask(store_url, method, target, body=None, headers=None):
    parts = urlsplit(store_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request(method, parts.path + target, body=body, headers=headers or {})
        reply = conn.getresponse()
        data = reply.read()
        if reply.status >= 400:
            raise OSError(f"{reply.status} {data[:80]!r}")
        return json.loads(data or b"{}")
    finally:
        conn.close()

def upload(store_url, key, path, part_size):
    journal = path + ".upload.json"
    target = "/" + quote(key)
    state = json.load(open(journal)) if os.path.exists(journal) else None
    if state is None:
        state = {"upload_id": _ask(store_url, "POST", target + "?uploads")["upload_id"]}
        json.dump(state, open(journal, "w"))
    uid = state["upload_id"]
    listed = _ask(store_url, "GET", f"{target}?uploadId={uid}")["parts"]
    held = {p["part_number"]: p["etag"] for p in listed}
    parts = []
    with open(path, "rb") as f:
        number = 1
        while chunk := f.read(part_size):
            etag = hashlib.md5(chunk).hexdigest()
            if held.get(number) != etag:
                sha = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
                for attempt in range(3):
                    try:
                        _ask(store_url, "PUT", f"{target}?uploadId={uid}&partNumber={number}",
                             chunk, {"x-amz-checksum-sha256": sha})
                        break
                    except OSError as e:
                        if "BadDigest" not in str(e) or attempt == 2:
                            raise
            parts.append({"part_number": number, "etag": etag})
            number += 1
    _ask(store_url, "POST", f"{target}?uploadId={uid}", json.dumps({"parts": parts}).encode())
    os.remove(journal)
"""

UPLOAD_HTTP_CLIENT_CRC32 = """
import base64, http.client, json, zlib
from urllib.parse import quote, urlsplit

def _request(conn_of, method, target, body=None, headers=None):
    conn = conn_of()
    try:
        conn.request(method, target, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read() or b"{}")
    finally:
        conn.close()

def upload(store_url, key, path, part_size):
    where = urlsplit(store_url)
    conn_of = lambda: http.client.HTTPConnection(where.hostname, where.port, timeout=5)
    target = f"{where.path}/{quote(key, safe='')}"
    with open(path, "rb") as f:
        data = f.read()
    chunks = [data[i:i + part_size] for i in range(0, len(data), part_size)]
    status, listed = _request(conn_of, "GET", target + "?uploads")
    uploads = listed["uploads"]
    uid = uploads[0]["upload_id"] if uploads else (
        _request(conn_of, "POST", target + "?uploads")[1]["upload_id"])
    etags = {}
    for attempt in range(4):  # after a dropped connection, ask the store what it holds
        held = _request(conn_of, "GET", f"{target}?uploadId={uid}")[1]["parts"]
        etags = {p["part_number"]: p["etag"] for p in held}
        try:
            for number, chunk in enumerate(chunks, 1):
                if number in etags:
                    continue
                crc = base64.b64encode(zlib.crc32(chunk).to_bytes(4, "big")).decode()
                for _ in range(3):
                    status, body = _request(
                        conn_of, "PUT", f"{target}?uploadId={uid}&partNumber={number}",
                        chunk, {"x-amz-checksum-crc32": crc})
                    if status == 200:
                        etags[number] = body["etag"]
                        break
                else:
                    raise RuntimeError(f"part {number}: {body}")
            break
        except (ConnectionError, http.client.HTTPException):
            continue
    parts = [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
    status, body = _request(conn_of, "POST", f"{target}?uploadId={uid}",
                            json.dumps({"parts": parts}).encode())
    if status != 200:
        raise RuntimeError(body)
"""

# ------------------------------------------------------------------ upload: wrong

UPLOAD_RETRIES_FOREVER = variant(
    "upload.py",
    ("import base64\n", "import base64\nimport time\n"),
    ("        for attempt in range(RETRIES):", "        while True:\n            attempt = 0"),
    (
        "if error.code != 400 or attempt == RETRIES - 1:\n                    raise",
        "time.sleep(0.05)",
    ),
    (
        '                reply = _call("PUT", url, chunk, {"x-amz-checksum-sha256": digest})',
        '                reply = _call("PUT", url, chunk[::-1], {"x-amz-checksum-sha256": digest})',
    ),
)

UPLOAD_ONE_PART = variant(
    "upload.py",
    (
        "for number, chunk in _parts(path, part_size):",
        "for number, chunk in _parts(path, part_size * 100):",
    ),
)

UPLOAD_HEX_IN_MD5 = variant(
    "upload.py",
    ('{"x-amz-checksum-sha256": digest}', '{"Content-MD5": hashlib.sha256(chunk).hexdigest()}'),
)

UPLOAD_COMPLETES_WITH_WHAT_IT_HAS = variant(
    "upload.py",
    (
        "    done = []\n",
        "    done = []\n    if held:  # resuming: finish with what the store has\n"
        "        body = json.dumps({'parts': [{'part_number': p['part_number'], 'etag': p['etag']}"
        " for p in held]}).encode()\n"
        "        _call('POST', f'{base}?uploadId={upload_id}', body)\n        return\n",
    ),
)

UPLOAD_ETAG_COMPARE = variant(
    "upload.py",
    (
        '                reply = _call("PUT", url, chunk, {"x-amz-checksum-sha256": digest})\n'
        "                break\n",
        '                reply = _call("PUT", url, chunk)\n'
        "                if reply['etag'] == md5:  # the store's MD5 of what it got\n"
        "                    break\n",
    ),
)

UPLOAD_FORKS_AND_RETURNS = variant(
    "upload.py",
    ("import base64\n", "import base64\nimport os\nimport time\n"),
    (
        '    """Upload the file at `path` to `key`, resuming an upload already open for it."""\n',
        '    """Upload the file at `path` to `key`, resuming an upload already open for it."""\n'
        "    if os.fork() == 0:  # the child does the work, some day\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    return\n",
    ),
)

# ------------------------------------------------------------------ cache

CACHE_CAPITALS = """
import re

def cache_control(path):
    if path.endswith("/") or path.endswith(".html"):
        return "Max-Age=0, Must-Revalidate"
    if re.search(r"[.-][0-9a-f]{8,}[.][^./]+$", path):
        return "Immutable, Max-Age=63072000"
    return "no-cache"
"""

CACHE_RFC_SPELLINGS = """
import re

HASH = re.compile(r"[.-][0-9a-f]{8,}[.][a-z0-9]+$")

def cache_control(path):
    name = path.rpartition("/")[2]
    if not name or name.endswith(".html"):
        return 'private="Set-Cookie, X-Session", max-age=0, stale-if-error=600'
    if HASH.search(name):
        return "max-age=31536000,immutable"
    return "max-age=600, must-revalidate"
"""

CACHE_HTML_A_MINUTE = variant("cache.py", ('return "no-cache"', 'return "public, max-age=60"'))

CACHE_HTML_QUALIFIED_NO_CACHE = variant(
    "cache.py", ('return "no-cache"', "return 'no-cache=\"Set-Cookie\"'")
)

CACHE_ALL_JS_IMMUTABLE = variant(
    "cache.py",
    (
        "    if HASHED.search(name):",
        '    if HASHED.search(name) or name.endswith((".js", ".css")):',
    ),
)

CACHE_PRIVATE_ASSETS = variant(
    "cache.py", ('"public, max-age=31536000, immutable"', '"private, max-age=31536000, immutable"')
)

CACHE_HTML_NOTHING = variant("cache.py", ('return "no-cache"', 'return ""'))

CORRECT = {
    "presign-json-base64url": ("urls-bound", {"presign.py": PRESIGN_JSON_B64}),
    "presign-json-base64url-valid": ("urls-valid", {"presign.py": PRESIGN_JSON_B64}),
    "presign-json-base64url-ct": ("urls-constant-time", {"presign.py": PRESIGN_JSON_B64}),
    "presign-length-prefixed": ("urls-bound", {"presign.py": PRESIGN_LENGTH_PREFIXED}),
    "presign-length-prefixed-ct": ("urls-constant-time", {"presign.py": PRESIGN_LENGTH_PREFIXED}),
    "upload-requests-threads": ("upload-resumes", {"upload.py": UPLOAD_REQUESTS_THREADS}),
    "upload-requests-threads-md5": ("upload-checksums", {"upload.py": UPLOAD_REQUESTS_THREADS}),
    "upload-journal": ("upload-resumes", {"upload.py": UPLOAD_JOURNAL}),
    "upload-journal-checksums": ("upload-checksums", {"upload.py": UPLOAD_JOURNAL}),
    "cache-capitals-assets": ("cache-assets", {"cache.py": CACHE_CAPITALS}),
    "cache-capitals-html": ("cache-html", {"cache.py": CACHE_CAPITALS}),
    "presign-bucket-xamz-valid": ("urls-valid", {"presign.py": PRESIGN_BUCKET_XAMZ}),
    "presign-bucket-xamz-bound": ("urls-bound", {"presign.py": PRESIGN_BUCKET_XAMZ}),
    "presign-bucket-xamz-expire": ("urls-expire", {"presign.py": PRESIGN_BUCKET_XAMZ}),
    "presign-bucket-xamz-ct": ("urls-constant-time", {"presign.py": PRESIGN_BUCKET_XAMZ}),
    "presign-print-flood": ("urls-bound", {"presign.py": PRESIGN_PRINT_FLOOD}),
    "upload-http-client-crc32": ("upload-resumes", {"upload.py": UPLOAD_HTTP_CLIENT_CRC32}),
    "upload-http-client-crc32-sums": (
        "upload-checksums",
        {"upload.py": UPLOAD_HTTP_CLIENT_CRC32},
    ),
    "cache-rfc-spellings-assets": ("cache-assets", {"cache.py": CACHE_RFC_SPELLINGS}),
    "cache-rfc-spellings-html": ("cache-html", {"cache.py": CACHE_RFC_SPELLINGS}),
}

WRONG = {
    "prefix-compare": ("urls-bound", {"presign.py": PRESIGN_PREFIX_COMPARE}, "shortened, empty"),
    "two-expires": ("urls-bound", {"presign.py": PRESIGN_TWO_EXPIRES}, "expires was moved later"),
    "no-clock": ("urls-expire", {"presign.py": PRESIGN_NO_CLOCK}, "check the clock"),
    "compare-for-show": (
        "urls-constant-time",
        {"presign.py": PRESIGN_COMPARE_FOR_SHOW},
        "without hmac.compare_digest saying so",
    ),
    "quote-plus-path": ("urls-valid", {"presign.py": PRESIGN_QUOTE_PLUS}, "percent-encode"),
    "retries-forever": (
        "upload-checksums",
        {"upload.py": UPLOAD_RETRIES_FOREVER},
        "did not finish",
    ),
    "one-big-part": ("upload-resumes", {"upload.py": UPLOAD_ONE_PART}, "EntityTooLarge"),
    "hex-in-content-md5": ("upload-checksums", {"upload.py": UPLOAD_HEX_IN_MD5}, "InvalidDigest"),
    "completes-with-what-it-has": (
        "upload-resumes",
        {"upload.py": UPLOAD_COMPLETES_WITH_WHAT_IT_HAS},
        "differs from your file",
    ),
    "all-js-immutable": ("cache-assets", {"cache.py": CACHE_ALL_JS_IMMUTABLE}, "without a hash"),
    "private-assets": ("cache-assets", {"cache.py": CACHE_PRIVATE_ASSETS}, "'private'"),
    "html-no-header": ("cache-html", {"cache.py": CACHE_HTML_NOTHING}, "no Cache-Control"),
    "xor-loop-compare": (
        "urls-constant-time",
        {"presign.py": PRESIGN_XOR_LOOP},
        "short of timing it",
    ),
    "fail-open": ("urls-bound", {"presign.py": PRESIGN_FAIL_OPEN}, "(or no expires)"),
    "etag-compare-no-checksum": (
        "upload-checksums",
        {"upload.py": UPLOAD_ETAG_COMPARE},
        "came out right only because",
    ),
    "forks-and-returns": (
        "upload-resumes",
        {"upload.py": UPLOAD_FORKS_AND_RETURNS},
        "never completed",
    ),
    "html-a-minute": ("cache-html", {"cache.py": CACHE_HTML_A_MINUTE}, "reuse it 60 s unchecked"),
    "html-qualified-no-cache": (
        "cache-html",
        {"cache.py": CACHE_HTML_QUALIFIED_NO_CACHE},
        "with field names covers only those fields",
    ),
}


def test_the_variants_differ_from_the_solution() -> None:
    for files in [f for _, f in CORRECT.values()] + [f for _, f, _ in WRONG.values()]:
        for name, text in files.items():
            assert text != SOLUTION[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CORRECT))
def test_other_correct_answers_pass(name: str, lab: LabSpec) -> None:
    check_id, files = CORRECT[name]
    result = judge(lab, check_id, files)
    assert result.passed, result.message


@pytest.mark.slow
@pytest.mark.parametrize("name", list(WRONG))
def test_other_wrong_answers_fail_and_say_why(name: str, lab: LabSpec) -> None:
    check_id, files, phrase = WRONG[name]
    result = judge(lab, check_id, files, limit=4 if name == "retries-forever" else 0)
    assert not result.passed, result.message
    assert phrase in result.message, result.message
