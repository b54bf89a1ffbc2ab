"""Health: can recon reach Postgres and Redis, and how far behind is the pipeline?"""
