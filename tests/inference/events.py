"""API Gateway REST API (v1) proxy events and a Lambda context, as Lambda hands them to a handler.

Shared by the inference tests and the benchmark; standard library only, so a benchmark child can import it
without loading anything it measures.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mangum.types import LambdaCognitoIdentity, LambdaMobileClientContext

API_ID = "a1b2c3d4e5"
HOST = f"{API_ID}.execute-api.us-east-1.amazonaws.com"


def rest_event(
    method: str,
    path: str,
    body: bytes | str | None = None,
    *,
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
    binary: bool = False,
    stage: str = "prod",
    identity: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST API (v1) proxy integration event, as a ``{proxy+}`` resource delivers it.

    ``identity`` overrides keys of ``requestContext.identity`` (an unsigned request without an API key by default).
    """
    all_headers = {
        "Accept": "application/json",
        "Host": HOST,
        "User-Agent": "pytest",
        "X-Amzn-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    all_headers.update(headers or {})
    raw = body.encode() if isinstance(body, str) else body
    now = datetime.now(UTC)
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {name: [value] for name, value in all_headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourceId": "x1y2z3",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "extendedRequestId": uuid.uuid4().hex[:16] + "=",
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": API_ID,
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": str(uuid.uuid4()),
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": "203.0.113.7",
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": "pytest",
                "user": None,
            }
            | (identity or {}),
            "domainName": HOST,
            "apiId": API_ID,
        },
        "body": None if raw is None else base64.b64encode(raw).decode() if binary else raw.decode(),
        "isBase64Encoded": binary,
    }


@dataclass
class LambdaContext:
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = "driftloop-inference"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:driftloop-inference"
    log_group_name: str = "/aws/lambda/driftloop-inference"
    log_stream_name: str = "2026/01/01/[$LATEST]0123456789abcdef"
    identity: LambdaCognitoIdentity | None = None
    client_context: LambdaMobileClientContext | None = None

    def get_remaining_time_in_millis(self) -> int:
        return 29_000
