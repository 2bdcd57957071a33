"""Tasks for `invoke`: lab.*, swarm.*, scenario.*, ... (see `invoke --list`)."""

from lab.cli import namespace as ns  # noqa: F401 - invoke finds `ns`
