"""Relai's bench against peer task queues (docs/benchmarks.md, "Peers").

The ``*_peer`` modules and ``common`` run in the separate ``.venv-peers`` (``make peers-env``)
and import nothing of Relai; ``driver`` runs in Relai's own environment and starts them.
"""
