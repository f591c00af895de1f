"""What the built-in prompts share: line editing and history, and shell-quoted words.

Each prompt (SQL, Redis, RabbitMQ) keeps its own history file under SDTUTOR_HOME, mode
0600: what a learner typed can hold data worth keeping private.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator
from pathlib import Path

QUIT = ("quit", "exit", "\\q")
HISTORY_LINES = 1000


def history_file(name: str) -> Path:
    """Where the built-in prompt called `name` ('sql', 'redis', 'amqp') keeps its history."""
    from sdtutor import locations

    return locations.home() / "history" / name


@contextlib.contextmanager
def line_editing(name: str) -> Iterator[None]:
    """Arrow keys, editing and history for input() (readline), kept across sessions in
    history_file(name). Without readline, plain input() still works."""
    try:
        import readline
    except ImportError:
        yield
        return
    path = history_file(name)
    readline.clear_history()
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(HISTORY_LINES)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            readline.write_history_file(path)
            path.chmod(0o600)
        readline.clear_history()  # the next prompt in this process starts from its own


def forget_last(text: str) -> None:
    """Drop the newest history entry if it is `text` (a quit command is not worth
    recalling: Up in the next session should bring back real work)."""
    try:
        import readline
    except ImportError:
        return
    count = readline.get_current_history_length()
    if count and readline.get_history_item(count) == text:
        readline.remove_history_item(count - 1)


def commands(prompt: str, history: str | None = None) -> Iterator[list[str]]:
    """Each line typed at `prompt`, split into shell-quoted words, until quit or Ctrl-D.

    With `history` (a name for history_file), lines can be edited and recalled with the
    arrow keys, across sessions. Ctrl-C drops the line being typed; a line that cannot be
    split says why.
    """
    with line_editing(history) if history else contextlib.nullcontext():
        while True:
            try:
                typed = input(prompt)
            except EOFError:
                print()
                return
            except KeyboardInterrupt:
                print()
                continue
            line = typed.strip()
            if not line:
                continue
            try:
                words = shlex.split(line)
            except ValueError as exc:
                print(f"(error) {exc}")
                continue
            if words[0].lower() in QUIT:
                forget_last(typed)
                return
            yield words


__all__ = ["HISTORY_LINES", "QUIT", "commands", "forget_last", "history_file", "line_editing"]
