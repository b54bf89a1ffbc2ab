"""Recon's part in fair scheduling: the users' weights mirrored from Postgres into Redis."""
