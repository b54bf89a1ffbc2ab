"""What routing reads from a failed call: whether it may have run (a timeout after the request
was sent), and the outcome it counts."""

import httpx
import pytest

from libs.contracts.models import COOLDOWN_MAX_FACTOR, Deployment, Route
from services.worker.providers.errors import PermanentError, TransientError
from services.worker.providers.http import _transport_error
from services.worker.providers.routing import cooldown_ms, outcome_of

_REQUEST = httpx.Request("POST", "http://provider.test/v1/chat/completions")


@pytest.mark.parametrize(
    ("exc", "maybe_running", "outcome"),
    [
        (httpx.ConnectError("refused", request=_REQUEST), False, "connection"),
        (httpx.ConnectTimeout("slow", request=_REQUEST), False, "timeout"),
        (httpx.PoolTimeout("busy", request=_REQUEST), False, "timeout"),
        (httpx.RemoteProtocolError("disconnected", request=_REQUEST), False, "connection"),
        (httpx.ReadError("reset", request=_REQUEST), False, "connection"),
        (httpx.ReadTimeout("no answer", request=_REQUEST), True, "timeout"),
        (httpx.WriteTimeout("stuck", request=_REQUEST), True, "timeout"),
    ],
)
def test_only_a_read_or_write_timeout_may_have_run(
    exc: httpx.HTTPError, maybe_running: bool, outcome: str
) -> None:
    error = _transport_error(exc, None)
    assert isinstance(error, TransientError)
    error.__cause__ = exc
    assert error.maybe_running is maybe_running
    assert outcome_of(error) == outcome


def test_outcomes_of_answers() -> None:
    assert outcome_of(None) == "ok"
    assert outcome_of(TransientError("429", status=429, retry_after=2)) == "rate_limited"
    assert outcome_of(TransientError("503", status=503)) == "error"
    assert outcome_of(TransientError("provider error in the stream")) == "error"
    assert outcome_of(PermanentError("400")) == "rejected"


def test_cooldowns_double_up_to_the_factor() -> None:
    route = Route(
        model="m",
        version="1",
        provider_model="m",
        deployments=[Deployment(integration="a")],
        cooldown_s=1.5,
    )
    assert cooldown_ms(route) == (1500, 1500 * COOLDOWN_MAX_FACTOR)
