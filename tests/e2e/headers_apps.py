"""A FastAPI app for the headless-Chromium test of the security headers (served by uvicorn).

``/`` has a nonce'd inline script and one without the nonce; ``/csp-report`` records the
violation reports browsers send; ``/framed`` (fender's headers) and ``/framed-open`` (headers
off) each load an image, ``/beacon/<name>``, which says whether they were rendered;
``/attacker`` (headers off, like a foreign site) frames both from another origin.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse

import fender
from fender.security import security_headers

app = FastAPI()
REPORTS: list[Any] = []
BEACONS: list[str] = []

PAGE = """<!doctype html><html><head><title>csp</title></head><body><div id="out"></div>
<script nonce="{nonce}">
document.addEventListener("securitypolicyviolation", function (e) {{
  document.getElementById("out").append(" violation:" + e.effectiveDirective);
}});
document.getElementById("out").append(" nonce-ran");
</script>
<script>document.getElementById("out").append(" inline-ran");</script>
</body></html>"""

FRAMED = '<!doctype html><html><body>framed<img src="/beacon/{name}"></body></html>'

ATTACKER = """<!doctype html><html><body>
<iframe src="{target}/framed"></iframe>
<iframe src="{target}/framed-open"></iframe>
</body></html>"""


@app.get("/", response_class=HTMLResponse)
async def page(request: Request) -> str:
    return PAGE.format(nonce=request.state.csp_nonce)


@app.post("/csp-report")
async def csp_report(request: Request) -> Response:
    REPORTS.append(await request.json())
    return Response(status_code=204)


@app.get("/reports")
async def reports() -> list[Any]:
    return REPORTS


@app.get("/framed", response_class=HTMLResponse)
async def framed() -> str:
    BEACONS.append("served:framed")
    return FRAMED.format(name="framed")


@app.get("/framed-open", response_class=HTMLResponse)
@security_headers(enabled=False)
async def framed_open() -> str:
    BEACONS.append("served:framed-open")
    return FRAMED.format(name="framed-open")


@app.get("/beacon/{name}")
async def beacon(name: str) -> Response:
    BEACONS.append(name)
    return Response(status_code=204)


@app.get("/beacons")
async def beacons() -> list[str]:
    return BEACONS


@app.get("/attacker", response_class=HTMLResponse)
@security_headers(enabled=False)
async def attacker(target: str) -> str:
    return ATTACKER.format(target=target)


fender.install(
    app,
    env="development",
    rate_limit_enabled=False,
    # report-uri alone: with report-to as well (FENDER_CSP_REPORT_URI sets both), Chromium
    # reports through the Reporting API, in batches a --dump-dom run exits before sending.
    csp="default-src 'self'; script-src 'self' 'nonce-{nonce}'; frame-ancestors 'self'; "
    "report-uri /csp-report",
)
