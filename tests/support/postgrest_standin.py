"""A stand-in for PostgREST's `POST /rest/v1/rpc/<function>` for the three tracking
functions, so the Edge Function kit's rpc mode (supabase-js `.rpc()`) runs against the real
database in tests: the JSON body's keys are the function's named arguments, a set-returning
function answers a JSON array of rows, a scalar one its value, an `apikey` other than the
service-role key 401, and a database error PostgREST's `{code, details, hint, message}`."""

from __future__ import annotations

import json

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from core.sql import load_package

SQL = load_package("tests.support", "postgrest_standin.sql")
JSON_ARGUMENTS = {"p_payload", "p_error_details"}
SET_RETURNING = {"webhook_event_begin"}


def postgrest_standin(engine: sa.Engine, service_role_key: str) -> Starlette:
    async def rpc(request: Request) -> JSONResponse:
        if request.headers.get("apikey") != service_role_key:
            return JSONResponse({"message": "Invalid API key"}, status_code=401)
        function = request.path_params["function"]
        name = f"rpc_{function}"
        if name not in SQL.queries:
            return JSONResponse({"code": "PGRST202", "details": None, "hint": None,
                                 "message": f"Could not find the function public.{function}"}, status_code=404)
        args = await request.json()
        params = {key: json.dumps(value) if key in JSON_ARGUMENTS and value is not None else value
                  for key, value in args.items()}
        try:
            with engine.begin() as conn:
                result = SQL.execute(conn, name, **params)
                body = ([dict(row) for row in result.mappings()] if function in SET_RETURNING
                        else result.scalar())
        except sa.exc.DBAPIError as exc:
            diag = getattr(exc.orig, "diag", None)
            return JSONResponse({"code": getattr(exc.orig, "sqlstate", None), "details": getattr(diag, "message_detail", None),
                                 "hint": getattr(diag, "message_hint", None),
                                 "message": getattr(diag, "message_primary", str(exc.orig))}, status_code=400)
        return JSONResponse(body)

    return Starlette(routes=[Route("/rest/v1/rpc/{function}", rpc, methods=["POST"])])
