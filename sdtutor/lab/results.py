"""What a check reports: passed or not, a message, and the evidence behind it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

EvidenceKind = Literal["plan", "table", "text", "sql"]
# passed / failed: the check judged the work. error: the check could not finish (the
# learner broke what it relies on, or a check crashed). timeout: the check was still
# running when the run's deadline came. not run: the deadline came before it started.
CheckStatus = Literal["passed", "failed", "error", "timeout", "not run"]


@dataclass(frozen=True)
class Evidence:
    """Something the service showed: a plan (PostgreSQL's JSON), a table, or text."""

    title: str
    kind: EvidenceKind
    data: Any

    def as_text(self) -> str:
        """A plain-text rendering (for --json and logs)."""
        if self.kind == "plan":
            return "\n".join(plan_lines(self.data))
        if self.kind == "table":
            cols, rows = self.data
            lines = [" | ".join(cols)]
            lines += [" | ".join("" if v is None else str(v) for v in row) for row in rows]
            return "\n".join(lines)
        return str(self.data)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    id: str
    title: str
    passed: bool
    message: str
    evidence: tuple[Evidence, ...] = field(default=())
    status: CheckStatus | None = None

    def __post_init__(self) -> None:
        if self.status is None:
            object.__setattr__(self, "status", "passed" if self.passed else "failed")
        elif (self.status == "passed") != self.passed:
            raise ValueError(
                f"a check with status {self.status!r} cannot have passed={self.passed}"
            )

    def to_json(self) -> dict[str, Any]:
        """The documented `lab check --json` shape of one check (plus evidence)."""
        return {
            "id": self.id,
            "title": self.title,
            "passed": self.passed,
            "message": self.message,
            "status": self.status,
            "evidence": [
                {"title": e.title, "kind": e.kind, "text": e.as_text()} for e in self.evidence
            ],
        }


def plan_label(node: dict[str, Any]) -> str:
    """One line describing a plan node, as EXPLAIN's text format would."""
    label = str(node.get("Node Type", "?"))
    if node.get("Scan Direction") == "Backward":
        label += " Backward"
    if "Index Name" in node:
        label += f" using {node['Index Name']}"
    if "Relation Name" in node:
        label += f" on {node['Relation Name']}"
    parts = []
    for key in ("Index Cond", "Filter", "Sort Key", "Presorted Key", "Recheck Cond"):
        if key in node:
            value = node[key]
            parts.append(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
    if "Actual Rows" in node:
        parts.append(f"rows={node['Actual Rows']}")
    if "Rows Removed by Filter" in node:
        parts.append(f"removed by filter={node['Rows Removed by Filter']}")
    hit, read = node.get("Shared Hit Blocks"), node.get("Shared Read Blocks")
    if hit is not None or read is not None:
        parts.append(f"buffers={int(hit or 0) + int(read or 0)}")
    return label + (f"  ({'; '.join(parts)})" if parts else "")


def plan_lines(plan: dict[str, Any], depth: int = 0) -> list[str]:
    """A plan as indented text lines."""
    lines = [("  " * depth) + ("-> " if depth else "") + plan_label(plan)]
    for child in plan.get("Plans", []):
        lines += plan_lines(child, depth + 1)
    return lines


__all__ = ["CheckResult", "CheckStatus", "Evidence", "EvidenceKind", "plan_label", "plan_lines"]
