"""/docs: Swagger UI for /openapi.json, with its assets served by the service itself.

The assets come from the swagger-ui-py package, so the page works with no internet access
(an air-gapped cluster, a laptop on a plane) and loads nothing from a CDN.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui.utils import SWAGGER_UI_PY_ROOT

ASSETS = "/docs/assets"

PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>registro API</title>
  <link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{ASSETS}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{ASSETS}/swagger-ui-bundle.js"></script>
  <script>
    window.onload = () => SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui"}});
  </script>
</body>
</html>
"""


async def docs_page(request: Request) -> Response:
    return HTMLResponse(PAGE)


ROUTES: list[BaseRoute] = [
    Route("/docs", docs_page),
    Mount(ASSETS, StaticFiles(directory=SWAGGER_UI_PY_ROOT / "static"), name="docs-assets"),
]
