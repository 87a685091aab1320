// Gradient Health web UI: vanilla JavaScript, no framework, no build step, nothing fetched from
// outside the service. Every piece of data comes from the API, with the key (if any) in the
// X-API-Key header; the key lives in sessionStorage and never in a URL. Text from the API is only
// ever set with textContent; the HTML report is shown in a sandboxed frame (no scripts).
"use strict";

(() => {
  const ROOT = document.body.dataset.root || "/";
  const KEYS_ON = document.body.dataset.keys === "on";
  const KEY_STORE = "gradhealth.apiKey";
  const MAX_STREAMS = 3; // browsers allow ~6 connections per host: leave room for the API calls
  const MODEL_FILE = /\.(onnx|h5|hdf5|keras)$/i;
  const ACTIVE = new Set(["queued", "running"]);
  const RANK = { info: 1, warning: 2, error: 3 };
  const PAGE = 50; // jobs per page of the list

  const $ = (id) => document.getElementById(id);
  const state = {
    jobs: new Map(), // id -> the job summary as last seen (list, stream or submission)
    details: new Map(), // id -> {count, worst}: a finished job's findings, fetched once
    streams: new Map(), // id -> {close()}: the jobs watched live
    rows: new Map(), // id -> {tr, signature}
    order: [],
    older: [], // ids of the jobs "Load older" brought, after the newest page
    olderCursor: null, // the API's next_cursor: where the next older page starts
    reportUrl: null,
  };

  // --- the API ------------------------------------------------------------------------------

  function apiKey() {
    try {
      return sessionStorage.getItem(KEY_STORE) || "";
    } catch {
      return "";
    }
  }

  class Problem extends Error {
    constructor(problem) {
      super(problem.title || "Error");
      this.problem = problem;
    }
  }

  async function problemOf(response) {
    let problem = { status: response.status, title: response.statusText || "Error", detail: "" };
    try {
      if ((response.headers.get("content-type") || "").includes("json")) {
        problem = { ...problem, ...(await response.json()) };
      } else {
        problem.detail = (await response.text()).slice(0, 300);
      }
    } catch {
      // an unreadable body: the status line says enough
    }
    const retry = response.headers.get("retry-after");
    if (retry) problem.retry = retry;
    return new Problem(problem);
  }

  /** fetch() against the service, with the key; a problem+json answer is thrown as a Problem. */
  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    const key = apiKey();
    if (key) headers.set("X-API-Key", key);
    const response = await fetch(ROOT + path, { ...options, headers, cache: "no-store" });
    if (!response.ok) throw await problemOf(response);
    return response;
  }

  // --- small helpers ------------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
    }
    node.append(...children);
    return node;
  }

  function showProblem(error) {
    const box = $("problem");
    box.replaceChildren();
    if (!error) {
      box.hidden = true;
      return;
    }
    const p = error.problem || { title: "Error", detail: String(error.message || error) };
    box.append(el("strong", { text: `${p.status ? p.status + " " : ""}${p.title || "Error"}` }));
    const listed = Array.isArray(p.errors) && p.errors.length > 0;
    // A validation problem's detail is its errors joined: listed below, not said twice.
    if (p.detail && !listed) box.append(": " + p.detail);
    if (p.retry) box.append(` (retry in ${p.retry} s)`);
    if (Array.isArray(p.errors) && p.errors.length) {
      box.append(el("ul", {}, ...p.errors.slice(0, 20).map((e) =>
        el("li", { text: [e.pointer || e.parameter || "", e.detail || ""].join(" ").trim() }))));
    }
    box.hidden = false;
  }

  /** Brings the problem box into view (it sits above the forms: off-screen on a phone) and
   *  moves the focus to it, so that it is seen and read. */
  function revealProblem() {
    const box = $("problem");
    if (box.hidden) return;
    box.scrollIntoView({ block: "nearest" });
    box.focus({ preventScroll: true });
  }

  async function busy(button, work) {
    // A disabled button loses the focus: give it back once it is enabled again, unless the
    // work moved it somewhere on purpose or a problem takes it.
    const focused = document.activeElement === button;
    button.disabled = true;
    showProblem(null);
    let failed = false;
    try {
      await work();
    } catch (error) {
      failed = true;
      showProblem(error);
    } finally {
      button.disabled = false;
      const lost = !document.activeElement || document.activeElement === document.body;
      if (failed) revealProblem();
      else if (focused && lost && button.isConnected) button.focus({ preventScroll: true });
    }
  }

  function age(iso) {
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (!Number.isFinite(seconds)) return "";
    if (seconds < 60) return `${Math.round(seconds)} s ago`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
    return `${Math.round(seconds / 86400)} d ago`;
  }

  function announce(text) {
    $("live").textContent = text;
  }

  // --- the API key --------------------------------------------------------------------------

  function showKeyState() {
    const key = apiKey();
    $("key-state").textContent = key
      ? "a key is set for this tab"
      : KEYS_ON ? "this service needs a key" : "keys are off on this service";
  }

  function mayCall() {
    return !KEYS_ON || apiKey() !== "";
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("api-key").value.trim();
    try {
      if (value) sessionStorage.setItem(KEY_STORE, value);
      else sessionStorage.removeItem(KEY_STORE);
    } catch {
      showProblem(new Error("this browser does not allow session storage: the key cannot be kept"));
    }
    $("api-key").value = "";
    resetJobs();
    showKeyState();
    start();
  });

  $("key-forget").addEventListener("click", () => {
    try {
      sessionStorage.removeItem(KEY_STORE);
    } catch {
      // nothing stored
    }
    resetJobs();
    showKeyState();
    start();
  });

  // --- examples and submissions -------------------------------------------------------------

  async function loadExamples() {
    const data = await (await api("ui/examples")).json();
    $("examples").replaceChildren(...data.items.map((example) => el("li", {},
      el("button", {
        type: "button", "data-example": example.name, "aria-pressed": "false",
        title: example.description, text: example.name,
        onclick: (event) => {
          $("spec").value = example.spec;
          for (const b of $("examples").querySelectorAll("button")) b.setAttribute("aria-pressed", "false");
          event.currentTarget.setAttribute("aria-pressed", "true");
          announce(`Example ${example.name} loaded into the spec`);
        },
      }))));
  }

  $("spec-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("spec-submit"), async () => {
      const text = $("spec").value;
      // JSON only when it parses as JSON: YAML's flow style ({input: {shape: [16]}}) opens
      // with a brace too.
      let type = "application/yaml";
      try {
        JSON.parse(text);
        type = "application/json";
      } catch {
        // not JSON: YAML (JSON is YAML too, but the API's JSON errors say where better)
      }
      const response = await api("v1/checks/architecture",
        { method: "POST", body: text, headers: { "Content-Type": type } });
      submitted(await response.json());
    });
  });

  $("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const button = event.currentTarget.querySelector("button[type=submit]");
    busy(button, async () => {
      const file = $("upload-file").files[0];
      if (!file) throw new Error("choose a file first");
      const form = new FormData();
      form.append("file", file, file.name);
      const path = MODEL_FILE.test(file.name) ? "v1/checks/model" : "v1/checks/logs";
      submitted(await (await api(path, { method: "POST", body: form })).json());
      $("upload-file").value = "";
    });
  });

  function submitted(job) {
    update(job);
    if (!state.order.includes(job.id)) state.order.unshift(job.id);
    render();
    announce(`Job ${job.id.slice(0, 8)} ${job.status}`);
    if (ACTIVE.has(job.status)) watch(job.id);
  }

  // --- the job list -------------------------------------------------------------------------

  function update(job) {
    const known = state.jobs.get(job.id) || {};
    state.jobs.set(job.id, { ...known, ...job });
    if (job.result && !state.details.has(job.id)) state.details.set(job.id, findingsOf(job.result));
    if (job.error && !(state.details.get(job.id) || {}).error) state.details.set(job.id, { error: job.error });
  }

  /** Fetches, once, the details of each of `jobs` that has some: its findings, or why it failed. */
  function loadMissingDetails(jobs) {
    for (const job of jobs) {
      const done = job.status === "succeeded" || job.status === "failed";
      if (done && !state.details.has(job.id)) loadDetails(job.id);
    }
  }

  function findingsOf(result) {
    const findings = (result && result.findings) || [];
    let worst = null;
    for (const f of findings) if (!worst || (RANK[f.severity] || 0) > (RANK[worst] || 0)) worst = f.severity;
    // judged false: a log too short to judge (the document's not_judged says why): "healthy" alone
    // would read as checked
    return { count: findings.length, worst, status: result && result.status,
      judged: !(result && result.judged === false), notJudged: result && result.not_judged };
  }

  async function refreshJobs() {
    if (!mayCall()) return;
    const asked = new Set(state.jobs.keys()); // the jobs known when the list was asked for
    try {
      const page = await (await api(`v1/jobs?limit=${PAGE}`)).json();
      const seen = new Set();
      for (const job of page.items) {
        seen.add(job.id);
        // A watched job's stream is fresher than the list only while the job is still active.
        const watched = state.streams.has(job.id) && ACTIVE.has(job.status);
        if (!watched) update(job);
      }
      // The older pages "Load older" brought stay, after the newest page.
      state.older = state.older.filter((id) => !seen.has(id) && state.jobs.has(id));
      if (!state.older.length) state.olderCursor = page.next_cursor || null;
      for (const id of state.older) seen.add(id);
      // A job submitted while the list was on its way is not in it: it stays, first.
      const newer = state.order.filter((id) => !asked.has(id) && !seen.has(id) && state.jobs.has(id));
      for (const id of newer) seen.add(id);
      state.order = [...newer, ...page.items.map((job) => job.id), ...state.older];
      for (const id of [...state.jobs.keys()]) if (!seen.has(id)) forget(id);
      render();
      loadMissingDetails(page.items);
    } catch (error) {
      showProblem(error);
    }
  }

  /** The next older page of jobs (the API's next_cursor), after those shown. */
  async function loadOlder() {
    if (!state.olderCursor) return;
    const page = await (await api(`v1/jobs?limit=${PAGE}&cursor=${encodeURIComponent(state.olderCursor)}`)).json();
    for (const job of page.items) {
      if (state.order.includes(job.id)) continue;
      update(job);
      state.older.push(job.id);
      state.order.push(job.id);
    }
    state.olderCursor = page.next_cursor || null;
    render();
    loadMissingDetails(page.items);
  }

  async function loadDetails(id) {
    state.details.set(id, null); // asked once
    try {
      const job = await (await api(`v1/jobs/${encodeURIComponent(id)}`)).json();
      state.details.set(id, job.status === "failed" ? { error: job.error || { title: "failed" } }
        : findingsOf(job.result));
      render();
    } catch (error) {
      state.details.delete(id);
      if (!(error.problem && error.problem.status === 404)) showProblem(error);
    }
  }

  function forget(id) {
    const stream = state.streams.get(id);
    if (stream) stream.close();
    state.streams.delete(id);
    state.jobs.delete(id);
    state.details.delete(id);
    const row = state.rows.get(id);
    if (row) row.tr.remove();
    state.rows.delete(id);
    state.order = state.order.filter((x) => x !== id);
    state.older = state.older.filter((x) => x !== id);
  }

  /** Another key, another caller: nothing of the previous one's stays on the page. */
  function resetJobs() {
    for (const id of [...state.jobs.keys()]) forget(id);
    state.olderCursor = null;
    render();
    runsSignature = "";
    $("runs").tBodies[0].replaceChildren();
    $("runs").hidden = true;
    $("runs-empty").hidden = false;
    closeReport();
  }

  function statusCell(job) {
    const cell = el("td", { "data-label": "Status" },
      el("span", { class: `status ${job.status}`, text: job.status }));
    if (ACTIVE.has(job.status)) {
      const fraction = (job.progress && job.progress.fraction) || 0;
      const stage = (job.progress && job.progress.stage) || "";
      cell.append(" ", el("progress", {
        max: "1", value: String(fraction), "aria-label": `progress of job ${job.id.slice(0, 8)}`,
      }), el("span", { class: "stage", text: `${Math.round(fraction * 100)}%${stage ? " " + stage : ""}` }));
    } else if (job.result_status) {
      const details = state.details.get(job.id);
      const unjudged = details && details.judged === false;
      cell.append(el("span", { class: "stage", "data-judged": String(!unjudged),
        text: `diagnosis: ${job.result_status}${unjudged ? " (not judged: too little data)" : ""}`,
        title: unjudged && details.notJudged ? details.notJudged : null }));
    }
    const error = job.status === "failed" && (state.details.get(job.id) || {}).error;
    if (error) {
      // why it failed: the problem's title and detail, as the API gives them
      cell.append(el("span", { class: "stage reason", "data-reason": "",
        text: [error.title, error.detail].filter(Boolean).join(": ") }));
    }
    return cell;
  }

  function findingsCell(job) {
    const details = state.details.get(job.id);
    if (job.status !== "succeeded" || !details) return el("td", { "data-label": "Findings", text: "-" });
    if (!details.count) return el("td", { "data-label": "Findings", class: "findings", text: "none" });
    return el("td", { "data-label": "Findings", class: "findings" },
      `${details.count} `, el("span", { class: `sev-${details.worst}`, text: `(worst: ${details.worst})` }));
  }

  function actionsCell(job) {
    const short = job.id.slice(0, 8);
    const buttons = [];
    if (job.status === "succeeded") {
      buttons.push(el("button", { type: "button", "data-action": "report", "aria-label": `Open the report of job ${short}`,
        text: "Report", onclick: (e) => busy(e.currentTarget, () => openReport(job.id)) }));
    }
    if (ACTIVE.has(job.status) && !state.streams.has(job.id)) {
      buttons.push(el("button", { type: "button", class: "secondary", "data-action": "watch",
        "aria-label": `Watch job ${short} live`, text: "Watch", onclick: () => watch(job.id, true) }));
    }
    const verb = ACTIVE.has(job.status) ? "Cancel" : "Delete";
    buttons.push(el("button", { type: "button", class: "secondary", "data-action": "delete",
      "aria-label": `${verb} job ${short}`, text: verb,
      onclick: (e) => busy(e.currentTarget, () => removeJob(job.id)) }));
    return el("td", { class: "actions" }, ...buttons);
  }

  function row(job) {
    return el("tr", { "data-job-id": job.id, "data-status": job.status },
      el("td", { "data-label": "Job" },
        // what it checked (the spec's name, the upload's file name), then its short id
        job.name ? el("span", { class: "job-name", "data-job-name": "", title: job.name, text: job.name }) : "",
        el("code", { title: job.id, text: job.id.slice(0, 8) })),
      el("td", { "data-label": "Kind", text: job.kind }),
      statusCell(job),
      el("td", { "data-label": "Age", "data-created": job.created_at, text: age(job.created_at) }),
      findingsCell(job),
      actionsCell(job));
  }

  function render() {
    const tbody = $("jobs").tBodies[0];
    let previous = null;
    for (const id of state.order) {
      const job = state.jobs.get(id);
      if (!job) continue;
      const details = state.details.get(id);
      const signature = JSON.stringify([job.status, job.progress, job.result_status, details,
        state.streams.has(id)]);
      let entry = state.rows.get(id);
      if (!entry || entry.signature !== signature) {
        const tr = row(job);
        if (entry) entry.tr.replaceWith(tr);
        entry = { tr, signature };
        state.rows.set(id, entry);
      }
      // keep the rows in the list's order (newest first)
      const want = previous ? previous.nextSibling : tbody.firstChild;
      if (want !== entry.tr) tbody.insertBefore(entry.tr, want);
      previous = entry.tr;
    }
    $("jobs-empty").hidden = state.order.length > 0;
    $("jobs").hidden = state.order.length === 0;
    $("jobs-older").hidden = !state.olderCursor;
    $("jobs-state").textContent = state.olderCursor ? `showing the newest ${state.order.length}` : "";
  }

  async function removeJob(id) {
    const response = await api(`v1/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
    if (response.status === 204) {
      forget(id);
      render();
      announce(`Job ${id.slice(0, 8)} deleted`);
    } else {
      update(await response.json()); // cancelled (200) or asked to stop (202)
      render();
    }
    if ($("report-section").dataset.job === id && response.status === 204) closeReport();
  }

  // --- live progress (Server-Sent Events) -----------------------------------------------------

  function onProgress(data) {
    update({ id: data.id, status: data.status, progress: data.progress, attempts: data.attempts });
    render();
    const p = data.progress || {};
    announce(`Job ${data.id.slice(0, 8)}: ${data.status} ${Math.round((p.fraction || 0) * 100)}% ${p.stage || ""}`);
  }

  function onDone(data) {
    state.streams.delete(data.id);
    if (data.status === "deleted") {
      forget(data.id);
    } else {
      update(data);
      announce(`Job ${data.id.slice(0, 8)} ${data.status}`);
      loadMissingDetails([data]);
    }
    render();
  }

  /** Watches a job: EventSource without a key; with one, fetch() and a streaming reader, since
   *  EventSource cannot send the key header (and the key must never go in the URL). */
  function watch(id, asked = false) {
    if (state.streams.has(id)) return;
    if (state.streams.size >= MAX_STREAMS) {
      if (asked) showProblem(new Error(`already watching ${MAX_STREAMS} jobs live; the others refresh every few seconds`));
      return;
    }
    const url = `v1/jobs/${encodeURIComponent(id)}/events`;
    if (!apiKey()) {
      const source = new EventSource(ROOT + url);
      source.addEventListener("progress", (e) => onProgress(JSON.parse(e.data)));
      source.addEventListener("done", (e) => {
        source.close();
        onDone(JSON.parse(e.data));
      });
      source.addEventListener("error", () => {
        // It reconnects by itself (with Last-Event-ID); closed for good, the list polling takes over.
        if (source.readyState === EventSource.CLOSED) {
          state.streams.delete(id);
          render();
        }
      });
      state.streams.set(id, { close: () => source.close() });
    } else {
      const control = new AbortController();
      state.streams.set(id, { close: () => control.abort() });
      streamEvents(url, control.signal)
        .catch((error) => {
          if (error.name !== "AbortError") showProblem(error);
        })
        .finally(() => {
          if (state.streams.get(id) && !control.signal.aborted) {
            state.streams.delete(id);
            render();
          }
        });
    }
    render();
  }

  async function streamEvents(url, signal) {
    let lastId = "";
    for (let attempt = 0; attempt < 20; attempt++) {
      const headers = { Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const response = await api(url, { headers, signal });
      if (response.status === 204) return; // the final event was seen: nothing more will come
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = { name: "message", data: [] };
          for (const line of block.split("\n")) {
            if (!line || line.startsWith(":")) continue;
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "id") lastId = text;
            else if (field === "event") event.name = text;
            else if (field === "data") event.data.push(text);
          }
          if (!event.data.length) continue;
          const data = JSON.parse(event.data.join("\n"));
          if (event.name === "progress") onProgress(data);
          if (event.name === "done") {
            onDone(data);
            return;
          }
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 1000)); // dropped: resume after lastId
    }
  }

  // --- the report ---------------------------------------------------------------------------

  /** The HTML report of a job, or of a live run (``run``: its name) in the same frame. */
  // A live run's report is of the points so far: refreshRuns() opens it again when the run's
  // version moves (newuser4 P13), quietly (no scroll), and says which step it shows.
  async function openReport(id, run, live = null) {
    const path = run === undefined ? "jobs" : "runs";
    let html;
    try {
      const response = await api(`v1/${path}/${encodeURIComponent(id)}/report?format=html`,
        { headers: { Accept: "text/html" } });
      html = await response.text();
    } catch (error) {
      // The report shown so far is another job's: it goes, so that it is not taken for this one.
      closeReport();
      throw error;
    }
    const section = $("report-section");
    if (run === undefined) {
      section.dataset.job = id;
      delete section.dataset.run;
      $("report-h").textContent = `Report of job ${id.slice(0, 8)}`;
    } else {
      section.dataset.run = id;
      delete section.dataset.job;
      $("report-h").textContent = `Report of live run ${run}`;
    }
    // A fresh frame, filled once it is shown: a frame loaded while hidden may stay unrendered
    // (Chromium throttles hidden cross-origin frames; a sandboxed frame is one).
    section.hidden = false;
    freshFrame().srcdoc = html; // sandboxed: the report's markup and styles, never a script
    if (state.reportUrl) URL.revokeObjectURL(state.reportUrl);
    state.reportUrl = URL.createObjectURL(new Blob([html], { type: "text/html" }));
    $("report-save").href = state.reportUrl;
    $("report-save").download = `gradhealth-${id}.html`;
    // The report's own address: with keys off a browser opens it as is (with keys on it needs
    // the key in a header, which a link cannot carry)
    $("report-link").hidden = KEYS_ON;
    $("report-link").href = new URL(`v1/${path}/${encodeURIComponent(id)}/report?format=html`, document.baseURI).href;
    const asof = $("report-asof");
    if (live) {
      section.dataset.version = String(live.version);
      asof.textContent = live.status === "active"
        ? `Live: as of step ${live.last_step ?? "-"} (${live.points} points), refreshed as the run trains`
        : `Finished at step ${live.last_step ?? "-"} (${live.points} points)`;
      asof.hidden = false;
    } else {
      delete section.dataset.version;
      asof.hidden = true;
    }
    section.hidden = false;
    if (!live || !live.quiet) section.scrollIntoView({ block: "start" });
  }

  function freshFrame() {
    const frame = $("report").cloneNode(false);
    frame.removeAttribute("srcdoc");
    $("report").replaceWith(frame);
    return frame;
  }

  function closeReport() {
    const section = $("report-section");
    section.hidden = true;
    delete section.dataset.job;
    delete section.dataset.run;
    delete section.dataset.version;
    freshFrame(); // the previous report's content goes with its frame
    if (state.reportUrl) URL.revokeObjectURL(state.reportUrl);
    state.reportUrl = null;
  }

  $("report-close").addEventListener("click", closeReport);
  $("jobs-refresh").addEventListener("click", (e) => busy(e.currentTarget, refreshJobs));
  $("jobs-older").addEventListener("click", (e) => busy(e.currentTarget, loadOlder));

  // --- live runs (polled: a run changes with every batch of points) ---------------------------

  let runsSignature = "";

  async function refreshRuns() {
    if (!mayCall()) return;
    let page;
    try {
      // Every active run first (one that trains for days outlives 20 newer ones: newuser4), then
      // the newest of the others
      const [active, newest] = await Promise.all([
        api("v1/runs?status=active&limit=100").then((r) => r.json()),
        api("v1/runs?limit=20").then((r) => r.json()),
      ]);
      const shown = new Set(active.items.map((run) => run.id));
      page = { items: [...active.items, ...newest.items.filter((run) => !shown.has(run.id))] };
    } catch (error) {
      if (error.problem && error.problem.status === 404) $("runs-section").hidden = true; // an older API
      else showProblem(error);
      return;
    }
    const signature = JSON.stringify(page.items);
    if (signature === runsSignature) return;
    runsSignature = signature;
    const section = $("report-section");
    const shown = section.hidden ? undefined : page.items.find((run) => run.id === section.dataset.run);
    if (shown && String(shown.version) !== section.dataset.version && shown.health) {
      // the open report is of an older version of this run: the new one, where the reader is
      openReport(shown.id, shown.name, { ...shown, quiet: true }).catch(showProblem);
    }
    const number = (x) => (x === null || x === undefined ? "-" : Number(x).toPrecision(3));
    $("runs").tBodies[0].replaceChildren(...page.items.map((run) => el("tr", { "data-run-id": run.id },
      el("td", { "data-label": "Run" }, el("span", { text: run.name }),
        el("span", { class: "stage", "data-created": run.created_at, text: age(run.created_at) })),
      // stale: active, but its process sent nothing for the service's stale time (crashed or stopped)
      el("td", { "data-label": "Status" }, el("span", {
        class: `status ${run.stale ? "stale" : run.status}`, text: run.stale ? "stale" : run.status,
        title: run.stale ? "active, but no new point for a while: its training process may have stopped" : "" })),
      el("td", { "data-label": "Points" }, el("span", {
        text: `${run.points}${run.last_step !== null ? ` (step ${run.last_step})` : ""}` }),
      // when it last stored a point: a dead run looks like a live one by its creation age alone
      run.status === "active" && run.points
        ? el("span", { class: "stage", "data-created": run.updated_at, "data-prefix": "last point ",
            text: `last point ${age(run.updated_at)}` })
        : ""),
      el("td", { "data-label": "Gradient norm", text: number(run.grad_norm) }),
      el("td", { "data-label": "Health" }, el("span", {
        class: run.health === "unhealthy" ? "sev-error" : run.health === "warning" ? "sev-warning" : "sev-none",
        text: run.health || "-" })),
      el("td", { "data-label": "Findings", text: run.finding_codes.join(", ") || "none" }),
      el("td", { class: "actions" },
        // A run's diagnosis so far (finished: of every point), its findings and charts
        run.health ? el("button", {
          type: "button", "data-action": "report", "aria-label": `Open the report of run ${run.name}`,
          text: "Report", onclick: (e) => busy(e.currentTarget, () => openReport(run.id, run.name, run)),
        }) : "",
        el("button", {
          type: "button", class: "secondary", "data-action": "delete", "aria-label": `Delete run ${run.name}`,
          text: "Delete",
          onclick: (e) => busy(e.currentTarget, async () => {
            // One misclick would end a live recording: the recorder's next batch gets 404
            const question = run.status === "active"
              ? `Delete the active run "${run.name}" and its ${run.points} points? It is still recording: `
                + "the training process's next batch will be refused (404): its recorder stops streaming "
                + "(training goes on, writing its local file) unless it was started with on_refused=\"raise\"."
              : `Delete the run "${run.name}" and its ${run.points} points?`;
            if (!window.confirm(question)) return;
            await api(`v1/runs/${encodeURIComponent(run.id)}`, { method: "DELETE" });
            if ($("report-section").dataset.run === run.id) closeReport();
            runsSignature = "";
            await refreshRuns();
          }),
        })))));
    $("runs-empty").hidden = page.items.length > 0;
    $("runs").hidden = page.items.length === 0;
  }

  // --- start --------------------------------------------------------------------------------

  async function start() {
    showKeyState();
    if (!mayCall()) {
      showProblem(new Error("this service needs an API key: enter it above (it is kept in this tab only)"));
      return;
    }
    showProblem(null);
    try {
      if (!$("examples").children.length) await loadExamples();
    } catch (error) {
      showProblem(error);
    }
    await refreshJobs();
    await refreshRuns();
    for (const id of state.order) {
      const job = state.jobs.get(id);
      if (job && ACTIVE.has(job.status)) watch(id);
    }
  }

  // Jobs not watched live: the list refreshes while any is active; ages tick.
  setInterval(() => {
    if (document.hidden || !mayCall()) return;
    const active = [...state.jobs.values()].some((j) => ACTIVE.has(j.status) && !state.streams.has(j.id));
    if (active) refreshJobs();
  }, 3000);
  setInterval(() => {
    if (!document.hidden) refreshRuns();
  }, 5000);
  setInterval(() => {
    for (const node of document.querySelectorAll("[data-created]")) node.textContent = (node.dataset.prefix || "") + age(node.dataset.created);
  }, 5000);

  start();
})();
