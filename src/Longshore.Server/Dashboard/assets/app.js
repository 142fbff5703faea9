// Longshore dashboard: a dependency-free single page over the REST API.
// Every value from the server reaches the page through textContent (never as HTML).
"use strict";

const terminal = new Set(["TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED",
  "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"]);
const states = ["WAITING_ON_OFFERS", "TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_FINISHED",
  "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED", "TASK_GONE", "TASK_UNREACHABLE", "TASK_UNKNOWN"];
const main = () => document.getElementById("main");
let token = localStorage.getItem("longshore.token") || "";
let view = null;          // { render(fresh): Promise, dispose?() }; fresh() is false once a later render has begun
let generation = 0;
let refreshTimer = null;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token) headers.Authorization = "Bearer " + token;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) { askToken(); throw new ApiError(401, "an access token is needed"); }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (!response.ok) throw new ApiError(response.status, (body && body.error) || `${response.status} ${response.statusText}`);
  return body;
}

function askToken() {
  const dialog = document.getElementById("login");
  if (!dialog.open) dialog.showModal();
}

function stateBadge(state) { return h("span", { class: "state " + state }, state); }

function age(iso) {
  if (!iso) return "-";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.floor(s) + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m ago";
  if (s < 172800) return Math.floor(s / 3600) + "h ago";
  return Math.floor(s / 86400) + "d ago";
}

function showError(container, error) {
  container.replaceChildren(h("p", { class: "error", role: "alert" }, error.message || String(error)));
}

// ---- overview -------------------------------------------------------------------------------------------------

// The last hour per minute: launches and failures as bars, with a count axis, a time axis and a legend.
function chart(activity) {
  const ns = "http://www.w3.org/2000/svg";
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const left = 40, top = 8, width = 600, height = 110, bottom = top + height;
  const svg = el("svg", { class: "chart", viewBox: `0 0 ${left + width + 8} ${bottom + 40}`, role: "img" });
  const launches = activity.reduce((n, b) => n + b.launches, 0), failures = activity.reduce((n, b) => n + b.failures, 0);
  svg.setAttribute("aria-label", `Last hour: ${launches} launches, ${failures} failures`);
  const now = Math.floor(Date.now() / 60000);
  const max = Math.max(1, ...activity.map(b => b.launches), ...activity.map(b => b.failures));
  // Count axis: 0, half and the maximum, with faint grid lines.
  for (const value of [0, Math.round(max / 2), max]) {
    const y = bottom - value / max * height;
    svg.append(el("line", { class: "grid", x1: left, x2: left + width, y1: y, y2: y }));
    svg.append(el("text", { class: "axis", x: left - 6, y: y + 4, "text-anchor": "end" }, String(value)));
  }
  // Time axis: minutes ago.
  for (const ago of [60, 45, 30, 15, 0]) {
    const x = left + (60 - ago) * 10;
    svg.append(el("text", { class: "axis", x, y: bottom + 16, "text-anchor": ago === 0 ? "end" : "middle" }, ago === 0 ? "now" : `-${ago} min`));
  }
  for (const b of activity) {
    const minute = Math.floor(Date.parse(b.minute) / 60000), x = left + (59 - (now - minute)) * 10;
    if (x < left) continue;
    for (const [value, cls, dx] of [[b.launches, "launch", 0], [b.failures, "fail", 5]]) {
      if (!value) continue;
      const h = Math.max(2, value / max * height);
      const rect = el("rect", { x: x + dx, width: 4, y: bottom - h, height: h, class: cls });
      rect.append(el("title", {}, `${value} ${cls === "launch" ? "launches" : "failures"} at ${new Date(minute * 60000).toLocaleTimeString()}`));
      svg.append(rect);
    }
  }
  // Legend.
  const legend = [["launch", `launches (${launches})`], ["fail", `failures (${failures})`]];
  legend.forEach(([cls, label], i) => {
    const x = left + i * 160;
    svg.append(el("rect", { class: cls, x, y: bottom + 26, width: 10, height: 10 }));
    svg.append(el("text", { class: "axis legend", x: x + 14, y: bottom + 35 }, label));
  });
  return svg;
}

