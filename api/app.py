"""The HTTP API and the staff web page: a thin layer over the library (DESIGN.md contract).

The index and models load once at start-up; requests share one Answerer. No stack trace ever
leaves the server: errors are JSON with a message a person understands.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import sys
import tempfile
import threading
import time
import unicodedata
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from rag.adding import add_file, iso_date
from rag.answer import Answerer
from rag.backends import BackendError
from rag.config import Settings
from rag.corpus import CorpusError, load_manifest
from rag.embedders import limit_threads
from rag.extract import ExtractError
from rag.ranker import file_digest
from rag.retrieve import FILTER_KEYS, QueryError, Retriever
from rag.schema import Citation
from rag.store import (
    IndexError_,
    WriterBusy,
    build_index,
    current_dir,
    index_status,
    load_index,
    remove_document,
)

log = logging.getLogger("renda.access")
REQUESTS = Counter("renda_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("renda_request_seconds", "HTTP request latency", ["route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
ANSWERS = Counter("renda_answers_total", "Answers given by /ask", ["found"])
CHUNKS = Gauge("renda_index_chunks", "Chunks in the loaded index")
STATIC = Path(__file__).parent / "static"
MAX_BODY = 16 * 1024


MULTIPART_SLACK = 64 * 1024  # the form's boundaries and fields around a file of the limit's size


def body_limit(method: str, path: str) -> int:
    """16 KB for questions; an upload may be as large as the configured limit, when uploads are
    on at all."""
    if method == "POST" and path.rstrip("/") == "/documents" and hasattr(state, "settings") and _write_key():
        return state.settings.max_upload_bytes + MULTIPART_SLACK
    return MAX_BODY


def _readable(v: str, what: str) -> str:
    """Refuse what no question can be: lone surrogates (invalid Unicode) and text that is empty
    once control, format (zero-width, RTL marks) and space characters are taken away."""
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in v):
        raise ValueError(f"{what} is not valid Unicode (it holds a lone surrogate)")
    if not any(unicodedata.category(ch)[0] not in "CZ" for ch in v):
        raise ValueError(f"{what} is empty")
    return v


class Filters(BaseModel):
    model_config = {"extra": "forbid", "strict": True}
    doc_id: str | None = None
    doc_type: str | None = None
    place: str | None = None
    year: int | None = None


class AskRequest(BaseModel):
    model_config = {"extra": "forbid", "strict": True}
    question: str = Field(..., examples=["洛阳市老旧小区加装了多少部电梯？"])
    top_k: int = Field(5, ge=1, le=20)
    filters: Filters | None = Field(None, examples=[{"place": "盖州市", "year": 2025}])

    @field_validator("question")
    @classmethod
    def question_is_real(cls, v: str) -> str:
        _readable(v, "question")
        if len(v) > 1000:
            raise ValueError(f"question is {len(v)} characters; the limit is 1000")
        return v


class ErrorBody(BaseModel):
    """Every error: one sentence that says what is wrong."""

    detail: str = Field(..., examples=["question is empty"])


ERRORS = {code: {"model": ErrorBody, "description": text} for code, text in (
    (404, "no such document"), (413, "request body over the cap"),
    (422, "invalid input: the message names the field and the problem"),
    (503, "the index is not loaded yet, or could not be loaded"),
    (401, "no or a wrong `Authorization: Bearer <key>`"), (403, "writes are off: no RAG_API_KEY on the server"),
    (409, "another write to the index is in progress"), (415, "a file type that is not read (by its content)"))}


class AskResponse(BaseModel):
    question: str
    answer: str = Field(..., examples=["协调推进加装电梯138部"])
    found: bool
    citations: list[Citation]
    took_ms: float


class SearchResult(BaseModel):
    chunk_id: str
    doc_id: str
    title: str
    article: str | None
    start: int
    end: int
    text: str
    score: float


class SearchResponse(BaseModel):
    query: str
    results: list[SearchResult]
    took_ms: float


class State:
    answerer: Answerer | None = None
    error: str | None = None
    settings: Settings
    generation: str | None = None  # built_at of the index being served
    building: dict | None = None  # {"started": t, "done": n, "total": m} while a build runs
    warnings: list[str] = []


state = State()
_swap_lock = threading.Lock()


def _generation(settings: Settings) -> str | None:
    """The index on disk, as its manifest's build time (every build, --add and --remove write
    a new one atomically), or None when there is none."""
    try:
        return json.loads((current_dir(settings) / "manifest.json").read_text(encoding="utf-8"))["built_at"]
    except (OSError, ValueError, KeyError):
        return None


def _load(settings: Settings) -> None:
    """Load the index on disk and swap it in; the one being served stays until the new one has
    loaded, so no request is dropped and a bad new index costs nothing."""
    with _swap_lock:
        generation = _generation(settings)
        try:
            index = load_index(settings, check_corpus=False)  # a changed corpus: serve, and warn
            answerer = Answerer(settings, retriever=Retriever(settings, index=index))
        except Exception as e:  # the service stays up and answers 503 with the reason
            if state.answerer is None:
                state.error = str(e)
            state.warnings = [f"index on disk not loaded: {e}"]
            log.error(json.dumps({"event": "index not loaded", "detail": str(e)}, ensure_ascii=False))
            state.generation = generation  # do not retry the same bad index in a loop
            return
        stale = index_status(settings)
        state.answerer, state.error, state.generation = answerer, None, generation
        if state.building and state.building.get("elsewhere"):
            state.building = None
        state.warnings = [stale] if stale else []
        log.info(json.dumps({"event": "index loaded", "built_at": generation, "chunks": len(index.chunks)}))


def _build_then_load(settings: Settings) -> None:
    """Runs in a thread that lifespan starts after setting ``state.building``."""

    def progress(done: int, total: int) -> None:
        state.building.update(done=done, total=total)

    try:
        build_index(settings, skip_bad=True, on_progress=progress)
    except WriterBusy:  # another worker of this server (or a `rag index`) builds it: _watch loads it
        state.building.update(elsewhere=True)
        log.info(json.dumps({"event": "index built by another process; waiting for it"}))
        return
    except Exception as e:
        state.error = f"index build failed: {e}"
        log.error(json.dumps({"event": "build failed", "detail": str(e)}, ensure_ascii=False))
    state.building = None
    _load(settings)


async def _watch(settings: Settings) -> None:
    """Swap in a new index generation between requests, whoever wrote it."""
    while True:
        await asyncio.sleep(settings.reload_seconds)
        idle = state.building is None or state.building.get("elsewhere")
        if idle and _generation(settings) not in (None, state.generation):
            await asyncio.to_thread(_load, settings)


@asynccontextmanager
async def lifespan(app):
    if not log.handlers:  # one JSON line per request on stderr, whatever uvicorn configures
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    state.settings = settings = Settings.from_env()
    if settings.threads > 0:  # `rag serve` sets it: workers × threads = cores
        limit_threads(settings.threads)
    if _generation(settings) is None:  # no index yet: start anyway, build in the background
        state.building = {"started": time.time(), "done": 0, "total": None}  # before the first request
        threading.Thread(target=_build_then_load, args=(settings,), daemon=True).start()
    else:
        await asyncio.to_thread(_load, settings)
    watcher = asyncio.create_task(_watch(settings)) if settings.reload_seconds > 0 else None
    yield
    if watcher:
        watcher.cancel()


app = FastAPIOffline(  # Swagger UI and ReDoc served from the package, no CDN: /docs works offline
    title="renda-qa",
    version="0.1.0",
    description="人大出版物问答：答案附带可逐字核对的引文（quote == 原文[start:end]）。",
    lifespan=lifespan,
)


def _answerer() -> Answerer:
    if state.answerer is None:
        b = state.building
        if b is not None:
            done = f"{b['done']}/{b['total']} texts embedded" if b["total"] else "reading the corpus"
            if b.get("elsewhere"):
                done = "by another process; this one loads it when it is done"
            raise HTTPException(503, detail=f"building the index ({done}, {time.time() - b['started']:.0f} s so far)")
        raise HTTPException(503, detail=f"index not loaded: {state.error or 'starting up'}")
    return state.answerer


class BodyTooLarge(Exception):
    pass


class BodyCap:
    """The body cap for every request, chunked or not: the body is counted as it streams in,
    so a 10 MB chunked upload is refused after 16 KB, not read and parsed."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        received, exceeded, replaced = 0, False, False
        limit = body_limit(scope.get("method", ""), scope.get("path", ""))
        detail = json.dumps({"detail": f"request body over {limit} bytes"}).encode()

        async def capped_receive():
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def capped_send(message):
            # whatever the app makes of the broken-off body (FastAPI: 400), the client gets 413
            nonlocal replaced
            if exceeded and message["type"] == "http.response.start":
                replaced = True
                await send({"type": "http.response.start", "status": 413,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(detail)).encode())]})
                await send({"type": "http.response.body", "body": detail})
                return
            if not replaced:
                await send(message)

        try:
            await self.app(scope, capped_receive, capped_send)
        except BodyTooLarge:
            if not replaced:
                await capped_send({"type": "http.response.start", "status": 413, "headers": []})


