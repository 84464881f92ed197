"""A thin layer over the code `buf generate` makes from the contract, for the
two things every caller would otherwise write: the bearer token on every
call, and errors as exceptions that carry their google.rpc details.

Everything else is the generated code itself: `gen/python` on PYTHONPATH.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass
class MeshworkError(Exception):
    """A call that failed: the gRPC status code's name, the message, and the
    details meshwork sends (field violations of INVALID_ARGUMENT, the wait
    of a RetryInfo)."""

    code: str
    message: str
    field_violations: dict[str, str] = field(default_factory=dict)
    retry_after_seconds: float | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def _with_token(token: str | None):
    class Interceptor(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation, details, request):
            metadata = list(details.metadata or [])
            if token:
                metadata.append(("authorization", f"Bearer {token}"))
            outcome = continuation(details._replace(metadata=metadata), request)
            error = outcome.exception()  # a unary call: waits for its end
            if error is not None:
                raise from_rpc_error(error) from None
            return outcome

    return Interceptor()


def channel(address: str, token: str | None = None) -> grpc.Channel:
    """An insecure channel to `address` (host:port) whose calls carry `token`
    and raise MeshworkError."""
    return grpc.intercept_channel(grpc.insecure_channel(address), _with_token(token))


def from_rpc_error(error: grpc.RpcError) -> MeshworkError:
    failure = MeshworkError(error.code().name, error.details() or "")
    status = rpc_status.from_call(error)
    for detail in status.details if status else []:
        _read_detail(failure, detail)
    return failure


def _read_detail(failure: MeshworkError, detail) -> None:
    bad_request = error_details_pb2.BadRequest()
    retry = error_details_pb2.RetryInfo()
    if detail.Unpack(bad_request):
        failure.field_violations = {v.field: v.description for v in bad_request.field_violations}
    elif detail.Unpack(retry):
        failure.retry_after_seconds = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9


class Rest:
    """REST/JSON through the gateway, with the same errors."""

    def __init__(self, base_url: str, token: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("content-type", "application/json")
        if self.token:
            request.add_header("authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            raise _from_rest_error(json.load(error)) from None


_CODES = {code.value[0]: code.name for code in grpc.StatusCode}


def _from_rest_error(body: dict) -> MeshworkError:
    failure = MeshworkError(_CODES.get(body.get("code"), "UNKNOWN"), body.get("message", ""))
    for detail in body.get("details", []):
        kind = detail.get("@type", "")
        if kind.endswith("google.rpc.BadRequest"):
            failure.field_violations = {v["field"]: v["description"] for v in detail.get("fieldViolations", [])}
        elif kind.endswith("google.rpc.RetryInfo"):
            failure.retry_after_seconds = float(detail.get("retryDelay", "0s").rstrip("s"))
    return failure