// A queue's recent runs, median seconds per step: waiting (recorded → staged), launch (→ running), run (→ ended).
function steps(stats) {
  const s = stats && stats.steps;
  if (!s || !s.sample) return "-";
  const t = v => v === null || v === undefined ? "-" : (v < 10 ? v.toFixed(1) : Math.round(v)) + "s";
  return `wait ${t(s.wait_seconds)} · launch ${t(s.launch_seconds)} · run ${t(s.run_seconds)}`;
}

const overview = {
  async render(fresh) {
    const [summary, jobs, queues] = await Promise.all([api("/api/summary"), api("/job/all"), api("/queues/").catch(() => null)]);
    const c = summary.counts;
    const card = (n, l) => h("div", { class: "card" }, h("div", { class: "n" }, n), h("div", { class: "l" }, l));
    const failed = ["TASK_FAILED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED", "TASK_GONE"].reduce((n, s) => n + (c[s] || 0), 0);
    const nodes = [
      h("h1", {}, "Overview"),
      h("div", { class: "cards" },
        card(c.TASK_RUNNING + c.TASK_STARTING + c.TASK_STAGING, "running"), card(c.WAITING_ON_OFFERS, "waiting"),
        card(c.TASK_FINISHED, "finished"), card(failed, "failed or lost"), card(c.TASK_KILLED, "killed"),
        card(jobs.filter(j => j.job_state !== "STOPPED").length, "active jobs")),
      h("h2", {}, "Launches and failures, last 60 minutes"),
      chart(summary.activity),
    ];
    const looping = jobs.flatMap(j => j.groups.filter(g => g.crash_loop).map(g => g.key));
    if (looping.length) nodes.push(h("p", { class: "error" }, "Crash-looping: " + looping.join(", ")));
    if (Array.isArray(queues) && queues.length) {
      nodes.push(h("h2", {}, "Queues"), queueTable(queues));
    }
    if (fresh()) main().replaceChildren(...nodes);
  },
};

// ---- tasks ----------------------------------------------------------------------------------------------------

function taskTable(runs) {
  return h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "Task"), h("th", {}, "State"), h("th", {}, "Exit"), h("th", { class: "opt" }, "Attempt"),
      h("th", { class: "opt" }, "Created"), h("th", { class: "opt" }, "Reason"))),
    h("tbody", {}, runs.map(r => h("tr", { "data-mesos-id": r.mesos_id },
      h("td", { class: "wrap" }, h("a", { href: "#/task/" + encodeURIComponent(r.mesos_id) }, r.mesos_id)),
      h("td", {}, stateBadge(r.mesos_state)), h("td", {}, r.exit_code ?? "-"), h("td", { class: "opt" }, r.attempt),
      h("td", { class: "opt" }, age(r.created_at)), h("td", { class: "opt wrap" }, r.reason || "")))));
}

function tasksView(params) {
  const cursors = [];     // the `after` of each earlier page, for Previous
  let after = null;
  return {
    async render(fresh) {
      const query = new URLSearchParams({ limit: "50" });
      if (params.get("state")) query.set("state", params.get("state"));
      if (params.get("id")) query.set("id", params.get("id"));
      if (after) query.set("after", after);
      const runs = await api("/tasks/?" + query);
      const stateSelect = h("select", { id: "f-state", name: "state" }, h("option", { value: "" }, "any state"),
        states.map(s => h("option", { value: s, selected: params.get("state") === s }, s)));
      const filters = h("form", { class: "filters", role: "search", onsubmit: e => {
        e.preventDefault();
        const next = new URLSearchParams();
        if (stateSelect.value) next.set("state", stateSelect.value);
        if (family.value.trim()) next.set("id", family.value.trim());
        location.hash = "#/tasks?" + next;
      } },
        h("div", {}, h("label", { for: "f-state" }, "State"), stateSelect),
        h("div", {}, h("label", { for: "f-id" }, "Task id (family)"), family = h("input", { id: "f-id", value: params.get("id") || "" })),
        h("button", { type: "submit" }, "Filter"));
      var family;
      const pager = h("div", { class: "row" },
        h("button", { class: "plain", disabled: cursors.length === 0, onclick: () => { after = cursors.pop() || null; render(); } }, "Previous"),
        h("button", { class: "plain", disabled: runs.length < 50, onclick: () => { cursors.push(after); after = runs[runs.length - 1].mesos_id; render(); } }, "Next"));
      if (fresh()) main().replaceChildren(h("h1", {}, "Tasks"), filters, runs.length ? taskTable(runs) : h("p", { class: "muted" }, "No tasks."), pager);
    },
  };
}

