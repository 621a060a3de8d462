"""The local backend: BM25 (bm25s) over a corpus, the index built once and cached on disk."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from service.search.base import Doc
from service.search.corpus import load_corpus

logger = logging.getLogger(__name__)

_INDEX_VERSION = "bm25s-1"


def _tokenize(texts: list[str]) -> Any:
    import bm25s
    import Stemmer

    return bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)


class LocalIndex:
    """Documents and their BM25 index. ``load`` reuses the on-disk index when the corpus is unchanged."""

    def __init__(self, docs: list[Doc], retriever: Any, built: bool) -> None:
        self.docs = docs
        self.retriever = retriever
        #: True when this instance built the index, False when it was read from the cache.
        self.built = built

    @classmethod
    def load(cls, corpus: Path | None, index_dir: Path) -> LocalIndex:
        import bm25s

        docs, source = load_corpus(corpus)
        stat = source.stat()
        key = hashlib.sha256(
            f"{_INDEX_VERSION}|{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()
        )
        target = index_dir / key.hexdigest()[:24]
        if (target / "done").is_file():
            logger.info("local index: loading %s (%d docs)", target, len(docs))
            return cls(docs, bm25s.BM25.load(str(target)), built=False)
        logger.info("local index: building over %d docs from %s", len(docs), source)
        retriever = bm25s.BM25()
        retriever.index(_tokenize([f"{d.title}\n{d.text}" for d in docs]), show_progress=False)
        index_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=index_dir))
        retriever.save(str(work))
        (work / "done").write_text(str(source))
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            work.rename(target)
        except OSError:  # another process finished first: theirs is as good as ours
            shutil.rmtree(work, ignore_errors=True)
        return cls(docs, retriever, built=True)

    def search(self, query: str, top_k: int) -> list[Doc]:
        tokens = _tokenize([query])
        if not tokens.vocab:
            return []
        k = min(top_k, len(self.docs))
        ids, scores = self.retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return [
            Doc(self.docs[i].title, self.docs[i].text, self.docs[i].url, float(s))
            for i, s in zip(ids[0], scores[0], strict=True)
            if s > 0
        ]


class LocalBackend:
    name = "local"

    def __init__(self, index: LocalIndex) -> None:
        self.index = index

    @classmethod
    async def create(cls, corpus: Path | None, index_dir: Path) -> LocalBackend:
        return cls(await asyncio.to_thread(LocalIndex.load, corpus, index_dir))

    async def search(self, query: str, top_k: int) -> list[Doc]:
        return await asyncio.to_thread(self.index.search, query, top_k)

    async def aclose(self) -> None:
        return None
