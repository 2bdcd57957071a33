"""swarmlab: Docker Swarm classroom labs, built and broken on purpose."""

__version__ = "0.1.0"
