"""The local backend: BM25 (bm25s + PyStemmer) over a corpus, the index built once and cached on disk.

The cache is keyed by the corpus file (resolved path, size, mtime) and the index format, so editing
the corpus rebuilds it and anything else reuses it. Loading and searching run in threads: the event
loop never waits on them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from service.search.base import Doc
from service.search.corpus import Corpus, load_corpus
from service.search.snippets import Snippets, english_stemmer

logger = logging.getLogger(__name__)

#: Bumped whenever what is indexed or how it is tokenised changes.
INDEX_FORMAT = "bm25s-2"
_DONE = "done"


def _tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s
    import Stemmer

    # A stemmer per call: PyStemmer objects are not safe to share between threads.
    stemmer = Stemmer.Stemmer("english")
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False)
    return [list(t) for t in tokens]


def index_key(source: Path) -> str:
    """Name of the cached index of ``source``: changes with its path, size and mtime."""
    stat = source.stat()
    raw = f"{INDEX_FORMAT}|{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


class LocalIndex:
    """A corpus and its BM25 index. ``load`` reuses the on-disk index when the corpus is unchanged."""

    def __init__(self, corpus: Corpus, retriever: Any, *, built: bool) -> None:
        self.corpus = corpus
        self.retriever = retriever
        #: True when this instance built the index, False when it was read from the cache.
        self.built = built

    @property
    def docs(self) -> list[Doc]:
        return self.corpus.docs

    @classmethod
    def load(cls, corpus_path: Path | None, index_dir: Path) -> LocalIndex:
        """Blocking: call it in a thread (``asyncio.to_thread``) from async code."""
        import bm25s

        corpus = load_corpus(corpus_path)
        target = index_dir / index_key(corpus.source)
        if (target / _DONE).is_file():
            try:
                retriever = bm25s.BM25.load(str(target), show_progress=False)
            except (OSError, ValueError) as exc:
                logger.warning("local index: %s unreadable (%s); rebuilding", target, type(exc).__name__)
            else:
                if int(retriever.scores["num_docs"]) == len(corpus):
                    logger.info("local index: loaded %s (%d docs)", target, len(corpus))
                    return cls(corpus, retriever, built=False)
                logger.warning("local index: cached %s does not match the corpus; rebuilding", target)
        logger.info("local index: building over %d docs from %s", len(corpus), corpus.source)
        retriever = bm25s.BM25()
        retriever.index(_tokenize(corpus.index_texts), show_progress=False)
        cls._save(retriever, corpus.source, index_dir, target)
        return cls(corpus, retriever, built=True)

    @staticmethod
    def _save(retriever: Any, source: Path, index_dir: Path, target: Path) -> None:
        """Write to a temporary folder, then rename: readers never see half an index."""
        try:
            index_dir.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=".build-", dir=index_dir))
            retriever.save(str(work))
            (work / _DONE).write_text(str(source), encoding="utf-8")
        except OSError as exc:  # a read-only cache must not stop the search from working
            logger.warning("local index: cannot cache in %s (%s)", index_dir, type(exc).__name__)
            return
        shutil.rmtree(target, ignore_errors=True)
        try:
            work.rename(target)
        except OSError:  # another process finished first: theirs is as good as ours
            shutil.rmtree(work, ignore_errors=True)
        logger.info("local index: saved %s", target)

    def search_many(self, queries: list[str], top_k: int) -> list[list[tuple[int, float]]]:
        """(document position, score) pairs per query, best first, zero scores left out."""
        if not queries:
            return []
        k = min(top_k, len(self.corpus))
        ids, scores = self.retriever.retrieve(_tokenize(queries), k=k, show_progress=False, n_threads=1)
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if s > 0]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    def search_docs(self, queries: list[str], top_k: int) -> list[list[Doc]]:
        """The documents of each query, best first, with their scores (one batched retrieval)."""
        docs = self.corpus.docs
        return [
            [Doc(docs[i].title, docs[i].text, docs[i].url, score) for i, score in hits]
            for hits in self.search_many(queries, top_k)
        ]

    def search(self, query: str, top_k: int) -> list[Doc]:
        return self.search_docs([query], top_k)[0]

    def snippets(self, words: int) -> Snippets:
        """Query-biased snippets of ``words`` words, terms weighed by this index's document counts."""
        vocab: dict[str, int] = self.retriever.vocab_dict
        indptr = self.retriever.scores["indptr"]
        df = {term: int(indptr[i + 1] - indptr[i]) for term, i in vocab.items() if i + 1 < len(indptr)}
        return Snippets(words, english_stemmer(), df, len(self.corpus))


class LocalBackend:
    """BM25 over a corpus; each result shows a query-biased snippet of ``snippet_words`` words
    (0: the whole document, which the loop then clips to ``agent.result_words``)."""

    name = "local"

    def __init__(self, index: LocalIndex, snippet_words: int = 0) -> None:
        self.index = index
        self.snippets = index.snippets(snippet_words)

    @classmethod
    async def create(cls, corpus: Path | None, index_dir: Path, snippet_words: int = 0) -> LocalBackend:
        return cls(await asyncio.to_thread(LocalIndex.load, corpus, index_dir), snippet_words)

    def _search(self, query: str, top_k: int) -> list[Doc]:
        return self.snippets.docs(self.index.search(query, top_k), query)

    async def search(self, query: str, top_k: int) -> list[Doc]:
        return await asyncio.to_thread(self._search, query, top_k)

    async def aclose(self) -> None:
        return None
