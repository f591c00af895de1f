"""A SQL prompt on a lab's database: psql where installed, else a small built-in one.

The built-in prompt prints results as tables and EXPLAIN plans as trees.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

META = {
    "\\d": "SELECT table_name AS table, (SELECT count(*) FROM information_schema.columns c "
    "WHERE c.table_name = t.table_name AND c.table_schema = t.table_schema) AS columns "
    "FROM information_schema.tables t WHERE table_schema = current_schema() ORDER BY 1",
    "\\di": "SELECT indexname AS index, tablename AS table, indexdef AS definition, "
    "pg_size_pretty(pg_relation_size(format('%I', indexname)::regclass)) AS size "
    "FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 2, 1",
}
HELP = """Type SQL ending with ; (it may span lines). Also:
  \\d    tables        \\di   indexes       \\q    quit (or Ctrl-D)"""


def run_file(
    url: str, path: Path, prefer_psql: bool = True, variables: Mapping[str, str] | None = None
) -> None:
    """Run a SQL file, showing what each statement did; stop at the first refused one.

    With psql installed (and `prefer_psql`) the file goes to psql (`-f`), so whatever
    psql accepts works, meta-commands such as `\\di` included; the password stays out of
    its argv. Otherwise sdtutor's own runner sends each statement, shows `\\d` and `\\di`
    as the built-in prompt does and skips other meta-commands, saying so. Raises
    typer.Exit(1) when a statement is refused, after saying which and that the rest did
    not run. psql `variables` (a lab's extra roles, `:"reporting"`) are set either way.
    """
    from sdtutor.errors import LabError

    if not path.is_file():
        raise LabError(f"There is no file {path}.", "Give the path to a .sql file.")
    psql = shutil.which("psql")
    if prefer_psql and psql:
        _run_file_with_psql(psql, url, path, variables)
    else:
        _run_file_builtin(url, path, variables)


def _shown_path(path: Path) -> str:
    """The path as the learner would type it: relative to where they are, if inside."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _run_file_with_psql(
    psql: str, url: str, path: Path, variables: Mapping[str, str] | None = None
) -> None:
    from sdtutor.cli.ui import err
    from sdtutor.services.postgres import psql_variable_args, run_psql

    # -X: the learner's ~/.psqlrc could turn off ON_ERROR_STOP or change the output.
    code = run_psql(
        psql,
        url,
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
        *psql_variable_args(variables),
        "-f",
        _shown_path(path),
    )
    if code == 3:  # ON_ERROR_STOP: a statement was refused, psql named its file:line
        err.print(
            f"[red]PostgreSQL refused a statement of {path.name} (psql names its line above); "
            "the statements after it were not run.[/]"
        )
        raise typer.Exit(1)
    if code:
        err.print(f"[red]psql could not run {path.name} (exit status {code}).[/]")
        raise typer.Exit(1)


def _run_file_builtin(url: str, path: Path, variables: Mapping[str, str] | None = None) -> None:
    from sdtutor.cli.ui import console, err
    from sdtutor.services.postgres import ScriptItem, StatementRefused, run_statements

    def meta(item: ScriptItem, conn: Any) -> None:
        """\\d and \\di as the built-in prompt shows them; other psql commands skipped."""
        from rich.markup import escape

        command = item.text.split()[0]
        if command in META and item.text.strip() == command:
            console.print(f"[green]{command}[/]  [dim]{path.name}:{item.line}[/]")
            _show(conn.execute(META[command]))
            return
        console.print(
            f"[yellow]skipped {escape(item.text)}[/]  [dim]{path.name}:{item.line}[/]\n"
            f"[dim](a psql command: sdtutor's own runner sends SQL and knows only "
            f"{', '.join(META)}; psql runs the rest)[/]"
        )

    ran = 0
    try:
        for line, cur in run_statements(url, path, meta, variables):
            ran += 1
            console.print(f"[green]{cur.statusmessage}[/]  [dim]{path.name}:{line}[/]")
            if cur.description:
                _show(cur)
    except StatementRefused as exc:  # the learner's SQL failed: an answer, not a usage error
        err.print(f"[red]{exc.message}[/]")
        err.print(
            f"[red]Stopped there: {ran} statement{'s' if ran != 1 else ''} before it ran, "
            "the ones after it were not run.[/]"
        )
        raise typer.Exit(1) from None
    if not ran:
        console.print(f"{path.name} has no SQL statements (only comments).")