// ---- one task -------------------------------------------------------------------------------------------------

function taskView(mesosId) {
  let following = null;
  let logPre = null;
  return {
    async render(fresh) {
      const run = await api(`/tasks/${encodeURIComponent(mesosId)}/`);
      const attempts = [run];
      for (let prev = run.retry_of; prev && attempts.length < 50;) {
        const r = await api(`/tasks/${encodeURIComponent(prev)}/`).catch(() => null);
        if (!r) break;
        attempts.unshift(r); prev = r.retry_of;
      }
      for (let next = run.retried_as; next && attempts.length < 100;) {
        const r = await api(`/tasks/${encodeURIComponent(next)}/`).catch(() => null);
        if (!r) break;
        attempts.push(r); next = r.retried_as;
      }
      const field = (k, v) => [h("dt", {}, k), h("dd", {}, v ?? "-")];
      const killButton = h("button", { class: "danger", id: "kill", disabled: terminal.has(run.mesos_state), onclick: async () => {
        if (!confirm(`Kill ${mesosId}? It gets SIGTERM, then SIGKILL after the grace period, and is not retried.`)) return;
        killButton.disabled = true;
        try { await api(`/tasks/${encodeURIComponent(mesosId)}/kill/`, { method: "POST" }); await render(); }
        catch (e) { alert(e.message); killButton.disabled = false; }
      } }, "Kill task");
      if (!fresh()) return;   // an older answer must not draw over a newer one
      logPre = logPre || h("pre", { id: "log", "aria-live": "off", tabindex: "0" }, "");
      main().replaceChildren(
        h("h1", {}, "Task ", h("span", { class: "wrap" }, mesosId)),
        h("div", { class: "row" }, stateBadge(run.mesos_state), killButton),
        h("dl", { class: "fields" },
          field("family id", run.id), field("state", run.mesos_state), field("exit code", run.exit_code), field("reason", run.reason),
          field("attempt", run.attempt), field("image", run.container?.docker?.image), field("command", run.cmd),
          field("cpus / mem", `${run.cpus} / ${run.mem} MB`), field("host", run.mesos_agent),
          field("created", run.created_at), field("started", run.started_at), field("finished", run.finished_at),
          field("retries left", `task ${run.task_retries_remaining}, system ${run.system_retries_remaining}`)),
        h("h2", {}, "Attempts"),
        taskTable(attempts),
        h("h2", {}, "Output"),
        logPre,
        h("h2", {}, "Definition"),
        h("pre", {}, JSON.stringify({ id: run.id, container: run.container, cmd: run.cmd, env: run.env, mem: run.mem, cpus: run.cpus,
          constraints: run.constraints, task_retries: run.task_retries, system_retries: run.system_retries,
          max_concurrent: run.max_concurrent }, null, 2)));
      await showLogs(run, fresh);
    },
    dispose() { if (following) following.abort(); },
  };

  async function showLogs(run, fresh) {
    if (!terminal.has(run.mesos_state) && run.mesos_state !== "WAITING_ON_OFFERS") {
      if (following) return;        // already streaming
      following = new AbortController();
      logPre.textContent = "";
      try {
        const headers = token ? { Authorization: "Bearer " + token } : {};
        const response = await fetch(`/tasks/${encodeURIComponent(mesosId)}/logs/?follow=true`, { headers, signal: following.signal });
        const reader = response.body.getReader(), decoder = new TextDecoder();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          logPre.append(decoder.decode(value, { stream: true }));
          logPre.scrollTop = logPre.scrollHeight;
        }
      } catch (e) { if (e.name !== "AbortError") logPre.append("\n[log stream ended: " + e.message + "]"); }
      following = null;
      return;
    }
    if (following) return;
    const logs = await api(`/tasks/${encodeURIComponent(mesosId)}/logs/`);
    // A newer render may have started following the run meanwhile: this older, emptier answer must not erase it.
    if (following || !fresh()) return;
    logPre.textContent = (logs.truncated ? "[… earlier output dropped]\n" : "") + logs.stdout + (logs.stderr ? "\n--- stderr ---\n" + logs.stderr : "");
  }
}

