"""The decision: answer with the candidate the ranker finds most likely, or refuse — saying what
the corpus does have when it only nearly holds the answer — and cite the sentence(s) stating it.

Stages: rag/question.py (what is asked) → retrieval → rag/candidates.py (sentences, figures,
fields and their features) → rag/ranker.py (a probability per candidate) → here. The answer is
always text cut from the cited passage, and every citation is checked against the corpus file.
"""

from __future__ import annotations

import logging
import re
import time

import numpy as np

from . import lexical
from .candidates import (
    ENUMERATION,
    UNSCORED,
    Candidate,
    eligible,
    featurise,
    generate,
    is_lookup,
    narrow,
    vectorise,
)
from .chunking import SENTENCE
from .config import Settings
from .corpus import load_corpus, load_manifest
from .embedders import Embedder, second_encoder
from .extract import page_at
from .lexicon import lemmas, senses
from .lru import LRU
from .normalize import NormText, normalize_span, squash
from .question import FIGURE, ROLES, Question, Vocabulary, analyse, short_place
from .ranker import DEFAULT_PATH, Ranker
from .reference import reference
from .retrieve import QueryError, Retriever
from .schema import Answer, Chunk, Citation, Hit
from .tokenize import person_names

log = logging.getLogger("rag.answer")

NOT_FOUND = "出版物中没有找到这个问题的答案。"
# how far below the threshold a refusal still names the nearest thing the corpus has
NEAR_SHARE = 0.25


