"""The labeling page's HTTP side (Starlette on uvicorn): the page, the pool's
images, the map of the pool (`/map`), and a small JSON API over
`session.Session`.

The handlers are module-level functions; what they serve (the session, the
token, the commands to show, the image source) is the app's state
(`request.app.state`), set by `create_app`.

Safe by default:
- Binds 127.0.0.1; any other host needs a token (`--token`), which every
  request then carries (`?token=` on the page's URL, then a header, the image
  URLs and a same-site, HTTP-only cookie for the page's script and style);
  compared in constant time.
- On loopback, requests must name a loopback Host (a web page elsewhere cannot
  reach the server through DNS rebinding), and every POST must carry the
  `X-Jaxal: 1` header with a JSON body, which a cross-site form cannot send
  without a CORS preflight the server never grants.
- Images are served by their pool path only: the path must be an embedded image
  of the work directory, and its real path (symlinks resolved) must lie inside
  the embedded folder. Nothing else on disk is reachable.
- Class names, paths and messages reach the page as JSON and are inserted as
  text, never as HTML; a Content-Security-Policy allows only the page's own
  script and style.
- Request bodies over `MAX_BODY` bytes are refused (413) before the app sees them,
  with a Content-Length or chunked (read up to the limit, then refused).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import threading
from typing import Awaitable, Callable, Optional
from urllib.parse import parse_qsl

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import State
from starlette.routing import Route

from jaxal.cli import pixels, pool_map
from jaxal.cli.label_page import images
from jaxal.cli.label_page.session import Refused, Session
from jaxal.errors import InputError

MAX_BODY = 16 * 1024
COOKIE = "jaxal_token"
STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'")


def is_loopback(host: str) -> bool:
  if host == "localhost":
    return True
  try:
    return ipaddress.ip_address(host.strip("[]")).is_loopback
  except ValueError:
    return False


def _error(message: str, status: int) -> JSONResponse:
  return JSONResponse({"error": message}, status_code=status)


class _Guard:
  """ASGI middleware: body size, token, Host and the POST header checks."""

  def __init__(self, app, *, token: Optional[str], loopback: bool):
    self.app, self.token, self.loopback = app, token, loopback

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1")
               for k, v in scope["headers"]}
    refusal = self._refusal(scope, headers)
    if refusal is not None:
      return await _error(*refusal)(scope, receive, send)
    # The whole body (at most MAX_BODY bytes) is read here, before the app runs,
    # whatever its framing: a chunked body carries no Content-Length, so its size
    # is only known by reading it, and refusing it from inside the app would let
    # Starlette's error middleware answer 500 first.
    parts, size, more = [], 0, True
    while more:
      message = await receive()
      if message["type"] != "http.request":  # the client went away
        return None
      parts.append(message.get("body", b""))
      size += len(parts[-1])
      if size > MAX_BODY:
        return await _error(f"request body over {MAX_BODY} bytes", 413)(
            scope, receive, send)
      more = message.get("more_body", False)
    pending = [{"type": "http.request", "body": b"".join(parts), "more_body": False}]

    async def replay():
      return pending.pop() if pending else await receive()

    await self.app(scope, replay, send)

  def _refusal(self, scope, headers):
    length = headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
      return f"request body over {MAX_BODY} bytes", 413
    if self.loopback:
      if not is_loopback(_hostname(headers.get("host", ""))):
        return "this server answers only requests for a loopback host", 403
    if self.token is not None:
      query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                             keep_blank_values=True))
      given = headers.get("x-jaxal-token") or query.get("token") or \
          _cookie(headers.get("cookie", ""), COOKIE) or ""
      if not hmac.compare_digest(given.encode(), self.token.encode()):
        return "missing or wrong token: open the URL `jaxal label` printed", 401
    if scope["method"] == "POST":
      if headers.get("x-jaxal") != "1" or not headers.get(
          "content-type", "").startswith("application/json"):
        return "POST requests need the X-Jaxal: 1 header and a JSON body", 403
    return None


def _cookie(header: str, name: str) -> Optional[str]:
  for part in header.split(";"):
    k, _, v = part.strip().partition("=")
    if k == name:
      return v
  return None


def _hostname(host: str) -> str:
  """The Host header without its port ("[::1]:8000" -> "[::1]")."""
  if host.startswith("["):
    return host.split("]")[0] + "]"
  return host.rsplit(":", 1)[0]


def create_app(session: Session, *, token: Optional[str] = None,
               loopback: bool = True, commands: Optional[dict] = None,
               projection: str = "pca"):
  """The ASGI app serving `session`, behind the request guard; the map at
  /map by `projection` (`jaxal.curation.projection`)."""
  app = Starlette(routes=_ROUTES)
  app.state.session = session
  app.state.token = token
  app.state.map_lock, app.state.map_bytes = threading.Lock(), None
  app.state.projection = projection
  app.state.commands = commands or {}
  tfds = session.wd.recorded("embed")["tfds"]
  # A folder's images are files under its real path; a TFDS split's are PNGs.
  app.state.real_root = None if tfds else os.path.realpath(session.setup.root)
  app.state.pngs = images.PngCache(
      lambda want: pixels.load_pixels(session.wd, want),
      session.current_paths) if tfds else None
  return _Guard(app, token=token, loopback=loopback)


def _headers() -> dict:
  return {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff",
          "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


# -------------------------------------------------------------- the page
def _html(request: Request, name: str):
  token = request.app.state.token
  r = FileResponse(os.path.join(STATIC, name), headers=_headers(),
                   media_type="text/html; charset=utf-8")
  if token is not None:  # the page's own requests (script, style) carry it back
    r.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
  return r


async def _page(request: Request):
  return _html(request, "index.html")


async def _map_page(request: Request):
  return _html(request, "map.html")


async def _static(request: Request):
  name = request.path_params["name"]
  if name not in ("app.js", "style.css", "map.js"):
    return _error("not found", 404)
  return FileResponse(os.path.join(STATIC, name), headers=_headers())


async def _image(request: Request):
  state = request.app.state
  path = request.query_params.get("path", "")
  if path not in state.session.setup.index:
    return _error("not an image of this work directory", 404)
  if state.pngs is not None:
    png = await run_in_threadpool(state.pngs.get, path)
    return Response(png, media_type="image/png", headers=_headers())
  try:
    full, kind = images.folder_image(state.real_root, path)
  except images.NotAnImage as e:
    return _error(str(e), 404)
  return FileResponse(full, media_type=kind, headers=_headers())


# --------------------------------------------------------------- the API
async def _json_object(request: Request) -> dict:
  try:
    data = json.loads(await request.body() or b"{}")
  except (json.JSONDecodeError, UnicodeDecodeError):
    raise Refused("the request body is not JSON") from None
  if not isinstance(data, dict):
    raise Refused("the request body must be a JSON object")
  return data


def _api(fn: Callable[[State, dict], Awaitable[dict]]):
  """A JSON endpoint: `fn(app state, body)` answers the request's JSON object
  (empty for a GET); a `Refused` becomes its status and message."""
  async def handler(request: Request):
    try:
      data = await _json_object(request) if request.method == "POST" else {}
      out = await fn(request.app.state, data)
    except Refused as e:
      return JSONResponse({"error": str(e)}, status_code=e.status, headers=_headers())
    return JSONResponse(out, headers=_headers())
  return handler


async def _state(state: State, data: dict) -> dict:
  del data  # a GET
  session = state.session
  p = await run_in_threadpool(session.progress)
  return {"classes": list(session.setup.classes), "progress": p,
          "selection": session.wd.selection, "commands": state.commands}


async def _next(state: State, data: dict) -> dict:
  wait = data.get("wait", 5.0)
  if isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait < 0:
    raise Refused("wait: seconds to wait, a number >= 0")
  return await run_in_threadpool(state.session.next_for, data.get("annotator"),
                                 min(float(wait), 20.0))


async def _answer(state: State, data: dict) -> dict:
  return await run_in_threadpool(state.session.answer, data.get("annotator"),
                                 data.get("path"), data.get("label"))


async def _skip(state: State, data: dict) -> dict:
  return await run_in_threadpool(state.session.skip, data.get("annotator"),
                                 data.get("path"))


async def _undo(state: State, data: dict) -> dict:
  return await run_in_threadpool(state.session.undo, data.get("annotator"))


async def _search(state: State, data: dict) -> dict:
  return await run_in_threadpool(
      lambda: state.session.search(data.get("annotator"), text=data.get("text"),
                                   path=data.get("path"), top=data.get("top", 12)))


async def _release(state: State, data: dict) -> dict:
  await run_in_threadpool(state.session.release, data.get("annotator"))
  return {"released": True}


async def _map_points(request: Request):
  """The pool's map as bytes: [N, 2] float32 coordinates (little-endian), then
  [N] uint8 flags (1: set aside by dedupe); computed once per server."""
  state = request.app.state
  try:
    data = await run_in_threadpool(_map_bytes, state)
  except InputError as e:  # e.g. the projection's package is not installed
    return JSONResponse({"error": str(e)}, status_code=409, headers=_headers())
  return Response(data, media_type="application/octet-stream", headers=_headers())


def _map_bytes(state: State) -> bytes:
  with state.map_lock:
    if state.map_bytes is None:
      session = state.session
      xy = pool_map.coordinates(session.wd, state.projection).astype("<f4")
      flags = np.zeros(xy.shape[0], np.uint8)
      if session.setup.among is not None:
        flags[~session.setup.among] = 1
      state.map_bytes = xy.tobytes() + flags.tobytes()
    return state.map_bytes


async def _map_state(state: State, data: dict) -> dict:
  del data  # a GET
  return await run_in_threadpool(state.session.map_state)


async def _map_point(request: Request):
  raw = request.query_params.get("i", "")
  try:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
      raise Refused(f"i: a pool index (digits), got {raw[:40]!r}.")
    out = await run_in_threadpool(request.app.state.session.point, int(raw))
  except Refused as e:
    return JSONResponse({"error": str(e)}, status_code=e.status, headers=_headers())
  return JSONResponse(out, headers=_headers())


_ROUTES = [
    Route("/", _page), Route("/static/{name}", _static), Route("/image", _image),
    Route("/api/state", _api(_state)),
    Route("/api/next", _api(_next), methods=["POST"]),
    Route("/api/answer", _api(_answer), methods=["POST"]),
    Route("/api/skip", _api(_skip), methods=["POST"]),
    Route("/api/undo", _api(_undo), methods=["POST"]),
    Route("/api/release", _api(_release), methods=["POST"]),
    Route("/api/search", _api(_search), methods=["POST"]),
    Route("/map", _map_page), Route("/api/map/points", _map_points),
    Route("/api/map/state", _api(_map_state)), Route("/api/map/point", _map_point),
]
