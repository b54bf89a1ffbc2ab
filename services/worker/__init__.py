"""The worker: reads jobs from the ``tasks`` stream, runs their handlers, reports on ``results``."""
