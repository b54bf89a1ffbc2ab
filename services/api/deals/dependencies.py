from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from services.api.deals.service import DealCatalog


async def _deals(conn: HTTPConnection) -> DealCatalog:
    deals: DealCatalog = conn.state.deals
    return deals


DealsDep = Annotated[DealCatalog, Depends(_deals)]