// ---- jobs -----------------------------------------------------------------------------------------------------

const jobs = {
  async render(fresh) {
    const all = await api("/job/all");
    if (!fresh()) return;
    const create = h("textarea", { id: "job-json", "aria-label": "Job definition (JSON)", spellcheck: "false" },
      JSON.stringify({ id: "example", tasks: [{ cluster: "local", environment: "dev", role: "web",
        container: { image: "busybox", command: ["sleep", "600"] }, resources: { cpu: 0.1, memory: 32 }, replicas: 2 }] }, null, 2));
    const message = h("p", { role: "status" });
    main().replaceChildren(h("h1", {}, "Jobs"),
      all.length ? h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Job"), h("th", {}, "State"), h("th", {}, "Groups"), h("th", {}, "Actions"))),
        h("tbody", {}, all.map(job => h("tr", { "data-job": job.id },
          h("td", {}, job.id, h("div", { class: "muted" }, "generation " + job.generation)),
          h("td", {}, stateBadge(job.job_state)),
          h("td", {}, job.groups.map((g, i) => groupLine(job, g, i))),
          h("td", {}, job.job_state === "STOPPED" ? "" : h("button", { class: "danger", onclick: async () => {
            if (!confirm(`Stop job ${job.id}? Every replica is killed and none restarts.`)) return;
            await api(`/job/${encodeURIComponent(job.id)}`, { method: "DELETE" }).catch(e => alert(e.message));
            render();
          } }, "Stop")))))) : h("p", { class: "muted" }, "No jobs."),
      h("h2", {}, "Create a job"),
      create,
      h("div", { class: "row" }, h("button", { onclick: async () => {
        try { const job = JSON.parse(create.value); await api("/job/new", { method: "POST", body: JSON.stringify(job) }); message.textContent = "Created " + job.id; render(); }
        catch (e) { message.textContent = e.message; message.className = "error"; }
      } }, "Create job")),
      message);
  },
};

function groupLine(job, group, index) {
  const input = h("input", { type: "number", min: "0", max: "1000", value: group.replicas, "aria-label": `Replicas of ${group.key}`, class: "narrow" });
  return h("div", { class: "row" },
    h("span", {}, `${group.key}: ${group.running}/${group.replicas} running`),
    group.crash_loop ? h("span", { class: "state crash" }, "crash loop") : null,
    group.last_exit_codes.length ? h("span", { class: "muted" }, "exits " + group.last_exit_codes.join(" ")) : null,
    job.job_state === "STOPPED" ? null : input,
    job.job_state === "STOPPED" ? null : h("button", { class: "plain", onclick: async () => {
      const tasks = job.tasks.map((t, i) => i === index ? Object.assign({}, t, { replicas: Number(input.value) }) : t);
      await api(`/job/${encodeURIComponent(job.id)}`, { method: "PUT", body: JSON.stringify({ tasks }) }).catch(e => alert(e.message));
      render();
    } }, "Scale"));
}

// ---- queues ---------------------------------------------------------------------------------------------------

