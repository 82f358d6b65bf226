"""The fault switch: show, merge, replace and clear the injected faults."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..core import Service
from ..deps import ServiceDep
from ..errors import error_responses
from ..faults import FaultUpdate

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/faults")
async def get_faults(svc: ServiceDep) -> dict[str, Any]:
    """Show the active faults."""
    return svc.faults.snapshot()


@router.post("/faults", responses=error_responses(400, 408, 413, 422))
async def merge_faults(svc: ServiceDep, update: FaultUpdate) -> dict[str, Any]:
    """Merge the given fields into the active faults."""
    return await _apply(svc, update, replace=False)


@router.put("/faults", responses=error_responses(400, 408, 413, 422))
async def replace_faults(svc: ServiceDep, update: FaultUpdate) -> dict[str, Any]:
    """Replace the active faults (missing fields reset)."""
    return await _apply(svc, update, replace=True)


@router.delete("/faults")
async def clear_faults(svc: ServiceDep) -> dict[str, Any]:
    """Clear every fault."""
    svc.faults.clear()
    return svc.faults.snapshot()


async def _apply(svc: Service, update: FaultUpdate, replace: bool) -> dict[str, Any]:
    """Apply a fault update (and a requested cache flush); return the new state."""
    svc.faults.update(update.model_dump(), replace=replace)
    if update.flush_cache:
        await svc.cache.clear()
        svc.faults.cache_flushes += 1
    return svc.faults.snapshot()
