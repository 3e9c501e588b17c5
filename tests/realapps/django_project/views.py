from __future__ import annotations

import json
import logging

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST

logger = logging.getLogger(__name__)

POLLS: dict[int, dict[str, object]] = {}


def reset() -> None:
    POLLS.clear()
    for poll_id in range(1, 21):
        POLLS[poll_id] = {"id": poll_id, "question": f"Question {poll_id}?", "votes": 0}


reset()


def _poll(poll_id: int) -> dict[str, object]:
    if poll_id not in POLLS:
        raise Http404("no such poll")
    return POLLS[poll_id]


@require_GET
def index(_request: HttpRequest) -> HttpResponse:
    return JsonResponse({"polls": [poll["id"] for poll in POLLS.values()]})


@require_GET
def detail(_request: HttpRequest, poll_id: int) -> HttpResponse:
    poll = _poll(poll_id)
    logger.info("poll %s viewed", poll_id)
    return JsonResponse(poll)


@require_POST
def vote(request: HttpRequest, poll_id: int) -> HttpResponse:
    poll = _poll(poll_id)
    votes = json.loads(request.body or b"{}").get("votes", 1)
    poll["votes"] = int(str(poll["votes"])) + int(votes)
    return JsonResponse(poll)


@require_GET
def status(_request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok", "app": "django-project"})


@require_GET
def page(_request: HttpRequest, anything: str) -> HttpResponse:
    return JsonResponse({"page": anything})