def _show(cur: Any) -> None:
    from rich.table import Table

    from sdtutor.cli.render import plan_tree
    from sdtutor.cli.ui import console

    columns = [c.name for c in cur.description]
    rows = cur.fetchall()
    if columns == ["QUERY PLAN"]:
        if rows and isinstance(rows[0][0], list):
            console.print(plan_tree(rows[0][0][0]["Plan"], "plan"))
        else:
            console.print(_text_plan([r[0] for r in rows]))
        return
    table = Table(*columns, caption=f"{len(rows)} row{'s' if len(rows) != 1 else ''}")
    for row in rows[:100]:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    console.print(table)
    if len(rows) > 100:
        console.print(f"[dim](first 100 of {len(rows)} rows shown)[/]")


def _text_plan(lines: list[str]) -> Any:
    """EXPLAIN's text output as a tree, nesting by the '->' markers."""
    from rich.text import Text
    from rich.tree import Tree

    tree = Tree(Text("plan", style="italic"))
    stack: list[tuple[int, Tree]] = [(-1, tree)]
    for line in lines:
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        is_node = stripped.startswith("->") or len(stack) == 1 or stripped.endswith(":")
        label = stripped[2:].strip() if stripped.startswith("->") else stripped
        # A line belongs to the nearest node above it that is indented less.
        while len(stack) > 1 and stack[-1][0] >= indent:
            stack.pop()
        if is_node:
            style = "bold red" if label.startswith(("Sort", "Seq Scan")) else "bold"
            node = stack[-1][1].add(Text(label, style=style))
            stack.append((indent, node))
        else:
            stack[-1][1].add(Text(label, style="dim"))
    return tree


def interactive(url: str, prefer_psql: bool = True) -> int:
    """Open psql, or the built-in prompt; returns an exit code."""
    from sdtutor.services.postgres import run_psql

    psql = shutil.which("psql")
    if prefer_psql and psql:
        return run_psql(psql, url)  # the password in a passfile, never in argv
    return builtin_prompt(url)


def history_file() -> Path:
    """Where the built-in SQL prompt keeps its history (under SDTUTOR_HOME)."""
    from sdtutor.services.prompt import history_file as named

    return named("sql")


def _one_history_entry(lines: list[str]) -> None:
    """A statement typed over several lines comes back as one entry (Up arrow); an empty
    `lines` with `\\q` last drops that. Only entries that input() added are touched."""
    try:
        import readline
    except ImportError:
        return
    count = readline.get_current_history_length()
    last = [readline.get_history_item(i) for i in range(count - len(lines) + 1, count + 1)]
    if not lines:
        from sdtutor.services.prompt import forget_last

        forget_last("\\q")
        return
    if len(lines) < 2 or last != lines:
        return
    for _ in lines:
        readline.remove_history_item(readline.get_current_history_length() - 1)
    readline.add_history(" ".join(line.strip() for line in lines))


def builtin_prompt(url: str, variables: Mapping[str, str] | None = None) -> int:
    """A small SQL prompt: statements end with ';'; psql `variables` are interpolated."""
    import psycopg

    from sdtutor.cli.ui import console
    from sdtutor.services.postgres import connect, substitute_variables
    from sdtutor.services.prompt import line_editing

    with connect(url, autocommit=True) as conn, line_editing("sql"):
        dbname = conn.info.dbname
        console.print(f"Connected to {dbname}. {HELP}")
        buffer: list[str] = []
        while True:
            try:
                line = input(f"{dbname}{'-' if buffer else '='}> ")
            except EOFError:
                console.print()
                return 0
            except KeyboardInterrupt:
                buffer = []
                console.print()
                continue
            stripped = line.strip()
            if stripped == "\\q" or (not buffer and stripped in ("quit", "exit")):
                _one_history_entry([])  # Up in the next session brings a statement back
                return 0
            if not buffer and stripped in ("\\?", "help"):
                console.print(HELP)
                continue
            if not buffer and stripped in META:
                _show(conn.execute(META[stripped]))
                continue
            buffer.append(line)
            if not stripped.endswith(";"):
                continue
            statement = "\n".join(buffer)
            _one_history_entry(buffer)
            buffer = []
            try:
                cur = conn.execute(substitute_variables(statement, variables or {}).encode())
            except psycopg.Error as exc:
                console.print(f"[red]{str(exc).strip()}[/]")
                continue
            if cur.description:
                _show(cur)
            else:
                console.print(f"[green]{cur.statusmessage}[/]")


__all__ = ["builtin_prompt", "interactive", "run_file"]
