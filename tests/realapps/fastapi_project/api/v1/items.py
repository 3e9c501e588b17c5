from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException

from realapps.fastapi_project.deps import StoreDep
from realapps.fastapi_project.schemas import Item

router = APIRouter(prefix="/items", tags=["items"])
logger = logging.getLogger(__name__)


@router.get("/{item_id}")
async def read_item(item_id: int, store: StoreDep) -> Item:
    if item_id not in store.items:
        raise HTTPException(404, "item not found")
    logger.info("item %s viewed", item_id)
    return Item.model_validate(store.items[item_id])


@router.put("/{item_id}")
async def put_item(item_id: int, item: Item, store: StoreDep) -> Item:
    store.items[item_id] = item.model_dump()
    return item
