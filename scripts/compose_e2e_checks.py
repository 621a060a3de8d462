"""The requests of the compose end-to-end run (scripts/compose-e2e.sh starts and stops everything).

Python's standard library only (it runs from a clean clone, before any venv exists). Against the
router of a running `--profile cpu` deployment with two replicas, on loopback:

1. health: the router and both replicas answer /health with 200 (waits; prints the time to healthy);
2. real mode on the ``local`` backend and on the ``searxng`` backend (the stand-in, whose log must
   show the query), each trace step answered by that backend;
3. a streamed real-mode answer (SSE chunks, a finish reason, ``data: [DONE]``);
4. a client-mode trajectory: the model's search comes back as a tool call, the caller answers it, the
   model answers; both requests carry one X-Session-ID, so the router's consistent hash sends them to
   one replica and the second one starts from that replica's prefix cache;
5. a replica's process SIGKILLed from the host (as the kernel's OOM killer would): requests through
   the router keep succeeding on the other replica, compose's restart policy (``unless-stopped``)
   brings the container back, it turns healthy without converting the model again (the cache volume),
   and it answers requests again, directly and through the router.
Prints one JSON line of figures at the end; exits non-zero at the first failed check.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

QUESTION = "Where is Mount Kilimanjaro?"
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search an encyclopedia.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}
PASSAGE = {
    "title": "Mount Kilimanjaro",
    "text": "Mount Kilimanjaro is a dormant volcano in Tanzania, the highest mountain in Africa.",
    "url": "https://en.wikipedia.org/wiki/Mount_Kilimanjaro",
}


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} compose-e2e: {message}", file=sys.stderr, flush=True)


class Failed(AssertionError):
    pass


def check(condition: object, message: str) -> None:
    if not condition:
        raise Failed(message)


class Api:
    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    def _request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.api_key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        return urllib.request.urlopen(request, timeout=600)

    def status(self, path: str) -> int:
        try:
            with self._request("GET", path) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except (OSError, urllib.error.URLError):
            return 0

    def chat(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            with self._request("POST", "/v1/chat/completions", body, headers) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            raise Failed(f"{self.base_url}: HTTP {exc.code}: {exc.read()[:500]!r}") from exc

    def chat_stream(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        chunks, done = [], False
        with self._request("POST", "/v1/chat/completions", {**body, "stream": True}) as response:
            check(response.headers.get("Content-Type", "").startswith("text/event-stream"), "not SSE")
            for raw in response:
                line = raw.decode().strip()
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done = True
                    break
                chunks.append(json.loads(line[len("data: ") :]))
        check(done, "the stream did not end with data: [DONE]")
        return chunks


def wait_healthy(api: Api, what: str, deadline: float) -> float:
    start = time.monotonic()
    while api.status("/health") != 200:
        check(time.monotonic() < deadline, f"{what} not healthy in time")
        time.sleep(1)
    return time.monotonic() - start


def real_request(backend: str | None, max_tokens: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": QUESTION}],
        "search_mode": "real",
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    if backend:
        body["search"] = {"backend": backend}
    return body


def check_real_answer(answer: dict[str, Any], backend: str) -> dict[str, Any]:
    message = answer["choices"][0]["message"]
    trace = answer.get("search_trace") or {}
    steps = trace.get("steps") or []
    check(message.get("content"), f"{backend}: no answer: {answer}")
    check(steps, f"{backend}: the model did not search: {trace}")
    check(all(s["source"] == "real" and s["backend"] == backend for s in steps), f"{backend}: {steps}")
    check(any(s["results"] for s in steps), f"{backend}: no search returned results: {steps}")
    return {"answer": message["content"][:80], "queries": [s["query"] for s in steps]}


def chat_count(replica: Api) -> float:
    """Chat requests this replica has answered (its own Prometheus counter, every status)."""
    with replica._request("GET", "/metrics") as response:
        text = response.read().decode()
    prefix = 'ssrl_requests_total{route="/v1/chat/completions"'
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def client_trajectory(router: Api, replicas: list[Api], model: str, max_tokens: int) -> dict[str, Any]:
    session = f"compose-e2e-{uuid.uuid4()}"
    headers = {"X-Session-ID": session}
    before = [chat_count(r) for r in replicas]
    messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
    body = {"model": model, "tools": [SEARCH_TOOL], "max_tokens": max_tokens, "search_mode": "client"}
    first = router.chat({**body, "messages": messages}, headers)
    choice = first["choices"][0]
    check(choice["finish_reason"] == "tool_calls", f"client mode: no tool call: {first}")
    [call] = choice["message"]["tool_calls"]
    query = json.loads(call["function"]["arguments"])["query"]
    messages += [
        choice["message"],
        {"role": "tool", "tool_call_id": call["id"], "content": json.dumps([PASSAGE])},
    ]
    final = router.chat({**body, "messages": messages}, headers)
    check(final["choices"][0]["finish_reason"] == "stop", f"client mode: {final}")
    check(final["choices"][0]["message"].get("content"), f"client mode: no answer: {final}")
    steps = final["search_trace"]["steps"]
    check(steps and steps[0]["source"] == "client", f"client mode: {steps}")
    cached = (final.get("usage") or {}).get("prompt_tokens_details", {}).get("cached_tokens", 0)
    check(cached > 0, f"client mode: the second request hit no prefix cache: {final}")
    # One X-Session-ID, one replica: the router's consistent hash sent both requests to the same one.
    served = [after - prior for prior, after in zip(before, [chat_count(r) for r in replicas], strict=True)]
    check(sorted(served) == [0, 2], f"client mode: requests per replica {served}, not both on one")
    return {
        "session": session,
        "query": query,
        "requests_per_replica": served,
        "cached_tokens": cached,
        "answer": final["choices"][0]["message"]["content"][:80],
    }


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


def container_of(compose: list[str], service: str) -> str:
    ids = subprocess.run([*compose, "ps", "-q", service], check=True, capture_output=True, text=True).stdout
    check(ids.strip(), f"no container for {service}")
    return ids.split()[0]


def kill_and_recover(
    compose: list[str], router: Api, victim: Api, service: str, model: str, max_tokens: int
) -> dict[str, Any]:
    container = container_of(compose, service)
    restarts = int(docker("inspect", "-f", "{{.RestartCount}}", container))
    pid = docker("inspect", "-f", "{{.State.Pid}}", container)
    log(f"SIGKILL to {service} (container {container[:12]}, host pid {pid})")
    killed_at = time.monotonic()
    subprocess.run(["kill", "-KILL", pid], check=True)

    def ask(api: Api, backend: str, what: str) -> None:
        answer = api.chat(
            real_request(backend, max_tokens) | {"model": model}, {"X-Session-ID": str(uuid.uuid4())}
        )
        check(answer["choices"][0]["message"].get("content"), f"{what}: {answer}")

    # Until the router's health check has seen the replica gone (deploy/docker-compose.yml: every
    # 2 s, 2 failures), a request whose session hashes to it answers 5xx: a client retries it, as
    # OpenAI's SDK does (twice, with backoff). Those retries are counted; every request must end
    # in an answer.
    retried = 0

    def ask_retrying(what: str) -> None:
        nonlocal retried
        for attempt in range(6):
            try:
                ask(router, "searxng", what)
                return
            except Failed as exc:
                if "HTTP 5" not in str(exc) or attempt == 5:
                    raise
                retried += 1
                log(f"{what}: {str(exc)[:120]}; retrying in {2**attempt} s")
                time.sleep(2**attempt)

    # While it is down (and loading again), the router sends everything to the other replica.
    served_meanwhile = 0
    while True:
        ask_retrying("during the outage")
        served_meanwhile += 1
        state = json.loads(docker("inspect", "-f", "{{json .State}}", container))
        now_restarts = int(docker("inspect", "-f", "{{.RestartCount}}", container))
        if now_restarts > restarts and state.get("Health", {}).get("Status") == "healthy":
            break
        check(
            time.monotonic() - killed_at < 900,
            f"{service} not back and healthy 900 s after the kill: {state}",
        )
        time.sleep(5)  # light traffic: the restarting replica shares the CPUs with the one serving
    back_after = time.monotonic() - killed_at
    log(f"{service} restarted by docker and healthy {back_after:.0f} s after the kill")
    check(victim.status("/health") == 200, f"{service} /health after the restart")
    ask(victim, "local", f"{service} after its restart")
    # Through the router: new sessions spread over both replicas again; send them until one lands on
    # the restarted replica (each does with probability 1/2).
    through_router = 0
    for _ in range(12):
        count = chat_count(victim)
        ask(router, "searxng", "after the restart")
        through_router += 1
        if chat_count(victim) > count:
            break
    else:
        raise Failed(f"the router sent none of {through_router} new sessions to the restarted {service}")
    logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
    text = logs.stdout + logs.stderr
    check("to safetensors" not in text and "merging the adapter" not in text, f"{service} converted again")
    return {
        "restart_count": now_restarts,
        "healthy_after_kill_s": round(back_after, 1),
        "router_requests_served_during_outage": served_meanwhile,
        "router_5xx_retried_during_outage": retried,
        "router_requests_until_one_reached_it": through_router,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--router", required=True)
    parser.add_argument("--replica", action="append", required=True, help="URL of each replica, in order")
    parser.add_argument("--replica-service", action="append", required=True, help="its compose service")
    parser.add_argument("--searxng-service", default="searxng")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--compose", required=True, help="the compose command line (project, files, profile)")
    parser.add_argument("--started-at", type=float, default=time.time(), help="epoch seconds of `up`")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--max-tokens", type=int, default=800, help="per trajectory, injected results included"
    )
    args = parser.parse_args()
    compose = shlex.split(args.compose)
    router = Api(args.router, args.api_key)
    replicas = [Api(url, args.api_key) for url in args.replica]
    figures: dict[str, Any] = {}
    deadline = time.monotonic() + args.timeout

    for url, replica in zip(args.replica, replicas, strict=True):
        wait_healthy(replica, url, deadline)
    wait_healthy(router, "the router", deadline)
    figures["healthy_after_up_s"] = round(time.time() - args.started_at, 1)
    log(f"router and both replicas healthy {figures['healthy_after_up_s']} s after `up`")
    with router._request("GET", "/v1/models") as response:
        model = json.loads(response.read())["data"][0]["id"]
    figures["model"] = model

    for backend in ("local", "searxng"):
        start = time.monotonic()
        answer = router.chat(real_request(backend, args.max_tokens) | {"model": model})
        figures[f"real_{backend}"] = check_real_answer(answer, backend) | {
            "seconds": round(time.monotonic() - start, 1)
        }
        log(f"real mode, {backend}: {figures[f'real_{backend}']}")
    standin = subprocess.run(
        ["docker", "logs", container_of(compose, args.searxng_service)], capture_output=True, text=True
    )
    check("search q=" in standin.stdout, "the SearXNG stand-in logged no search")

    chunks = router.chat_stream(real_request(None, args.max_tokens) | {"model": model})
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))
    finish = [
        c["choices"][0]["finish_reason"]
        for c in chunks
        if c.get("choices") and c["choices"][0]["finish_reason"]
    ]
    check(
        len(chunks) > 2 and text and finish, f"stream: {len(chunks)} chunks, text {text!r}, finish {finish}"
    )
    figures["stream"] = {"chunks": len(chunks), "finish_reason": finish[-1], "answer": text[:80]}
    log(f"streamed: {figures['stream']}")

    figures["client_mode"] = client_trajectory(router, replicas, model, args.max_tokens)
    log(f"client mode: {figures['client_mode']}")

    figures["restart"] = kill_and_recover(
        compose, router, replicas[0], args.replica_service[0], model, args.max_tokens
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failed as exc:
        log(f"FAILED: {exc}")
        sys.exit(1)
