"""Limits on one run of learner code, and how they are applied to each learner process."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

FILE_SIZE_MB = 512
"""Largest file a learner process may write (RLIMIT_FSIZE); not a Limits field."""


@dataclass(frozen=True)
class Limits:
    """What a run may use; the runner enforces each one from outside the learner's code."""

    timeout: float = 20.0
    """Wall clock for the whole process tree; then everything is killed and the call returns."""
    cpu_seconds: int = 60
    """CPU time per process (RLIMIT_CPU)."""
    memory_mb: int = 1024
    """Address space per process (RLIMIT_AS)."""
    processes: int = 32
    """Live processes in the tree at once; beyond this all are killed and it is reported."""
    output_bytes: int = 65536
    """stdout + stderr kept; the rest is drained and dropped (output_truncated)."""

    def to_json(self) -> dict[str, Any]:
        """The limits as a JSON object (for the supervisor's spec)."""
        return asdict(self)


def apply_rlimits(cpu_seconds: int, memory_mb: int, nproc: int | None) -> None:
    """Set this process's resource limits (called in the child before exec)."""
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    size = FILE_SIZE_MB * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    if nproc is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
