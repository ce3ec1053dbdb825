"""POST /v1/feedback: a rating (and a reason, a correction) on an answer, named by its request id."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from api.deps import FeedbackCaller, QuestionRedactorDep, RedisDep, on_edge
from api.schemas import FeedbackBody, FeedbackOut
from app.feedback import give_feedback
from observability import metrics

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])


@router.post("", response_model=FeedbackOut)
async def rate_answer(
    body: FeedbackBody, request: Request, r: RedisDep, who: FeedbackCaller, redactor: QuestionRedactorDep
) -> FeedbackOut:
    taken = await on_edge(
        request,
        lambda: give_feedback(
            r,
            who,
            redactor,
            request_id=body.request_id,
            rating=body.rating,
            reason=body.reason,
            correction=body.correction,
            at=time.time(),
        ),
    )
    metrics.FEEDBACK.labels(rating=taken.rating, cache=taken.cache).inc()
    return FeedbackOut(**vars(taken))