class Answerer:
    """Retrieval + answer selection over one loaded index; built once, shared by requests."""

    def __init__(self, settings: Settings, retriever: Retriever | None = None, ranker: Ranker | None = None,
                 load_ranker: bool = True):
        self.settings = settings
        self.retriever = retriever or Retriever(settings)
        index = self.retriever.index
        self.texts = {d.doc_id: d.text for d in load_corpus(settings.corpus_dir, skip_bad=True).documents}
        self.entries = {e["doc_id"]: e for e in load_manifest(settings.manifest_path)}
        self.positions = index.positions
        self.row_start = np.searchsorted(index.owner, np.arange(len(index.chunks) + 1))
        self.sentence_start = (np.searchsorted(index.sentences.owner, np.arange(len(index.chunks) + 1))
                               if index.sentences is not None else None)
        self.places = self._gazetteer(index.chunks)
        self.years = {c.year for c in index.chunks if c.year}
        self.mentioned_years = {int(y) for t in self.texts.values() for y in re.findall(r"((?:19|20)\d\d)年", t)}
        broader: dict[str, set[str]] = {}
        for c in index.chunks:
            for i, p in enumerate(c.places):
                broader.setdefault(p, set()).update(c.places[i + 1:])
        self.vocab = Vocabulary(lexical.document_frequencies(index.bm25), len(index.chunks), self.places,
                                [c.text for c in index.chunks], lexical.postings(index.bm25), broader,
                                index.pinyin)
        path = settings.ranker_path or DEFAULT_PATH
        self.ranker = ranker or (Ranker.load(path) if load_ranker else None)
        self.second = self._second_encoder(index)
        self._second_vectors: LRU[np.ndarray] = LRU(settings.query_cache)  # questions by it, like the first's
        self._norms: LRU[NormText] = LRU(4096)  # passages' normalised text
        person_names("李杰")  # load jieba's POS tagger now, not at the first who-question
        len(self.vocab.romanised)  # and the corpus's pinyin, for English names
        senses()  # and CC-CEDICT, for English words the glossary lacks
        lemmas("found", "VERB")  # and lemminflect's lexicon (~0.15 s at its first word)

    def _second_encoder(self, index) -> Embedder | None:
        """The encoder the index's second sentence vectors were made with, if it is the one
        configured; else the ranker reads them as absent (an index built with another one)."""
        built = (index.manifest.get("sentences") or {}).get("second")
        if index.sentences is None or index.sentences.second is None or not built:
            return None
        encoder = second_encoder(self.settings)
        if encoder is None or encoder.name != built:
            log.warning("index's sentences were encoded by %s, not %s: answering without them; rebuild with "
                        "`rag index`", built, encoder.name if encoder else "none")
            return None
        encoder.embed_queries(["加装电梯"])  # its weights load at the first use: now, not in a request
        return encoder

    @staticmethod
    def _gazetteer(chunks: list[Chunk]) -> dict[str, str]:
        """Every place name of the corpus and its short form (洛龙区, 洛龙) → full name."""
        names: dict[str, str] = {}
        for c in chunks:
            for p in c.places:
                names[p] = p
                short = short_place(p)
                if len(short) >= 2:
                    names.setdefault(short, p)
        return names

    # ------------------------------------------------------------------ stages

    def validate(self, question: str) -> str:
        q = (question or "").strip()
        if not q:
            raise QueryError("question is empty")
        if len(q) > self.settings.max_question_chars:
            raise QueryError(f"question is {len(q)} characters; the limit is {self.settings.max_question_chars}")
        return q

    def analyse(self, question: str) -> Question:
        return analyse(question, self.vocab)

    def retrieve(self, q: Question, top_k: int, filters: dict | None) -> list[Hit]:
        # an English question's romanised names and dictionary words join its BM25 terms
        hits = self.retriever.search(q.text, k=max(top_k, self.settings.answer_depth), filters=filters,
                                     extra_terms=q.lexical_terms)
        if q.places and not filters:  # make sure every place named has its own passages
            for p in q.places[:4]:
                hits = _merge(hits, self.retriever.search(q.text, k=4, filters={"place": p}, extra_terms=q.lexical_terms))
        return hits

    def _norm(self, chunk: Chunk) -> NormText:
        """The passage's normalised text with its offset map, cached: the same passages come
        back for many questions."""
        return self._norms.get(chunk.id, lambda: normalize_span(self.texts[chunk.doc_id], chunk.start, chunk.end))

    def _window_vectors(self, hit: Hit) -> np.ndarray:
        pos = self.positions[hit.chunk.id]
        return self.retriever.index.vectors[self.row_start[pos]:self.row_start[pos + 1]]

    def _sentence_vectors(self, hit: Hit) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        """The spans and vectors of the passage's sentences, stored with the index, and their
        second encoder's vectors (None without them)."""
        table = self.retriever.index.sentences
        if table is None:
            return None
        pos = self.positions[hit.chunk.id]
        a, b = self.sentence_start[pos], self.sentence_start[pos + 1]
        return table.spans[a:b], table.vectors[a:b], None if table.second is None else table.second[a:b]

    def _second_query(self, text: str) -> np.ndarray | None:
        """The question by the second encoder, when the index has the sentences by it (self.second
        is None otherwise: _second_encoder)."""
        if self.second is None:
            return None
        return self._second_vectors.get(text, lambda: self.second.embed_queries([text])[0])

    def candidates(self, q: Question, hits: list[Hit]) -> list[Candidate]:
        """Every candidate of the passages with its features (and probability, with a ranker)."""
        norms = {h.chunk.id: self._norm(h.chunk) for h in hits}
        cands = generate(q, hits, norms, self.texts)
        qvec = self.retriever.query_vector(q.text) if self.settings.retriever != "lexical" else None
        featurise(q, cands, qvec, self._window_vectors, self.years, self._sentence_vectors, self._second_query(q.text))
        fit = [c for c in cands if eligible(q, c)]
        if self.ranker is not None:
            if fit:  # probabilities among the candidates that can answer; the rest only show what is near
                for cand, p in zip(fit, self.ranker.probabilities(vectorise(fit))):
                    cand.p = float(p)
            fit.sort(key=lambda c: -c.p)
            if not fit:  # nothing can answer: the nearest first, for the refusal and its citations
                self._rank_near(cands)
        # the others stay in passage order: they are scored only where a citation needs a passage's
        # best sentence (_citations), which saves scoring ~80 candidates a question
        chosen = {id(c) for c in fit}
        return fit + [c for c in cands if id(c) not in chosen]

    def _rank_near(self, cands: list[Candidate]) -> None:
        """Score candidates that cannot answer by the ranker, best first (in place)."""
        if self.ranker is not None and cands:
            for cand, s in zip(cands, self.ranker.scores(vectorise(cands))):
                cand.near = float(s)
            cands.sort(key=lambda c: -c.near)

    # ------------------------------------------------------------------ the pipeline

    def ask(self, question: str, top_k: int = 5, filters: dict | None = None) -> Answer:
        t0 = time.perf_counter()
        text = self.validate(question)
        if not 1 <= top_k <= self.settings.max_top_k:
            raise QueryError(f"top_k must be between 1 and {self.settings.max_top_k}, got {top_k}")
        q = self.analyse(text)
        hits = self.retrieve(q, top_k, filters)
        cands = self.candidates(q, hits)
        found, answer, chosen = self._decide(q, cands)
        citations = self._citations(chosen, cands, hits, min(3, top_k))
        if found and not citations:
            found, answer = False, NOT_FOUND
        return Answer(text, answer, found, citations, (time.perf_counter() - t0) * 1000, hits)

    def _decide(self, q: Question, cands: list[Candidate]):
        """(found, answer text, [(candidate, answer span)])."""
        fit = [c for c in cands if c.p > 0]
        narrowed = narrow(q, fit)
        fit = narrowed + [c for c in fit if all(c is not n for n in narrowed)]  # the strongest form first
        best = fit[0] if fit else None
        nearest = [(cands[0], None)] if cands else []
        if q.unknown_places:
            names = "、".join(dict.fromkeys(q.unknown_places))
            return False, f"出版物中没有关于{names}的内容。", nearest
        missing = [y for y in q.years if y not in self.years and y not in self.mentioned_years]
        if missing:
            have = "、".join(str(y) for y in sorted(self.years))
            return (False, f"出版物中没有{'、'.join(map(str, missing))}年的相关内容；语料只涵盖{have}年。", nearest)
        focus_weight = sum(q.terms[k] for k in q.focus) or 1.0
        if sum(q.terms[k] for k in q.absent) / focus_weight >= 0.75:  # mostly words no publication has
            words = "、".join(f"“{w}”" for w in q.absent[:3])
            return False, f"出版物中没有关于{words}的内容。", nearest
        threshold = self.ranker.threshold if self.ranker else 0.5
        lookup = next((c for c in fit if is_lookup(q, c)), None)
        # a masthead field that is not a person's title (邮编, 电话, 印刷单位) is read off whatever
        # the ranker prefers; a title (主任) is also a word of questions about the articles
        if lookup is not None and ((lookup.kind == "field" and squash(lookup.label or "") not in ROLES)
                                   or best is None or best.p < threshold):
            span = lookup.answer_span(q)  # a labelled value (masthead field, byline) answers as printed
            return True, _clean(lookup.norm.text[span[0]:span[1]]), [(lookup, span)]
        if len(q.places) >= 2 and q.kind in ("number", "rate", "fact", "who", "date"):
            parts, chosen = [], []
            for p in q.places:  # each place's candidates compete among themselves
                mine = [c for c in fit if _names_place(c, p)]
                probs = self.ranker.probabilities(vectorise(mine)) if mine and self.ranker else []
                own, own_p = max(zip(mine, probs), key=lambda t: t[1], default=(None, 0.0))
                if own and own_p >= threshold:
                    span = own.answer_span(q)
                    parts.append(f"{p}：{_clean(own.norm.text[span[0]:span[1]])}")
                    chosen.append((own, span))
            if chosen:
                return True, "；".join(parts), chosen
        if best is None or best.p < threshold:
            if q.absent:  # words no publication contains: say which
                words = "、".join(f"“{w}”" for w in q.absent[:3])
                return False, f"出版物中没有关于{words}的内容。", nearest
            near = best if best is not None and best.p >= NEAR_SHARE * threshold else (
                max(cands, key=lambda c: c.near) if cands and not fit else None)
            if near is not None and near.features.get("focus_cov", 0) >= 0.5:
                span = near.answer_span(q)
                c = near.hit.chunk
                where = f"{c.place}{c.year}年" if c.year else c.place
                return (False, f"出版物中没有所问的这一项；最接近的是{where}的：{_clean(near.norm.text[span[0]:span[1]])}",
                        [(near, span)])
            return False, NOT_FOUND, nearest
        span = best.answer_span(q)
        if q.kind == "list" and ENUMERATION.search(best.sentence):
            span = (span[0], following_items(best.norm.text, span[1]))
        elif q.kind in ("explain", "list") and span[1] - span[0] < 60:
            nxt = next((c for c in cands[1:4] if c.hit.chunk.id == best.hit.chunk.id and c.start >= span[1]), None)
            if nxt:
                span = (span[0], nxt.end)
        return True, _clean(best.norm.text[span[0]:span[1]]), [(best, span)]

    # ------------------------------------------------------------------ citations

    def _citations(self, chosen, cands: list[Candidate], hits: list[Hit], limit: int) -> list[Citation]:
        """The chosen sentences first, then the best sentence of the other top passages."""
        out: list[Citation] = []
        seen: set[str] = set()
        best_in: dict[str, Candidate] = {}
        by_chunk: dict[str, list[Candidate]] = {}
        for c in cands:
            best_in.setdefault(c.hit.chunk.id, c)
            by_chunk.setdefault(c.hit.chunk.id, []).append(c)
        pending = [(cand, span) for cand, span in chosen if cand is not None]
        pending += [(best_in[h.chunk.id], None) if h.chunk.id in best_in else (h, None) for h in hits]
        for item, span in pending:
            if len(out) >= limit:
                break
            hit = item.hit if isinstance(item, Candidate) else item
            if hit.chunk.id in seen:
                continue
            if isinstance(item, Candidate):
                if span is None and item.p == 0.0 and item.near == UNSCORED:  # no sentence of this passage can answer
                    mine = by_chunk[hit.chunk.id]
                    self._rank_near(mine)
                    item = mine[0]
                cit = self._citation(hit, item.norm, span or (item.start, item.end), item.p)
            else:
                cit = self._citation(hit, None, None, hit.score)
            if cit is not None:
                out.append(cit)
                seen.add(hit.chunk.id)
        return out

    def _citation(self, hit: Hit, norm: NormText | None, span: tuple[int, int] | None, score: float) -> Citation | None:
        """The sentence(s) stating the answer as ``start:end`` and the passage around them as
        ``passage_start:passage_end``; dropped unless both verify against the file."""
        c = hit.chunk
        text = self.texts.get(c.doc_id)
        if text is None:
            return None
        start, end = c.start, c.end
        if span is not None and norm is not None:
            s, e = span
            while s < e and norm.text[s].isspace():
                s += 1
            while e > s and norm.text[e - 1].isspace():
                e -= 1
            if s < e:
                start, end = norm.raw_span(s, e)
        p_start, p_end = min(c.start, start), max(c.end, end)
        entry = self.entries.get(c.doc_id, {})
        page_map = entry.get("pages")  # a document `rag add` extracted from a paged file (PDF)
        page, page_end = (page_at(page_map, start), page_at(page_map, end - 1)) if page_map else (c.pages or (None, None))
        cit = Citation(c.doc_id, c.title, c.article, c.date, start, end, text[start:end], round(float(score), 4),
                       passage_start=p_start, passage_end=p_end, page=page, page_end=page_end,
                       reference=reference(entry, c, _page_label(page, page_end) if page_map else None)
                       if entry else None)
        # the passage holds the chunk as the normaliser reads it (print repairs such as a dropped
        # "(上接第70页)" make the raw text differ from the chunk's)
        # (normalised afresh from the file's text, not taken from the passage cache: the check is
        # there to catch a file that changed under the index)
        if not self.verify(cit) or squash(c.text) not in squash(normalize_span(text, p_start, p_end).text):
            log.warning("dropped citation %s %s-%s: does not verify against the file", c.doc_id, start, end)
            return None
        return cit

    def verify(self, citation: Citation) -> bool:
        text = self.texts.get(citation.doc_id)
        return (text is not None and 0 <= citation.passage_start <= citation.start < citation.end
                <= citation.passage_end <= len(text) and text[citation.start:citation.end] == citation.quote)


