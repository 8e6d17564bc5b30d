"""What `rag eval` reports besides the metrics: how far each share may be from the truth, and
whether dev beats test by more than chance."""

import pytest

from rag.evaluation import METRICS, _gap_warnings, intervals, wilson


def _group(n_answerable: int, n_unanswerable: int, **metrics) -> dict:
    m = dict.fromkeys(METRICS, 0.5) | {"mrr": 0.6, "false_refusals": 0.05}
    return m | {"n": n_answerable + n_unanswerable, "answerable": n_answerable, "unanswerable": n_unanswerable,
                "near_miss": n_unanswerable} | metrics


def test_the_interval_of_a_share_is_wilsons():
    assert wilson(0.5, 100) == (0.404, 0.596)
    assert wilson(0.0, 10) == (0.0, 0.278)  # none of ten right is not "surely never right"
    assert wilson(1.0, 10) == (0.722, 1.0)
    assert wilson(0.6, 1000)[1] - wilson(0.6, 1000)[0] < wilson(0.6, 100)[1] - wilson(0.6, 100)[0]
    assert wilson(0.3, 0) == (0.0, 1.0)  # no question: nothing is known


def test_every_share_has_an_interval_and_the_mean_rank_none():
    ci = intervals(_group(60, 40, answer_accuracy=0.75))
    assert "mrr" not in ci and set(ci) == set(METRICS) - {"mrr"}
    assert ci["answer_accuracy"] == wilson(0.75, 60) and ci["near_miss_refusal"] == wilson(0.5, 40)


@pytest.mark.parametrize("n, verdict", [(60, "within sampling error"), (3000, "beyond sampling error")])
def test_a_gap_in_one_language_is_warned_with_its_interval(n, verdict):
    groups = {"split:dev": _group(n, n), "split:test": _group(n, n),
              "dev:en": _group(n, n, answer_accuracy=0.72), "test:en": _group(n, n, answer_accuracy=0.60),
              "dev:zh": _group(n, n, false_refusals=0.03), "test:zh": _group(n, n, false_refusals=0.07)}
    (warning,) = _gap_warnings(groups)  # English accuracy 0.12 apart; 0.04 more Chinese refusals is within the bar
    assert warning.startswith("en answer_accuracy: dev 0.72 vs test 0.6 (gap 0.120") and warning.endswith(verdict + ")")


def test_no_warning_when_test_is_as_good_as_dev():
    same = _group(200, 100)
    assert _gap_warnings({"split:dev": same, "split:test": same, "dev:en": same, "test:en": same}) == []
