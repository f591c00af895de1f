"""Runs one function of the learner's code in a child process, and reports on it.

Invoked as `python -m sdtutor.lab.harness SPEC.json`; never imported by the CLI. The
spec names the workspace file, the function, its JSON arguments and the database URL.
The function gets a psycopg connection whose cursors count every statement sent and
every row fetched; the report (JSON) goes to the spec's `report` path so that whatever
the learner prints cannot corrupt it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import importlib.util
import json
import sys
import traceback
import uuid
from pathlib import Path
from typing import Any


def normalise(value: Any) -> Any:
    """Turn a result into plain JSON values so two results can be compared."""
    if isinstance(value, dict):
        return {str(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if hasattr(value, "_asdict"):
        return normalise(list(value))
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def main(spec_path: str) -> int:
    """Run the learner's function as the spec says; always writes a report."""
    import psycopg

    spec = json.loads(Path(spec_path).read_text())
    report: dict[str, Any] = {"statements": [], "rows_fetched": 0, "ok": False}
    statements: list[str] = report["statements"]

    class CountingCursor(psycopg.Cursor):
        def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
            statements.append(_text(query))
            return super().execute(query, params, **kw)

        def executemany(self, query: Any, params_seq: Any, **kw: Any) -> None:
            for params in params_seq:
                statements.append(_text(query))
                super().execute(query, params)

        def fetchone(self) -> Any:
            row = super().fetchone()
            report["rows_fetched"] += row is not None
            return row

        def fetchmany(self, size: int = 0) -> Any:
            rows = super().fetchmany(size)
            report["rows_fetched"] += len(rows)
            return rows

        def fetchall(self) -> Any:
            rows = super().fetchall()
            report["rows_fetched"] += len(rows)
            return rows

        def __iter__(self) -> Any:
            for row in super().__iter__():
                report["rows_fetched"] += 1
                yield row

    def _text(query: Any) -> str:
        if isinstance(query, str | bytes):
            return query.decode() if isinstance(query, bytes) else query
        try:
            return str(query.as_string(None))
        except Exception:
            return repr(query)

    try:
        workspace = Path(spec["workspace"])
        sys.path.insert(0, str(workspace))
        module_spec = importlib.util.spec_from_file_location(
            "learner_" + spec["module"], workspace / spec["file"]
        )
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load {spec['file']}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        function = getattr(module, spec["function"], None)
        if function is None:
            report["error"] = f"{spec['file']} has no function called {spec['function']}"
        else:
            with psycopg.connect(
                spec["url"], cursor_factory=CountingCursor, autocommit=True
            ) as conn:
                value = function(conn, *spec.get("args", []), **spec.get("kwargs", {}))
            report["value"] = normalise(value)
            report["ok"] = True
    except BaseException as exc:  # the learner's code may raise anything
        report["error"] = f"{type(exc).__name__}: {exc}"
        report["traceback"] = traceback.format_exc(limit=-3)
    Path(spec["report"]).write_text(json.dumps(report, default=repr))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
