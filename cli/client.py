"""The API client: ``driftloop predict`` and ``feedback``, and the JSON calls the demo makes (SigV4 for iam auth)."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cli.command import CommandError, Commands


def add_commands(commands: Commands) -> None:
    for route, summary, example in (
        ("predict", "send a prediction request and print the answer", '{"instances": [{...}]}'),
        (
            "feedback",
            "send ground-truth labels for earlier predictions (SigV4)",
            '{"prediction_id": "...", "label": "1"}',
        ),
    ):
        command = commands.add_parser(route, help=summary)
        command.add_argument("--url", required=True, help="API base URL (local or the deployed stage URL)")
        body = command.add_mutually_exclusive_group(required=True)
        body.add_argument("--json", help=f"request body, e.g. '{example}'")
        body.add_argument("--file", type=Path, help="file holding the request body")
        command.add_argument("--api-key", default=os.environ.get("DRIFTLOOP_API_KEY"), help="for api_key auth mode")
        command.add_argument(
            "--sign", action="store_true", help="sign with SigV4 (iam auth mode) using boto3 credentials"
        )
        command.set_defaults(run=_post_route, route=route)


def _post_route(args: argparse.Namespace) -> int:
    body = args.json.encode() if args.json is not None else args.file.read_bytes()
    status, answer = post_json(f"{args.url.rstrip('/')}/{args.route}", body, api_key=args.api_key, sign=args.sign)
    print(f"HTTP {status}")
    print(json.dumps(answer, indent=2))
    return 0 if status < 400 else 1


def post_json(url: str, body: bytes, *, api_key: str | None = None, sign: bool = False) -> tuple[int, Any]:
    """POST a JSON body; returns (status, parsed answer). Signs with SigV4 for IAM-authorised APIs."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["x-api-key"] = api_key
    if sign:
        headers = _sigv4_headers(url, body, headers)
    return _send(urllib.request.Request(url, data=body, headers=headers, method="POST"))  # noqa: S310


def get_json(url: str) -> tuple[int, Any]:
    return _send(urllib.request.Request(url, method="GET"))  # noqa: S310 (the user's URL)


def _send(request: urllib.request.Request) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        payload = error.read()
        try:
            return error.code, json.loads(payload)
        except ValueError:
            return error.code, payload.decode(errors="replace")
    except urllib.error.URLError as error:
        raise CommandError(f"cannot reach {request.full_url}: {error.reason}") from error


def _sigv4_headers(url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    session = boto3.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise CommandError("--sign needs AWS credentials (profile, environment or instance role)")
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(credentials, "execute-api", session.region_name or "us-east-1").add_auth(request)
    return dict(request.headers.items())
