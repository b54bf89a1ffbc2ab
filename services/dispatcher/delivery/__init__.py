"""Claiming due deliveries, sending them, recording what came of each attempt."""
