"""The OpenAI-compatible door (``/v1``)."""
