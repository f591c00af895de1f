"""Import hygiene: the core never loads textual; `sdtutor list` loads no heavy library."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(result.stdout.split())


def test_the_core_never_imports_textual() -> None:
    loaded = _modules_after(
        "import sdtutor.status, sdtutor.content.loader, sdtutor.content.lint, sdtutor.grading, "
        "sdtutor.lab.runtime, sdtutor.lab.checks, sdtutor.lab.proof, sdtutor.progress.store, "
        "sdtutor.providers.local, sdtutor.providers.external, sdtutor.providers.docker"
    )
    assert "textual" not in loaded


def test_list_loads_no_heavy_library() -> None:
    loaded = _modules_after(
        "import os, sys, tempfile\n"
        "os.environ['SDTUTOR_HOME'] = tempfile.mkdtemp()\n"
        "sys.argv = ['sdtutor', 'list', '--json']\n"
        "from sdtutor.cli.main import app\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    app(standalone_mode=False)"
    )
    for heavy in ("textual", "psycopg", "sqlglot", "docker", "fsrs", "redis", "pika"):
        assert heavy not in loaded, f"`sdtutor list` imported {heavy}"


def test_list_does_not_import_jsonschema() -> None:
    # Only `content check` validates course files; the linter imports jsonschema when it runs.
    loaded = _modules_after(
        "import os, sys, tempfile\n"
        "os.environ['SDTUTOR_HOME'] = tempfile.mkdtemp()\n"
        "sys.argv = ['sdtutor', 'list']\n"
        "from sdtutor.cli.main import app\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    app(standalone_mode=False)\n"
        "import sdtutor.content.lint, sdtutor.schemas"
    )
    assert "sdtutor.content.lint" in loaded
    assert "jsonschema" not in loaded, "`sdtutor list` (or importing the linter) loaded jsonschema"
