from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from libs.accounts import NewUser
from tests.integration.dispatcher.receiver import Receiver
from tests.support import create_user


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver, listening; it knows no secret until the test tells it one."""
    box = Receiver()
    await box.start()
    yield box
    await box.stop()


@pytest.fixture
async def user(db_pool: "asyncpg.Pool[Any]") -> NewUser:
    return await create_user(db_pool, name="hooked", credits=0)
