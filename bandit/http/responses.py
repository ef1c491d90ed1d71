"""The one error shape every refused request leaves in: ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

from aiohttp import web

from bandit.http import api


def error_response(status: int, code: str, message: str, field: str | None = None,
           headers: dict | None = None) -> web.Response:
    return web.Response(status=status, content_type="application/json", headers=headers,
                        body=api.encode(api.ErrorResponse(api.ErrorDetail(code, message, field))))
