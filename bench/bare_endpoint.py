"""The floor of ``bench decide``: a bare endpoint on the same server stack as ``journeys
serve`` (FastAPI under uvicorn, same settings), answering a constant decision.

``python -m bench.bare_endpoint PORT``
"""

from __future__ import annotations

import json
import sys

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ANSWER = {"instance": "bare", "version": 1, "decision": {"instalments": 3},
          "strategy": None, "group": None}  # fmt: skip


def app() -> FastAPI:
    """One route that reads the body and answers the same decision."""
    bare = FastAPI()

    @bare.post("/v1/decide")
    async def decide(request: Request) -> JSONResponse:
        json.loads(await request.body())  # what any JSON endpoint does with its body
        return JSONResponse(ANSWER)

    return bare


if __name__ == "__main__":
    uvicorn.run(app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
