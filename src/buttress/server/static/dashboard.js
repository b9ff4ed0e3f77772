// buttress dashboard: one snapshot a second over the realtime WebSocket ("ops.snapshot"), job progress
// and breaker changes as they happen ("jobs.**", "resilience.**"). Plain DOM, no build step, no CDN.
// Until the socket is open the page polls the same snapshot over HTTP, so it shows something at once
// and keeps working where WebSockets are blocked.
"use strict";

const base = location.pathname.replace(/\/dashboard\/?$/, "");
const SNAPSHOT = "ops.snapshot";
const LIVE_TOPICS = ["jobs.**", "resilience.**"];  // events need a token; a reader follows the snapshot only
const TOKEN_KEY = "buttress.dashboard.token";
const POLL_MS = 2000;
const MAX_BACKOFF_MS = 30000;

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  socket: null,
  lastId: null,
  attempts: 0,
  live: false,
  pollTimer: null,
  reconnectTimer: null,
  adminActions: false,
  progress: new Map(),  // job id -> {progress, message} from its events, newer than the stored row
};

// -- small DOM helpers ------------------------------------------------------------------------------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function body(id) {
  return document.querySelector(`#${id} .body`);
}

function fill(id, ...children) {
  body(id).replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined));
}

function badge(text) {
  return el("span", { class: `badge state-${String(text).replace(/[^a-z_]/gi, "_")}` }, text);
}

function table(headers, rows) {
  if (!rows.length) return el("p", { class: "muted" }, "none");
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function num(value, digits = 0) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}

function percent(value) {
  return value === null || value === undefined ? "–" : `${num(value * 100, 1)} %`;
}

function bytes(value) {
  if (value === null || value === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let size = Number(value);
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) { size /= 1024; unit += 1; }
  return `${num(size, unit ? 1 : 0)} ${units[unit]}`;
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  if (value < 1) return `${num(value * 1000, 1)} ms`;
  if (value < 120) return `${num(value, 1)} s`;
  return `${num(value / 60, 1)} min`;
}

function bar(fraction, level) {
  const pct = Math.max(0, Math.min(100, Math.round((fraction || 0) * 100)));
  const fillNode = el("span");
  fillNode.style.width = `${pct}%`;  // CSSOM, not a style attribute: the CSP allows no inline styles
  return el("div", { class: `bar ${level || ""}`, role: "progressbar", "aria-valuemin": "0",
    "aria-valuemax": "100", "aria-valuenow": String(pct) }, fillNode);
}

function setBar(node, fraction) {
  const pct = Math.max(0, Math.min(100, Math.round((fraction || 0) * 100)));
  node.setAttribute("aria-valuenow", String(pct));
  node.firstElementChild.style.width = `${pct}%`;
}

function absent(id, what) {
  fill(id, el("p", { class: "muted" }, what));
}

function failed(id, section) {
  if (section && section.error) { fill(id, el("p", { class: "muted" }, `unavailable: ${section.error}`)); return true; }
  return false;
}

function notice(text) {
  document.getElementById("notice").textContent = text;
}

// -- panels -----------------------------------------------------------------------------------------

function renderHealth(health) {
  if (failed("health", health)) return;
  const checks = Object.entries(health.checks || {}).map(([name, entries]) => {
    const entry = entries[0] || {};
    return el("tr", {}, el("td", {}, name), el("td", {}, badge(entry.status)),
      el("td", { class: "muted" }, entry.output || ""));
  });
  fill("health", el("p", {}, "Overall ", badge(health.status), " ", health.output || ""),
    table(["check", "status", "output"], checks));
}

