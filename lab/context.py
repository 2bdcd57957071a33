"""A Lab: the spec, its state file, its provider and SSH to its nodes, in one object."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import LabError
from .providers import provider_class
from .providers.base import Provider
from .remote import Node
from .spec import LabSpec
from .state import LabState

Log = Callable[[str], None]


class Lab:
    def __init__(self, spec: LabSpec, log: Log = print):
        self.spec = spec
        self.log = log
        self.state = LabState.load(spec.state_dir, spec.name)
        recorded = self.state.data.get("provider")
        if recorded and recorded != spec.provider and self.state.machines:
            raise LabError(
                f"lab {spec.name!r} was made with provider {recorded}, not {spec.provider};"
                f" run `invoke lab.down --provider {recorded}` first or give the lab another name"
            )
        self.provider: Provider = provider_class(spec.provider)(spec, self.state, log)
        self._nodes: dict[str, Node] = {}

    @property
    def directory(self) -> Path:
        return self.state.path.parent

    def node(self, name: str) -> Node:
        if name not in self._nodes:
            node_spec = self.spec.node(name)
            if name not in self.state.machines:
                raise LabError(
                    f"{name}: the lab {self.spec.name!r} has no such machine yet;"
                    " run `invoke lab.up`"
                )
            self._nodes[name] = Node(node_spec, self.provider.ssh_target(node_spec), self.spec.ssh)
        return self._nodes[name]

    def nodes(self, names: Iterable[str] | None = None) -> list[Node]:
        wanted = list(names) if names is not None else [n.name for n in self.spec.nodes]
        return [self.node(name) for name in wanted]

    def managers(self) -> list[Node]:
        return self.nodes(n.name for n in self.spec.managers)

    def forget_connections(self) -> None:
        for node in self._nodes.values():
            node.close()
        self._nodes.clear()

    def close(self) -> None:
        self.forget_connections()
        self.provider.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
