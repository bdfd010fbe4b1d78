"""The inference server: what SageMaker hosting runs as `docker run <image> serve`.

SageMaker starts the container with the argument `serve`, puts the model's files in
/opt/ml/model, and talks to it on port 8080: `GET /ping` must answer 200 within the health
check's time once the container can serve, and `POST /invocations` carries the rows
(SageMaker Developer Guide, "Use your own inference code with hosting services"). The server
loads the model before it listens, so a ping that answers means a model that scores. It makes
no network call of its own (endpoints run network-isolated), logs one line per request
(method, path, status, size, milliseconds; never the payload), and answers rows it cannot
score with 400 naming the row, other media types with 415: a client error is never a 500.

Standard library HTTP only (ThreadingHTTPServer): a digits model scores in microseconds, and
the image stays small and CPU-only.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from pipelines.inference.scoring import BadRequest, UnsupportedMediaType, load_booster, score

logger = logging.getLogger("inference")

MODEL_DIR = Path("/opt/ml/model")
PORT = 8080
# SageMaker sets this when it binds the container elsewhere (multi-container endpoints).
PORT_VARIABLE = "SAGEMAKER_BIND_TO_PORT"
MAX_BODY_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's payload limit


class _Handler(BaseHTTPRequestHandler):
    server_version = "mlops-inference"
    booster: Any = None  # set on the class the server is built with

    def log_message(self, format: str, *args: Any) -> None:
        """One line per request from `_answer`; http.server's own lines are dropped."""

    def _answer(self, status: HTTPStatus, body: bytes, content_type: str, started: float) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        elapsed = (time.perf_counter() - started) * 1000
        logger.info("%s %s %d %dB %.1fms", self.command, self.path, status, len(body), elapsed)

    def _error(self, status: HTTPStatus, message: str, started: float) -> None:
        self._answer(status, (message + "\n").encode(), "text/plain", started)

    def do_GET(self) -> None:
        started = time.perf_counter()
        if self.path != "/ping":
            self._error(HTTPStatus.NOT_FOUND, f"no {self.path}: GET /ping", started)
            return
        self._answer(HTTPStatus.OK, b"", "text/plain", started)

    def do_POST(self) -> None:
        started = time.perf_counter()
        if self.path != "/invocations":
            self._error(HTTPStatus.NOT_FOUND, f"no {self.path}: POST /invocations", started)
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "over 6 MB", started)
            return
        body = self.rfile.read(length)
        try:
            answer, media = score(
                self.booster,
                body,
                self.headers.get("Content-Type") or "text/csv",
                self.headers.get("Accept") or "",
            )
        except UnsupportedMediaType as exc:
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, str(exc), started)
            return
        except BadRequest as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc), started)
            return
        except Exception:
            # A fault of the server's, never of the rows: logged with its traceback.
            logger.exception("scoring failed")
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "scoring failed", started)
            return
        self._answer(HTTPStatus.OK, answer, media, started)


def build_server(model_dir: Path, host: str, port: int) -> ThreadingHTTPServer:
    """The server for the model in `model_dir`, loaded before it listens."""
    booster = load_booster(model_dir)
    handler = type("Handler", (_Handler,), {"booster": booster})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def _stop_on_sigterm(server: ThreadingHTTPServer) -> None:
    """SageMaker stops a container with SIGTERM: finish the request in flight, then exit."""

    def stop(signum: int, frame: FrameType | None) -> None:
        logger.info("SIGTERM: stopping")
        # shutdown() waits for serve_forever, which runs in this thread: call it from another.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SageMaker-compatible inference server.")
    parser.add_argument("command", choices=["serve"], help="what SageMaker runs: serve")
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - inside the container
    parser.add_argument(
        "--port", type=int, default=None, help=f"default ${PORT_VARIABLE} or {PORT}"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    port = args.port or int(os.environ.get(PORT_VARIABLE) or PORT)
    try:
        server = build_server(args.model_dir, args.host, port)
    except FileNotFoundError as exc:
        logger.error("cannot serve: %s", exc)
        return 2
    _stop_on_sigterm(server)
    logger.info("serving %s on %s:%d", args.model_dir, args.host, port)
    with server:
        server.serve_forever(poll_interval=0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