function renderSystem(system) {
  if (failed("system", system)) return;
  const latest = system.latest;
  if (!latest) { absent("system", "no sample yet"); return; }
  const memoryLevel = latest.memory_percent >= system.thresholds.memory_fail ? "fail"
    : latest.memory_percent >= system.thresholds.memory_warn ? "warn" : "";
  const rows = [
    el("tr", {}, el("td", {}, "host CPU"), el("td", {}, bar(latest.system_cpu_percent / 100)),
      el("td", { class: "num" }, `${num(latest.system_cpu_percent, 1)} %`)),
    el("tr", {}, el("td", {}, "process CPU"), el("td", {}, bar(latest.process_cpu_percent / 100)),
      el("td", { class: "num" }, `${num(latest.process_cpu_percent, 1)} %`)),
    el("tr", {}, el("td", {}, "host memory"), el("td", {}, bar(latest.memory_percent / 100, memoryLevel)),
      el("td", { class: "num" }, `${num(latest.memory_percent, 1)} %`)),
    el("tr", {}, el("td", {}, "process RSS"), el("td", {}), el("td", { class: "num" }, bytes(latest.process_rss_bytes))),
  ];
  for (const disk of latest.disks || []) {
    rows.push(el("tr", {}, el("td", {}, `disk ${disk.path}`), el("td", {}, bar((disk.used_percent || 0) / 100)),
      el("td", { class: "num" }, `${num(disk.used_percent, 1)} %`)));
  }
  fill("system", table(["", "", ""], rows));
}

function breakerRow(row) {
  return el("tr", { dataset: { breaker: row.name } },
    el("td", {}, row.name), el("td", { class: "state" }, badge(row.state)),
    el("td", { class: "num" }, percent(row.failure_rate)), el("td", { class: "num" }, num(row.calls)),
    el("td", { class: "num" }, row.retry_after === null ? "–" : seconds(row.retry_after)));
}

function renderBreakers(rows) {
  if (failed("breakers", rows)) return;
  if (!rows.length) { absent("breakers", "no circuit breakers in this process"); return; }
  fill("breakers", table(["name", "state", "failures", "calls", "retry in"], rows.map(breakerRow)));
}

function breakerChanged(data) {
  // resilience.breaker.<what> carries {key, from, to}: show the new state before the next snapshot.
  if (!data || !data.key || !data.to) return;
  const row = document.querySelector(`#breakers tr[data-breaker="${CSS.escape(data.key)}"]`);
  if (row) row.querySelector(".state").replaceChildren(badge(data.to));
}

function renderLimiters(limiters) {
  if (failed("limiters", limiters)) return;
  if (!limiters.rows.length) { absent("limiters", "no rate limiters in this process"); return; }
  const rows = limiters.rows.map((row) => el("tr", {}, el("td", {}, row.name), el("td", {}, row.key),
    el("td", {}, row.rate), el("td", { class: "num" }, `${num(row.available, 1)} / ${row.burst}`),
    el("td", { class: "num" }, num(row.rejected))));
  const more = limiters.total > limiters.rows.length ? el("p", { class: "muted" }, `${limiters.total} keys in all`) : null;
  fill("limiters", table(["limiter", "key", "rate", "tokens", "rejected"], rows), more);
}

function renderCache(cache) {
  if (failed("cache", cache)) return;
  const rows = cache.namespaces.map((ns) => el("tr", {}, el("td", {}, ns.namespace),
    el("td", {}, bar(ns.hit_rate || 0)), el("td", { class: "num" }, percent(ns.hit_rate)),
    el("td", { class: "num" }, num(ns.hits)), el("td", { class: "num" }, num(ns.misses))));
  const tips = (cache.recommendations || []).map((tip) => el("li", {}, tip.message));
  fill("cache", el("p", { class: "muted" }, `backend: ${cache.backend.name}${cache.backend.available ? "" : " (unavailable)"}`),
    table(["namespace", "hit rate", "", "hits", "misses"], rows), tips.length ? el("ul", {}, tips) : null);
}

