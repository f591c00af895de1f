"""The input loop the built-in prompts share: shell-quoted words, line by line."""

from __future__ import annotations

import shlex
from collections.abc import Iterator

QUIT = ("quit", "exit", "\\q")


def commands(prompt: str) -> Iterator[list[str]]:
    """Each line typed at `prompt`, split into shell-quoted words, until quit or Ctrl-D.

    Ctrl-C drops the line being typed; a line that cannot be split says why.
    """
    while True:
        try:
            line = input(prompt).strip()
        except EOFError:
            print()
            return
        except KeyboardInterrupt:
            print()
            continue
        if not line:
            continue
        try:
            words = shlex.split(line)
        except ValueError as exc:
            print(f"(error) {exc}")
            continue
        if words[0].lower() in QUIT:
            return
        yield words


__all__ = ["QUIT", "commands"]
