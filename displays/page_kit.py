"""What every page module shares: templates, rendering with the pages'
headers, the hall (and window) a path names, the not-found page, and the
config a page's script reads. `displays/pages.py` assembles the pages'
routes; the page modules import this one, never that one, so nothing
imports in a circle. Assets live under a path named after their content,
so a screen reloaded after an upgrade never mixes old scripts with a new
page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from importlib import resources
from typing import Any, cast

from jinja2 import Environment, PackageLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from displays.gateway import Gateway
from displays.hub import HubSettings
from queue_core.config import HallConfig, Window
from queue_core.operations import Hall

__all__ = [
    "ASSET_VERSION",
    "STATIC_PATH",
    "hall_and_window_of",
    "hall_of",
    "heartbeat_s",
    "not_found",
    "page_config",
    "render",
]

_env = Environment(
    loader=PackageLoader("displays", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _asset_version() -> str:
    digest = hashlib.sha256()
    static = resources.files("displays").joinpath("static")
    for item in sorted(static.iterdir(), key=lambda i: i.name):
        if item.is_file():
            digest.update(item.name.encode())
            digest.update(item.read_bytes())
    return digest.hexdigest()[:12]


ASSET_VERSION = _asset_version()
STATIC_PATH = f"/static/displays/{ASSET_VERSION}"

# The shell is rebuilt per request and may carry a token in its URL the first
# time: never cached, never leaked to another origin, scripts only our own.
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
}


def page_config(
    config: HallConfig, page: str, heartbeat_s: float, window: str | None = None
) -> dict[str, Any]:
    """What a page's script needs, embedded in the page as JSON."""
    return {
        "hall": {"id": config.id, "name": config.name, "timezone": config.timezone.key},
        "page": page,
        "window": window,
        "windows": [{"id": w.id, "name": w.name} for w in config.windows],
        "groups": [{"id": g.id, "name": g.name} for g in config.groups],
        "services": [{"id": s.id, "name": s.name, "group": s.group} for s in config.services],
        "heartbeat_s": heartbeat_s,
        "ws_path": f"/ws/halls/{config.id}/display",
        "snapshot_path": f"/api/v1/halls/{config.id}/snapshot",
    }


def render(name: str, status: int = 200, **context: Any) -> Response:
    html = _env.get_template(name).render(static=STATIC_PATH, **context)
    return HTMLResponse(html, status, headers=_HEADERS)


def not_found(message: str) -> Response:
    return render("not_found.html", 404, message=message)


def heartbeat_s(request: Request) -> float:
    gateway = getattr(request.state, "gateway", None)
    if isinstance(gateway, Gateway):
        return gateway.settings.hub.heartbeat_s
    return HubSettings().heartbeat_s


def hall_of(request: Request) -> Hall | None:
    halls = cast(Mapping[str, Hall], request.state.halls)
    return halls.get(request.path_params["hall"])


def hall_and_window_of(request: Request) -> tuple[Hall, Window] | Response:
    """The hall and window the path names, or the 404 page naming what is missing."""
    hall = hall_of(request)
    if hall is None:
        return not_found("没有这个大厅 / no such hall")
    window = hall.config.window_by_id.get(request.path_params["window"])
    if window is None:
        return not_found("这个大厅没有这个窗口 / no such window in this hall")
    return hall, window
