"""The provisioning display of `lab start` / `lab reset`: quick work leaves a tidy list
of done steps and never flashes a live display; slow work gets one; failures tick
nothing off."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import pytest
from rich.console import Console

from sdtutor.cli import ui
from sdtutor.cli.lab import _Progress


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=False, color_system=None)
    monkeypatch.setattr(ui, "stderr_console", lambda: console)
    yield out


def test_quick_work_lists_its_steps_once_without_a_live_display(screen: io.StringIO) -> None:
    with _Progress(delay=5) as progress:
        progress("Starting services", None)
        progress("Copying the seeded data", None)
        progress("Copying the seeded data", None)  # the same step again is one line
    assert progress.progress is None
    assert screen.getvalue().splitlines() == ["✓ Starting services", "✓ Copying the seeded data"]


def test_a_step_that_takes_a_while_gets_a_live_display(screen: io.StringIO) -> None:
    with _Progress(delay=0.05) as progress:
        progress("Starting services", None)
        progress("Copying the seeded data", None)
        deadline = time.monotonic() + 5
        while progress.progress is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert progress.progress is not None, "no display after the delay"
    lines = screen.getvalue().splitlines()
    # The live bar is gone at the end: a list of done steps remains, each once.
    assert [line for line in lines if line.startswith("✓")] == [
        "✓ Starting services",
        "✓ Copying the seeded data",
    ]
    assert not any("%" in line for line in lines)


def test_work_with_a_fraction_shows_the_display_at_once(screen: io.StringIO) -> None:
    with _Progress(delay=60) as progress:
        progress("Loading 199,500 orders", 0.4)
        assert progress.progress is not None
        progress("Gathering statistics", 0.8)
    text = screen.getvalue()
    assert "✓ Loading 199,500 orders" in text and "✓ Gathering statistics" in text


def test_a_failure_crosses_the_step_it_stopped_at(screen: io.StringIO) -> None:
    with pytest.raises(RuntimeError), _Progress(delay=5) as progress:
        progress("Starting services", None)
        progress("Copying the seeded data", None)
        raise RuntimeError("the server went away")
    assert screen.getvalue().splitlines() == ["✓ Starting services", "✗ Copying the seeded data"]
    assert progress.timer is not None and not progress.timer.is_alive()
