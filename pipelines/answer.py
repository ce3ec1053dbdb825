"""The query's last two steps: generate (a route, then the provider chain, regrounding under the
tenant's policy, tokens and cost counted) and validate (the output screen, moderation, citations
and claims checked against the passages, JSON against the caller's schema). `pipelines.query`
runs them after retrieve, rerank and context.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from opentelemetry import trace

from contracts.query import (
    AnswerInput,
    AnswerOutput,
    GenerateInput,
    GenerateOutput,
    ValidateInput,
    ValidateOutput,
    best_passage,
    unverified,
    validate_input,
)
from generation import prompts
from generation.chain import ChainResult, ProviderChain
from generation.extractive import ExtractiveAnswerer
from generation.grounding import Grounder
from generation.prompts import STRICT_PROMPT
from generation.providers import GenerationRequest
from generation.release import WITHHELD as WITHHELD_EVENT
from generation.release import SentenceRelease
from generation.router import CLARIFY, NO_SOURCES, RoutingConfig, choose_route, clarifying_answer, no_sources_answer
from generation.validate import WITHHELD, check_citations, check_json, moderate_answer, refusal, screen_output
from generation.verify import Verifier
from keel.errors import StepTimeout
from pipelines.deps import Deps
from stores.prompt_stats import count_json_answer
from stores.streams import EventSink

__all__ = ["AnswerSteps"]

log = logging.getLogger("keel.query")
_TRACER = trace.get_tracer("keel.query")  # a span per step inside answer


class AnswerSteps:
    def __init__(
        self, deps: Deps, chain: ProviderChain, routes: dict[str, list[str]], verifier: Verifier | None = None
    ) -> None:
        self.d = deps
        self.s = deps.settings
        self.chain = chain
        self.routes = routes
        self.verifier = verifier  # reads a model's citations back before they stand (validate)
        self.routing = RoutingConfig(self.s.clarify_below, self.s.easy_min_confidence, self.s.easy_max_words)
        self._template = prompts.load(prompts.TEXT_PROMPT).template

    def generate(self, inp: GenerateInput) -> GenerateOutput:
        """The answer: a route for the question, then the route's provider chain (its last link
        the extractive answerer); a model's answer with unsupported claims is answered again
        under the tenant's grounding policy. Every call the answer took is counted and paid for."""
        started = time.monotonic()
        sink = EventSink(self.d.redis, inp.tenant, inp.request_id) if inp.stream else None
        route = inp.route or choose_route(inp.question, inp.confidence, len(inp.passages), self.routing)
        if route in (NO_SOURCES, CLARIFY):
            text = no_sources_answer() if route == NO_SOURCES else clarifying_answer(inp.question, inp.quote_question)
            if sink is not None:
                sink.token(text)
            return GenerateOutput(text=text, route=route, clarifying=True, ms=_ms(started))
        rendered = prompts.render(inp.question, inp.passages, inp.json_schema, inp.prompt_id)
        deadline = started + inp.deadline_ms / 1000
        answering = _Answering(self, inp, sink, self.routes.get(route, []), rendered, deadline)
        calls = [(rendered, answering.ask(rendered))]  # each prompt sent, with what the chain made of it
        regrounded = ""
        if self._needs_regrounding(inp, calls[0][1]):
            answering.restart("ungrounded")
            if inp.grounding == "retry":
                rendered = prompts.render(inp.question, inp.passages, None, STRICT_PROMPT)
                calls.append((rendered, answering.ask(rendered, strict=True)))
                regrounded = "retried"
            else:
                answering.route_chain = []  # the chain's last resort alone: the extractive answerer
                calls.append((rendered, answering.ask(rendered)))
                regrounded = "extractive"
        result = calls[-1][1]
        gen, provider = result.generation, result.provider
        tokens_in, tokens_out, cost = self._paid(inp, calls)
        return GenerateOutput(
            text=gen.text,
            route=route,
            provider=provider.name,
            model=gen.model,
            prompt_id=gen.prompt_id or rendered.prompt_id,
            prompt_hash=gen.prompt_hash or rendered.hash,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=round(cost, 6),
            attempts=[a for _, r in calls for a in r.attempts],
            ms=_ms(started),
            first_token_ms=round((answering.first_token[0] - started) * 1000, 2) if answering.first_token else 0.0,
            regrounded=regrounded,
        )

    def _paid(self, inp: GenerateInput, calls: list[tuple[prompts.Rendered, ChainResult]]) -> tuple[int, int, float]:
        """Tokens in and out and their cost over every call an answer took (a provider's own
        counts, else the index's tokenizer's)."""
        tok = self.d.indexes.loaded(inp.tenant, inp.embedding_version).embedder
        tokens_in = tokens_out = 0
        cost = 0.0
        for asked, r in calls:
            t_in = r.generation.tokens_in or sum(tok.count_tokens([asked.system, asked.text]))
            t_out = r.generation.tokens_out or sum(tok.count_tokens([r.generation.text]))
            tokens_in, tokens_out = tokens_in + t_in, tokens_out + t_out
            cost += t_in / 1000 * r.provider.price_in_per_1k + t_out / 1000 * r.provider.price_out_per_1k
        return tokens_in, tokens_out, cost

    def sentence_release(
        self, sink: EventSink, inp: GenerateInput, rendered: Callable[[], prompts.Rendered]
    ) -> SentenceRelease:
        """Tokens to the client a sentence at a time, each once the output screen and moderation
        passed the answer so far; a withheld answer's sentences are taken back at once."""

        def check(text: str) -> str | None:
            why = refusal(text, prompts.load(rendered().prompt_id).template, inp.moderation, inp.severe)
            if why is not None:
                log.warning("streamed answer withheld by the output guardrails (%s)", why)
                sink.reset(WITHHELD_EVENT)
            return why

        return SentenceRelease(sink.token, check)

    def _needs_regrounding(self, inp: GenerateInput, result: ChainResult) -> bool:
        """A model's text answer with claims no passage supports, under a policy that acts on it."""
        if inp.grounding == "flag" or inp.json_schema is not None or result.provider is self.chain.last_resort:
            return False
        grounder = self._grounder(inp.tenant, result.provider.name, inp.embedding_version)
        return grounder.ground(result.generation.text, inp.passages, inp.question).ungrounded

    def answer(self, inp: AnswerInput) -> AnswerOutput:
        """Generate, then validate, each degrading as its own step did: a failed generation answers
        with the best passage (`generate_failed`); a validation that fails or passes its budget lets
        the answer out unchecked, and says so (`validate_skipped`, flag `unverified`)."""
        started = time.monotonic()
        empty = GenerateOutput(text="", route="")
        out = AnswerOutput(generated=empty, validated=unverified(empty))
        try:
            with _TRACER.start_as_current_span("query.generate"):
                out.generated = self.generate(inp.generate)
        except Exception as exc:  # the best passage, cited, is still a grounded answer
            log.warning("generation failed for %s: %s", inp.generate.request_id, exc)
            out.degradations.append("generate_failed")
            out.generated = best_passage(inp.generate.passages)
        out.timings_ms["generate"] = out.generated.ms
        cold = [a.ms for a in out.generated.attempts if a.cold]
        if cold:  # a provider's first answer in this process: what loading it cost this one
            out.timings_ms["provider_cold"] = round(sum(cold), 2)
        try:
            with _TRACER.start_as_current_span("query.validate"):
                out.validated = self.validate(validate_input(inp.generate, out.generated))
            if out.validated.ms > inp.validate_budget_ms:
                raise StepTimeout(
                    f"validate took {out.validated.ms:.0f} ms; its budget is {inp.validate_budget_ms:.0f} ms"
                )
        except Exception as exc:
            log.warning("answer %s goes out unchecked: %s", inp.generate.request_id, exc)
            out.degradations.append("validate_skipped")
            out.validated = unverified(out.generated)
        out.timings_ms["validate"] = out.validated.ms
        out.ms = _ms(started)
        return out

    def validate(self, inp: ValidateInput) -> ValidateOutput:
        started = time.monotonic()
        if inp.clarifying:
            return ValidateOutput(text=inp.text, citations=[], supported_rate=0.0, ms=_ms(started))
        template = prompts.load(inp.prompt_id).template if inp.prompt_id else self._template
        blocked = screen_output(inp.text, template)
        if blocked is not None:  # never sent: not the text, not its citations
            log.warning("answer withheld by the output screen (%s)", blocked)
            return ValidateOutput(
                text=WITHHELD, citations=[], supported_rate=0.0, flags=["output_blocked"], ms=_ms(started)
            )
        moderated, refused = moderate_answer(inp.text, inp.moderation, inp.severe)
        if refused:
            withheld = f"The answer was withheld: it was flagged as {', '.join(refused)} content."
            flags = ["output_blocked", *moderated]
            return ValidateOutput(text=withheld, citations=[], supported_rate=0.0, flags=flags, ms=_ms(started))
        grounder = self._grounder(inp.tenant, inp.provider, inp.embedding_version, verify=True)
        checked = check_citations(inp.text, inp.passages, grounder, inp.question)
        trace.get_current_span().add_event(
            "apply_guardrail",
            {
                "gen_ai.guardrail.name": "grounding",
                "gen_ai.guardrail.target": "answer",
                "gen_ai.guardrail.decision": "flag" if checked.ungrounded else "pass",
                "keel.citations_from": checked.source,
                "keel.unsupported_claims": len(checked.unsupported),
                "keel.citations_unverified": checked.unverified,
            },
        )
        out = ValidateOutput(
            text=checked.text,
            citations=checked.citations,
            supported_rate=checked.supported_rate,
            unsupported=checked.unsupported,
            invalid_refs=checked.invalid_refs,
            flags=[
                *moderated,
                *(["ungrounded"] if checked.ungrounded else []),
                *(["unverified"] if checked.unverified else []),
            ],
            citations_from=checked.source,
        )
        if inp.response_format == "json" and inp.json_schema is not None:
            js = check_json(inp.text, inp.json_schema)
            out.json_value, out.json_error, out.repaired = js.value, js.error, js.repaired
            count_json_answer(self.d.redis, inp.prompt_id, error=js.error is not None, repaired=js.repaired)
        out.ms = _ms(started)
        return out

    def _grounder(self, tenant: str, provider: str, embedding_version: str = "", verify: bool = False) -> Grounder:
        """Words and meaning for a model's answer, and the verifier's reading when `verify` (the
        final check; the generate step's retry decision does without it); words alone for the
        extractive answerer's, whose sentences are the passages' own."""
        if not tenant or provider in ("", ExtractiveAnswerer.name):
            return Grounder(None)
        embedder = self.d.indexes.loaded(tenant, embedding_version).embedder
        return Grounder(
            lambda texts: embedder.embed(texts, interactive=True), verifier=self.verifier if verify else None
        )


