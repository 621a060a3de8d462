"""A stand-in for SearXNG where its image cannot be pulled (the compose end-to-end run, air-gapped).

It speaks the part of SearXNG's API the service uses: GET /search?q=..&format=json answers
{"query", "number_of_results", "results": [{"title", "url", "content", "engine", "score"}]}, a format
that is not enabled (anything but json and html) is 403 as in SearXNG, and GET /healthz says OK. The
results come from a few built-in encyclopedia-style passages, ranked by the words they share with the
query. Python's standard library only: it runs on the bare Debian base image. Every search is logged
on stdout (``search q=...``), so a test can see that the service really called it.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PASSAGES = [
    (
        "Mount Kilimanjaro",
        "Mount Kilimanjaro is a dormant volcano in Tanzania. It is the highest mountain in "
        "Africa, about 5,895 metres above sea level.",
    ),
    (
        "Hamlet",
        "Hamlet is a tragedy written by William Shakespeare sometime between 1599 and 1601. It is "
        "Shakespeare's longest play.",
    ),
    ("Gold", "Gold is a chemical element with the symbol Au and atomic number 79."),
    (
        "Eiffel Tower",
        "The Eiffel Tower is a wrought-iron lattice tower in Paris, France. It is named after "
        "the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889.",
    ),
    ("Pacific Ocean", "The Pacific Ocean is the largest and deepest of Earth's five oceanic divisions."),
    (
        "Mona Lisa",
        "The Mona Lisa is a half-length portrait painting by the Italian artist Leonardo da Vinci.",
    ),
    ("Telephone", "Alexander Graham Bell was awarded the first US patent for the telephone in 1876."),
    (
        "Canberra",
        "Canberra is the capital city of Australia, located at the northern end of the Australian "
        "Capital Territory.",
    ),
    (
        "Nile",
        "The Nile is a major north-flowing river in northeastern Africa, flowing into the "
        "Mediterranean Sea; it is among the longest rivers in the world.",
    ),
    ("Penicillin", "Penicillin was discovered in 1928 by the Scottish scientist Alexander Fleming."),
]


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def search(query: str) -> list[dict[str, object]]:
    asked = words(query)
    scored = []
    for title, content in PASSAGES:
        overlap = len(asked & words(f"{title} {content}"))
        if overlap:
            url = "https://en.wikipedia.org/wiki/" + title.replace(" ", "_")
            scored.append(
                {"title": title, "url": url, "content": content, "engine": "standin", "score": float(overlap)}
            )
    return sorted(scored, key=lambda r: -float(r["score"]))  # type: ignore[arg-type]


class Handler(BaseHTTPRequestHandler):
    server_version = "searxng-standin"

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == "/healthz":
            self._send(200, b"OK", "text/plain")
        elif url.path == "/search":
            query, fmt = params.get("q", ""), params.get("format", "html")
            print(f"search q={query!r} format={fmt}", flush=True)
            if fmt not in ("json", "html"):
                self._send(403, b"Forbidden", "text/plain")
                return
            results = search(query)
            if fmt == "html":
                items = "".join(f"<li>{r['title']}</li>" for r in results)
                self._send(200, f"<html><body><ul>{items}</ul></body></html>".encode(), "text/html")
                return
            body = {"query": query, "number_of_results": len(results), "results": results}
            self._send(200, json.dumps(body).encode(), "application/json")
        else:
            self._send(404, b"Not Found", "text/plain")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's name)
        pass  # searches are logged above; health checks would drown them


def main() -> None:
    parser = argparse.ArgumentParser(description="SearXNG-shaped stand-in (JSON API only)")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    # As a container's first process, SIGTERM has no default action: stop on it (docker stop).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"searxng-standin on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
