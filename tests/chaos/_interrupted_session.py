"""A run that waits to be stopped: ``test_interrupted`` runs this file in a pytest of its own, on
the embedded servers with a chaos stack up, and sends that pytest SIGTERM."""

import asyncio
import os
from pathlib import Path

from tests.chaos.stack import ChaosStack


async def test_waits_for_the_signal(chaos_stack: ChaosStack) -> None:
    Path(os.environ["RELAI_INTERRUPT_READY"]).write_text(chaos_stack.url)
    await asyncio.sleep(600)
