"""Recon's Prometheus metrics: the pipeline's backlog and the top spenders, sampled from
Postgres and Redis, served on recon's metrics port."""
