"""The content policy: prompts an operator does not want to serve are refused before a job exists,
so a refusal is never queued, never charged, and answers in the caller's own protocol.

Three sources, checked in this order: blocked terms (whole words or phrases, any case), blocked
regular expressions, and an optional moderation webhook. Google's `personGeneration` is enforced
here too, on the prompt's words: `dont_allow` refuses prompts that ask for people (and steers the
model away from them), `allow_adult` (Veo's default) refuses prompts that ask for children, and
`allow_all` checks neither. The operator's setting is the most a request may allow: a request can
ask for stricter, never for more.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from openveo.service.outbound import Outbound, OutboundFailed

log = logging.getLogger("openveo.policy")

VIOLATION = "The prompt violates the content policy"

# Words that ask for people, and those that ask for children, for Google's personGeneration modes.
# Ambiguous words ("girl", "boy") are left out of the child list: they are used for adults too.
PEOPLE_TERMS = (
    "person", "persons", "people", "human", "humans", "man", "men", "woman", "women", "boy", "boys",
    "girl", "girls", "child", "children", "kid", "kids", "baby", "babies", "toddler", "teenager",
    "teen", "adult", "adults", "crowd", "face", "faces", "portrait", "selfie", "lady", "ladies",
    "gentleman", "guy", "guys", "father", "mother", "dad", "mom", "family", "worker", "dancer",
    "actor", "actress", "player", "soldier", "doctor", "student", "athlete", "someone", "somebody",
)  # fmt: skip
CHILD_TERMS = (
    "child", "children", "kid", "kids", "baby", "babies", "toddler", "toddlers", "infant", "infants",
    "minor", "minors", "preteen", "schoolchild", "schoolchildren", "schoolboy", "schoolgirl",
    "newborn", "underage",
)  # fmt: skip
PERSON_GENERATION = ("dont_allow", "allow_adult", "allow_all")  # strictest first
NO_PEOPLE_NEGATIVE = "people, person, human, face, crowd"
NOTHING = re.compile(r"(?!)")  # matches no text: the matcher of an empty list of terms


class PolicyViolation(Exception):
    """The prompt is refused; `reason` is safe to show the caller."""

    def __init__(self, reason: str, source: str) -> None:
        self.reason = reason
        self.source = source
        super().__init__(f"{VIOLATION}: {reason}")


class ModerationUnavailable(Exception):
    """The moderation webhook did not answer usefully, and the policy fails closed."""


@dataclass(frozen=True)
class Moderation:
    """An HTTP moderation service: POST JSON with the prompt, answer `{"allowed": bool, "reason"}` or
    OpenAI's moderation shape `{"results": [{"flagged": bool, "categories": {...}}]}`."""

    url: str
    token: str | None = None
    timeout_s: float = 10.0
    fail_open: bool = False
    outbound: Outbound | None = None  # default: the guarded fetcher, allowing this URL's own host

    def verdict(self, prompt: str, context: dict[str, Any]) -> str | None:
        """The refusal reason, or None when the prompt is allowed."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        # The operator named this service, so its host is allowed even on the private network.
        guarded = dataclasses.replace(self.outbound or Outbound(), timeout_s=self.timeout_s)
        outbound = guarded.with_allowed(_host_of(self.url))
        try:
            answer = outbound.post(self.url, json={"input": prompt, **context}, headers=headers)
            if not 200 <= answer.status < 300:
                raise ValueError(f"HTTP {answer.status}")
            return _refusal(json.loads(answer.body))
        except (OutboundFailed, ValueError) as exc:
            why = exc.reason if isinstance(exc, OutboundFailed) else str(exc)  # for the operator's log
            if self.fail_open:
                log.warning("moderation webhook failed (%s); allowing the prompt (fail-open)", why)
                return None
            raise ModerationUnavailable(f"the moderation service is unavailable ({why})") from exc


def _host_of(url: str) -> str:
    try:
        return httpx.URL(url).host
    except Exception:  # an unusable URL fails at the request, with the reason
        return ""


def _refusal(answer: Any) -> str | None:
    if isinstance(answer, dict) and isinstance(answer.get("allowed"), bool):
        return None if answer["allowed"] else str(answer.get("reason") or "refused by moderation")
    results = answer.get("results") if isinstance(answer, dict) else None
    if isinstance(results, list) and results and all(isinstance(r, dict) for r in results):
        flagged = [r for r in results if r.get("flagged")]
        if not flagged:
            return None
        categories = sorted({c for r in flagged for c, on in (r.get("categories") or {}).items() if on})
        return "flagged by moderation" + (f" ({', '.join(categories)})" if categories else "")
    raise ValueError(f"unexpected moderation answer: {str(answer)[:200]}")


@dataclass(frozen=True)
class ContentPolicy:
    blocked_terms: tuple[str, ...] = ()
    blocked_patterns: tuple[str, ...] = ()
    moderation: Moderation | None = None
    person_generation: str = "allow_adult"  # the most any request may allow
    _terms: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _patterns: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_terms", _word_matcher(self.blocked_terms))
        patterns = tuple(re.compile(p, re.IGNORECASE) for p in self.blocked_patterns)
        object.__setattr__(self, "_patterns", patterns)

    def check(self, prompt: str, *, people: str | None = None, context: dict[str, Any] | None = None) -> None:
        """Raises `PolicyViolation` (or `ModerationUnavailable`); returns when the prompt may run.
        `people` is the request's personGeneration, if it gave one."""
        text = normalise(prompt)
        people = self.people(people)
        if hit := self._terms.search(text):
            raise PolicyViolation(f"it contains the blocked term {hit.group(0)!r}", "terms")
        for pattern in self._patterns:
            if pattern.search(text):
                raise PolicyViolation("it matches a blocked pattern", "patterns")
        if people == "dont_allow" and (hit := _PEOPLE.search(text)):
            raise PolicyViolation(
                f"it asks for people ({hit.group(0)!r}) and personGeneration is dont_allow", "people"
            )
        if people == "allow_adult" and (hit := _CHILDREN.search(text)):
            raise PolicyViolation(
                f"it asks for children ({hit.group(0)!r}); only adults are allowed", "people"
            )
        if self.moderation is not None and (reason := self.moderation.verdict(prompt, context or {})):
            raise PolicyViolation(reason, "moderation")

    def people(self, requested: str | None) -> str:
        """The personGeneration mode that applies: the request's, but never more than the operator's."""
        if requested is None:
            return self.person_generation
        return min(requested, self.person_generation, key=PERSON_GENERATION.index)

    def negative_prompt(self, negative: str | None, people: str | None) -> str | None:
        """The negative prompt to generate with: under dont_allow it also steers away from people."""
        if self.people(people) != "dont_allow" or (negative or "").endswith(NO_PEOPLE_NEGATIVE):
            return negative  # (a remix's stored negative prompt has it already)
        return f"{negative}, {NO_PEOPLE_NEGATIVE}" if negative else NO_PEOPLE_NEGATIVE