function renderStorage(storage) {
  if (failed("storage", storage)) return;
  if (!storage.available) { absent("storage", "files are not in use in this process"); return; }
  const quota = storage.quota;
  const used = quota.quota ? quota.used / quota.quota : 0;
  fill("storage", table(["", ""], [
    el("tr", {}, el("td", {}, "stored"), el("td", { class: "num" }, `${num(storage.stored.files)} files, ${bytes(storage.stored.bytes)}`)),
    el("tr", {}, el("td", {}, "archived"), el("td", { class: "num" }, `${num(storage.archived.files)} files, ${bytes(storage.archived.bytes)}`)),
    el("tr", {}, el("td", {}, "saves in flight"), el("td", { class: "num" }, num(storage.in_flight))),
    el("tr", {}, el("td", {}, "quota"), el("td", {}, quota.quota ? bar(used, used > 0.9 ? "fail" : used > 0.75 ? "warn" : "") : "none",
      `${bytes(quota.used)}${quota.quota ? ` of ${bytes(quota.quota)}` : ""}`)),
  ]));
}

function renderQueues(jobs) {
  if (failed("queues", jobs)) return;
  if (!jobs.available) { absent("queues", "jobs are not in use in this process"); return; }
  const rows = Object.entries(jobs.queues).map(([name, queue]) => el("tr", { dataset: { queue: name } },
    el("td", {}, name), el("td", { class: "num" }, num(queue.depth)), el("td", { class: "num" }, seconds(queue.oldest_seconds)),
    el("td", { class: "num" }, num(queue.counts.running || 0)), el("td", { class: "num" }, num(queue.stalled)),
    el("td", { class: "num" }, num((queue.counts.failed || 0) + (queue.counts.dead || 0)))));
  const workers = jobs.workers.length ? `${jobs.workers.length} worker(s): ${jobs.workers.map((w) => `${w.host}:${w.pid}`).join(", ")}` : "no live workers";
  fill("queues", table(["queue", "depth", "oldest", "running", "stalled", "failed/dead"], rows), el("p", { class: "muted" }, workers));
}

const CANCELLABLE = new Set(["queued", "scheduled", "retrying", "running"]);
const RETRYABLE = new Set(["failed", "cancelled", "dead"]);

function jobActions(job) {
  if (!state.adminActions) return el("td", { class: "actions" });
  const cell = el("td", { class: "actions" });
  if (CANCELLABLE.has(job.status)) cell.append(el("button", { type: "button", "data-action": "cancel", onclick: () => act(job.id, "cancel") }, "Cancel"));
  if (RETRYABLE.has(job.status)) cell.append(el("button", { type: "button", "data-action": "retry", onclick: () => act(job.id, "retry") }, "Retry"));
  return cell;
}

function jobRow(job) {
  const live = (job.status === "running" && state.progress.get(job.id)) || {};
  const progress = job.status === "succeeded" ? 1 : Math.max(job.progress || 0, live.progress || 0);
  const message = (live.progress || 0) > (job.progress || 0) ? live.message : job.message;
  return el("tr", { dataset: { job: String(job.id), status: job.status } },
    el("td", { class: "num" }, job.id), el("td", {}, job.task), el("td", {}, job.queue),
    el("td", { class: "status" }, badge(job.status)), el("td", {}, bar(progress)),
    el("td", { class: "message muted" }, message || (job.error || "")),
    el("td", { class: "num" }, `${job.attempts}/${job.max_attempts}`), jobActions(job));
}

function renderJobs(jobs) {
  if (failed("jobs", jobs)) return;
  if (!jobs.available) { absent("jobs", "jobs are not in use in this process"); return; }
  const all = [...jobs.active, ...jobs.ended];
  const running = new Set(jobs.active.filter((job) => job.status === "running").map((job) => job.id));
  for (const id of state.progress.keys()) if (!running.has(id)) state.progress.delete(id);
  fill("jobs", table(["id", "task", "queue", "status", "progress", "message", "attempts", ""], all.map(jobRow)));
}

function jobRowOf(id) {
  return document.querySelector(`#jobs tr[data-job="${CSS.escape(String(id))}"]`);
}

