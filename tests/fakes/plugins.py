"""Handler plugins installed for real: a module and a distribution (dist-info with entry points
of the group ``relai.handlers``) written to a directory that goes on ``sys.path``/PYTHONPATH."""

import textwrap
import uuid
from pathlib import Path

GROUP = "relai.handlers"


def install_plugin(root: Path, source: str, points: dict[str, str]) -> str:
    """Write ``source`` as a new module and a distribution declaring ``points`` (handler id to
    ``{module}:object``); returns the module's name."""
    module = f"relai_plugin_{uuid.uuid4().hex[:8]}"
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    lines = [f"{name} = {value.format(module=module)}" for name, value in points.items()]
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n" + "\n".join(lines) + "\n")
    return module
