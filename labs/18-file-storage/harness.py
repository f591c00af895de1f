"""Calls the learner's presign.py, upload.py and cache.py; runs in their process.

The checks run these functions through the runner, which puts this file into the
sandbox's copy of the workspace. Nothing here decides a verdict: it hands back what the
learner's functions returned (and, for verify, what hmac.compare_digest answered while
it ran), and the checks judge it. The tampered URLs are built by `attacks()` below from
the URLs the learner's sign() made; the checks import this file and build them again
from the same signed URLs, so a harness bent by the learner's code would be noticed.
"""

from __future__ import annotations

import hmac
import operator
import random
import secrets
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from sdtutor.lab.runner.harness import import_learner

# ------------------------------------------------------------------ shared with the checks

NOW = 1_750_000_000
"""The clock at signing time; expiries are NOW + LIFETIME."""
LIFETIME = 300

KEYS = (
    "uploads/u1/avatar.png",
    "uploads/u2/avatar.png",
    "2024/q3/report-7",
    "docs/naïve résumé.pdf",
    "照片/北京 2024.jpg",
    "a+b=c&d.txt",
    "what?#really.txt",
    "100% done;v=2.csv",
    "o'neil/~notes (1).md",
)
"""Keys the checks sign: plain, unicode, and characters that mean something in a URL."""


def _swap_char(text: str, index: int) -> str:
    """`text` with the character at `index` replaced by another character of `text`
    itself: a forgery of the same length and alphabet (hex, base64, base32), which only
    a comparison of its content can refuse."""
    old = text[index]
    pool = [c for c in dict.fromkeys(text) if c != old and c not in "=."]
    new = pool[0] if pool else ("1" if old == "0" else "0")
    return text[:index] + new + text[index + 1 :]


