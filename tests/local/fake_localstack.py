"""A stand-in for ``python -m localstack.runtime.main`` in the unit tests of localcloud/cloud.py.

Run as ``fake_localstack.py -m localstack.runtime.main`` (so its command line looks like LocalStack's); listens on
GATEWAY_LISTEN and answers the endpoints cloud.py waits for. FAKE_MODE picks the behaviour:
``ok``, ``exit`` (fails at start-up), ``no-extension`` (ready, but no /_localstack/driftloop), ``stubborn`` (ignores
SIGTERM, with a child process in its process group).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODE = os.environ.get("FAKE_MODE", "ok")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        print("request", self.path, flush=True)

    def do_GET(self) -> None:
        documents: dict[str, Any] = {
            "/_localstack/health": {"services": {"s3": "running", "lambda": "available", "ec2": "disabled"}},
            "/_localstack/init/ready": {"completed": True},
        }
        if MODE != "no-extension":
            documents["/_localstack/driftloop"] = {
                "lambda": {"executor": os.environ["LAMBDA_RUNTIME_EXECUTOR"], "python_exists": True},
                "s3": {"provider": os.environ.get("PROVIDER_OVERRIDE_S3")},
                "env": {name: os.environ.get(name) for name in ("TMPDIR", "FILESYSTEM_ROOT", "AWS_PROFILE")},
            }
        document = documents.get(self.path)
        body = json.dumps(document or {"error": "not found"}).encode()
        self.send_response(200 if document else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    print("fake LocalStack", MODE, flush=True)
    if MODE == "exit":
        print("boom: cannot start", flush=True)
        sys.exit(3)
    if MODE == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        print("child", child.pid, flush=True)
    host, port = os.environ["GATEWAY_LISTEN"].rsplit(":", 1)
    ThreadingHTTPServer((host, int(port)), Handler).serve_forever()


if __name__ == "__main__":
    main()