def _page_label(first: int | None, last: int | None) -> str | None:
    return None if first is None else str(first) if last in (None, first) else f"{first}-{last}"


def _names_place(cand: Candidate, place: str) -> bool:
    c = cand.hit.chunk
    where = cand.sentence + " ".join(c.places) + (c.article or "")
    return place in where or short_place(place) in where


def _clean(text: str) -> str:
    return text.strip().rstrip(",;、")


def following_items(text: str, end: int, limit: int = 220) -> int:
    """The end of the sibling items (二)…, 二是… after ``end`` in the passage: a list answer
    names every item the passage holds, each by its first sentence, within ``limit``."""
    start = end
    for m in ENUMERATION.finditer(text, end):
        if m.start() - start > limit:
            break
        stop = SENTENCE.match(text, m.end())
        end = stop.end() if stop else m.end()
    return end


def _merge(a: list[Hit], b: list[Hit]) -> list[Hit]:
    seen = {h.chunk.id for h in a}
    out = list(a)
    for h in b:
        if h.chunk.id not in seen:
            out.append(Hit(h.chunk, h.score, len(out) + 1, h.sources))
            seen.add(h.chunk.id)
    return out


def highlight(quote: str, answer: str, ansi: bool = False) -> str:
    """The quote with the answer's figures marked (【…】, or bold on a terminal)."""
    marks = [m.group(0) for m in FIGURE.finditer(answer)] if answer else []
    out = quote.replace("\n", " ")
    for fig in sorted(set(marks), key=len, reverse=True):
        pattern = r"\s*".join(map(re.escape, fig))
        out = re.sub(pattern, lambda m: f"\033[1m{m.group(0)}\033[0m" if ansi else f"【{m.group(0)}】", out, count=1)
    return out