function jobProgress(data) {
  state.progress.set(data.job_id, { progress: data.progress, message: data.message });
  const row = jobRowOf(data.job_id);
  if (!row) return;
  setBar(row.querySelector(".bar"), data.progress);
  if (data.message) row.querySelector(".message").textContent = data.message;
}

function jobStatus(data) {
  const row = jobRowOf(data.job_id);
  if (!row) return;
  row.dataset.status = data.status;
  row.querySelector(".status").replaceChildren(badge(data.status));
  if (data.status === "succeeded") setBar(row.querySelector(".bar"), 1);
  row.querySelector(".actions").replaceWith(jobActions({ id: data.job_id, status: data.status }));
}

async function act(id, action) {
  try {
    const response = await fetch(`${base}/jobs/${id}/${action}`, { method: "POST", headers: authHeaders() });
    const answer = await response.json().catch(() => ({}));
    if (response.ok) {
      notice(`job ${id}: ${action} → ${answer.status}`);
      if (answer.status) jobStatus({ job_id: id, status: answer.status });
    } else {
      notice(`job ${id}: ${action} refused (${response.status}) ${answer.detail || answer.title || ""}`);
    }
  } catch (error) {
    notice(`job ${id}: ${action} failed: ${error}`);
  }
}

function statementRows(rows, slow) {
  return rows.map((row) => el("tr", {},
    el("td", {}, el("code", {}, row.sql)),
    slow ? el("td", { class: "num" }, seconds(row.seconds)) : el("td", { class: "num" }, num(row.calls)),
    slow ? el("td", { class: "muted" }, row.site || "") : el("td", { class: "num" }, seconds(row.total_seconds)),
    slow ? el("td", {}, row.failed ? badge("failed") : "") : el("td", { class: "num" }, seconds(row.p95_seconds))));
}

function renderDb(db) {
  for (const id of ["statements", "slow"]) {
    if (failed(id, db)) continue;
    if (!db.available) { absent(id, "no database in use in this process"); continue; }
    if (id === "statements") fill(id, table(["statement", "calls", "total", "p95"], statementRows(db.statements, false)));
    else fill(id, table(["statement", "took", "where", ""], statementRows(db.slow, true)));
  }
}

function renderErrors(errors) {
  if (failed("errors", errors)) return;
  if (!errors.groups.length) { absent("errors", "no errors recorded"); return; }
  const rows = errors.groups.map((group) => el("tr", {}, el("td", {}, group.type), el("td", {}, group.origin || ""),
    el("td", { class: "num" }, num(group.count)), el("td", {}, new Date(group.last_seen * 1000).toLocaleTimeString()),
    el("td", {}, el("code", {}, group.message || ""))));
  const hidden = errors.details ? null : el("p", { class: "muted" }, "messages and tracebacks need an admin token");
  fill("errors", table(["type", "origin", "count", "last", "message"], rows), hidden);
}

function render(snapshot) {
  state.adminActions = Boolean(snapshot.admin_actions);
  document.getElementById("service").textContent = `${snapshot.info.name} · ${snapshot.info.environment} · ${snapshot.info.version}`;
  document.getElementById("role").textContent = snapshot.admin ? "admin" : "reader";
  const panels = [
    () => renderHealth(snapshot.health), () => renderSystem(snapshot.system), () => renderBreakers(snapshot.breakers),
    () => renderLimiters(snapshot.limiters), () => renderCache(snapshot.cache), () => renderStorage(snapshot.storage),
    () => renderQueues(snapshot.jobs), () => renderJobs(snapshot.jobs), () => renderDb(snapshot.db),
    () => renderErrors(snapshot.errors),
  ];
  for (const panel of panels) {
    try { panel(); } catch (error) { console.warn("dashboard panel failed", error); }
  }
  document.body.dataset.loaded = "true";
  document.getElementById("updated").textContent = `updated ${new Date(snapshot.time * 1000).toLocaleTimeString()}`;
}

// -- transport --------------------------------------------------------------------------------------

function authHeaders() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

