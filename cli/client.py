"""The API client: ``driftloop predict``, ``feedback`` and ``api-key``, and the JSON calls the demo makes.

The deployed API requires a client's API key on every route in both auth modes (it picks the client's usage plan:
its throttle and quota); in iam mode requests are also signed with SigV4.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cli.command import CommandError, Commands

# The client cdk.json configures (serving.clients), which single-client deployments and the local stage use.
DEFAULT_CLIENT = "default"
# Where API Gateway reads the key (the REST API's default key source, HEADER).
API_KEY_HEADER = "x-api-key"


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
        command.add_argument(
            "--api-key",
            default=os.environ.get("DRIFTLOOP_API_KEY"),
            help="your client's API key, required by the deployed API in both auth modes (driftloop api-key prints "
            "it); default $DRIFTLOOP_API_KEY",
        )
        command.add_argument(
            "--sign", action="store_true", help="sign with SigV4 (iam auth mode) using boto3 credentials"
        )
        command.set_defaults(run=_post_route, route=route)
    key = commands.add_parser(
        "api-key",
        help="print a client's API key (from the serving stack)",
        description="Prints the value of a client's API key (serving.clients): the serving stack's ApiKeyIds output "
        "names each client's key, API Gateway holds its value. Needs cloudformation:DescribeStacks and "
        "apigateway:GET on the key; honours AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL.",
    )
    key.add_argument(
        "--client", default=DEFAULT_CLIENT, help=f"the client's name in serving.clients (default: {DEFAULT_CLIENT})"
    )
    key.add_argument(
        "--stack",
        default=os.environ.get("DRIFTLOOP_SERVING_STACK", "driftloop-dev-serving"),
        help="the serving stack, <name_prefix>-<stage>-serving (default $DRIFTLOOP_SERVING_STACK or "
        "driftloop-dev-serving)",
    )
    key.set_defaults(run=_print_api_key)


def _post_route(args: argparse.Namespace) -> int:
    body = args.json.encode() if args.json is not None else args.file.read_bytes()
    status, answer = post_json(f"{args.url.rstrip('/')}/{args.route}", body, api_key=args.api_key, sign=args.sign)
    print(f"HTTP {status}")
    print(json.dumps(answer, indent=2))
    return 0 if status < 400 else 1


def _print_api_key(args: argparse.Namespace) -> int:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        [stack] = boto3.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"]
        outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
        print(api_key_value(boto3.client("apigateway"), outputs, args.client))
    except (BotoCoreError, ClientError) as error:
        raise CommandError(f"cannot read the API key of client {args.client!r} from {args.stack}: {error}") from error
    return 0


def api_key_value(apigateway: Any, outputs: Mapping[str, str], client: str) -> str:
    """The value of ``client``'s API key: its id from the serving stack's ``ApiKeyIds`` output, its value from
    API Gateway (the template never holds it)."""
    if "ApiKeyIds" not in outputs:
        raise CommandError("the serving stack has no ApiKeyIds output: deploy this version of driftloop first")
    key_ids = json.loads(outputs["ApiKeyIds"])
    if client not in key_ids:
        raise CommandError(f"no client {client!r} in serving.clients; deployed: {', '.join(sorted(key_ids))}")
    return str(apigateway.get_api_key(apiKey=key_ids[client], includeValue=True)["value"])


def post_json(url: str, body: bytes, *, api_key: str | None = None, sign: bool = False) -> tuple[int, Any]:
    """POST a JSON body; returns (status, parsed answer). Signs with SigV4 for IAM-authorised APIs (the key is
    sent, and signed, too)."""
    headers = {"Content-Type": "application/json", **_key_header(api_key)}
    if sign:
        headers = _sigv4_headers(url, body, headers)
    return _send(urllib.request.Request(url, data=body, headers=headers, method="POST"))  # noqa: S310


def get_json(url: str, *, api_key: str | None = None) -> tuple[int, Any]:
    return _send(urllib.request.Request(url, headers=_key_header(api_key), method="GET"))  # noqa: S310 (the user's URL)


def _key_header(api_key: str | None) -> dict[str, str]:
    return {API_KEY_HEADER: api_key} if api_key else {}


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
