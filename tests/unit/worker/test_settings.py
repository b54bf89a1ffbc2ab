import pytest

from services.worker.settings import WorkerSettings, get_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RELAI_WORKER_CONCURRENCY", "RELAI_WORKER_NAME", "RELAI_WORKER_BATCH"):
        monkeypatch.delenv(name, raising=False)
    settings = WorkerSettings()
    assert settings.worker_concurrency == 1000
    assert settings.worker_batch == 100
    assert settings.worker_block_ms == 1000
    assert settings.worker_visibility_timeout_s == 30.0
    assert settings.worker_reclaim_interval_s == 5.0
    assert settings.worker_drain_timeout_s == 30.0
    assert settings.worker_name is None


def test_reads_the_relai_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAI_WORKER_CONCURRENCY", "7")
    monkeypatch.setenv("RELAI_WORKER_VISIBILITY_TIMEOUT_S", "1.5")
    monkeypatch.setenv("RELAI_WORKER_NAME", "w-1")
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/3")
    settings = WorkerSettings()
    assert settings.worker_concurrency == 7
    assert settings.worker_visibility_timeout_s == 1.5
    assert settings.worker_name == "w-1"
    assert settings.redis_url == "redis://example:6379/3"


def test_rejects_a_concurrency_below_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAI_WORKER_CONCURRENCY", "0")
    with pytest.raises(ValueError, match="worker_concurrency"):
        WorkerSettings()


def test_get_settings_is_cached() -> None:
    get_settings.cache_clear()
    try:
        assert get_settings() is get_settings()
    finally:
        get_settings.cache_clear()


def test_metrics_port_defaults_to_9101_and_0_disables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAI_WORKER_METRICS_PORT", raising=False)
    assert WorkerSettings().worker_metrics_port == 9101
    monkeypatch.setenv("RELAI_WORKER_METRICS_PORT", "0")
    assert WorkerSettings().worker_metrics_port == 0


def test_a_file_result_may_have_50_mib_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAI_WORKER_MAX_RESULT_BYTES", raising=False)
    assert WorkerSettings().worker_max_result_bytes == 50 * 1024 * 1024
    monkeypatch.setenv("RELAI_WORKER_MAX_RESULT_BYTES", "1000")
    assert WorkerSettings().worker_max_result_bytes == 1000
    monkeypatch.setenv("RELAI_WORKER_MAX_RESULT_BYTES", "0")
    with pytest.raises(ValueError, match="worker_max_result_bytes"):
        WorkerSettings()


def test_tier_weights_default_and_read_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAI_WORKER_TIER_WEIGHTS", raising=False)
    assert WorkerSettings().worker_tier_weights == {"priority": 16, "default": 4, "flex": 1}
    monkeypatch.setenv("RELAI_WORKER_TIER_WEIGHTS", '{"priority": 8, "default": 2, "flex": 1}')
    assert WorkerSettings().worker_tier_weights == {"priority": 8, "default": 2, "flex": 1}


@pytest.mark.parametrize(
    ("weights", "problem"),
    [
        ('{"priority": 8, "default": 2}', "missing: flex"),
        ('{"priority": 8, "default": 0, "flex": 1}', "must be at least 1"),
        ('{"urgent": 9, "priority": 8, "default": 2, "flex": 1}', "'flex', 'default' or"),
    ],
)
def test_tier_weights_name_every_tier_each_at_least_one(
    monkeypatch: pytest.MonkeyPatch, weights: str, problem: str
) -> None:
    monkeypatch.setenv("RELAI_WORKER_TIER_WEIGHTS", weights)
    with pytest.raises(ValueError, match=problem):
        WorkerSettings()
