"""The learned answer ranker: a scorer of candidates, and a calibrator that turns the best
candidate's score and its lead over the runner-up into the probability that it is right.

The scorer is gradient-boosted trees over each candidate's features and the same features
relative to the best value among the question's candidates (how far this one is behind the
strongest rival on each), so it learns what makes one candidate beat another in the same
passages; the calibrator is a logistic regression on (score, lead) fitted on out-of-fold scores.
Trained by `rag train` on the dev split of the eval only; the refusal threshold is chosen on dev
so that refusals are right ≥ 90% of the time.
The model is a small JSON file (rag/data/ranker.json: the trees as flat arrays), loaded with the
index and recorded in its manifest; scoring walks the trees in numpy, so serving needs no sklearn.
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
class Forest:
    """Boosted regression trees as flat arrays (one row per tree, one column per node; a leaf
    has feature -1): log-odds = base + rate × Σ leaf values."""
    base: float
    rate: float
    depth: int
    feature: list[list[int]]
    threshold: list[list[float]]
    left: list[list[int]]
    right: list[list[int]]
    value: list[list[float]]

    def __post_init__(self):
        self._arrays = [np.asarray(a) for a in (self.feature, self.threshold, self.left, self.right, self.value)]

    def raw(self, Z: np.ndarray) -> np.ndarray:
        feature, threshold, left, right, value = self._arrays
        trees = np.arange(feature.shape[0])
        node = np.zeros((Z.shape[0], len(trees)), dtype=np.int64)
        for _ in range(self.depth):  # every row down every tree at once, one level per step
            f = feature[trees, node]
            x = np.take_along_axis(Z, np.maximum(f, 0), axis=1)
            step = np.where(x <= threshold[trees, node], left[trees, node], right[trees, node])
            node = np.where(f < 0, node, step)
        return self.base + self.rate * value[trees, node].sum(axis=1)


def relative(X: np.ndarray) -> np.ndarray:
    """Each candidate's features, then the same minus the best value among the candidates that
    compete with it (one question's)."""
    return np.c_[X, X - X.max(axis=0)] if len(X) else np.zeros((0, 2 * X.shape[1]))


@dataclass
class Ranker:
    features: list[str]
    forest: dict
    # weights of (score, lead, English?, second encoder's similarity), then the intercept. On dev,
    # adding the candidate's scope and coverage features changed cross-validated accuracy by less
    # than 0.005 (they already act through the score and the eligibility rules)
    calibration: list[float]
    threshold: float
    info: dict = field(default_factory=dict)
    # the scorers of cross-validation, each fitted without one fifth of the dev questions: `rag
    # eval` scores a dev question with the one that never saw it, so dev is measured as test is
    folds: list[dict] = field(default_factory=list)  # [{"ids": [question ids held out], "forest": {…}}]

    def __post_init__(self):
        self._forest = Forest(**self.forest)
        self._held_out = {qid: i for i, fold in enumerate(self.folds) for qid in fold["ids"]}
        self._fold_rankers: dict[int, Ranker] = {}  # built at first use: eval asks for each dev question

    def without(self, question_id: str) -> Ranker:
        """The ranker whose scorer was fitted without this question (itself when no fold holds it
        out: a test question, or a ranker saved without folds)."""
        i = self._held_out.get(question_id)
        if i is None:
            return self
        if i not in self._fold_rankers:
            self._fold_rankers[i] = Ranker(self.features, self.folds[i]["forest"], self.calibration, self.threshold,
                                           self.info)
        return self._fold_rankers[i]

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Log-odds of each candidate of one question (the rows compete with each other)."""
        if X.shape[0] == 0:
            return np.zeros(0)
        return self._forest.raw(relative(X))

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        """For each candidate, the probability that it is the right answer among these."""
        return calibrate(self.scores(X), X, self.calibration)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        # the trees' arrays on one line each, not one number per line
        trees = json.dumps(data.pop("forest"), ensure_ascii=False)
        folds = ",\n  ".join(json.dumps(f, ensure_ascii=False) for f in data.pop("folds"))
        text = json.dumps(data, ensure_ascii=False, indent=1)
        path.write_text(text[:-2] + f',\n "forest": {trees},\n "folds": [\n  {folds}\n ]\n}}\n', encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Ranker:
        hint = "run `rag train` to build it"
        if not path.exists():
            raise RankerError(f"no answer ranker at {path}; {hint}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            ranker = cls(**data)
        except (OSError, ValueError, TypeError, KeyError) as e:
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


# the calibrator also reads the question's language: the scores of English questions run lower
# (dev cross-validation: balanced accuracy 0.679 → 0.693, near-miss refusal 0.551 → 0.574 over
# three fold seeds), and one threshold on a probability calibrated per language treats both alike
LANGUAGE = FEATURES.index("lang_en")
# and the second encoder's similarity of question and sentence, which is on one scale for every
# question where the scorer's log-odds are relative to the question's other candidates (paired
# dev cross-validation over three fold seeds: balanced accuracy 0.736 → 0.741, higher on each)
SECOND = FEATURES.index("second_sent")
# the calibrator's inputs, in the order calibration_inputs() gives them
CALIBRATION_INPUTS = ("score", "lead", "lang_en", "second_sent")


def calibration_inputs(scores: np.ndarray, X: np.ndarray) -> np.ndarray:
    """(score, lead over the best rival, English?, second encoder's similarity) of each candidate."""
    return (np.c_[scores, leads(scores), X[:, LANGUAGE], X[:, SECOND]] if len(scores)
            else np.zeros((0, len(CALIBRATION_INPUTS))))


def logistic(inputs: np.ndarray, weights: list[float]) -> np.ndarray:
    """sigmoid(inputs · weights[:-1] + weights[-1])."""
    w = np.asarray(weights)
    return 1.0 / (1.0 + np.exp(-(inputs @ w[:-1] + w[-1])))


def calibrate(scores: np.ndarray, X: np.ndarray, calibration: list[float]) -> np.ndarray:
    return logistic(calibration_inputs(scores, X), calibration) if len(scores) else np.zeros(0)


SCORER = {"max_depth": 3, "learning_rate": 0.05, "n_estimators": 300, "min_samples_leaf": 20, "subsample": 0.8}


# the scorer is the mean of boosted models fitted with these subsampling seeds: one model's
# test accuracy moved 0.706-0.737 with its seed alone (716 questions), the mean moves less
SEEDS = (0, 1, 2)


def question_weights(groups: np.ndarray) -> np.ndarray:
    """Each candidate's weight in fitting, in the order fit_scorer stacks them (by question): one
    over its question's number of candidates, so every question counts alike — a question whose
    passages give 80 candidates no longer teaches the trees 20 times what one with 4 does. Paired
    dev cross-validation over three fold splits: top-1 on answerable questions 0.780 → 0.793,
    balanced accuracy 0.737 → 0.744, higher on each split (one over the square root: 0.790, 0.743)."""
    sizes = np.bincount(np.unique(groups, return_inverse=True)[1])
    w = np.repeat(1.0 / sizes, sizes)
    return w * len(w) / w.sum()


def fit_scorer(X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> dict:
    """Gradient-boosted trees on the candidates' absolute and within-question relative features;
    returns the Forest's fields: the trees of every seed's model, their leaves divided by the
    number of models, so one walk of all of them gives the models' mean log-odds.
    Hyperparameters chosen by dev cross-validation (depth 3-6 and 300 trees within 0.01 of each
    other; the pairwise linear scorer it replaces was 0.02-0.03 lower on top-1, over three fold
    seeds)."""
    from sklearn.ensemble import GradientBoostingClassifier

    Z = np.vstack([relative(X[groups == g]) for g in np.unique(groups)])
    y = np.concatenate([y[groups == g] for g in np.unique(groups)])
    weight = question_weights(groups)
    rate, trees, base = SCORER["learning_rate"], [], 0.0
    for seed in SEEDS:
        model = GradientBoostingClassifier(random_state=seed, **SCORER).fit(Z, y, sample_weight=weight)
        own = [e.tree_ for e in model.estimators_[:, 0]]
        base += float(model.decision_function(Z[:1])[0]
                      - rate * sum(t.predict(Z[:1].astype(np.float32))[0, 0] for t in own)) / len(SEEDS)
        trees += own
    width = max(t.node_count for t in trees)
    pad = lambda xs, fill: [list(x) + [fill] * (width - len(x)) for x in xs]  # noqa: E731
    return {"base": round(base, 6), "rate": rate, "depth": SCORER["max_depth"],
            "feature": pad([[int(f) if f >= 0 else -1 for f in t.feature] for t in trees], -1),
            "threshold": pad([[float(v) for v in t.threshold] for t in trees], 0.0),
            "left": pad([[max(int(v), 0) for v in t.children_left] for t in trees], 0),
            "right": pad([[max(int(v), 0) for v in t.children_right] for t in trees], 0),
            "value": pad([[round(float(v) / len(SEEDS), 7) for v in t.value[:, 0, 0]] for t in trees], 0.0)}


def fit_calibration(inputs: np.ndarray, right: np.ndarray, C: float = 0.3) -> list[float]:
    """Logistic regression of "the best candidate is right" on its calibration inputs."""
    from sklearn.linear_model import LogisticRegression

    if right.all() or not right.any():
        return [0.0] * inputs.shape[1] + [5.0 if right.all() else -5.0]
    model = LogisticRegression(C=C, max_iter=3000)
    model.fit(inputs, right.astype(int))
    return [float(v) for v in model.coef_[0]] + [float(model.intercept_[0])]


def choose_threshold(best_p: np.ndarray, answerable: np.ndarray, top_right: np.ndarray,
                     precision: float = 0.9, max_false_refusals: float = 0.035,
                     strata: np.ndarray | None = None) -> tuple[float, dict]:
    """The refusal threshold on per-question probabilities: the best balanced accuracy (the mean
    of answerable questions answered right and unanswerable ones refused) among thresholds whose
    refusals are right at least ``precision`` of the time — a refusal is right when it loses
    no right answer (the corpus has none, or the answer would have been wrong) — and that refuse
    at most ``max_false_refusals`` of the answerable questions of each stratum (language): a
    threshold that spares Chinese questions by refusing English ones is not one threshold."""
    strata = np.zeros(len(best_p), dtype=int) if strata is None else np.asarray(strata)
    best = (0.0, -1.0, {})
    for t in sorted(set(np.round(best_p, 4)) | {0.0}):
        refused = best_p < t
        lost = (refused & answerable & top_right).sum()
        prec = 1 - lost / refused.sum() if refused.sum() else 1.0
        right_refusals = (refused & ~answerable).sum()
        # balanced: answering right and refusing right count alike, whatever their shares in dev
        ok = ((~refused & answerable & top_right).sum() / max(1, answerable.sum())
              + right_refusals / max(1, (~answerable).sum())) / 2
        false_refusals = max((refused & answerable & (strata == k)).sum() / max(1, (answerable & (strata == k)).sum())
                             for k in np.unique(strata))
        if prec >= precision and false_refusals <= max_false_refusals and ok > best[1]:
            best = (float(t), float(ok), {
                "accuracy": round(float(ok), 3), "refusal_precision": round(float(prec), 3),
                "refused": int(refused.sum()),
                "unanswerable_refused": round(float(right_refusals / max(1, (~answerable).sum())), 3),
                "answerable_refused": round(float((refused & answerable).sum() / max(1, answerable.sum())), 3)})
    return best[0], best[2]
