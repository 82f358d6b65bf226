"""The service's HTTP and WebSocket routes, one router per area.

>>> sorted(r.path for r in health.router.routes)
['/healthz', '/metrics']
"""

from __future__ import annotations

from . import admin, docs, health, jobs, videos

#: Every router, in the order their routes are listed in the OpenAPI document.
ROUTERS = (health.router, videos.router, jobs.router, admin.router, docs.router)

__all__ = ["ROUTERS", "admin", "docs", "health", "jobs", "videos"]
