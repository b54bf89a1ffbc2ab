"""The webhook dispatcher: sends the deliveries the outbox queued (``webhook_deliveries``) to
their receivers, signed, retried with backoff, and keeps the endpoints' health.

It serves ``/health`` on ``RELAI_DISPATCHER_PORT`` and its metrics on
``RELAI_DISPATCHER_METRICS_PORT``; several replicas share the work (``SKIP LOCKED`` and a lease).
"""
