"""The invoke task collections, one module per namespace (lab, swarm, scenario, ...)."""
