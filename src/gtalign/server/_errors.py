"""OpenAI-style errors: every failure the proxy reports has the body clients already parse."""

from __future__ import annotations

from collections.abc import Mapping
from starlette.responses import Response

from gtalign.server._schemas import ErrorBody, ErrorDetail

__all__ = ["ProxyError", "error_response"]

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "api_error",
    504: "timeout_error",
}


class ProxyError(Exception):
    """A request the proxy answers with ``status`` and an OpenAI error body.

    (A plain exception, not a frozen dataclass: context managers assign ``__traceback__``.)
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code or ''}: {message}")
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = dict(headers or {})

    def response(self) -> Response:
        return error_response(self.status, self.message, code=self.code, param=self.param, headers=self.headers)


def error_response(
    status: int, message: str, *, code: str | None = None, param: str | None = None, headers: Mapping[str, str] | None = None
) -> Response:
    body = ErrorBody(error=ErrorDetail(message=message, type=_TYPES.get(status, "api_error"), param=param, code=code))
    return Response(body.model_dump_json(), status_code=status, media_type="application/json", headers=dict(headers or {}))
