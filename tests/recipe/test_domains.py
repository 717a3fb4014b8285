"""The declared ranges: every key is a real sd-scripts option or dataset key at the pinned commit,
and a range reads as it is enforced."""

from __future__ import annotations

import math

import pytest

from swimlatent_wrap.sdscripts.domains import DATASET_DOMAINS, OPTION_DOMAINS
from swimlatent_wrap.sdscripts.manifest import TRAINING_SCRIPTS, load_manifest
from swimlatent_wrap.values import AT_LEAST_1, POSITIVE, PROBABILITY, SHARE, Domain


def test_every_domain_names_a_real_numeric_option_or_dataset_key():
    manifest = load_manifest()
    options = {name: option for script in TRAINING_SCRIPTS for name, option in manifest.script(script).options.items()}
    for key in OPTION_DOMAINS:
        assert key in options, key
        assert options[key].type in ("int", "float", "int_or_float"), (key, options[key].type)
    general = manifest.dataset_levels["general"]
    for key in DATASET_DOMAINS:
        assert general.get(key) in ("int", "float", "number", "int_or_int_pair"), (key, general.get(key))


@pytest.mark.parametrize(("domain", "inside", "outside", "words"), [
    (POSITIVE, [1e-9, 5.0], [0, -1.0], "greater than 0"),
    (AT_LEAST_1, [1, 10**6], [0, -3], "1 or more"),
    (PROBABILITY, [0, 0.5, 1], [-0.1, 1.01], "between 0 and 1"),
    (SHARE, [0.01, 1], [0, 1.5], "in (0, 1]"),
    (Domain(0, 1, high_open=True), [0, 0.99], [1, 2], "in [0, 1)"),
])
def test_a_domain_accepts_its_range_and_names_it_otherwise(domain, inside, outside, words):
    for value in inside:
        assert domain(value) is None
    for value in outside:
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        assert domain(value) == f"must be {words}, got {shown}"
    assert "finite" in domain(math.nan) and "finite" in domain(math.inf)
    assert domain([*inside, outside[0]]).startswith(f"item {len(inside) + 1}: ")