def normalise(text: str) -> str:
    """One spelling for matching: compatibility forms folded (full-width letters, ligatures), any case."""
    return unicodedata.normalize("NFKC", text).casefold()


def _word_matcher(terms: Iterable[str]) -> re.Pattern[str]:
    """Whole words or phrases; any run of spaces or punctuation between a phrase's words matches."""
    parts = []
    for term in terms:
        words = normalise(term).split()
        if words:
            parts.append(r"[\W_]+".join(re.escape(word) for word in words))
    if not parts:
        return NOTHING
    return re.compile(r"(?<!\w)(?:" + "|".join(sorted(parts, key=len, reverse=True)) + r")(?!\w)")


_PEOPLE = _word_matcher(PEOPLE_TERMS)
_CHILDREN = _word_matcher(CHILD_TERMS)


def read_terms(text: str) -> tuple[str, ...]:
    """Terms from a file or a setting: one per line or comma-separated; `#` starts a comment."""
    terms: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        terms.extend(term.strip() for term in line.split(","))
    return tuple(term for term in terms if term)


def policy_from_settings(settings: Any, outbound: Outbound | None = None) -> ContentPolicy:
    """The policy the settings describe (see docs/provenance.md#content-policy)."""
    terms = read_terms(settings.blocked_terms or "")
    if settings.blocked_terms_file:
        terms += read_terms(Path(settings.blocked_terms_file).read_text())
    moderation = None
    if settings.moderation_url:
        moderation = Moderation(
            settings.moderation_url,
            token=settings.moderation_token,
            timeout_s=settings.moderation_timeout_s,
            fail_open=settings.moderation_fail_open,
            outbound=outbound,
        )
    return ContentPolicy(
        tuple(terms), tuple(settings.blocked_patterns), moderation, settings.person_generation
    )