function queueTable(queues) {
  return h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "Queue"), h("th", { class: "opt" }, "Type"), h("th", {}, "Status"), h("th", { class: "opt" }, "Backlog"),
      h("th", { class: "opt" }, "Running"), h("th", { class: "opt" }, "Lag"), h("th", { class: "opt", title: "median of the last 100 runs" }, "Steps (median)"),
      h("th", { class: "opt" }, "Last error"), h("th", {}, ""))),
    h("tbody", {}, queues.map(q => {
      const block = q.queue || {};
      const enabled = block.status === "ENABLED";
      return h("tr", { "data-queue": q.id },
        h("td", { class: "wrap" }, h("a", { href: "#/tasks?id=" + encodeURIComponent(q.id) }, block.name || q.id)), h("td", { class: "opt" }, block.type || "-"),
        h("td", {}, stateBadge(block.status || "-")), h("td", { class: "opt" }, q.stats?.backlog ?? "-"), h("td", { class: "opt" }, q.stats?.running ?? "-"), h("td", { class: "opt" }, q.stats ? Math.round(q.stats.lag_seconds) + "s" : "-"),
        h("td", { class: "opt steps" }, steps(q.stats)), h("td", { class: "opt wrap" }, q.stats?.last_error || ""),
        h("td", {}, h("div", { class: "row" },
          h("button", { class: "plain", onclick: async () => {
            await api(`/queues/${encodeURIComponent(q.id)}/${enabled ? "disable" : "enable"}/`).catch(e => alert(e.message));
            render();
          } }, enabled ? "Disable" : "Enable"),
          h("button", { class: "plain", onclick: () => editQueue(q) }, "Edit"))));
    })));
}

// Edits the whole definition as JSON. Secrets arrive as *** and are kept as they are unless replaced.
function editQueue(queue) {
  generation++;   // a render still under way must not draw the list over the editor
  const definition = Object.assign({}, queue);
  delete definition.stats;
  const editor = h("textarea", { id: "queue-editor", "aria-label": `Definition of queue ${queue.id} (JSON)`, spellcheck: "false" }, JSON.stringify(definition, null, 2));
  const message = h("p", { role: "status" });
  main().replaceChildren(h("h1", {}, "Edit queue ", queue.id),
    h("p", { class: "muted" }, "Secret settings show as ***; leave them so to keep the stored value."),
    editor,
    h("div", { class: "row" },
      h("button", { onclick: async () => {
        try {
          await api(`/queues/${encodeURIComponent(queue.id)}/`, { method: "PUT", body: JSON.stringify(JSON.parse(editor.value)) });
          location.hash = "#/queues";
          route();
        } catch (e) { message.textContent = e.message; message.className = "error"; }
      } }, "Save"),
      h("button", { class: "plain", onclick: () => route() }, "Cancel")),
    message);
  editor.focus();
}

const queues = {
  async render(fresh) {
    let types, list;
    try { [types, list] = await Promise.all([api("/queuetypes/"), api("/queues/")]); }
    catch (e) {
      if (e.status === 404) { if (fresh()) main().replaceChildren(h("h1", {}, "Queues"), h("p", { class: "muted" }, "This server has no queue support.")); return; }
      throw e;
    }
    // Hippo's shape: a list of types, each with its inputs keyed by name ({input, label, default, required, secret}).
    const typeSelect = h("select", { id: "q-type", name: "type" }, types.map(t => h("option", { value: t.type || t.namespace }, t.label || t.namespace)));
    const typeOf = () => types.find(x => (x.type || x.namespace) === typeSelect.value) || { namespace: typeSelect.value, inputs: {} };
    const fields = h("div", {});
    const message = h("p", { role: "status" });
    const drawFields = () => {
      const t = typeOf();
      // An input left empty takes its default on the server, so the default is shown, not filled in.
      fields.replaceChildren(...Object.entries(t.inputs || {}).map(([name, i]) => h("div", {}, h("label", { for: "q-in-" + name }, i.label || name),
        h("input", { id: "q-in-" + name, "data-input": name, type: i.input === "password" || i.input === "number" ? i.input : "text",
          placeholder: i.default ?? "", required: i.required }))));
    };
    typeSelect.addEventListener("change", drawFields);
    drawFields();
    const name = h("input", { id: "q-name", required: true }), image = h("input", { id: "q-image", value: "busybox", required: true });
    const cmd = h("input", { id: "q-cmd", value: "echo $HIPPO_DATA" });
    const form = h("form", { id: "queue-form", onsubmit: async e => {
      e.preventDefault();
      const settings = {};
      for (const input of fields.querySelectorAll("[data-input]")) {
        if (input.value !== "") settings[input.dataset.input] = input.type === "number" ? Number(input.value) : input.value;
      }
      const body = { id: name.value, cmd: cmd.value, mem: 32, cpus: 0.1, container: { type: "DOCKER", docker: { image: image.value } },
        queue: { type: typeSelect.value, name: name.value, status: "ENABLED", [typeOf().namespace]: settings } };
      try { await api("/queues/", { method: "POST", body: JSON.stringify(body) }); message.textContent = "Created " + name.value; message.className = ""; render(); }
      catch (err) { message.textContent = err.message; message.className = "error"; }
    } },
      h("div", { class: "row" }, h("div", {}, h("label", { for: "q-name" }, "Name (task id)"), name),
        h("div", {}, h("label", { for: "q-type" }, "Type"), typeSelect),
        h("div", {}, h("label", { for: "q-image" }, "Image"), image), h("div", {}, h("label", { for: "q-cmd" }, "Command"), cmd)),
      fields, h("div", { class: "row" }, h("button", { type: "submit" }, "Create queue")), message);
    if (!fresh()) return;
    main().replaceChildren(h("h1", {}, "Queues"), list.length ? queueTable(list) : h("p", { class: "muted" }, "No queues."),
      h("h2", {}, "Create a queue"), form);
  },
};

