"""Service endpoints: readiness and the Prometheus exposition."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client.exposition import choose_encoder

from ..deps import ServiceDep

router = APIRouter(tags=["service"])


@router.get("/healthz")
async def healthz(svc: ServiceDep) -> dict[str, Any]:
    """Report readiness: 200 once the lifespan has started."""
    return {"status": "ok", "cache": svc.cache.kind, "samples": len(svc.sample_ids)}


@router.get("/metrics", response_class=Response)
async def metrics_endpoint(svc: ServiceDep, request: Request) -> Response:
    """Expose every metric of this app's registry (text or OpenMetrics by Accept)."""
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(svc.registry), media_type=content_type)
