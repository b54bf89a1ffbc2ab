"""Handlers installed as packages: real distributions (a dist-info with entry points, written to
a directory on ``sys.path``) found through ``importlib.metadata``."""

import uuid
from pathlib import Path

import pytest

from services.worker.handlers import GROUP, PluginError, build_registry
from services.worker.job import Job, JobContext
from services.worker.providers import ProviderHttp
from tests.fakes.plugins import GROUP as PLUGIN_GROUP
from tests.fakes.plugins import install_plugin


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_plugins_are_installed_in_the_group_the_worker_reads() -> None:
    assert PLUGIN_GROUP == GROUP == "relai.handlers"


UPPER = """
    from services.worker.job import Job, JobContext

    class Upper:
        async def execute(self, job: Job, ctx: JobContext) -> list[str]:
            ctx.add_usage(input_tokens=len(job.prompt.split()))
            return [job.prompt.upper()] * job.create_qty

    def make_upper() -> Upper:
        return Upper()
"""


async def test_an_installed_plugin_is_registered_and_runs(site: Path) -> None:
    install_plugin(
        site, UPPER, {"acme.upper": "{module}:Upper", "acme.shout": "{module}:make_upper"}
    )

    registry = build_registry()

    assert {"acme.upper", "acme.shout", "echo.text"} <= set(registry)
    ctx = JobContext()
    job = Job(request_id=uuid.uuid4(), attempt=1, prompt="hi there", create_qty=2)
    assert await registry.get("acme.upper").execute(job, ctx) == ["HI THERE", "HI THERE"]
    assert await registry.get("acme.shout").execute(job, ctx) == ["HI THERE", "HI THERE"]
    assert ctx.usage == {"input_tokens": 4}


async def test_a_provider_plugin_gets_the_shared_http_client(site: Path) -> None:
    source = """
        from services.worker.providers import ProviderHandler, Reply

        class Custom(ProviderHandler):
            async def call(self, job, params, key, want, emit):
                return Reply([job.prompt])
    """
    install_plugin(site, source, {"acme.custom": "{module}:Custom"})
    http = ProviderHttp()

    handler = build_registry(http=http).get("acme.custom")

    assert getattr(handler, "http", None) is http
    assert getattr(handler, "name", None) == "acme.custom"
    job = Job(request_id=uuid.uuid4(), attempt=1, prompt="hi")
    assert await handler.execute(job, JobContext()) == ["hi"]


def test_a_plugin_that_cannot_be_imported_stops_the_build_naming_it(site: Path) -> None:
    module = install_plugin(
        site, "raise RuntimeError('boom')\n", {"acme.broken": "{module}:Nothing"}
    )
    with pytest.raises(PluginError) as failure:
        build_registry()
    message = str(failure.value)
    assert "'acme.broken'" in message
    assert f"from {module} 1.0" in message
    assert "RuntimeError: boom" in message


def test_a_plugin_without_execute_is_refused(site: Path) -> None:
    install_plugin(site, "class NotAHandler:\n    pass\n", {"acme.bad": "{module}:NotAHandler"})
    with pytest.raises(PluginError, match="has no async execute"):
        build_registry()


@pytest.mark.parametrize(("name", "problem"), [("echo.text", "already registered"), ("Bad", "")])
def test_a_plugin_id_must_be_valid_and_new(site: Path, name: str, problem: str) -> None:
    install_plugin(site, UPPER, {name: "{module}:Upper"})
    with pytest.raises(PluginError, match=problem or "is not '<module>.<method>'"):
        build_registry()
