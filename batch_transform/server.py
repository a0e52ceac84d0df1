"""The model server: the SageMaker container contract (BTS §4) on uvicorn + Starlette.

    python -m velibcast.batch_transform.server --model-dir DIR [--port P] [--host H]

GET /ping answers 200 with an empty body once the model is loaded and warm: the server
listens only after model_fn, then the model's model_warmup_fn on the invocation thread pool
(the thread a first request runs on). Predictions run in that pool, so /ping answers while a
mini-batch is being computed. GET
/execution-parameters answers the JSON in $VELIBCAST_EXECUTION_PARAMETERS, else 404 (as
AWS's PyTorch container). A body larger than SAGEMAKER_MAX_PAYLOAD_IN_MB gets 413, one
that has not fully arrived SERVER_READ_TIMEOUT_S after the headers gets 408. Logs (uvicorn's
too, and a client that disconnects) are one JSON object per line on stderr.

The container entry point (`serve`, `main()`) listens on 0.0.0.0 as the SageMaker contract
requires; `velibcast serve` listens on 127.0.0.1 unless --host is given.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from velibcast import constants as C
from velibcast import process_settings
from velibcast.batch_transform import handlers as H
from velibcast.batch_transform.lifeline import on_parent_exit
from velibcast.timeutil import UTC, iso_millis

log = logging.getLogger("velibcast.serve")

# Threads that run requests: anyio's default limit, which Starlette's run_in_threadpool gave
# before the server had its own pool (one request per thread; MaxConcurrentTransforms <= 16
# in this project's jobs, so requests never wait for a thread).
INVOCATION_THREADS = 40


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        d = {"ts": iso_millis(datetime.fromtimestamp(record.created, UTC)),
             "level": record.levelname.lower(), "event": record.getMessage()}
        d.update(getattr(record, "fields", {}))
        return json.dumps(d, separators=(",", ":"))


def _setup_logging() -> None:
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(_JsonFormatter())
    log.handlers[:] = [h]
    log.setLevel(logging.INFO)
    log.propagate = False
    # uvicorn's own messages (bad HTTP, errors outside the app) in the same JSON shape
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [h]
        lg.setLevel(logging.WARNING)
        lg.propagate = False


def read_timeout_s() -> float:
    raw = os.environ.get(C.SERVER_READ_TIMEOUT_ENV)
    return float(raw) if raw not in (None, "") else C.SERVER_READ_TIMEOUT_S


def max_body_bytes() -> int:
    """0 means no limit (MaxPayloadInMB=0 is the service's unlimited, chunked mode)."""
    raw = os.environ.get(C.MAX_REQUEST_SIZE)
    mb = int(raw) if raw not in (None, "") else C.SERVER_MAX_PAYLOAD_MB_UNSET
    return mb * C.MB


def build_app(handlers: H.Handlers, pool: ThreadPoolExecutor):
    """`pool` runs the requests' hooks (serve() warms it up first)."""
    # lazy: the web stack loads only when a server starts (the CLI imports this module for --help)
    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import Response
    from starlette.routing import Route

    limit = max_body_bytes()
    read_timeout = read_timeout_s()
    exec_params = os.environ.get(C.EXECUTION_PARAMETERS_ENV)

    async def ping(request: Request) -> Response:
        return Response(b"", status_code=200)

    async def execution_parameters(request: Request) -> Response:
        if not exec_params:
            return Response(b"", status_code=404)
        return Response(exec_params.encode(), status_code=200, media_type="application/json")

    async def invocations(request: Request) -> Response:
        t0 = time.perf_counter()
        declared = request.headers.get("content-length")
        if limit and declared and declared.isdigit() and int(declared) > limit:
            return _error(413, f"payload of {declared} bytes exceeds SAGEMAKER_MAX_PAYLOAD_IN_MB ({limit} bytes)", t0)
        parts: list[bytes] = []
        try:
            body = await asyncio.wait_for(_read_body(request, limit, parts), read_timeout)
        except TimeoutError:
            return _error(408, f"the request body did not arrive within {read_timeout:g} s of its headers "
                               f"({sum(map(len, parts))} bytes received); send it at once", t0)
        except ClientDisconnect:
            log.warning("client disconnected", extra={"fields": {"while": "reading the request body",
                                                                 "bytes_in": sum(map(len, parts)),
                                                                 "ms": round((time.perf_counter() - t0) * 1000, 1)}})
            return Response(b"", status_code=499)  # never sent: nobody is listening
        if body is None:
            return _error(413, f"payload exceeds SAGEMAKER_MAX_PAYLOAD_IN_MB ({limit} bytes)", t0)
        ctype = request.headers.get("content-type")
        accept = request.headers.get("accept")
        try:
            out, out_type = await asyncio.get_running_loop().run_in_executor(pool, handlers.invoke, body, ctype,
                                                                              accept)
        except Exception as e:  # every failure becomes an HTTP answer; the status says whose fault
            status = H.status_of(e)
            message = getattr(e, "message", None) or str(e) or type(e).__name__
            if status >= 500:
                log.error("invocation failed", extra={"fields": {"status": status, "trace": traceback.format_exc()}})
            return _error(status, message, t0, len(body))
        fields = {"status": 200, "bytes_in": len(body), "bytes_out": len(out),
                  "ms": round((time.perf_counter() - t0) * 1000, 1)}
        if await request.is_disconnected():
            log.warning("client disconnected", extra={"fields": {**fields, "while": "computing the response"}})
        else:
            log.info("invocation", extra={"fields": fields})
        return Response(out, status_code=200, media_type=out_type)

    return Starlette(routes=[
        Route("/ping", ping, methods=["GET"]),
        Route("/execution-parameters", execution_parameters, methods=["GET"]),
        Route("/invocations", invocations, methods=["POST"]),
    ])


async def _read_body(request, limit: int, parts: list[bytes]) -> bytes | None:
    """The body, or None as soon as it passes `limit` (chunked uploads have no length).

    Chunks go to `parts` as they arrive, so a caller that gives up can say how much came.
    """
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if limit and size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


def _error(status: int, message: str, t0: float, n: int | None = None):
    from starlette.responses import Response  # lazy: as in build_app

    level = logging.WARNING if status < 500 else logging.ERROR
    log.log(level, "invocation rejected", extra={"fields": {"status": status, "bytes_in": n, "message": message[:500],
                                                            "ms": round((time.perf_counter() - t0) * 1000, 1)}})
    return Response((message.rstrip("\n") + "\n").encode("utf-8"), status_code=status, media_type="text/plain")


def warm_threads() -> int:
    """Threads to warm: SAGEMAKER_MAX_CONCURRENT_TRANSFORMS (set when the job sets
    MaxConcurrentTransforms: that many requests at once), else 1."""
    raw = os.environ.get(C.MAX_CONCURRENT_TRANSFORMS_ENV, "")
    return min(int(raw), INVOCATION_THREADS) if raw.isdigit() and int(raw) > 0 else 1


def _warm_up(pool: ThreadPoolExecutor, handlers: H.Handlers, n: int) -> None:
    """model_warmup_fn once on each of n pool threads, as TorchServe warms each worker. A thread
    has its own malloc arena, so a second thread's first request would fault in the model's
    buffers again. The barrier holds every task until all n run, so each gets its own thread
    (the pool starts a thread per task while none is idle)."""
    barrier = threading.Barrier(n)

    def one() -> None:
        barrier.wait(timeout=C.CONTAINER_START_TIMEOUT_S)
        handlers.warm_up()

    for f in [pool.submit(one) for _ in range(n)]:
        f.result()


def serve(model_dir: str, port: int | None = None, host: str = C.SERVER_LOCAL_HOST) -> None:
    """Load the model once, then serve until SIGTERM/SIGINT (in-flight requests finish)."""
    import anyio  # lazy: as in build_app
    import uvicorn

    _setup_logging()
    port = port if port is not None else int(os.environ.get(C.BIND_TO_PORT_ENV, C.SERVER_DEFAULT_PORT))
    t0 = time.perf_counter()
    handlers = H.load(model_dir)
    log.info("model loaded", extra={"fields": {"model_dir": str(model_dir),
                                               "seconds": round(time.perf_counter() - t0, 3)}})
    pool = ThreadPoolExecutor(max_workers=INVOCATION_THREADS, thread_name_prefix="invocations")
    # model_warmup_fn on the pool threads that serve the job's requests, before the port opens:
    # its first mini-batches do not pay a process's first-call costs, as the service sends them
    # only once /ping is healthy.
    t1 = time.perf_counter()
    threads = warm_threads()
    _warm_up(pool, handlers, threads)
    log.info("model warmed up", extra={"fields": {"seconds": round(time.perf_counter() - t1, 3), "threads": threads}})
    # Request.is_disconnected, the last step of every invocation, imports anyio's asyncio backend
    # on first use: 12 ms of imports, and a job's first request waited 20-28 ms longer outside the
    # handler than the next ones (3,000 records). Loaded here, before the port opens.
    anyio.run(anyio.sleep, 0)
    # The model's objects (torch: ~170,000) live as long as the server: out of the cyclic GC's
    # view, a full collection during a request no longer scans them (0.11 s each).
    gc.freeze()
    config = uvicorn.Config(build_app(handlers, pool), host=host, port=port, access_log=False, log_level="warning",
                            timeout_graceful_shutdown=int(C.SERVER_GRACEFUL_SHUTDOWN_S), lifespan="off",
                            log_config=None)  # keep _setup_logging's JSON handlers
    log.info("serving", extra={"fields": {"host": host, "port": port, "max_body_bytes": max_body_bytes(),
                                          "read_timeout_s": read_timeout_s()}})
    uvicorn.Server(config).run()


def add_arguments(p: argparse.ArgumentParser, host: str = C.SERVER_LOCAL_HOST) -> None:
    """`host` is the default address: this machine only, except for the container entry point."""
    p.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"),
                   help="extracted model.tar.gz: artifacts at the root, code/inference.py")
    p.add_argument("--port", type=int, default=None, help="default $SAGEMAKER_BIND_TO_PORT, else 8080")
    p.add_argument("--host", default=host, help=f"address to listen on (default {host})")


def main(argv: list[str] | None = None) -> None:
    """Also the BYOC `serve` entry point: SageMaker runs `docker run <image> serve`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        args = args[1:]
    p = argparse.ArgumentParser(prog="serve", description=__doc__.splitlines()[0])
    add_arguments(p, host=C.SERVER_CONTAINER_HOST)  # SageMaker connects from outside the container
    # The local runtime's tie to its process (lifeline.py): not part of the container contract.
    p.add_argument("--lifeline-fd", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(args)
    if a.lifeline_fd is not None:
        # Nobody is left to read an answer, and a graceful stop would wait for a request in flight.
        on_parent_exit(a.lifeline_fd, lambda: os._exit(1))
    # This process is the server's own: freed request arrays go back to the system (process_settings).
    process_settings.for_model_server()
    serve(a.model_dir, a.port, a.host)


if __name__ == "__main__":
    main()
