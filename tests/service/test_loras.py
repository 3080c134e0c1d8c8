"""LoRA files, the operator's registry and a request's `loras`, on real safetensors files (random
adapters of the tiny models, tests/helpers.py), a real SQLite database and a local result store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from openveo.core.catalog import Backbone, Catalog
from openveo.core.loras import UnreadableLora, inspect_lora
from openveo.core.request import GenerationRequest, InvalidRequest, Limits, build_request
from openveo.service import billing
from openveo.service.loras import LoraRefused, LoraRegistry, file_key, local_file
from openveo.store.blobs import BlobMissing, LocalBlobs
from openveo.store.db import Database

TINY_WAN = Backbone("wan", 24, 2)


@pytest.fixture()
def registry(tmp_path: Path) -> LoraRegistry:
    db = Database(f"sqlite:///{tmp_path / 'loras.db'}")
    db.upgrade()
    return LoraRegistry(db, LocalBlobs(tmp_path / "results"), Catalog(), tmp_path / "staging")


def test_both_key_formats_read_as_the_same_tiny_wan_lora(tiny_loras):
    diffusers = inspect_lora(tiny_loras["style"])
    original = inspect_lora(tiny_loras["motion"])
    assert diffusers.backbone == original.backbone == TINY_WAN
    assert (diffusers.rank, original.rank) == (4, 4)
    assert diffusers.layers == original.layers == 20  # 10 linear layers in each of the 2 blocks
    assert (diffusers.key_format, original.key_format) == ("diffusers", "original")
    assert inspect_lora(tiny_loras["ltx"]).backbone == Backbone("ltx", 32, 1)
    assert inspect_lora(tiny_loras["wide"]).rank == 16


@pytest.mark.parametrize(
    ("name", "problem"),
    [("truncated", "truncated"), ("not-a-lora", "holds no LoRA weights"), ("absent", "does not exist")],
)
def test_files_that_are_no_usable_lora_say_why(tiny_loras, tmp_path, name, problem):
    path = tiny_loras.get(name, tmp_path / "absent.safetensors")
    with pytest.raises(UnreadableLora, match=problem):
        inspect_lora(path)


def test_a_text_file_is_not_a_safetensors_file(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("this is not a model\n" * 10)
    with pytest.raises(UnreadableLora, match="not a safetensors file"):
        inspect_lora(path)


def test_add_copies_the_file_into_the_store_and_remove_deletes_it(registry, tiny_loras):
    lora = registry.add("style", tiny_loras["style"])
    stored = registry.blobs.local_path(file_key(lora.sha256))
    assert stored is not None and stored.read_bytes() == tiny_loras["style"].read_bytes()
    assert tiny_loras["style"].exists()  # the operator's own file stays
    assert list(registry.all()) == ["style"]
    assert local_file(registry.blobs, lora.sha256, Path("/nonexistent")) == stored

    assert registry.remove("style") and not stored.exists()
    assert registry.all() == {} and not registry.remove("style")
    with pytest.raises(BlobMissing):
        local_file(registry.blobs, lora.sha256, Path("/nonexistent"))


def test_two_names_for_one_file_keep_it_until_both_are_gone(registry, tiny_loras):
    first = registry.add("style", tiny_loras["style"])
    registry.add("style-again", tiny_loras["style"])
    stored = registry.blobs.local_path(file_key(first.sha256))
    assert registry.remove("style") and stored is not None and stored.exists()
    assert registry.remove("style-again") and not stored.exists()


@pytest.mark.parametrize(
    ("name", "file", "model", "refusal"),
    [
        ("style", "truncated", None, "truncated"),
        ("style", "not-a-lora", None, "holds no LoRA weights"),
        ("ltx-on-wan", "ltx", "tiny-wan2.2", "ltx transformer 32 wide"),
        ("bad name!", "style", None, "must be 1-64 letters"),
        ("style", "style", "no-such-model", "unknown model"),
    ],
)
def test_add_refuses_what_no_request_could_use(registry, tiny_loras, name, file, model, refusal):
    with pytest.raises(LoraRefused, match=refusal):
        registry.add(name, tiny_loras[file], model=model)
    assert registry.all() == {}


def test_add_refuses_a_name_in_use(registry, tiny_loras):
    registry.add("style", tiny_loras["style"])
    with pytest.raises(LoraRefused, match="registered already"):
        registry.add("style", tiny_loras["motion"])


def test_scan_registers_the_usable_files_by_name_and_leaves_the_rest(registry, tiny_loras):
    folder = tiny_loras["style"].parent
    assert sorted(registry.scan([folder])) == ["ltx", "motion", "style", "wide"]
    assert registry.scan([folder]) == []  # a second start adds nothing


# ---- a request's `loras` ---------------------------------------------------------------------


def _request(registry: LoraRegistry, loras, model: str = "tiny", **limits) -> GenerationRequest:
    fields = {"prompt": "a fox", "model": model, "loras": loras}
    return build_request(fields, registry.catalog, Limits(**limits), registry.checked())


def test_a_request_names_adapters_and_gets_their_files_and_scales(registry, tiny_loras):
    style = registry.add("style", tiny_loras["style"])
    motion = registry.add("motion", tiny_loras["motion"], model="tiny-wan2.2")
    request = _request(registry, [{"name": "style", "scale": "0.5"}, "motion"])
    assert [(u.name, u.sha256, u.scale) for u in request.loras] == [
        ("style", style.sha256, 0.5),
        ("motion", motion.sha256, 1.0),
    ]
    assert GenerationRequest.from_json(request.to_json()) == request  # stored with the job as it is


@pytest.mark.parametrize(
    ("loras", "field", "problem"),
    [
        ("style", "loras", "must be a list"),
        (
            [{"name": "nope"}],
            "loras[0].name",
            "'nope' is not a registered adapter; adapters for tiny-wan2.2: style",
        ),
        (
            [{"name": "ltx"}],
            "loras[0].name",
            "'ltx' is an adapter for tiny-ltx, tiny-ltx-condition; not for tiny-wan2.2",
        ),
        ([{"name": "style", "scale": 2.5}], "loras[0].scale", "from 0 to 2"),
        ([{"name": "style", "scale": "lots"}], "loras[0].scale", "must be a number"),
        ([{"name": "style", "weight": 1}], "loras[0]", "scale optional"),
        (["style", "style"], "loras[1].name", "named twice"),
        (["style"] * 5, "loras", "at most 4"),
        ([{"name": "wide"}], "loras[0].name", "'wide' has rank 16; this server takes adapters up to rank 8"),
    ],
)
def test_bad_adapter_choices_name_the_field_and_the_reason(registry, tiny_loras, loras, field, problem):
    for name in ("style", "ltx", "wide"):
        registry.add(name, tiny_loras[name])
    with pytest.raises(InvalidRequest) as refused:
        _request(registry, loras, max_lora_rank=8)
    assert refused.value.field == field
    assert problem in refused.value.problem


def test_the_ranks_of_one_requests_adapters_add_up_to_the_slot_at_most(registry, tiny_loras):
    """A compiled worker holds a request's adapters side by side in one slot of the server's rank."""
    for name in ("style", "motion"):  # rank 4 each
        registry.add(name, tiny_loras[name])
    assert len(_request(registry, ["style", "motion"], max_lora_rank=8).loras) == 2
    with pytest.raises(InvalidRequest) as refused:
        _request(registry, ["style", "motion"], max_lora_rank=6)
    assert refused.value.field == "loras"
    assert "ranks add up to 8; this server takes up to 6 per request" in refused.value.problem


def test_an_adapter_bound_to_a_model_serves_no_other(registry, tiny_loras):
    registry.add("style", tiny_loras["style"], model="tiny-wan2.1")
    with pytest.raises(
        InvalidRequest, match=r"adapter for tiny-wan2\.1, tiny-wan2\.1-fast; not for tiny-wan2\.2"
    ):
        _request(registry, ["style"])
    assert _request(registry, ["style"], model="tiny-wan2.1").loras[0].name == "style"
    assert _request(registry, ["style"], model="tiny-wan2.1-fast").loras[0].name == "style"  # built on it


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_damaged_stored_file_is_refused_before_anything_is_charged(registry, tiny_loras, damage):
    lora = registry.add("style", tiny_loras["style"])
    stored = registry.blobs.local_path(file_key(lora.sha256))
    assert stored is not None
    if damage == "delete":
        shutil.rmtree(stored.parent)
    else:
        stored.write_bytes(stored.read_bytes()[:-10])
    with pytest.raises(InvalidRequest, match="'style' cannot be used: its stored file"):
        _request(registry, ["style"])


def test_each_adapter_adds_the_operators_surcharge_per_second(registry, tiny_loras):
    registry.add("style", tiny_loras["style"])
    registry.add("motion", tiny_loras["motion"])
    preset = registry.catalog.resolve("tiny")
    plain = _request(registry, [])
    two = _request(registry, ["style", "motion"])
    assert billing.price(preset, plain, 0.02) == billing.to_micro(0.01 * 5)
    assert billing.price(preset, two, 0.02) == billing.to_micro((0.01 + 2 * 0.02) * 5)
    assert billing.price(preset, two) == billing.price(preset, plain)  # no surcharge unless set
