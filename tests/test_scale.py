"""The scale benchmark's synthetic corpora and stand-in vectors (the benchmark itself is run by
hand: `rag bench --scale`, numbers in the README)."""

import re

import numpy as np
import pytest

from rag import store
from rag.corpus import load_corpus
from rag.scale import parse_sizes, synthesize


def test_sizes_are_read_as_people_write_them():
    assert parse_sizes("10k,100k,1M") == [10_000, 100_000, 1_000_000]
    assert parse_sizes("2500, 1.5k") == [2500, 1500]
    with pytest.raises(ValueError, match="sizes such as 10k"):
        parse_sizes("ten")


def test_a_synthetic_corpus_recombines_real_sentences_under_its_own_places_and_years(settings, tmp_path):
    n = synthesize(settings, 300, tmp_path / "corpus", seed=3)
    docs = load_corpus(tmp_path / "corpus").documents  # a valid corpus: manifest and UTF-8 files
    assert len(docs) == n and sum(len(d.text) for d in docs) >= 300 * 240
    real = "".join(d.text for d in load_corpus(settings.corpus_dir).documents)
    for d in docs[:5]:
        body = d.text.splitlines()[1:]
        # sentences come from the real publications, with figures redrawn
        assert sum(re.sub(r"\d+(?:\.\d+)?", "", s) in re.sub(r"\d+(?:\.\d+)?", "", real) for s in body) > len(body) // 2
        assert all(y == str(d.year) for s in body for y in re.findall(r"((?:19|20)\d{2})年", s))
    assert synthesize(settings, 300, tmp_path / "again", seed=3) == n  # reproducible


def test_stand_in_vectors_are_unit_length_deterministic_and_near_real_ones(built, tmp_path):
    from rag.embedders import StandInEmbedder

    base = store.current_dir(built) / "vectors.npy"
    e = StandInEmbedder(str(base))
    a, b = e.embed_passages(["全年召开常委会会议8次。", "听取审议专项工作报告12个。"]), e.embed_passages(["全年召开常委会会议8次。"])
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5) and np.array_equal(a[0], b[0])
    real = np.load(base)
    assert (real @ a[0]).max() > 0.8  # clustered around a real window's vector, not uniform noise
    assert e.name.startswith("standin-") and e.dim == real.shape[1]
