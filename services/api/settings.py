from functools import lru_cache

from pydantic import Field, SecretStr, field_validator, model_validator

from libs.settings import CommonSettings


class ApiSettings(CommonSettings):
    """``relai-api``'s settings: ``RELAI_API_PORT``, ``RELAI_RELAY_BATCH``, ... plus the common
    ones."""

    api_host: str = "127.0.0.1"
    """Address ``relai-api`` binds (``--host`` wins)."""
    api_port: int = 8000
    """Port ``relai-api`` listens on (``--port`` wins)."""
    api_metrics_port: int = Field(default=9103, ge=0, le=65535)
    """Operator port of the API's Prometheus ``/metrics`` (the sum over all its processes),
    apart from the public one, which serves no metrics; 0: off; a port already taken only
    warns."""
    api_metrics_host: str | None = None
    """Address the metrics port binds; unset: the API's own (``RELAI_API_HOST``, ``--host``)."""
    api_workers: int = 1
    """uvicorn worker processes (``--workers`` wins); each runs its own relay, results consumer
    and WebSocket hub."""
    header_timeout_s: float = Field(default=10.0, gt=0)
    """A connection whose request headers are not all received this long after the request's
    first byte (the first request's: after the connection opened) is closed, so that a client
    sending its headers a byte at a time cannot hold connections open (slowloris)."""
    body_timeout_s: float = Field(default=30.0, gt=0)
    """A request whose body is not all received this long after its headers is answered 408
    (when no answer has begun) and its connection closed."""
    ask_offer: str = "demo/ask"
    """``service/action`` of the offer behind ``POST /ask``, unless the active config ``api``
    names one (``ask_offer``)."""
    db_pool_size: int = 20
    """Postgres connections per API process."""
    auth_cache_ttl_s: float = 5.0
    """How long a verified API key is trusted without asking Postgres again: a revoked key stops
    working within this. A refused key is remembered as long (refused again without a
    query)."""
    auth_failures_per_min: int = 20
    """Failed authentications one client address may make in a minute; after that, until the
    minute (from its first failure) ends, a credential this process has not verified in the
    last hour is refused with 429 and ``Retry-After``, without a database query. Counted per API
    process; an IPv6 address counts as its /64. 0: no limit."""
    catalog_refresh_s: float = 5.0
    """Seconds between reloads of the enabled offers and deals; a lookup that misses reloads at
    once (at most once a second)."""
    submit_batch_max: int = 200
    """Most submissions written by one statement (see ``requests/batcher.py``)."""
    submit_flushers: int = 2
    """Submission batches in flight at once per process."""
    relay_batch: int = 500
    """Outbox rows published per relay transaction."""
    relay_poll_s: float = 1.0
    """Fallback poll of the outbox, for notifications lost while the listener reconnects."""
    results_batch: int = 500
    """Results read per ``XREADGROUP`` of the results consumer."""
    results_block_ms: int = 1000
    """How long that read blocks, in milliseconds."""
    results_in_flight: int = 2
    """Result batches written at once per process (the next is read while one is written)."""
    results_reclaim_idle_s: float = 10.0
    """Results left pending this long by a dead API consumer are claimed by a live one."""
    ws_allowed_origins: list[str] = []
    """Browser origins allowed to open WebSockets (``Origin`` header, JSON list); others get 403,
    and an empty list allows any. Clients that send no ``Origin`` (not browsers) are not
    affected. When set, list the API's own public address too (``https://api.example.com``):
    the console and the admin panel open their WebSockets from it."""
    cors_allowed_origins: list[str] = []
    """Origins of front ends on other origins allowed to call the API from a browser (CORS,
    JSON list such as ``["https://app.example.com"]``); empty: off, and a browser page from
    another origin cannot read any answer. Credentials travel in the ``Authorization``
    header, never in cookies, so no credentialed CORS is allowed. Add the same origins to
    ``RELAI_WS_ALLOWED_ORIGINS`` when it is set."""
    ui_enabled: bool = True
    """Serve the user console (``/console``) and the admin panel (``/admin/ui``): static
    pages and their scripts, which sign in and call the API like any client."""
    ws_max_per_user: int = Field(default=32, ge=0)
    """WebSockets one user may hold open on one API process (each ``--workers`` process and each
    replica counts its own); more are closed at once with code 4429; 0: no cap."""
    ws_place_every_s: float = Field(default=2.0, gt=0)
    """How often ``/ws/requests/{id}`` looks up a pending request's place in the queue, sending
    it (``queue_position``, ``queue_eta_s``) when it changed."""
    ws_queue_size: int = 10_000
    """Events buffered for one WebSocket; a client that falls further behind is disconnected
    (close code 1013)."""
    page_size_max: int = 200
    """Largest ``limit`` of ``GET /svc/requests``."""
    max_body_bytes: int = 1_048_576
    """Larger request bodies are refused with 413."""
    upload_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    """The largest file ``POST /files`` takes, and the most the files of one
    ``multipart/form-data`` submission may add up to (each also within its offer's
    ``max_bytes``). Such a body may be this plus ``RELAI_MAX_BODY_BYTES`` (its text fields and
    framing); a larger one is refused with 413 from its ``Content-Length``, or as it arrives,
    never held whole."""
    upload_ttl_s: int = Field(default=30 * 24 * 3600, ge=1)
    """How long an upload is kept (``POST /files``; ``expires_after`` may ask for less); a
    request's copy of it lasts as long as the request's results."""
    image_decodes: int = Field(default=2, ge=1, le=64)
    """Images decoded at once by one API process to check an upload (each may take a few
    hundred MB for a picture of tens of millions of pixels); more wait their turn."""
    file_url_key: SecretStr | None = None
    """The key that signs file URLs (``POST /files/{id}/url``), 32 characters or more; empty:
    unset, and each API process makes a random one when it starts (``relai-api --workers N``
    shares one among its processes): every replica behind one address must be given the same
    key, or a URL signed by one is refused by the others."""
    file_url_ttl_s: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    """How long a signed file URL works."""
    max_prompt_chars: int = 200_000
    """A rendered prompt longer than this is refused with 422."""
    openai_wait_s: float = Field(default=300.0, gt=0)
    """The longest a ``/v1`` call waits for its request (or streams it): then a 504 (or an
    error event) names it, and it goes on; a retried call waits for the same request."""
    oidc_issuer: str | None = None
    """Accept JWTs from this issuer (its ``iss``) besides API keys; off when unset."""
    oidc_jwks_url: str | None = None
    """Where the issuer publishes its signing keys (required with ``RELAI_OIDC_ISSUER``)."""
    oidc_audience: str | None = None
    """The ``aud`` tokens must carry (required with ``RELAI_OIDC_ISSUER``: a token the issuer
    made for another application is refused)."""
    oidc_algorithms: list[str] = ["RS256", "ES256"]
    """Accepted signing algorithms (asymmetric only: ``HS*`` and ``none`` are refused)."""
    oidc_client_id: str | None = None
    """The console's OIDC client (a public client: authorization code with PKCE, no secret),
    registered at the issuer with the redirect URI ``<the API's address>/console``; unset:
    the console signs in with API keys only. The token the API then checks is the ID token
    when ``RELAI_OIDC_AUDIENCE`` is this client id, else the access token."""
    oidc_scopes: str = "openid"
    """The scopes the console asks the issuer for (space-separated)."""
    oidc_provision: bool = False
    """Create a user (no credits) for a subject seen for the first time; otherwise an unknown
    subject is 401 until an admin links it (``POST /admin/users/{name}/identities``)."""
    oidc_jwks_cache_s: float = 300.0
    """How long the issuer's JWKS is cached."""
    oidc_jwks_cooldown_s: float = 10.0
    """After a fetch of the JWKS, how long a token with an unknown ``kid`` is refused without
    fetching it again (so that made-up kids cannot flood the issuer)."""
    oidc_leeway_s: float = 30.0
    """Clock skew tolerated on ``exp`` and ``nbf``."""
    ws_ticket_ttl_s: int = 30
    """Lifetime of a single-use WebSocket ticket from ``POST /ws/ticket``."""
    rate_limit_per_s: float = 0.0
    """Calls per second allowed per credential (API key or token subject), shared by all API
    replicas through Redis; more is 429 with ``Retry-After``; 0: no limit. The active config
    ``api`` (``limits.rate_per_s``) overrides it."""
    rate_limit_burst: int = 100
    """Calls a credential may make at once before the rate applies (config ``api``:
    ``limits.burst``)."""
    max_unfinished_per_user: int = 0
    """Most pending or running requests per user, deals included (more is 429); 0: no cap
    (config ``api``: ``limits.max_unfinished_per_user``)."""

    @field_validator("file_url_key", mode="before")
    @classmethod
    def _blank_key_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("file_url_key")
    @classmethod
    def _key_long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value().strip()) < 32:
            raise ValueError("RELAI_FILE_URL_KEY must be at least 32 characters long")
        return key

    @property
    def multipart_max_bytes(self) -> int:
        """The largest ``multipart/form-data`` body: the files plus the rest of a body."""
        return self.upload_max_bytes + self.max_body_bytes

    @model_validator(mode="after")
    def _oidc_complete(self) -> "ApiSettings":
        if self.oidc_issuer and not self.oidc_jwks_url:
            raise ValueError("RELAI_OIDC_ISSUER needs RELAI_OIDC_JWKS_URL")
        if self.oidc_issuer and not self.oidc_audience:
            # Without it, any token of the issuer's, made for any application, would sign in.
            raise ValueError("RELAI_OIDC_ISSUER needs RELAI_OIDC_AUDIENCE")
        return self


@lru_cache
def get_settings() -> ApiSettings:
    return ApiSettings()
