"""MCP at `/mcp`: Keel's knowledge base as tools for agents, over the streamable HTTP transport.

An agent's MCP client connects with a Keel API key as its Bearer token, and every tool call goes
through the same edge as the HTTP API: the key's role (`query`) and access groups, its limits and
the tenant's admission, the question's checks and redaction, and the answer records feedback
reads. Tools:

- `search`: the passages retrieval and re-scoring rank best for a query (with their document ids,
  sources and section paths, to cite), optionally within some sources;
- `fetch`: a document the key may read, chunk by chunk (`GET /v1/documents/{id}`);
- `answer`: an answer with its citations (`POST /v1/query`).

A refusal (a limit, a flagged question, a document the key may not read) is a tool error whose
text starts with Keel's code and ends with the request id, so an agent can tell a refusal from an
empty result. The server is stateless (no MCP session is kept between requests) and answers in
JSON; authentication is per request, so any API process can serve any call.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.deps import on_edge
from api.errors import request_id
from api.routers.query import CallerDep, answered, searched
from api.schemas import QueryBody, QueryFiltersBody
from app.delete import check_doc_id
from app.query_edge import Caller
from app.reading import read_document
from keel.errors import IndexNotHere, KeelError

router = APIRouter(tags=["mcp"])
MAX_RESULTS = 50
INSTRUCTIONS = (
    "Keel searches and answers from the documents your key may read. Use `search` to find passages and "
    "`fetch` to read a whole document by its doc_id; use `answer` for a cited answer to a question."
)


def build_mcp() -> MCPServer:
    server = MCPServer(name="keel", instructions=INSTRUCTIONS)

    @server.tool(description="Passages that answer the query, best first, with doc_id and source to cite.")
    async def search(query: str, ctx: Context, limit: int = 10, sources: list[str] | None = None) -> dict[str, Any]:
        request, who = _caller(ctx)
        body = QueryBody(question=query, filters=QueryFiltersBody(sources=sources or []) if sources else None)
        found = await _keel(request, searched(body, request, who, max(1, min(limit, MAX_RESULTS))))
        return {"passages": [p.__dict__ for p in found], "request_id": request_id(request)}

    @server.tool(description="A document the key may read, by the doc_id a passage or citation gave.")
    async def fetch(doc_id: str, ctx: Context) -> dict[str, Any]:
        request, who = _caller(ctx)

        async def read() -> dict[str, Any]:
            check_doc_id(doc_id)
            if who.indexes is None:
                raise IndexNotHere("this API process does not open the index: ask one beside the workers")
            view = await on_edge(request, read_document, who.indexes, who.redis, who.tenant, who.groups, doc_id)
            return {
                "doc_id": view.doc_id,
                "title": view.title,
                "source": view.source,
                "text": "\n\n".join(c.text for c in view.chunks),
                "truncated": view.truncated,
            }

        return await _keel(request, read())

    @server.tool(description="An answer to the question from the documents, with its citations.")
    async def answer(question: str, ctx: Context) -> dict[str, Any]:
        request, who = _caller(ctx)
        said, _ = await _keel(request, answered(QueryBody(question=question), request, who))
        return {
            "answer": said.answer,
            "citations": [c.model_dump() for c in said.citations],
            "degradations": said.degradations,
            "request_id": said.request_id,
        }

    return server


def _caller(ctx: Context) -> tuple[Request, Caller]:
    """The HTTP request the call came in and the caller `/mcp` authenticated for it."""
    request = ctx.request_context.request
    assert isinstance(request, Request)  # the streamable HTTP transport's
    who: Caller = request.state.keel_caller
    return request, who


async def _keel(request: Request, work: Any) -> Any:
    """The tool's result, or Keel's refusal as a tool error an agent can read."""
    try:
        return await work
    except KeelError as exc:
        raise ToolError(f"{exc.code}: {exc.message} (request {request_id(request)})") from exc


def mounted(server: MCPServer) -> MCPServer:
    """The server with its transport made: stateless, JSON answers. Host checks are off, because
    every request carries an API key a browser page cannot attach (the threat they guard against)."""
    server.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return server


class _Handled(Response):
    """The MCP transport answers the request itself (its body is still unread here)."""

    def __init__(self, server: MCPServer) -> None:
        super().__init__()
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.server.session_manager.handle_request(scope, receive, send)


@router.api_route("/mcp", methods=["GET", "POST", "DELETE"], include_in_schema=False)
async def mcp_endpoint(request: Request, who: CallerDep) -> Response:
    """Authenticated as every API route is (a key with the `query` role), then the MCP transport."""
    request.state.keel_caller = who
    return _Handled(request.app.state.mcp)
