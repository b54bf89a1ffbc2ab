"""Handlers installed as packages: real distributions (a dist-info with entry points, written to
a directory on ``sys.path``) found through ``importlib.metadata``."""

import textwrap
import uuid
from pathlib import Path

import pytest

from services.worker.handlers import GROUP, PluginError, build_registry
from services.worker.job import Job, JobContext
from services.worker.providers import ProviderHttp


def install(root: Path, source: str, points: dict[str, str]) -> str:
    """Write a module and a distribution declaring ``points``; returns the module's name."""
    module = f"relai_plugin_{uuid.uuid4().hex[:8]}"
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    lines = [f"{name} = {value.format(module=module)}" for name, value in points.items()]
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n" + "\n".join(lines) + "\n")
    return module


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


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
    install(site, UPPER, {"acme.upper": "{module}:Upper", "acme.shout": "{module}:make_upper"})

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
    install(site, source, {"acme.custom": "{module}:Custom"})
    http = ProviderHttp()

    handler = build_registry(http=http).get("acme.custom")

    assert getattr(handler, "http", None) is http
    assert getattr(handler, "name", None) == "acme.custom"
    job = Job(request_id=uuid.uuid4(), attempt=1, prompt="hi")
    assert await handler.execute(job, JobContext()) == ["hi"]


def test_a_plugin_that_cannot_be_imported_stops_the_build_naming_it(site: Path) -> None:
    module = install(site, "raise RuntimeError('boom')\n", {"acme.broken": "{module}:Nothing"})
    with pytest.raises(PluginError) as failure:
        build_registry()
    message = str(failure.value)
    assert "'acme.broken'" in message
    assert f"from {module} 1.0" in message
    assert "RuntimeError: boom" in message


def test_a_plugin_without_execute_is_refused(site: Path) -> None:
    install(site, "class NotAHandler:\n    pass\n", {"acme.bad": "{module}:NotAHandler"})
    with pytest.raises(PluginError, match="has no async execute"):
        build_registry()


@pytest.mark.parametrize(("name", "problem"), [("echo.text", "already registered"), ("Bad", "")])
def test_a_plugin_id_must_be_valid_and_new(site: Path, name: str, problem: str) -> None:
    install(site, UPPER, {name: "{module}:Upper"})
    with pytest.raises(PluginError, match=problem or "is not '<module>.<method>'"):
        build_registry()
