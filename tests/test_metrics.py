"""Wilson intervals, rates and retention (core.evaluation.metrics)."""

from __future__ import annotations

import pytest

from core.evaluation.metrics import Rate, format_percent, pooled, retention, wilson_interval


def test_wilson_interval_known_values():
    # Reference values of the Wilson score interval (z = 1.96).
    low, high = wilson_interval(0, 100)
    assert low == 0.0 and high == pytest.approx(0.0370, abs=1e-4)
    low, high = wilson_interval(1, 100)
    assert (low, high) == (pytest.approx(0.0018, abs=1e-4), pytest.approx(0.0545, abs=1e-4))
    low, high = wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson_interval(7, 7)[1] == 1.0


def test_one_prompt_is_inside_the_interval_at_n_100():
    # 1.0% vs 0.0% on 100 prompts: each lies inside the other's interval.
    assert wilson_interval(0, 100)[1] > 0.01 and wilson_interval(1, 100)[0] < 0.01


@pytest.mark.parametrize("k, n", [(0, 0), (-1, 5), (6, 5)])
def test_wilson_interval_rejects_impossible_counts(k, n):
    with pytest.raises(ValueError):
        wilson_interval(k, n)


def test_rate_format_and_dict():
    rate = Rate("refusal", 1, 100)
    assert rate.value == 0.01
    assert rate.format() == "1.0% [0.2, 5.4] (1/100)"
    assert rate.to_dict()["judge"] == "refusal" and rate.to_dict()["n"] == 100
    assert pooled([Rate("refusal", 1, 4), Rate("refusal", 0, 6)]) == Rate("refusal", 1, 10)
    assert pooled([]) is None
    with pytest.raises(ValueError, match="different judges"):
        pooled([Rate("refusal", 1, 4), Rate("target", 0, 6)])


def test_retention_with_a_zero_baseline_is_na_with_a_reason():
    assert retention(0.8, 0.4).value == pytest.approx(0.5)
    zero = retention(0.0, 0.5)
    assert zero.value is None and "scores 0 on utility" in zero.reason
    assert zero.format().startswith("n/a (")
    assert retention(None, 0.5).reason == "no utility prompts in both reports"
    assert format_percent(None) == "n/a" and format_percent(0.125) == "12.5%"
