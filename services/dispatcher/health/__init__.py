"""``GET /health``: Postgres reachability, the delivery backlog and what this process sends."""
