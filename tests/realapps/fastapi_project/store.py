"""The service's storage: in memory, one per app (a real one would hold a database pool)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field


@dataclass
class Store:
    users: dict[int, dict[str, object]] = field(default_factory=dict)
    items: dict[int, dict[str, object]] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=lambda: {"alice": "wonderland"})
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    is_open: bool = False

    def add_user(self, name: str, email: str) -> dict[str, object]:
        user_id = next(self._ids)
        user: dict[str, object] = {"id": user_id, "name": name, "email": email}
        self.users[user_id] = user
        return user