def _params(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def _with(
    url: str,
    *,
    path: str | None = None,
    set_: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
    add: tuple[tuple[str, str], ...] = (),
) -> str:
    """The URL with its path replaced, parameters set, dropped or appended."""
    parts = urlsplit(url)
    params = [(k, (set_ or {}).get(k, v)) for k, v in _params(url) if k not in drop]
    query = urlencode([*params, *add], quote_via=quote, safe="")
    return urlunsplit(parts._replace(path=path if path is not None else parts.path, query=query))


def _param(url: str, name: str) -> str | None:
    values = [v for k, v in _params(url) if k == name]
    return values[0] if values else None


def prefix(url: str, key: str) -> str | None:
    """The part of the URL's raw path before the key (`/`, or `/bucket/` for a URL that
    names a bucket first), or None when the path does not end in the key."""
    raw = urlsplit(url).path
    for index in range(len(raw) + 1):
        if raw[:index].endswith("/") and unquote(raw[index:]) == key:
            return raw[:index]
    return None


def attacks(signed: dict[str, str]) -> list[dict[str, Any]]:
    """Every request the checks make of verify(), from the URLs sign() made.

    `signed` maps "METHOD key" (and "other METHOD key", signed with another secret) to
    the URL. Each case: what it is (`what`, `group`), the URL, the method and clock it is
    presented with, and what verify must answer: `want` is the key it must return, None
    when it must refuse, and `either` marks a case where refusing and returning the
    signed key are both right (the same key, spelled another way).
    """
    end = NOW + LIFETIME
    cases: list[dict[str, Any]] = []
    # The path before the key, as sign() writes it: the tampered paths keep it.
    base = prefix(signed["GET uploads/u1/avatar.png"], "uploads/u1/avatar.png") or "/"

    def _path(key: str) -> str:
        return base + quote(key, safe="/")

    def case(group: str, what: str, url: str, method: str, now: float, want: str | None) -> None:
        cases.append(
            {
                "group": group,
                "what": what,
                "url": url,
                "method": method,
                "now": now,
                "want": want,
                "either": group == "encoding",
            }
        )

    for key in KEYS:
        for method in ("GET", "PUT"):
            url = signed[f"{method} {key}"]
            case("valid", f"{method} {key}, just signed", url, method, NOW, key)
        case("valid", f"GET {key}, 1 s before expiry", signed[f"GET {key}"], "GET", end - 1, key)
    url = signed["PUT uploads/u1/avatar.png"]
    case("valid", "PUT, 0.25 s before expiry", url, "PUT", end - 0.25, "uploads/u1/avatar.png")

    for method, other in (("GET", "PUT"), ("PUT", "GET")):
        for key in KEYS[:3]:
            url = signed[f"{method} {key}"]
            case("method", f"a {method} URL for {key} used for {other}", url, other, NOW, None)

    get = signed["GET uploads/u1/avatar.png"]
    put = signed["PUT uploads/u1/avatar.png"]
    case(
        "key",
        "the URL for uploads/u1/avatar.png pointed at uploads/u2/avatar.png",
        _with(put, path=_path("uploads/u2/avatar.png")),
        "PUT",
        NOW,
        None,
    )
    case(
        "key",
        "path traversal: /uploads/u1/../u2/avatar.png",
        _with(put, path=base + "uploads/u1/../u2/avatar.png"),
        "PUT",
        NOW,
        None,
    )
    case(
        "key",
        "path traversal, encoded: /uploads/u1/%2e%2e/u2/avatar.png",
        _with(put, path=base + "uploads/u1/%2e%2e/u2/avatar.png"),
        "PUT",
        NOW,
        None,
    )
    case(
        "key",
        "one more segment: /uploads/u1/avatar.png/x",
        _with(get, path=base + "uploads/u1/avatar.png/x"),
        "GET",
        NOW,
        None,
    )
    case(
        "encoding",
        "the same key, /uploads%2Fu1%2Favatar.png",
        _with(get, path=base + "uploads%2Fu1%2Favatar.png"),
        "GET",
        NOW,
        "uploads/u1/avatar.png",
    )
    case(
        "encoding",
        "the same key, /uploads/u1/%61vatar.png",
        _with(get, path=base + "uploads/u1/%61vatar.png"),
        "GET",
        NOW,
        "uploads/u1/avatar.png",
    )

    for method in ("GET", "PUT"):
        url = signed[f"{method} uploads/u1/avatar.png"]
        later = str(end + 86_400)
        case(
            "expiry",
            f"{method}: expires moved a day later",
            _with(url, set_={"expires": later}),
            method,
            end + 10,
            None,
        )
    case(
        "expiry",
        "a second expires parameter, a day later",
        _with(get, add=(("expires", str(end + 86_400)),)),
        "GET",
        end + 10,
        None,
    )
    case(
        "expiry",
        "a second expires parameter, first",
        _with(get, drop=("expires",), add=(("expires", str(end + 86_400)), ("expires", str(end)))),
        "GET",
        end + 10,
        None,
    )

    for method in ("GET", "PUT"):
        url = signed[f"{method} uploads/u1/avatar.png"]
        sig = _param(url, "signature") or ""
        if sig:
            # Not the very last: in base64 or base32 its low bits may be padding, which
            # a decoder ignores, so changing it need not change the signature at all.
            near_end = max(len(sig.rstrip("=")) - 2, 0)
            for where, index in (("last but one", near_end), ("first", 0)):
                case(
                    "signature",
                    f"{method}: the signature's {where} character changed",
                    _with(url, set_={"signature": _swap_char(sig, index)}),
                    method,
                    NOW,
                    None,
                )
        case(
            "signature",
            f"{method}: the signature cut to half",
            _with(url, set_={"signature": sig[: len(sig) // 2]}),
            method,
            NOW,
            None,
        )
        case(
            "signature",
            f"{method}: an empty signature",
            _with(url, set_={"signature": ""}),
            method,
            NOW,
            None,
        )
        case(
            "signature",
            f"{method}: no signature at all",
            _with(url, drop=("signature",)),
            method,
            NOW,
            None,
        )
    case("signature", "no expires at all", _with(get, drop=("expires",)), "GET", NOW, None)
    for key in KEYS[:2]:
        case(
            "secret",
            f"GET {key}, signed with another secret",
            signed[f"other GET {key}"],
            "GET",
            NOW,
            None,
        )

    # Without separators, method + key + expires cannot tell "report-7" + "1750000300"
    # from "report-" + "71750000300": the same bytes, so the same signature.
    report = signed["GET 2024/q3/report-7"]  # its signature travels unchanged
    case(
        "joined",
        f"2024/q3/report-7 until {end} turned into 2024/q3/report- until 7{end}",
        _with(report, path=_path("2024/q3/report-"), set_={"expires": f"7{end}"}),
        "GET",
        NOW,
        None,
    )
    case(
        "joined",
        f"2024/q3/report-7 until {end} turned into 024/q3/report-7 until {end}2",
        _with(report, path=_path("024/q3/report-7"), set_={"expires": f"{end}2"}),
        "GET",
        NOW,
        None,
    )

    for key in KEYS[:3]:
        for now, label in ((end, "at the second it expires"), (end + 1, "1 s after expiry")):
            case("expired", f"GET {key} {label}", signed[f"GET {key}"], "GET", now, None)
    case("expired", "PUT 0.5 s after expiry", put, "PUT", end + 0.5, None)
    case("expired", "GET an hour after expiry", get, "GET", end + 3600, None)
    return cases


def to_sign() -> list[tuple[str, str, str, int]]:
    """(label, method, key, expires_at) for each URL the checks ask sign() for."""
    out = [(f"{m} {k}", m, k, NOW + LIFETIME) for k in KEYS for m in ("GET", "PUT")]
    out += [(f"other GET {k}", "GET", k, NOW + LIFETIME) for k in KEYS[:2]]
    return out


def content(seed: int, size: int) -> bytes:
    """The file an upload scenario sends (the checks make the same bytes)."""
    return random.Random(seed).randbytes(size)


# ------------------------------------------------------------------ in the learner's process


def _learner(name: str) -> Any:
    """The learner's module `name`, imported afresh from beside this file in the sandbox."""
    return import_learner(Path(__file__).with_name(name))


def _error(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".strip().rstrip(":")[:300]


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)[:200]


def presign(file: str, secret: str, other: str) -> dict[str, Any]:
    """sign() every URL of to_sign(), then verify() every case of attacks(); for each
    verify, what it returned or raised and what each compare_digest call answered."""
    seen: list[bool] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        answer = real(a, b)
        seen.append(bool(answer))
        return answer

    # Before the learner's module is imported, so `from hmac import compare_digest` and
    # secrets.compare_digest (the same function) find the spy too.
    hmac.compare_digest = spy
    secrets.compare_digest = spy
    operator._compare_digest = spy  # type: ignore[attr-defined]
    module = _learner(file)
    signed: dict[str, str] = {}
    errors: dict[str, str] = {}
    for label, method, key, expires in to_sign():
        try:
            url = module.sign(method, key, expires, other if label.startswith("other") else secret)
            signed[label] = url if isinstance(url, str) else repr(url)
        except Exception as exc:  # the learner's error, reported to the check
            errors[label] = _error(exc)
    if errors:
        return {"signed": signed, "sign_errors": errors, "verdicts": []}
    verdicts = []
    for item in attacks(signed):
        del seen[:]
        entry: dict[str, Any] = {"url": item["url"]}
        try:
            entry["result"] = _plain(
                module.verify(item["url"], item["method"], item["now"], secret)
            )
        except Exception as exc:
            entry["error"] = _error(exc)
        entry["compared"] = list(seen)
        verdicts.append(entry)
    return {"signed": signed, "sign_errors": {}, "verdicts": verdicts}


def uploads(file: str, store_url: str, scenarios: list[dict[str, Any]]) -> list[list[str]]:
    """For each scenario, upload() its file; when it raises, import upload.py afresh
    (what it kept in memory is gone, as after a crash) and call it again, up to
    `attempts` times. What each call did: "returned" or the error it raised."""
    out: list[list[str]] = []
    folder = Path(tempfile.mkdtemp(prefix="sdtutor-uploads-"))
    for scenario in scenarios:
        path = folder / scenario["name"]
        path.write_bytes(content(scenario["seed"], scenario["size"]))
        calls: list[str] = []
        for _ in range(scenario["attempts"]):
            module = _learner(file)
            try:
                module.upload(store_url, scenario["key"], str(path), scenario["part_size"])
            except Exception as exc:
                calls.append(_error(exc))
                continue
            calls.append("returned")
            break
        out.append(calls)
    return out


def cache(file: str, paths: list[str]) -> list[dict[str, Any]]:
    """cache_control(path) for each path: what it returned or raised."""
    module = _learner(file)
    out: list[dict[str, Any]] = []
    for path in paths:
        try:
            out.append({"result": _plain(module.cache_control(path))})
        except Exception as exc:
            out.append({"error": _error(exc)})
    return out
