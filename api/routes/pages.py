"""The crew page (a phone) and the control room's overview: static HTML shells from ``api/static``.

No sign-in guards the shells themselves: they hold no data; every call they make for data carries the
user's bearer token and goes through the role check. Their scripts, styles and icons are served by the
app's ``/static`` mount (``api.app``), from the same folder, so the pages work on a closed network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR: Final = Path(__file__).resolve().parent.parent / "static"
#: Path of each page to its file in ``api/static``.
PAGES: Final = {"/crew": "crew.html", "/overview": "overview.html"}
# The shell is tiny and changes with a deploy: revalidate every time, so a phone never runs old scripts
# against a new API.
_HEADERS: Final = {"Cache-Control": "no-cache"}

router = APIRouter(tags=["pages"], include_in_schema=False)


def _page(path: str, file: Path) -> None:
    async def page() -> FileResponse:
        return FileResponse(file, media_type="text/html", headers=_HEADERS)

    router.add_api_route(path, page, methods=["GET"], name=f"page_{file.stem}")


for _path, _file in PAGES.items():
    _page(_path, STATIC_DIR / _file)