@app.middleware("http")
async def guard(request: Request, call_next):
    """Cap request size, log every request with its latency, never leak a traceback."""
    t0 = time.perf_counter()
    length = request.headers.get("content-length")
    limit = body_limit(request.method, request.url.path)
    if (refused := _write_refused(request)) is not None:  # before a byte of an upload is read
        response = refused
    elif length and length.isdigit() and int(length) > limit:
        response = JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)
    elif not _may_read(request):
        response = JSONResponse({"detail": "this server needs `Authorization: Bearer <key>` to read (RAG_READ_KEY)"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
    else:
        try:
            response = await call_next(request)
        except BodyTooLarge:
            raise
        except Exception:
            log.exception("unhandled error on %s", request.url.path)
            response = JSONResponse({"detail": "internal error; see the server log"}, status_code=500)
    elapsed = time.perf_counter() - t0
    route = getattr(request.scope.get("route"), "path", "unmatched")
    REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    LATENCY.labels(route).observe(elapsed)
    request_id = uuid.uuid4().hex[:12]
    response.headers["X-Request-ID"] = request_id
    log.info(json.dumps({"method": request.method, "path": request.url.path, "status": response.status_code,
                         "ms": round(elapsed * 1000, 1), "request_id": request_id}))
    return response


app.add_middleware(BodyCap)


@app.exception_handler(RequestValidationError)
async def invalid(request: Request, exc: RequestValidationError):
    messages = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        kind = err.get("type")
        if kind == "extra_forbidden" and "filters" in where:
            msg = f"unknown filter; allowed: {', '.join(FILTER_KEYS)}"
        elif kind == "extra_forbidden":
            msg = "unknown field; allowed: question, top_k, filters"
        elif kind == "json_invalid":
            where, msg = "", f"request body is not valid JSON ({err.get('ctx', {}).get('error', 'decode error')})"
        messages.append(f"{where}: {msg}" if where else msg)
    return JSONResponse({"detail": "; ".join(messages)}, status_code=422)


@app.exception_handler(StarletteHTTPException)
async def http_error(request: Request, exc: StarletteHTTPException):
    """Every error as {"detail": str}; a body FastAPI cannot parse (not UTF-8) is 422, like any
    other invalid input, not a bare 400."""
    if exc.status_code == 400:
        return JSONResponse({"detail": "request body is not valid JSON in UTF-8"}, status_code=422)
    if exc.status_code == 405:  # Allow: every method of the path (GET and POST /documents), not the first route's
        allowed = sorted({m for r in app.routes if getattr(r, "methods", None) and r.matches(request.scope)[0] != Match.NONE
                          for m in r.methods})
        return JSONResponse({"detail": str(exc.detail)}, status_code=405, headers={"Allow": ", ".join(allowed)})
    return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


@app.exception_handler(BackendError)
async def backend_down(request: Request, exc: BackendError):
    """Milvus unreachable or failing: the service stays up and says so."""
    return JSONResponse({"detail": f"search backend unavailable: {exc}"}, status_code=503)


@app.exception_handler(QueryError)
async def bad_query(request: Request, exc: QueryError):
    return JSONResponse({"detail": str(exc)}, status_code=422)


@app.post("/ask", response_model=AskResponse, responses={k: ERRORS[k] for k in (413, 422, 503)})
def ask(req: AskRequest) -> dict:
    filters = {k: v for k, v in req.filters.model_dump().items() if v not in (None, "")} if req.filters else None
    answerer = _answerer()
    for key in ("doc_id", "doc_type"):
        if filters and key in filters:
            allowed = sorted({getattr(c, key) for c in answerer.retriever.index.chunks})
            if filters[key] not in allowed:
                raise QueryError(f"filter {key} {filters[key]!r} is not in the index; allowed: {', '.join(allowed)}")
    answer = answerer.ask(req.question, top_k=req.top_k, filters=filters)
    ANSWERS.labels(str(answer.found).lower()).inc()
    return answer.to_json()


@app.get("/search", response_model=SearchResponse, responses={k: ERRORS[k] for k in (422, 503)})
def search(q: Annotated[str, Query(min_length=1, max_length=1000, examples=["代表联络站"])],
           k: Annotated[int, Query(ge=1, le=20)] = 5) -> dict:
    try:
        _readable(q, "query")
    except ValueError as e:
        raise QueryError(str(e)) from None
    t0 = time.perf_counter()
    hits = _answerer().retriever.search(q, k=k)
    return {
        "query": q,
        "results": [
            {"chunk_id": h.chunk.id, "doc_id": h.chunk.doc_id, "title": h.chunk.title,
             "article": h.chunk.article, "start": h.chunk.start, "end": h.chunk.end,
             "text": h.chunk.text, "score": round(h.score, 6)}
            for h in hits
        ],
        "took_ms": round((time.perf_counter() - t0) * 1000, 2),
    }


@app.get("/documents")
def documents() -> dict:
    return {"documents": load_manifest(state.settings.manifest_path)}


@app.get("/documents/{doc_id}", responses={k: ERRORS[k] for k in (404, 422, 503)})
def document(doc_id: str, start: int | None = Query(None, ge=0), end: int | None = Query(None, ge=0),
             context: int = Query(200, ge=0, le=5000)) -> dict:
    entries = {e["doc_id"]: e for e in load_manifest(state.settings.manifest_path)}
    if doc_id not in entries:
        raise HTTPException(404, detail=f"no document {doc_id!r}; see GET /documents")
    out = dict(entries[doc_id])
    if start is None and end is None:
        return out
    text = _answerer().texts.get(doc_id)
    if text is None:
        raise HTTPException(503, detail=f"document {doc_id!r} is not in the index being served yet; it is "
                                        "picked up when its index build finishes")
    if start is None or end is None or not start < end <= len(text):
        raise HTTPException(422, detail=f"start and end must satisfy 0 <= start < end <= {len(text)}")
    out["passage"] = {
        "start": start, "end": end, "quote": text[start:end],
        "before": text[max(0, start - context):start], "after": text[end:end + context],
    }
    return out


def _write_key() -> str | None:
    s = state.settings
    if s.api_key:
        return s.api_key
    if s.api_key_file:
        try:
            return Path(s.api_key_file).read_text(encoding="utf-8").strip() or None
        except OSError:
            return None
    return None


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _may_read(request: Request) -> bool:
    """Reads are open unless RAG_READ_KEY is set; then the read key or the write key opens them.
    The page, /healthz, /metrics and the API docs stay open; writes check their own key."""
    settings = getattr(state, "settings", None)
    if settings is None or not settings.read_key:
        return True
    path = request.url.path
    reading = path == "/ask" or path == "/search" or (path.startswith("/documents") and request.method == "GET")
    if not reading:
        return True
    token = _bearer(request).encode()
    return any(k and hmac.compare_digest(token, k.encode()) for k in (settings.read_key, _write_key()))


def _write_refused(request: Request) -> JSONResponse | None:
    path = request.url.path.rstrip("/")
    writing = (request.method == "POST" and path == "/documents") or (
        request.method == "DELETE" and path.startswith("/documents/") and path.count("/") == 2)
    if not writing:  # other methods and paths get their own answer (405, 404)
        return None
    try:
        _authorise(request)
    except HTTPException as e:
        return JSONResponse({"detail": e.detail}, status_code=e.status_code, headers=e.headers)
    return None


def _authorise(request: Request) -> None:
    key = _write_key()
    if key is None:
        raise HTTPException(403, detail="writes are off: start the server with RAG_API_KEY (or RAG_API_KEY_FILE, "
                                        "a file holding the key) to enable POST and DELETE /documents")
    if not hmac.compare_digest(_bearer(request).encode(), key.encode()):
        raise HTTPException(401, detail="a valid `Authorization: Bearer <key>` header is required",
                            headers={"WWW-Authenticate": "Bearer"})


def _place_flags(place: str | None) -> dict:
    if not place:
        return {}
    level = "province" if place.endswith("省") else "city" if place.endswith("市") and len(place) <= 4 else "county"
    return {level: place}


class AddResponse(BaseModel):
    doc_id: str
    status: str = Field(..., examples=["added"], description="added | replaced | unchanged (same file again)")
    detected: dict = {}
    undetected: list[str] = []
    chunks: int = 0


@app.post("/documents", status_code=201, response_model=AddResponse,
          responses={k: ERRORS[k] for k in (401, 403, 409, 413, 415, 422, 503)})
def upload(request: Request, file: Annotated[UploadFile, File(description="PDF, Word (.docx), HTML or UTF-8 text")],
           title: Annotated[str | None, Form()] = None, date: Annotated[str | None, Form(description="YYYY-MM-DD")] = None,
           place: Annotated[str | None, Form()] = None,
           doc_type: Annotated[str | None, Form(pattern="^(journal_issue|work_report|news_article)$")] = None):
    """Add a publication as `rag add` does; it is served as soon as this returns."""
    _authorise(request)
    settings = state.settings
    if date:
        try:
            date = iso_date(date).isoformat()
        except ValueError as e:
            raise HTTPException(422, detail=f"date {e}") from None
    flags = {"title": title, "date": date, "doc_type": doc_type, **_place_flags(place)}
    name = Path(file.filename or "upload").name
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "upload"
        with path.open("wb") as out:
            while chunk := file.file.read(1 << 20):
                out.write(chunk)
        try:
            result = add_file(settings, path, flags, doc_name=name)
        except ExtractError as e:
            raise HTTPException(e.status, detail=f"{name}: {e.problem}") from None
        except WriterBusy as e:
            raise HTTPException(409, detail=str(e)) from None
        except CorpusError as e:  # a manifest or corpus check; the problem, not the server's paths
            raise HTTPException(422, detail=f"{name}: {e.problem}") from None
        except IndexError_ as e:
            raise HTTPException(409, detail=f"{name}: {e}") from None
    if result.status != "unchanged":
        _load(settings)  # served now by this worker; the others swap it in within reload_seconds
    log.info(json.dumps({"event": "document " + result.status, "doc_id": result.doc_id}, ensure_ascii=False))
    body = {"doc_id": result.doc_id, "status": result.status, "detected": result.detected,
            "undetected": result.undetected, "chunks": result.chunks}
    return JSONResponse(body, status_code=200 if result.status == "unchanged" else 201)


@app.delete("/documents/{doc_id}", responses={k: ERRORS[k] for k in (401, 403, 404, 409)})
def delete(request: Request, doc_id: str) -> dict:
    _authorise(request)
    settings = state.settings
    if not any(e["doc_id"] == doc_id for e in load_manifest(settings.manifest_path)):
        raise HTTPException(404, detail=f"no document {doc_id!r}")
    try:
        remove_document(settings, doc_id)
    except IndexError_ as e:  # another write holds the index (WriterBusy), or it cannot be read
        raise HTTPException(409, detail=str(e)) from None
    _load(settings)
    return {"removed": doc_id}


@app.get("/healthz")
def healthz() -> dict:
    """The live index generation, its build time and counts; building, stale and other
    warnings with their reasons."""
    a = state.answerer
    if a is None:
        body = {"status": "building" if state.building else "unavailable", "detail": state.error}
        if state.building:
            body["building"] = dict(state.building)
        return JSONResponse(body, status_code=503)
    m = a.retriever.index.manifest
    return {"status": "ok", "chunks": len(a.retriever.index.chunks), "documents": m["counts"]["documents"],
            "embedder": m["embedder"]["name"], "backend": a.retriever.backend.describe(),
            "built_at": m["built_at"], "generation": state.generation,
            "ranker": {"sha256": file_digest(state.settings.ranker_path), "threshold": a.ranker.threshold},
            "stale": any("stale" in w for w in state.warnings), "warnings": state.warnings}


@app.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Prometheus: requests and latency per route, answers found or refused, chunks loaded."""
    if state.answerer is not None:
        CHUNKS.set(len(state.answerer.retriever.index.chunks))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@app.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")
