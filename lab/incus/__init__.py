"""Incus for the incus provider: its REST client (client.py)."""
