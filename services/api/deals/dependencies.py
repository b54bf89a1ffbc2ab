from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from services.api.catalog.deals import DealCatalog
from services.api.state import app_state


async def _deals(conn: HTTPConnection) -> DealCatalog:
    return app_state(conn).deals


DealsDep = Annotated[DealCatalog, Depends(_deals)]
