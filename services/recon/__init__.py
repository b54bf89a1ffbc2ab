"""Recon: makes sure every request ends, tracks usage, reports health and raises alerts.

For now it reports health; the reconciliation loops come next.
"""
