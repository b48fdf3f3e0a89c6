"""Peer jobs of the benchmark suite; each runs in the peer's own virtual environment."""
