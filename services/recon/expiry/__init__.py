"""Expiry: results past their offer's expiration are purged and the request reads expired."""
