"""The content policy on its own: term and pattern matching, personGeneration, the moderation webhook
(a real HTTP server standing in for the operator's moderation service)."""

from __future__ import annotations

import pytest

from openveo.config import Settings
from openveo.service.policy import (
    ContentPolicy,
    Moderation,
    ModerationUnavailable,
    PolicyViolation,
    policy_from_settings,
    read_terms,
)
from tests.moderation import BREAK, FLAG, REFUSE, ModerationServer


@pytest.fixture(scope="module")
def moderation():
    server = ModerationServer()
    yield server
    server.close()


def refused(policy: ContentPolicy, prompt: str, **kwargs) -> PolicyViolation | None:
    try:
        policy.check(prompt, **kwargs)
    except PolicyViolation as exc:
        return exc
    return None


def test_blocked_terms_match_whole_words_and_phrases_in_any_case_or_spelling():
    policy = ContentPolicy(blocked_terms=("gore", "red wedding"), person_generation="allow_all")
    for prompt in ("Some GORE here", "gore.", "the Red  Wedding scene", "red-wedding", "ｇｏｒｅ fest"):
        exc = refused(policy, prompt)
        assert exc is not None and exc.source == "terms", prompt
        assert str(exc).startswith("The prompt violates the content policy")
    for prompt in ("gorgeous gorges", "a red dress at a wedding", "Algorex"):
        assert refused(policy, prompt) is None, prompt


def test_blocked_patterns_are_case_insensitive_regexes():
    policy = ContentPolicy(blocked_patterns=(r"\bcode\s*\d{3}\b",), person_generation="allow_all")
    assert refused(policy, "Enter CODE 451 now").source == "patterns"
    assert refused(policy, "a code of honour") is None


def test_person_generation_modes_and_the_operator_ceiling():
    adults = ContentPolicy()  # Veo's default: adults only
    assert refused(adults, "a woman reading") is None
    assert refused(adults, "a toddler reading").source == "people"
    assert (
        refused(adults, "a toddler reading", people="allow_all").source == "people"
    )  # not above the ceiling
    assert refused(adults, "a woman reading", people="dont_allow").source == "people"
    assert refused(adults, "a lighthouse at dusk", people="dont_allow") is None

    everyone = ContentPolicy(person_generation="allow_all")
    assert refused(everyone, "a toddler reading") is None
    assert refused(everyone, "a toddler reading", people="allow_adult").source == "people"

    assert adults.negative_prompt(None, "allow_adult") is None
    assert adults.negative_prompt("blurry", "dont_allow").startswith("blurry, people")
    assert ContentPolicy(person_generation="dont_allow").negative_prompt(None, None).startswith("people")


def test_moderation_webhook_both_answer_shapes_and_the_token(moderation):
    policy = ContentPolicy(moderation=Moderation(moderation.url, token="s3cret"))
    assert refused(policy, "a calm lake", context={"model": "tiny"}) is None
    seen = moderation.requests[-1]
    assert seen["body"] == {"input": "a calm lake", "model": "tiny"}
    assert seen["authorization"] == "Bearer s3cret"
    exc = refused(policy, f"a {FLAG} lake")
    assert exc.source == "moderation" and "violence" in exc.reason and "hate" not in exc.reason
    assert refused(policy, f"a {REFUSE} lake").reason == "not on this service"


def test_moderation_failure_closes_unless_configured_open(moderation):
    with pytest.raises(ModerationUnavailable):
        ContentPolicy(moderation=Moderation(moderation.url)).check(f"{BREAK} it")
    with pytest.raises(ModerationUnavailable):  # nothing listens there
        ContentPolicy(moderation=Moderation("http://127.0.0.1:9/none", timeout_s=2)).check("hello")
    ContentPolicy(moderation=Moderation(moderation.url, fail_open=True)).check(f"{BREAK} it")


def test_settings_build_the_policy(tmp_path):
    (tmp_path / "terms.txt").write_text("# operator list\nzombie, vampire\n\nwerewolf  # night\n")
    settings = Settings(
        data_dir=tmp_path,
        blocked_terms="gore, red wedding",
        blocked_terms_file=tmp_path / "terms.txt",
        blocked_patterns=[r"\d{16}"],
    )
    policy = policy_from_settings(settings)
    assert policy.blocked_terms == ("gore", "red wedding", "zombie", "vampire", "werewolf")
    assert refused(policy, "werewolf at night").source == "terms"
    assert refused(policy, "card 1234567812345678").source == "patterns"
    assert read_terms("a,,b # c, d") == ("a", "b")
    with pytest.raises(ValueError, match="not a regular expression"):
        Settings(data_dir=tmp_path, blocked_patterns=["(unclosed"])
