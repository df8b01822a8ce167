"""(to be written: see the issue-15 brief for this area)"""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