function setConnection(text, css) {
  const node = document.getElementById("connection");
  node.textContent = text;
  node.className = `badge state-${css}`;
  node.dataset.state = text;
}

async function poll() {
  try {
    const response = await fetch(`${base}/dashboard/snapshot`, { headers: authHeaders(), cache: "no-store" });
    if (response.status === 401) { notice("the token was refused; showing reader data"); forgetToken(false); return; }
    if (response.ok) render(await response.json());
  } catch (error) {
    setConnection("offline", "closed-connection");
  }
}

function startPolling() {
  if (state.pollTimer === null) state.pollTimer = setInterval(poll, POLL_MS);
}

function stopPolling() {
  if (state.pollTimer !== null) { clearInterval(state.pollTimer); state.pollTimer = null; }
}

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const topics = state.token ? [SNAPSHOT, ...LIVE_TOPICS] : [SNAPSHOT];
  const query = topics.map((topic) => `topics=${encodeURIComponent(topic)}`);
  if (state.lastId) query.push(`last_id=${encodeURIComponent(state.lastId)}`);
  return `${scheme}//${location.host}${base}/realtime/ws?${query.join("&")}`;
}

function handle(message) {
  switch (message.type) {
    case "welcome":
      state.attempts = 0;
      state.live = true;
      stopPolling();
      setConnection("live", "open-connection");
      break;
    case "event":
      if (message.id) state.lastId = message.id;
      if (message.topic === SNAPSHOT) render(message.data);
      else if (message.topic.startsWith("jobs.") && message.topic.endsWith(".progress")) jobProgress(message.data);
      else if (message.topic.startsWith("jobs.") && message.topic.endsWith(".status")) jobStatus(message.data);
      else if (message.topic.startsWith("resilience.breaker.")) breakerChanged(message.data);
      break;
    case "ping":
      send({ type: "pong" });
      break;
    case "gap":
      state.lastId = message.last_id || state.lastId;  // some events were dropped; the next snapshot covers them
      break;
    case "reset":
      state.lastId = null;  // the history we knew is gone (new epoch or past retention)
      break;
    case "error":
      notice(`realtime: ${message.code}: ${message.message || ""}`);
      break;
    default:
      break;
  }
}

function send(message) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(message));
}

function connect() {
  clearTimeout(state.reconnectTimer);
  const protocols = ["buttress.v1"];
  if (state.token) protocols.push(`bearer.${state.token}`);
  setConnection("connecting", "connecting");
  let socket;
  try {
    socket = new WebSocket(socketUrl(), protocols);
  } catch (error) {
    scheduleReconnect();
    return;
  }
  state.socket = socket;
  socket.onmessage = (event) => {
    for (const line of String(event.data).split("\n")) {
      if (!line.trim()) continue;
      try { handle(JSON.parse(line)); } catch (error) { console.warn("dashboard: bad message", error); }
    }
  };
  socket.onclose = (event) => {
    if (state.socket !== socket) return;  // replaced by a newer connection
    state.live = false;
    state.socket = null;
    if (event.code === 1008 && state.token) notice("the realtime server refused the token");
    setConnection("reconnecting", "closed-connection");
    startPolling();
    scheduleReconnect();
  };
}

function scheduleReconnect() {
  const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** state.attempts) * (0.75 + Math.random() / 2);
  state.attempts += 1;
  state.reconnectTimer = setTimeout(connect, delay);
}

function reconnectNow() {
  const old = state.socket;
  state.socket = null;
  state.attempts = 0;
  if (old) old.close(1000);
  poll();
  connect();
}

function forgetToken(reconnect = true) {
  state.token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  document.getElementById("token").value = "";
  if (reconnect) reconnectNow();
}

document.getElementById("auth").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = document.getElementById("token").value.trim();
  if (state.token) sessionStorage.setItem(TOKEN_KEY, state.token);
  else sessionStorage.removeItem(TOKEN_KEY);
  reconnectNow();
});
document.getElementById("forget").addEventListener("click", () => forgetToken());

startPolling();
poll();
connect();
