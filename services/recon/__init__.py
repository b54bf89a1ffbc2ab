"""Recon: makes sure every request ends, tracks usage, reports health and raises alerts.

It reports health and runs the completion loop, which re-drives or fails stuck requests.
"""
