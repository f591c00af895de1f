"""A built wheel carries the whole course, and an installed one reads its own copy.

The builds run on a copy of the checkout (the files git knows, plus planted caches and
backups that must stay out), so the tests never write into the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from sdtutor import locations
from tests.conftest import REPO

COURSE = ("lessons", "quizzes", "labs")
IN_WHEEL = "sdtutor/_course/"
JUNK = (
    "labs/07-indexing/__pycache__/checks.cpython-311.pyc",
    "labs/07-indexing/starter/.sdtutor-backup/indexes.sql",
    "labs/07-indexing/.sdtutor-backup/queries.sql",
    "lessons/__pycache__/stray.pyc",
    "labs/07-indexing/solution/solution.cpython-311.pyc",
)


def _git_files() -> list[str]:
    """Files git knows in the checkout (tracked, or new and not ignored)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout")
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(f for f in out.split("\0") if f and (REPO / f).is_file())


def _pip(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", *args, "--no-deps", "--no-index", "-q"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@dataclass
class Builds:
    """What the module's builds produced."""

    course: list[str]
    package: list[str]
    wheel: Path
    sdist: Path
    wheel_from_sdist: Path


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    """A wheel built from the tree, an sdist, and a wheel built from that sdist."""
    root = tmp_path_factory.mktemp("packaging")
    src = root / "src"
    copied = _git_files()
    for name in copied:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, src / name)
    for name in JUNK:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text("not course content\n")
    # Leftovers of an earlier build must not ship either (a course file since deleted).
    stale = src / "build" / "lib" / "sdtutor" / "_course" / "labs" / "07-indexing" / "gone.sql"
    stale.parent.mkdir(parents=True)
    stale.write_text("-- deleted from the course\n")

    _pip("wheel", "--no-build-isolation", "-w", str(root / "wheel"), str(src), cwd=root)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, setuptools.build_meta as b; print(b.build_sdist(sys.argv[1]))",
            str(root / "sdist"),
        ],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    sdist = root / "sdist" / result.stdout.split()[-1]
    with tarfile.open(sdist) as tar:
        tar.extractall(root / "unpacked", filter="data")
    (unpacked,) = (root / "unpacked").iterdir()
    _pip("wheel", "--no-build-isolation", "-w", str(root / "wheel2"), str(unpacked), cwd=root)
    (wheel,) = (root / "wheel").glob("*.whl")
    (wheel2,) = (root / "wheel2").glob("*.whl")
    course = [name for name in copied if name.startswith(tuple(f"{c}/" for c in COURSE))]
    package = [name for name in copied if name.startswith("sdtutor/")]
    return Builds(course, package, wheel, sdist, wheel2)


def _wheel_course(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return sorted(n[len(IN_WHEEL) :] for n in zf.namelist() if n.startswith(IN_WHEEL))


@pytest.mark.slow
def test_the_wheel_carries_every_course_file_and_nothing_else(builds: Builds) -> None:
    assert any(f.startswith("labs/07-indexing/wrong/") for f in builds.course)
    assert _wheel_course(builds.wheel) == builds.course


@pytest.mark.slow
def test_the_wheel_has_no_caches_or_backups(builds: Builds) -> None:
    with zipfile.ZipFile(builds.wheel) as zf:
        names = zf.namelist()
    assert not [n for n in names if "__pycache__" in n or ".sdtutor-backup" in n]
    assert not [n for n in names if n.endswith((".pyc", ".pyo"))]


@pytest.mark.slow
def test_the_wheel_carries_every_file_of_the_package(builds: Builds) -> None:
    with zipfile.ZipFile(builds.wheel) as zf:
        names = set(zf.namelist())
    # Data files too (the schemas, and any added later): package-data must name them.
    assert [f for f in builds.package if f not in names] == []
    for kind in ("lab", "quiz", "lesson-front-matter", "case"):
        assert f"sdtutor/schemas/{kind}.schema.json" in names


@pytest.mark.slow
def test_the_sdist_carries_the_course_and_builds_the_same_wheel(builds: Builds) -> None:
    with tarfile.open(builds.sdist) as tar:
        members = [m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile()]
    assert sorted(m for m in members if m.startswith(COURSE)) == builds.course
    assert _wheel_course(builds.wheel_from_sdist) == builds.course


@pytest.mark.slow
def test_an_installed_wheel_reads_its_own_copy_of_the_course(
    builds: Builds, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    _pip("install", "--target", str(target), str(builds.wheel), cwd=tmp_path)
    probe = (
        "import json, sdtutor\n"
        "from sdtutor import locations\n"
        "from sdtutor.content.course import Course\n"
        "from sdtutor.content.lint import lint_lab\n"
        "from sdtutor.topics import resolve\n"
        "course, topic = Course(), resolve('indexing')\n"
        "lab, problems = lint_lab(course.content(topic).lab_path, topic)\n"
        "print(json.dumps({'package': sdtutor.__file__, 'course': str(locations.course_dir()),\n"
        "  'lesson': course.lesson(topic).title, 'quiz': len(course.quiz(topic).questions),\n"
        "  'wrong': [w.name for w in lab.wrong], 'problems': [str(p) for p in problems]}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SDTUTOR_", "PYTHON"))}
    env.update({"PYTHONPATH": str(target), "SDTUTOR_HOME": str(tmp_path / "home")})
    # Run outside the checkout, so only the installed copy can be found.
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert Path(seen["package"]).is_relative_to(target)
    assert Path(seen["course"]) == target / "sdtutor" / "_course"
    assert seen["lesson"] and seen["quiz"] >= 10
    # The installed lab is whole: its checks.py imports, no file is missing or orphaned.
    assert seen["problems"] == []
    prefix = "labs/07-indexing/wrong/"
    assert sorted(seen["wrong"]) == sorted(
        {f[len(prefix) :].split("/")[0] for f in builds.course if f.startswith(prefix)}
    )

    listing = subprocess.run(
        [sys.executable, "-m", "sdtutor", "list", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)
    assert all(row["lesson"] != "not written" and row["quiz"]["written"] for row in rows)
    assert rows[6]["lab"] != "not written"


def test_a_checkout_reads_the_course_beside_the_package() -> None:
    assert locations.course_dir() == REPO
