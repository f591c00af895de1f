"""Service providers: docker, local and external, behind one interface.

Only the chosen provider's module (and its heavy imports) is loaded.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sdtutor.errors import ProviderError, UsageError
from sdtutor.providers.base import SERVICES, Availability, Endpoint, Provider

if TYPE_CHECKING:
    from sdtutor.content.models import InstanceSpec

_REGISTRY: dict[str, tuple[str, str]] = {
    "docker": ("sdtutor.providers.docker", "DockerProvider"),
    "local": ("sdtutor.providers.local", "LocalProvider"),
    "external": ("sdtutor.providers.external", "ExternalProvider"),
}
NAMES: tuple[str, ...] = tuple(_REGISTRY)


def provider_class(name: str) -> type[Provider]:
    """The provider class for a name; raises UsageError for an unknown one."""
    try:
        module_name, class_name = _REGISTRY[name]
    except KeyError:
        raise UsageError(
            f"There is no provider called '{name}'.",
            f"Use one of: {', '.join(NAMES)}.",
        ) from None
    cls: type[Provider] = getattr(importlib.import_module(module_name), class_name)
    return cls


def select(requested: str | None, instances: Sequence[InstanceSpec]) -> Provider:
    """Choose a provider: --provider, else SDTUTOR_PROVIDER, else docker, else local.

    Raises ProviderError naming the three ways to get going when none can serve.
    """
    name = requested or os.environ.get("SDTUTOR_PROVIDER") or None
    if not instances:
        # A lab that starts no server: whichever provider is asked for has nothing to
        # start, so it serves whether or not its servers (or URLs) are there.
        return provider_class(name or "local")()
    if name:
        cls = provider_class(name)
        check_supports(cls, instances)
        available = cls.availability({i.kind for i in instances})
        if not available.ok:
            raise ProviderError(
                f"The {name} provider cannot run here: {available.detail}", available.fix
            )
        return cls()
    kinds = list(dict.fromkeys(i.kind for i in instances))
    for candidate in ("docker", "local"):
        cls = provider_class(candidate)
        if unsupported(cls, instances):
            continue
        available = cls.availability()
        if available.ok and set(kinds) <= set(available.services):
            return cls()
    raise ProviderError(
        f"No provider can start {', '.join(kinds)} on this machine.",
        "Three ways to get going: start Docker (then sdtutor uses it), install the servers "
        "(PostgreSQL, Redis, RabbitMQ) so the local provider finds them, or point sdtutor at "
        "servers you have with SDTUTOR_PROVIDER=external and SDTUTOR_POSTGRES_URL / "
        "SDTUTOR_REDIS_URL / SDTUTOR_AMQP_URL. `sdtutor doctor` shows what is missing.",
    )


def unsupported(cls: type[Provider], instances: Sequence[InstanceSpec]) -> str:
    """What a provider cannot give of a lab's instances ('' when it can give them all).

    Every reason is named, joined with ', and ': a lab that needs server settings on the
    external provider hears about the settings first, since no URL can change them.
    """
    missing = sorted({i.kind for i in instances if i.kind not in cls.services})
    if missing:
        return f"cannot supply {', '.join(missing)}"
    reasons = []
    settings = {k: v for i in instances if not i.replica_of for k, v in i.settings.items()}
    if settings and not cls.restarts_servers:
        wanted = ", ".join(f"{k} = {v}" for k, v in sorted(settings.items()))
        reasons.append(
            f"cannot change its servers' settings (this lab needs {wanted}, read only when "
            "a server starts)"
        )
    replicas = [i.name for i in instances if i.replica_of]
    if replicas and not cls.replicas:
        reasons.append(f"cannot give a streaming replica ({', '.join(replicas)})")
    kinds = [i.kind for i in instances]
    doubled = sorted({k for k in kinds if kinds.count(k) > 1})
    if doubled and not cls.separate_servers:
        reasons.append(f"has one server per kind (this lab needs two of {', '.join(doubled)})")
    return ", and ".join(reasons)


def check_supports(cls: type[Provider], instances: Sequence[InstanceSpec]) -> None:
    """Refuse, before anything starts, a lab that needs what the provider cannot do."""
    reason = unsupported(cls, instances)
    if reason:
        raise ProviderError(
            f"The {cls.name} provider {reason}.",
            "Choose another with --provider (see `sdtutor doctor`, which says what each "
            "provider can give).",
        )


__all__ = [
    "NAMES",
    "SERVICES",
    "Availability",
    "Endpoint",
    "Provider",
    "check_supports",
    "provider_class",
    "select",
    "unsupported",
]
