from functools import lru_cache

from pydantic import model_validator

from libs.settings import CommonSettings


class ApiSettings(CommonSettings):
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = 1
    """uvicorn worker processes; each runs its own relay, results consumer and WebSocket hub."""
    ask_offer: str = "demo/ask"
    """``service/action`` of the offer behind ``POST /ask``."""
    db_pool_size: int = 20
    auth_cache_ttl_s: float = 5.0
    """How long a verified API key is trusted without asking Postgres again."""
    catalog_refresh_s: float = 5.0
    submit_batch_max: int = 200
    """Most submissions written by one statement (see ``requests/batcher.py``)."""
    submit_flushers: int = 2
    """Submission batches in flight at once per process."""
    relay_batch: int = 500
    relay_poll_s: float = 1.0
    """Fallback poll of the outbox, for notifications lost while the listener reconnects."""
    results_batch: int = 500
    results_block_ms: int = 1000
    results_in_flight: int = 2
    """Result batches written at once per process (the next is read while one is written)."""
    results_reclaim_idle_s: float = 10.0
    """Results left pending this long by a dead API consumer are claimed by a live one."""
    ws_allowed_origins: list[str] = []
    """Browser origins allowed to open WebSockets (``Origin`` header); empty allows any.
    Clients that send no ``Origin`` (not browsers) are not affected."""
    ws_queue_size: int = 10_000
    """Events buffered for one WebSocket; a client that falls further behind is disconnected."""
    page_size_max: int = 200
    max_body_bytes: int = 1_048_576
    """Larger request bodies are refused with 413."""
    max_prompt_chars: int = 200_000
    """A rendered prompt longer than this is refused with 422."""
    oidc_issuer: str | None = None
    """Accept JWTs from this issuer (its ``iss``) besides API keys; off when unset."""
    oidc_jwks_url: str | None = None
    """Where the issuer publishes its signing keys (required with ``oidc_issuer``)."""
    oidc_audience: str | None = None
    """The ``aud`` tokens must carry; unchecked when unset."""
    oidc_algorithms: list[str] = ["RS256", "ES256"]
    """Accepted signing algorithms (asymmetric only)."""
    oidc_provision: bool = False
    """Create a user (no credits) for a subject seen for the first time; otherwise an unknown
    subject is 401 until an admin links it (``POST /admin/users/{name}/identities``)."""
    oidc_jwks_cache_s: float = 300.0
    oidc_jwks_cooldown_s: float = 10.0
    """After a fetch of the JWKS, how long a token with an unknown ``kid`` is refused without
    fetching it again (so that made-up kids cannot flood the issuer)."""
    oidc_leeway_s: float = 30.0
    """Clock skew tolerated on ``exp`` and ``nbf``."""
    ws_ticket_ttl_s: int = 30
    """Lifetime of a single-use WebSocket ticket from ``POST /ws/ticket``."""
    rate_limit_per_s: float = 0.0
    """Calls per second allowed per credential (API key or token subject); 0: no limit."""
    rate_limit_burst: int = 100
    """Calls a credential may make at once before the rate applies."""
    max_unfinished_per_user: int = 0
    """Most pending or running requests per user (more is 429); 0: no cap."""

    @model_validator(mode="after")
    def _oidc_complete(self) -> "ApiSettings":
        if self.oidc_issuer and not self.oidc_jwks_url:
            raise ValueError("RELAI_OIDC_ISSUER needs RELAI_OIDC_JWKS_URL")
        return self


@lru_cache
def get_settings() -> ApiSettings:
    return ApiSettings()
