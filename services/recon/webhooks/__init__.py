"""Webhooks as an operator sees them: deliveries waiting and endpoints disabled (in counts and
ages, never a URL or a user), and the retention of finished deliveries."""
