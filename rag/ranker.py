"""The learned answer ranker: a linear scorer of candidates, and a calibrator that turns the
best candidate's score and its lead over the runner-up into the probability that it is right.

The scorer is pairwise logistic regression (each right candidate against each wrong one of the
same question), so it learns what makes one candidate beat another in the same passages; the
calibrator is a logistic regression on (score, lead) fitted on out-of-fold scores. Trained by
`rag train` on the dev split of the eval only; the refusal threshold is chosen on dev so that
refusals are right ≥ 90% of the time.
The weights are a small JSON file (rag/data/ranker.json), loaded with the index and recorded in
its manifest; scoring is a dot product, so serving needs only numpy.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .candidates import FEATURES

DEFAULT_PATH = Path(__file__).with_name("data") / "ranker.json"


class RankerError(Exception):
    """The ranker file is missing, unreadable or for other features; says what to do."""


@dataclass
class Ranker:
    features: list[str]
    coef: list[float]
    mean: list[float]
    scale: list[float]
    # weights of (score, lead), then the intercept. The calibrator reads only these two: on dev,
    # adding the candidate's scope and coverage features changed cross-validated accuracy by
    # less than 0.005 (they already act through the score and the eligibility rules)
    calibration: list[float]
    threshold: float
    info: dict = field(default_factory=dict)

    def scores(self, X: np.ndarray) -> np.ndarray:
        if X.shape[0] == 0:
            return np.zeros(0)
        return ((X - np.asarray(self.mean)) / np.asarray(self.scale)) @ np.asarray(self.coef)

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        """For each candidate, the probability that it is the right answer among these."""
        return calibrate(self.scores(X), self.calibration)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Ranker:
        hint = "run `rag train` to build it"
        if not path.exists():
            raise RankerError(f"no answer ranker at {path}; {hint}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            ranker = cls(**data)
        except (OSError, ValueError, TypeError) as e:
            raise RankerError(f"answer ranker {path} is unreadable ({e}); {hint}") from None
        if list(ranker.features) != list(FEATURES):
            raise RankerError(f"answer ranker {path} was trained on other features; {hint}")
        return ranker


def file_digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else None


LEAD_ALONE = 1.0


def leads(scores: np.ndarray) -> np.ndarray:
    """Each score minus the best of the others: how far a candidate is ahead of (or behind)
    its strongest rival."""
    if len(scores) < 2:  # the only candidate of its kind: nothing to beat
        return np.full(len(scores), LEAD_ALONE)
    order = np.argsort(-scores)
    best, second = scores[order[0]], scores[order[1]]
    return scores - np.where(np.arange(len(scores)) == order[0], second, best)


def calibration_inputs(scores: np.ndarray) -> np.ndarray:
    """(score, lead over the best rival) of each candidate."""
    return np.c_[scores, leads(scores)] if len(scores) else np.zeros((0, 2))


def logistic(inputs: np.ndarray, weights: list[float]) -> np.ndarray:
    """sigmoid(inputs · weights[:-1] + weights[-1])."""
    w = np.asarray(weights)
    return 1.0 / (1.0 + np.exp(-(inputs @ w[:-1] + w[-1])))


def calibrate(scores: np.ndarray, calibration: list[float]) -> np.ndarray:
    return logistic(calibration_inputs(scores), calibration) if len(scores) else np.zeros(0)


def standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    return mean, scale


def fit_scorer(X: np.ndarray, y: np.ndarray, groups: np.ndarray, C: float, max_neg: int = 60):
    """Pairwise logistic regression: weights w such that w·x(right) > w·x(wrong) within a
    question. Only the ``max_neg`` highest-feature-sum wrong candidates of a question pair up,
    to keep training fast and deterministic."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = standardise(X)
    Z = (X - mean) / scale
    diffs = []
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        pos, neg = rows[y[rows] == 1], rows[y[rows] == 0]
        if not len(pos) or not len(neg):
            continue
        neg = neg[np.argsort(-Z[neg].sum(axis=1), kind="stable")[:max_neg]]
        for i in pos:
            diffs.append(Z[i] - Z[neg])
    D = np.vstack(diffs)
    model = LogisticRegression(C=C, fit_intercept=False, max_iter=3000)
    model.fit(np.vstack([D, -D]), np.r_[np.ones(len(D)), np.zeros(len(D))])
    return model.coef_[0].tolist(), mean.tolist(), scale.tolist()


def fit_calibration(inputs: np.ndarray, right: np.ndarray, C: float = 0.3) -> list[float]:
    """Logistic regression of "the best candidate is right" on its calibration inputs."""
    from sklearn.linear_model import LogisticRegression

    if right.all() or not right.any():
        return [0.0] * inputs.shape[1] + [5.0 if right.all() else -5.0]
    model = LogisticRegression(C=C, max_iter=3000)
    model.fit(inputs, right.astype(int))
    return [float(v) for v in model.coef_[0]] + [float(model.intercept_[0])]


def choose_threshold(best_p: np.ndarray, answerable: np.ndarray, top_right: np.ndarray,
                     precision: float = 0.9, max_false_refusals: float = 0.035) -> tuple[float, dict]:
    """The refusal threshold on per-question probabilities: the best balanced accuracy (the mean
    of answerable questions answered right and unanswerable ones refused) among thresholds whose
    refusals are right at least ``precision`` of the time — a refusal is right when it loses
    no right answer (the corpus has none, or the answer would have been wrong) — and that refuse
    at most ``max_false_refusals`` of the answerable questions."""
    best = (0.0, -1.0, {})
    for t in sorted(set(np.round(best_p, 4)) | {0.0}):
        refused = best_p < t
        lost = (refused & answerable & top_right).sum()
        prec = 1 - lost / refused.sum() if refused.sum() else 1.0
        right_refusals = (refused & ~answerable).sum()
        # balanced: answering right and refusing right count alike, whatever their shares in dev
        ok = ((~refused & answerable & top_right).sum() / max(1, answerable.sum())
              + right_refusals / max(1, (~answerable).sum())) / 2
        false_refusals = (refused & answerable).sum() / max(1, answerable.sum())
        if prec >= precision and false_refusals <= max_false_refusals and ok > best[1]:
            best = (float(t), float(ok), {
                "accuracy": round(float(ok), 3), "refusal_precision": round(float(prec), 3),
                "refused": int(refused.sum()),
                "unanswerable_refused": round(float(right_refusals / max(1, (~answerable).sum())), 3),
                "answerable_refused": round(float((refused & answerable).sum() / max(1, answerable.sum())), 3)})
    return best[0], best[2]
