"""The provider registry: providers by name, imported only when asked for.

Importing lazily keeps `invoke --list` fast and lets the local provider work on a machine
where pyvmomi or python-vagrant are broken.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import SpecError

if TYPE_CHECKING:
    from .base import Provider

REGISTRY: dict[str, str] = {
    "local": "lab.providers.local:LocalProvider",
    "vmware": "lab.providers.vmware:VMwareProvider",
    "vagrant": "lab.providers.vagrant:VagrantProvider",
    "incus": "lab.providers.incus:IncusProvider",
}


def provider_class(name: str) -> type[Provider]:
    try:
        target = REGISTRY[name]
    except KeyError:
        raise SpecError(
            f"unknown provider {name!r}; allowed: {', '.join(sorted(REGISTRY))}"
        ) from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("lab.providers."):
            raise SpecError(f"provider {name!r} is not built yet in this version") from None
        raise
    return getattr(module, class_name)
