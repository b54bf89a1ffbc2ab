"""Completion webhooks, the user's side: endpoints (``POST /webhooks``...), their signing
secrets and rotation, the one-off URL's secret, and the deliveries with their attempts, to read,
ping and redeliver. Deliveries are queued only through ``libs.outbox``; a dispatcher sends them."""