// ---- routing and live updates ---------------------------------------------------------------------------------

// Renders overlap (live updates, clicks, route changes) and their answers can arrive out of order: each render gets
// a check that says whether it is still the newest, and draws only if so.
// A live update must not redraw a form someone is typing into: checked when it starts and again when it would draw
// (the answer may arrive after they started typing); it is redrawn once they leave the field.
function typing() {
  const active = document.activeElement;
  return Boolean(active && main().contains(active) && active.matches("input, textarea, select"));
}

async function render(live = false) {
  if (!view) return;
  const mine = ++generation;
  const fresh = () => {
    if (mine !== generation) return false;
    if (live && typing()) { refreshPending = true; return false; }
    return true;
  };
  try { await view.render(fresh); }
  catch (e) { if (e.status !== 401 && fresh()) showError(main(), e); }
}

function route() {
  if (view && view.dispose) view.dispose();
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query || "");
  const parts = (path || "/").split("/").filter(Boolean);
  let nav = "overview";
  if (parts[0] === "tasks") { view = tasksView(params); nav = "tasks"; }
  else if (parts[0] === "task" && parts[1]) { view = taskView(decodeURIComponent(parts[1])); nav = "tasks"; }
  else if (parts[0] === "jobs") { view = jobs; nav = "jobs"; }
  else if (parts[0] === "queues") { view = queues; nav = "queues"; }
  else view = overview;
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === nav) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  main().replaceChildren(h("p", { class: "muted" }, "Loading…"));
  render();
  main().focus();
}

let events = null;
function connect() {
  if (events) events.close();
  const live = document.getElementById("live");
  events = new EventSource("/api/events" + (token ? "?access_token=" + encodeURIComponent(token) : ""));
  events.addEventListener("open", () => { live.textContent = "live"; });
  events.addEventListener("error", () => { live.textContent = "reconnecting…"; });
  events.addEventListener("changed", () => {
    // Several changes in a burst cost one refresh.
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(liveRefresh, 250);
  });
}

// The engine's health from /healthz (no token needed): a banner says why the engine is unavailable, e.g. a Mesos
// master that refuses the framework's secret or role.
async function checkEngine() {
  const banner = document.getElementById("engine");
  try {
    const health = await (await fetch("/healthz")).json();
    const error = health && health.engine && health.engine.error;
    banner.textContent = error ? `Engine ${health.engine.name} unavailable: ${error}` : "";
    banner.hidden = !error;
  } catch { /* the server itself is away; the live indicator says so */ }
}

// A live update redraws the view; never while someone is typing into one of its fields, or their input would vanish.
let refreshPending = false;
function liveRefresh() {
  if (typing()) { refreshPending = true; return; }
  refreshPending = false;
  render(true);
}
document.addEventListener("focusout", () => {
  if (refreshPending) setTimeout(liveRefresh, 250);
});

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login-form").addEventListener("submit", () => {
    token = document.getElementById("token").value.trim();
    localStorage.setItem("longshore.token", token);
    connect();
    render();
  });
  window.addEventListener("hashchange", route);
  route();
  connect();
  checkEngine();
  setInterval(checkEngine, 10000);
});