class _Answering:
    """One answer's calls to the provider chain, streamed through the sentence release when the
    caller streams: the first token's time, and a restart that voids what was streamed."""

    def __init__(
        self,
        steps: AnswerSteps,
        inp: GenerateInput,
        sink: EventSink | None,
        route_chain: list[str],
        rendered: prompts.Rendered,
        deadline: float,
    ) -> None:
        self.steps, self.inp, self.sink, self.route_chain = steps, inp, sink, route_chain
        self.first_token: list[float] = []
        self.deadline = deadline
        self.release = steps.sentence_release(sink, inp, lambda: rendered) if sink is not None else None

    def relay(self, token: str) -> None:
        # Every answer is streamed from its provider, asked for or not: the first token's time is
        # measured, and a provider's first-token deadline holds only on a stream.
        if not self.first_token:
            self.first_token.append(time.monotonic())
        if self.release is not None:
            self.release.feed(token)

    def restart(self, reason: str) -> None:
        """The answer streamed so far is void, and another one is asked for: its first token is timed anew."""
        self._restart_in_chain(reason)
        self.first_token.clear()

    def ask(self, rendered: prompts.Rendered, strict: bool = False) -> ChainResult:
        inp, s = self.inp, self.steps.s
        max_out = min(inp.max_output_tokens or s.max_output_tokens, s.max_output_tokens)

        def request(timeout_s: float, first_token_timeout_s: float | None = None) -> GenerationRequest:
            return GenerationRequest(
                prompt=rendered.text,
                question=inp.question,
                passages=inp.passages,
                max_output_tokens=max_out,
                timeout_s=timeout_s,
                json_schema=inp.json_schema,
                first_token_timeout_s=first_token_timeout_s,
                system=rendered.system,
                prompt_id=rendered.prompt_id,
                strict=strict,
            )

        on_restart = self._restart_in_chain if self.sink is not None else None
        result = self.steps.chain.run(self.route_chain, request, self.deadline, self.relay, on_restart)
        if self.release is not None:
            self.release.finish()
        return result

    def _restart_in_chain(self, reason: str) -> None:  # a provider failed mid-stream: the next one starts over
        if self.sink is not None and self.release is not None:
            self.release.reset()
            self.sink.reset(reason)


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 2)
