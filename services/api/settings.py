from functools import lru_cache

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


@lru_cache
def get_settings() -> ApiSettings:
    return ApiSettings()
