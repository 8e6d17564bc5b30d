"""Shared fixtures: the real corpus, and the real index built once per session."""

from __future__ import annotations

import shutil

import pytest

from rag.config import Settings
from rag.corpus import load_corpus


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def documents(settings):
    return {d.doc_id: d for d in load_corpus(settings.corpus_dir).documents}


@pytest.fixture(scope="session")
def built(settings):
    """The index of the shipped corpus (built by `rag index`; built here if missing)."""
    from rag.store import build_index, index_status

    if index_status(settings):
        build_index(settings)
    return settings


@pytest.fixture(scope="session")
def answerer(built):
    from rag.answer import Answerer

    return Answerer(built)


@pytest.fixture()
def corpus_copy(tmp_path, settings):
    """A private copy of corpus and index, for tests that change them."""
    corpus = tmp_path / "corpus"
    shutil.copytree(settings.corpus_dir, corpus)
    index = tmp_path / "index"
    index.mkdir()
    cache = settings.index_dir / "cache"
    if cache.exists():
        shutil.copytree(cache, index / "cache")
    return settings.replace(corpus_dir=corpus, index_dir=index)
