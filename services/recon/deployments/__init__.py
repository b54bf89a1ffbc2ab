"""Deployments: how each model's deployments fare, as the workers leave it in Redis."""
