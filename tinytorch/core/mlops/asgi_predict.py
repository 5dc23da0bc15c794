"""``POST /predict`` as a bare ASGI handler in front of the FastAPI app: the hot path skips the framework.

Every request through FastAPI crosses its middleware stack (error handling, exception handlers,
telemetry, the body limit, the async exit stack) and its router before the handler runs, and a
Starlette ``Response`` object is built for the answer. For the few endpoints that are read now and
then that costs nothing worth counting; for ``/predict``, served hundreds of times a second by one
event loop that also parses every request, it was a fifth of the server's time per request
(profiled: ``benchmarks/results/serving.md``). :class:`PredictFirst` sends ``/predict`` straight
to its handler, reading the body from the ASGI ``receive`` channel and answering with two
``send`` messages; every other request, and the app's lifespan, go to the FastAPI app unchanged.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from .request_parsing import JSON_TYPE, RequestError

__all__ = ["PredictFirst", "Answer"]

#: (status, body, media type, extra headers) of a ``/predict`` answer.
Answer = tuple[int, bytes, str, dict[str, str]]
PredictHandler = Callable[[dict[str, str], Callable[[], Awaitable[bytes]]], Awaitable[Answer]]
WANTED_HEADERS = frozenset((b"content-type", b"content-length", b"accept", b"x-request-id"))


def error_answer(error: RequestError, headers: dict[str, str] | None = None) -> Answer:
    """A 4xx answer: the error as JSON, naming the field."""
    return error.status, json.dumps(error.to_json()).encode(), JSON_TYPE, headers or {}


async def read_body(receive: Callable[[], Awaitable[dict]], declared: str | None, limit: int) -> bytes:
    """The request body from the ASGI channel, refusing (413) more than ``limit`` bytes without reading them all."""
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, "Content-Length", f"not a number: {declared[:40]!r}")
        if int(declared) > limit:
            raise RequestError(413, "body", f"{int(declared):,} bytes; the limit is {limit:,}")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError(400, "body", "the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(413, "body", f"more than {limit:,} bytes; the limit is {limit:,}")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class PredictFirst:
    """The served ASGI app: ``/predict`` goes to ``predict``, everything else to ``app`` (the FastAPI app).

    Parameters
    ----------
    app : ASGI app
        Serves every other path, and the lifespan (which starts the batchers).
    predict : async callable
        ``await predict(headers, read)`` -> (status, body, media type, extra headers); ``headers``
        holds the request's Content-Type, Accept and X-Request-ID (lower-case names) when sent, and
        ``await read()`` gives the body (or raises the :class:`RequestError` of one too large).
    max_body_bytes : int
        Larger bodies get a 413.
    """

    def __init__(self, app: Any, predict: PredictHandler, max_body_bytes: int):
        self.app, self.predict, self.max_body_bytes = app, predict, max_body_bytes

    @property
    def state(self) -> Any:
        """The FastAPI app's state (the arms, the A/B recorder, the trigger, the metrics)."""
        return self.app.state

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["path"] != "/predict":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1")
                   for name, value in scope["headers"] if name in WANTED_HEADERS}
        if scope["method"] != "POST":
            answer = error_answer(RequestError(405, "method", f"got {scope['method']}; /predict takes POST"),
                                  {"Allow": "POST"})
        else:
            answer = await self.predict(headers, lambda: read_body(receive, headers.get("content-length"),
                                                                   self.max_body_bytes))
        status, content, media_type, extra = answer
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", media_type.encode()), (b"content-length", str(len(content)).encode()),
                                *((k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items())]})
        await send({"type": "http.response.body", "body": content})
