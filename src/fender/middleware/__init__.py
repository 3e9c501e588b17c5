"""Internal: the protocol shells. One pure ASGI middleware or one WSGI wrapper a module.

They import only the cores of :mod:`fender.http` and leaf helpers; the adapters in
:mod:`fender.frameworks` compose them. Nothing here is public API.
"""

__all__: list[str] = []
