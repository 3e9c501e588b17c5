"""A Starlette service: a notes API under ``Mount``s (a ``Router`` and a list of routes),
static files, a documentation site on its own ``Host``, a pure ASGI middleware, a lifespan."""
