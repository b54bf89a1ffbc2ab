"""Completion: every request ends. Stuck ones are re-driven, or failed and refunded."""
