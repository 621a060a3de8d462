// The SSRL playground: asks /v1/chat/completions (streaming) and draws the trajectory as it comes.
// Every text from the model or from search results goes into the page with textContent, never as
// HTML; the page's Content-Security-Policy allows no inline script and no other origin.
"use strict";

(() => {
  /** The modes this page knows how to show (the server's list is intersected with it). */
  const PAGE_MODES = ["off", "self", "real", "entropy"];
  const COMPARE_MODES = ["self", "real", "entropy"];
  const KEY_STORAGE = "ssrl-playground-api-key";
  const TAG = /<(\/?)(think|search|information|answer)>/g;
  const MAX_RETRIES_429 = 5;

  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  class ApiError extends Error {
    constructor(status, message, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const page = {
    options: null,
    controllers: new Set(),
  };

  // -- the API ----------------------------------------------------------------------------------
  function headers() {
    const h = { "Content-Type": "application/json", Accept: "text/event-stream" };
    const key = $("api-key").value.trim();
    if (key) h.Authorization = "Bearer " + key;
    return h;
  }

  function retryAfter(response, fallback) {
    const seconds = Number(response.headers.get("Retry-After"));
    return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 30) : fallback;
  }

  function sleep(seconds, signal) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, seconds * 1000);
      signal.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(new DOMException("stopped", "AbortError"));
      }, { once: true });
    });
  }

  async function errorOf(response) {
    try {
      const body = await response.json();
      if (body && body.error) return body.error;
    } catch (_) { /* not JSON */ }
    return { message: response.statusText || "HTTP " + response.status, code: null };
  }

  function explain(status, error) {
    const said = error.message || "";
    if (status === 401) return "The API key was refused (401): " + said + " Enter a valid key in 'API key'.";
    if (status === 429) return "Too many requests (429): " + said;
    if (status === 503) return "The model is not available (503): " + said;
    return "Error " + status + ": " + said;
  }

  /** POST the request; 503 while the model loads and 429 are retried after Retry-After. */
  async function post(body, signal, notify) {
    for (let attempt = 0; ; attempt++) {
      const response = await fetch("/v1/chat/completions", {
        method: "POST", headers: headers(), body: JSON.stringify(body), signal, cache: "no-store",
      });
      if (response.ok) return response;
      const error = await errorOf(response);
      const loading = response.status === 503 && error.code !== "model_load_failed";
      if (loading || (response.status === 429 && attempt < MAX_RETRIES_429)) {
        const wait = retryAfter(response, loading ? 5 : 1);
        notify(loading
          ? "The model is still loading (503); retrying in " + wait + " s…"
          : "Too many requests in flight (429); retrying in " + wait + " s…", "waiting");
        await sleep(wait, signal);
        continue;
      }
      throw new ApiError(response.status, explain(response.status, error), error.code);
    }
  }

  /** The `data:` payloads of a server-sent-events response. */
  async function* sseData(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of frame.split("\n")) {
          if (line.startsWith("data:")) yield line.slice(5).trimStart();
        }
      }
    }
  }

  // -- the trajectory -----------------------------------------------------------------------------
  /** Where a block of the trajectory lies comes from the server: each search step carries the
   *  spans of its <search> and <information> blocks in the reasoning text, in code points. The
   *  text between them (thoughts, the answer, what is still streaming) is only split for display. */

  /** The UTF-16 index of code point `points` of `text` (JavaScript strings count UTF-16 units);
   *  -1 when the text is not that long yet. */
  function utf16Index(text, points) {
    let index = 0;
    for (let n = 0; n < points; n++) {
      if (index >= text.length) return -1;
      const unit = text.charCodeAt(index);
      index += unit >= 0xd800 && unit <= 0xdbff && index + 1 < text.length ? 2 : 1;
    }
    return index;
  }

  /** The text of `text[from:to]` split by its tags, for display (an unclosed last block is still
   *  streaming); no step is attached here. */
  function displayBlocks(text, from, to) {
    const blocks = [];
    let open = null;
    let last = from;
    const plain = (start, end) => {
      const chunk = text.slice(start, end);
      if (chunk.trim()) blocks.push({ tag: "text", start, text: chunk.trim(), closed: true });
    };
    const part = text.slice(from, to);
    TAG.lastIndex = 0;
    let m;
    while ((m = TAG.exec(part)) !== null) {
      const [whole, slash, tag] = m;
      const at = from + m.index;
      if (!slash && open === null) {
        plain(last, at);
        open = { tag, start: at, body: at + whole.length };
        last = open.body;
      } else if (slash && open !== null && open.tag === tag) {
        blocks.push({ tag, start: open.start, text: text.slice(open.body, at).trim(), closed: true });
        open = null;
        last = at + whole.length;
      }
    }
    if (open !== null) {
      blocks.push({ tag: open.tag, start: open.start, text: text.slice(open.body, to).trim(), closed: false });
    } else {
      plain(last, to);
    }
    return blocks;
  }

  /** A block the server placed: `text[start:end]` with its tags, and the step it belongs to. */
  function placedBlock(text, tag, start, end, step) {
    const closed = end >= 0;
    const whole = text.slice(start, closed ? end : text.length);
    const open = "<" + tag + ">";
    const close = "</" + tag + ">";
    let body = whole.startsWith(open) ? whole.slice(open.length) : whole;
    if (body.endsWith(close)) body = body.slice(0, -close.length);
    return { tag, start, text: body.trim(), closed, step };
  }

  /** The trajectory's blocks: each step's <search> and <information> where its spans say, the rest
   *  split for display. A self or fallback step's own <information> is written right after its
   *  </search> (nothing is injected there); until the server sends its span (with the trace), the
   *  block that starts there is that step's. */
  function trajectoryBlocks(text, steps) {
    const placed = [];
    for (const step of steps) {
      for (const [tag, span] of [["search", step.search_span], ["information", step.information_span]]) {
        if (!span) continue;
        const start = utf16Index(text, span.start);
        if (start < 0) continue; // not streamed yet
        placed.push({ tag, start, end: utf16Index(text, span.end), step });
      }
    }
    placed.sort((a, b) => a.start - b.start);
    const blocks = [];
    let at = 0;
    for (const span of placed) {
      if (span.start < at) continue;
      blocks.push(...displayBlocks(text, at, span.start));
      blocks.push(placedBlock(text, span.tag, span.start, span.end, span.step));
      if (span.end < 0) return blocks; // still streaming: the rest of the text is inside it
      at = span.end;
    }
    blocks.push(...displayBlocks(text, at, text.length));
    for (const step of steps) {
      if (step.information_span || !step.search_span || !["self", "fallback"].includes(step.source)) continue;
      const end = utf16Index(text, step.search_span.end);
      const own = blocks.find((b) => b.tag === "information" && b.start >= end && !b.step);
      if (own && !text.slice(end, own.start).trim()) own.step = step;
    }
    return blocks;
  }

  function writerOf(step) {
    if (!step || step.source === "self") return { kind: "model", label: "written by the model" };
    if (step.source === "real") return { kind: "real", label: "written by " + (step.backend || "the search backend") };
    return {
      kind: "fallback",
      label: "written by the model (fallback: " + (step.backend || "backend") + " failed" +
        (step.error ? ": " + step.error : "") + ")",
    };
  }

  function latencyText(step) {
    if (!step || typeof step.latency_ms !== "number") return "";
    const ms = step.latency_ms;
    return (ms < 10 ? ms.toFixed(1) : String(Math.round(ms))) + " ms";
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  const UNCERTAINTY_HINT = "mean token entropy of the query: entropy mode sends it to the backend when it is " +
    "higher than the previous query's (or above the threshold)";

  /** An empty node for a trajectory block of this tag; updateBlock fills it. */
  function blockNode(tag) {
    let node;
    if (tag === "search") {
      node = el("div", "search");
      const score = el("span", "uncertainty");
      score.title = UNCERTAINTY_HINT;
      node.append(el("span", "chip-label", "search"), el("span", "chip query"), el("span", "source"), score);
    } else if (tag === "information") {
      node = el("details", "info");
      const summary = el("summary");
      summary.append(el("span", "info-tag", "information"), el("span", "writer"), el("span", "latency"),
        el("span", "streaming"));
      node.append(summary, el("pre", "info-text"));
    } else {
      node = el("div", { think: "think", answer: "answer-tag" }[tag] || "plain");
    }
    node.dataset.block = tag;
    return node;
  }

  function updateBlock(node, block, step) {
    if (block.tag === "search") {
      const [, query, source, score] = node.children;
      setText(query, block.text);
      setText(source, step ? step.source : "");
      source.className = step ? "source source-" + step.source : "source";
      setText(score, step && typeof step.uncertainty === "number" ? "uncertainty " + step.uncertainty.toFixed(2) : "");
    } else if (block.tag === "information") {
      const writer = writerOf(step);
      const [summary, text] = node.children;
      const [, label, latency, streaming] = summary.children;
      node.className = "info info-" + writer.kind;
      node.dataset.writer = writer.kind;
      setText(label, writer.label);
      setText(latency, writer.kind === "model" ? "" : latencyText(step));
      setText(streaming, block.closed ? "" : "…");
      setText(text, block.text);
    } else {
      setText(node, block.text);
    }
  }

  /** One answer being streamed: its state and the elements that show it. */
  class Run {
    constructor(mode, cells) {
      this.mode = mode;
      this.cells = cells; // {head, answer, searches, stats, trajectory, status}
      this.text = "";
      this.answer = "";
      this.sources = []; // the answer's url_citation annotations
      this.steps = new Map(); // the search steps streamed so far, by index (the trace's replace them)
      this.trace = null;
      this.httpStatus = null; // of the response the chunks come in
      this.usage = null;
      this.finish = null;
      this.started = performance.now();
      this.firstToken = null;
      this.ended = null;
      this.outcome = "running";
      this.pending = false;
      cells.head.textContent = mode;
      cells.head.dataset.mode = mode;
      this.setStatus("Asking…", "running");
    }

    setStatus(message, kind) {
      this.cells.status.textContent = message;
      this.cells.status.dataset.kind = kind;
    }

    onChunk(chunk) {
      if (chunk.error) throw new ApiError(this.httpStatus,
        "The server reported an error mid-stream: " + chunk.error.message, chunk.error.code);
      if (chunk.search_step) this.steps.set(chunk.search_step.index, chunk.search_step);
      if (chunk.usage) this.usage = chunk.usage;
      for (const choice of chunk.choices || []) {
        const delta = choice.delta || {};
        if ((delta.reasoning_content || delta.content) && this.firstToken === null) {
          this.firstToken = performance.now();
        }
        if (delta.reasoning_content) this.text += delta.reasoning_content;
        if (delta.content) this.answer += delta.content;
        if (delta.annotations) this.sources = delta.annotations;
        if (choice.finish_reason) this.finish = choice.finish_reason;
      }
      if (chunk.search_trace) {
        this.trace = chunk.search_trace;
        for (const step of this.trace.steps) this.steps.set(step.index, step);
      }
      this.schedule();
    }

    schedule() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.render(); });
    }

    render() {
      const blocks = trajectoryBlocks(this.text, [...this.steps.values()]);
      // Nodes are kept and updated in place: a block being read or clicked (an opened
      // <information>) is never replaced while the text streams in.
      const container = this.cells.trajectory;
      blocks.forEach((block, i) => {
        const step = block.step;
        let node = container.children[i];
        if (!node || node.dataset.block !== block.tag) {
          const fresh = blockNode(block.tag);
          if (node) node.replaceWith(fresh); else container.append(fresh);
          node = fresh;
        }
        updateBlock(node, block, step);
      });
      while (container.children.length > blocks.length) container.lastElementChild.remove();

      const chips = blocks.filter((b) => b.tag === "search").map((b) => {
        const chip = el("li", "chip query", b.text);
        if (b.step) chip.dataset.source = b.step.source;
        return chip;
      });
      const list = el("ol", "chips");
      list.append(...chips);
      this.cells.searches.replaceChildren(chips.length ? list : el("span", "none", this.mode === "off" ? "no search loop" : "no search yet"));
      const last = blocks.filter((b) => b.tag === "answer").pop();
      const answer = this.answer || (this.mode === "off" ? "" : (last ? last.text : ""));
      setText(this.cells.answer, answer);
      this.cells.answer.classList.toggle("empty", !answer);
      this.renderSources();
      this.renderStats();
    }

    /** The documents the answer came from, as links under it (web URLs only). */
    renderSources() {
      const cited = this.sources.map((a) => a.url_citation).filter((c) => c && /^https?:\/\//i.test(c.url));
      if (!cited.length) {
        this.cells.sources.replaceChildren();
        return;
      }
      const list = el("ul", "source-links");
      for (const citation of cited) {
        const link = el("a", null, citation.title || citation.url);
        link.href = citation.url;
        link.title = citation.url;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        const item = el("li");
        item.append(link);
        list.append(item);
      }
      this.cells.sources.replaceChildren(el("span", "sources-label", "Sources"), list);
    }

    renderStats() {
      const parts = [];
      const end = this.trace && this.trace.end_reason;
      if (end) parts.push(["end", end]);
      if (this.finish) parts.push(["finish", this.finish]);
      if (this.usage) {
        const prompt = this.usage.prompt_tokens;
        const cached = (this.usage.prompt_tokens_details || {}).cached_tokens || 0;
        parts.push(["tokens", prompt + " prompt + " + this.usage.completion_tokens + " completion"]);
        parts.push(["cached", (prompt ? Math.round((100 * cached) / prompt) : 0) + " % (" + cached + ")"]);
      }
      if (this.trace) parts.push(["searches", String(this.trace.steps.length)]);
      const now = this.ended === null ? performance.now() : this.ended;
      parts.push(["time", ((now - this.started) / 1000).toFixed(1) + " s"]);
      if (this.firstToken !== null) parts.push(["first token", ((this.firstToken - this.started) / 1000).toFixed(1) + " s"]);
      const list = el("dl", "stats-list");
      for (const [name, value] of parts) {
        const item = el("div", "stat");
        item.dataset.stat = name;
        item.append(el("dt", null, name), el("dd", null, value));
        list.append(item);
      }
      this.cells.stats.replaceChildren(list);
    }

    finishWith(outcome, message, kind) {
      this.outcome = outcome;
      this.ended = performance.now();
      this.cells.head.dataset.outcome = outcome;
      this.setStatus(message, kind);
      this.render();
    }
  }

  function requestBody(question, mode) {
    const body = {
      model: page.options ? page.options.model : "",
      messages: [{ role: "user", content: question }],
      stream: true,
      stream_options: { include_usage: true },
      search_mode: mode,
    };
    const maxTokens = Number($("max-tokens").value);
    if (maxTokens > 0) body.max_tokens = maxTokens;
    if (mode !== "off") {
      const search = { backend: $("backend").value };
      const topK = $("top-k").value;
      const turns = $("max-turns").value;
      if (topK !== "") search.top_k = Number(topK);
      if (turns !== "") search.max_turns = Number(turns);
      body.search = search;
    }
    return body;
  }

  async function execute(run, question) {
    const controller = new AbortController();
    page.controllers.add(controller);
    try {
      const response = await post(requestBody(question, run.mode), controller.signal,
        (message, kind) => run.setStatus(message, kind));
      run.httpStatus = response.status;
      run.setStatus("Streaming…", "running");
      let complete = false;
      for await (const data of sseData(response)) {
        if (data === "[DONE]") {
          complete = true;
          break;
        }
        run.onChunk(JSON.parse(data));
      }
      if (!complete) throw new Error("the stream ended before the server finished it");
      run.finishWith("done", run.answer || run.mode === "off" ? "Done." : "Done, without an answer.", "done");
    } catch (error) {
      if (error && error.name === "AbortError") {
        run.finishWith("stopped", "Stopped.", "stopped");
      } else if (error instanceof ApiError) {
        run.finishWith("error", error.message, "error");
        run.cells.status.dataset.status = String(error.status);
        if (error.code) run.cells.status.dataset.code = error.code;
      } else {
        run.finishWith("error", "The request failed: " + (error && error.message ? error.message : error), "error");
      }
    } finally {
      page.controllers.delete(controller);
      if (page.controllers.size === 0) $("stop").disabled = true;
    }
  }

  // -- views ------------------------------------------------------------------------------------
  const ROWS = ["head", "status", "answer", "sources", "searches", "stats", "trajectory"];
  const ROW_TAGS = {
    head: "h2", status: "p", answer: "div", sources: "div", searches: "div", stats: "div", trajectory: "div",
  };

  function cellsFor() {
    const cells = {};
    for (const row of ROWS) cells[row] = el(ROW_TAGS[row], "cell " + row);
    return cells;
  }

  function start(modes) {
    const question = $("question").value.trim();
    if (!question) {
      $("status").textContent = "Type a question first.";
      return;
    }
    stopAll();
    const view = el("section", modes.length > 1 ? "view compare" : "view single");
    view.id = modes.length > 1 ? "compare-view" : "single-view";
    view.classList.add("cols-" + modes.length);
    const runs = modes.map((mode) => new Run(mode, cellsFor()));
    if (modes.length > 1) {
      for (const row of ROWS) for (const run of runs) view.append(run.cells[row]);
    } else {
      const run = runs[0];
      for (const row of ["head", "status", "trajectory", "answer", "sources", "stats"]) view.append(run.cells[row]);
    }
    const title = el("p", "asked");
    title.append(el("span", "asked-label", "Question: "), el("span", "asked-text", question));
    $("output").replaceChildren(title, view);
    $("status").textContent = "";
    $("stop").disabled = false;
    const work = runs.map((run) => execute(run, question));
    Promise.all(work).then(() => {
      const stopped = runs.some((run) => run.outcome === "stopped");
      $("status").textContent = stopped ? "Stopped." : "";
    });
  }

  function stopAll() {
    for (const controller of page.controllers) controller.abort();
    page.controllers.clear();
    $("stop").disabled = true;
  }

  // -- set-up -----------------------------------------------------------------------------------
  function fillSelect(select, values, chosen) {
    select.replaceChildren(...values.map((value) => {
      const option = el("option", null, value);
      option.value = value;
      option.selected = value === chosen;
      return option;
    }));
  }

  async function watchHealth() {
    for (;;) {
      let ok = false;
      try {
        const response = await fetch("/health", { cache: "no-store" });
        ok = response.ok;
      } catch (_) { /* the server is not reachable yet */ }
      $("health").textContent = ok ? "model ready" : "model loading…";
      $("health").dataset.ok = String(ok);
      if (ok) return;
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }

  async function loadOptions() {
    const response = await fetch("/playground/options", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const options = await response.json();
    page.options = options;
    $("model").textContent = options.model;
    const modes = options.modes.filter((mode) => PAGE_MODES.includes(mode));
    fillSelect($("mode"), modes, options.default_mode);
    fillSelect($("backend"), options.backends, options.default_backend);
    $("top-k").value = String(options.top_k);
    $("max-turns").value = String(options.max_turns);
    if (options.auth && !$("api-key").value) $("status").textContent = "This server needs an API key.";
  }

  function init() {
    const key = $("api-key");
    key.value = sessionStorage.getItem(KEY_STORAGE) || "";
    key.addEventListener("input", () => {
      if (key.value) sessionStorage.setItem(KEY_STORAGE, key.value);
      else sessionStorage.removeItem(KEY_STORAGE);
    });
    $("ask-form").addEventListener("submit", (event) => {
      event.preventDefault();
      start([$("mode").value]);
    });
    $("compare").addEventListener("click", () => {
      start(COMPARE_MODES.filter((mode) => !page.options || page.options.modes.includes(mode)));
    });
    $("stop").addEventListener("click", () => stopAll());
    const toggleSearch = () => {
      const off = $("mode").value === "off";
      for (const id of ["backend", "top-k", "max-turns"]) $(id).disabled = off;
    };
    $("mode").addEventListener("change", toggleSearch);
    loadOptions().then(toggleSearch, (error) => {
      $("status").textContent = "Could not read the server's options: " + error.message;
    });
    watchHealth();
    document.body.dataset.ready = "true";
  }

  init();
})();
