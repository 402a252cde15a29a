"""Helpers of the evaluation tests: a backend that replies with fixed texts."""

from __future__ import annotations


class Scripted:
    """A backend that replies with fixed texts (by the question), recording each request."""

    name = "scripted"

    def __init__(self, replies: dict[str, str], default: str = "Fine.") -> None:
        self.replies = replies
        self.default = default
        self.requests: list[object] = []

    def _reply(self, request: object) -> object:
        from finetune_qa.backends import ChatResponse

        self.requests.append(request)
        question = str(request.messages[-1]["content"])  # type: ignore[attr-defined]
        text = next((r for q, r in self.replies.items() if q in question), self.default)
        return ChatResponse(id="c", model="m", content=text, finish_reason="stop")

    def chat(self, request: object) -> object:
        return self._reply(request)

    async def achat(self, request: object) -> object:
        return self._reply(request)
