"""A FastAPI service laid out as the common project templates do: versioned routers under
``api/``, shared dependencies, static files, an admin sub-application."""
