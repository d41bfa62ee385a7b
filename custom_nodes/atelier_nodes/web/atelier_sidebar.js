// SPDX-License-Identifier: Apache-2.0
// The "Atelier" sidebar: your LoRA Atelier LoRAs (trigger words, sample images, one click to insert a loader),
// your trainings with live progress, a new training from a folder of photos, and "register this workflow as a
// template". Every call goes to the pack's routes on ComfyUI's own server (/atelier/...), which add the API key
// and forward to the LoRA Atelier server: the browser never holds the key (see server_routes.py).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const TAB_ID = "atelier";
const LOADER = "AtelierRemoteLoraLoader";
const ACTIVE = new Set(["queued", "running"]);
const RETRY_MS = [1000, 2000, 5000, 10000];

// ---------------------------------------------------------------------------------------------------- helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value !== undefined && value !== null && value !== false) el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

async function call(path, options = {}) {
  if (typeof options.body === "string") options.headers = { "Content-Type": "application/json", ...options.headers };
  const response = await api.fetchApi(path, options);
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { detail: text };
  }
  if (!response.ok) {
    const reasons = (body?.errors || []).map((e) => `${e.field}: ${e.reason}`);
    const error = new Error(reasons.length ? reasons.join("\n") : body?.detail || body?.title || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

const atelier = (path) => `/atelier/api${path}`; // forwarded to the LoRA Atelier server

function say(el, text, kind = "info") {
  el.textContent = text;
  el.dataset.kind = kind;
}

// ---------------------------------------------------------------------------------------------------- sections

class Connection {
  constructor(onChange) {
    this.onChange = onChange;
    this.url = h("input", { type: "url", placeholder: "http://atelier-host:8000", "data-testid": "atelier-url" });
    this.key = h("input", { type: "password", placeholder: "API key (kept on the ComfyUI server)", "data-testid": "atelier-key" });
    this.status = h("div", { class: "atelier-status", "data-testid": "atelier-connection-status" });
    this.el = h("section", {},
      h("h4", {}, "Server"), this.url, this.key,
      h("button", { onclick: () => this.save(), "data-testid": "atelier-save-connection" }, "Save"), this.status);
  }

  show(state) {
    if (state.server_url) this.url.value = state.server_url;
    this.key.placeholder = state.key_set ? `key ${state.key_hint} set (${state.key_source}); type to replace` : "API key";
    if (!state.server_url) say(this.status, "Not connected: enter the server's address and your API key.", "warn");
    else if (state.reachable) say(this.status, `Connected to ${state.server_url}.`, "ok");
    else say(this.status, state.error, "error");
    this.connected = Boolean(state.reachable);
  }

  async load() {
    this.show(await call("/atelier/connection"));
    return this.connected;
  }

  async save() {
    const body = { server_url: this.url.value };
    if (this.key.value) body.api_key = this.key.value;
    try {
      this.show(await call("/atelier/connection", { method: "POST", body: JSON.stringify(body) }));
      this.key.value = "";
      this.onChange();
    } catch (error) {
      say(this.status, error.message, "error");
    }
  }
}

class Loras {
  constructor() {
    this.list = h("div", { "data-testid": "atelier-loras" });
    this.status = h("div", { class: "atelier-status" });
    this.el = h("section", {},
      h("h4", {}, "Your LoRAs ", h("button", { class: "atelier-small", onclick: () => this.load(true) }, "refresh")),
      this.status, this.list);
  }

  async load(refresh = false) {
    try {
      const [offered, registry] = await Promise.all([
        call(`/atelier/remote-loras${refresh ? "?refresh=1" : ""}`),
        call(atelier("/v1/loras?limit=200")).catch(() => ({ items: [] })),
      ]);
      const samples = new Map();
      for (const lora of registry.items) {
        for (const version of lora.versions) samples.set(`${lora.id}/${version.version}`, version.samples || []);
      }
      this.render(offered.items, samples);
      say(this.status, offered.error || (offered.items.length ? "" : "No LoRAs yet: train one below."), offered.error ? "error" : "info");
    } catch (error) {
      say(this.status, error.message, "error");
    }
  }

  render(items, samples) {
    this.list.replaceChildren(...items.map((item) => {
      const pictures = (samples.get(`${item.lora_id}/${item.version}`) || []).slice(-3).map((s) =>
        h("img", { src: api.apiURL(atelier(s.url)), title: s.prompt || "" }));
      return h("div", { class: "atelier-card", "data-testid": "atelier-lora", dataset: { entry: item.entry } },
        h("div", { class: "atelier-title" }, `${item.name || item.key} v${item.version}`),
        h("div", { class: "atelier-muted" }, item.subject || "", item.cached ? " · downloaded" : ""),
        item.trigger_word ? h("div", {}, "trigger: ", h("code", { "data-testid": "atelier-trigger" }, item.trigger_word)) : null,
        pictures.length ? h("div", { class: "atelier-samples" }, pictures) : null,
        h("button", { onclick: () => insertLoader(item.entry), "data-testid": "atelier-insert" }, "Insert loader"));
    }));
  }
}

function insertLoader(entry) {
  const node = window.LiteGraph.createNode(LOADER);
  const widget = node.widgets?.find((w) => w.name === "lora");
  if (widget) {
    if (widget.options?.values && !widget.options.values.includes(entry)) widget.options.values.push(entry);
    widget.value = entry;
  }
  const canvas = app.canvas;
  const [x, y] = [canvas.canvas.width / 2, canvas.canvas.height / 2].map((v, i) => v / canvas.ds.scale - canvas.ds.offset[i]);
  node.pos = [x - node.size[0] / 2, y - node.size[1] / 2];
  app.graph.add(node);
  canvas.selectNode(node);
  app.graph.setDirtyCanvas(true, true);
  return node;
}

class Trainings {
  constructor(onFinished) {
    this.onFinished = onFinished;
    this.rows = new Map(); // job id -> {row, bar, text, source, lastId, tries}
    this.list = h("div", { "data-testid": "atelier-trainings" });
    this.status = h("div", { class: "atelier-status" });
    this.el = h("section", {}, h("h4", {}, "Trainings"), this.status, this.list);
  }

  async load() {
    try {
      const page = await call(atelier("/v1/trainings?limit=20"));
      for (const training of page.items.slice().reverse()) this.show(training);
    } catch (error) {
      say(this.status, error.message, "error");
    }
  }

  show(training) {
    let entry = this.rows.get(training.id);
    if (!entry) {
      const bar = h("progress", { max: 100, value: 0 });
      const text = h("div", { class: "atelier-muted", "data-testid": "atelier-training-progress" });
      const row = h("div", { class: "atelier-card", "data-testid": "atelier-training", dataset: { id: training.id } },
        h("div", { class: "atelier-title" }, training.lora_name || training.payload?.lora_name || training.id.slice(0, 8)), bar, text);
      entry = { row, bar, text, lastId: 0, tries: 0, status: training.status, ids: [] };
      this.rows.set(training.id, entry);
      this.list.prepend(row);
    }
    entry.status = training.status;
    this.paint(entry, training.progress, training.status);
    if (ACTIVE.has(training.status)) this.follow(training.id);
  }

  paint(entry, progress, status) {
    entry.row.dataset.status = status;
    if (progress) entry.row.dataset.progressEvents = String(Number(entry.row.dataset.progressEvents || 0) + 1);
    if (progress && progress.percent !== undefined) entry.bar.value = progress.percent;
    if (status === "succeeded") entry.bar.value = 100;
    const step = progress && progress.total ? ` · ${progress.stage || "step"} ${progress.step}/${progress.total}` : "";
    const loss = progress && typeof progress.loss === "number" ? ` · loss ${progress.loss.toFixed(4)}` : "";
    entry.text.textContent = `${status}${ACTIVE.has(status) ? step + loss : ""}`;
  }

  // One EventSource per active training: /v1/jobs/{id}/events, resumed after a reconnect from the last event id
  // (the browser sends Last-Event-ID itself; after a closed stream we ask for ?after=<last id>).
  follow(jobId) {
    const entry = this.rows.get(jobId);
    if (!entry || entry.source) return;
    const source = new EventSource(api.apiURL(atelier(`/v1/jobs/${jobId}/events?after=${entry.lastId}`)));
    entry.source = source;
    const onEvent = (event) => {
      entry.lastId = Number(event.lastEventId) || entry.lastId;
      entry.ids.push(entry.lastId);
      entry.row.dataset.eventIds = entry.ids.join(","); // what arrived, in order: no gap, no repeat
      entry.tries = 0;
      const data = JSON.parse(event.data);
      if (event.type === "job.progress") this.paint(entry, data, "running");
      else if (event.type === "job.started") this.paint(entry, null, "running");
      else if (["job.succeeded", "job.failed", "job.cancelled"].includes(event.type)) {
        const status = event.type.slice(4);
        entry.status = status;
        this.paint(entry, null, status);
        if (data.error) entry.text.textContent += `: ${data.error.message}`;
        this.stop(entry);
        if (status === "succeeded") this.onFinished();
      }
    };
    const types = ["job.queued", "job.started", "job.progress", "job.artifact", "job.preview", "job.retrying",
      "job.succeeded", "job.failed", "job.cancelled"];
    for (const type of types) {
      source.addEventListener(type, onEvent);
    }
    source.onerror = () => {
      if (source.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
      this.stop(entry);
      if (!ACTIVE.has(entry.status)) return;
      const wait = RETRY_MS[Math.min(entry.tries++, RETRY_MS.length - 1)];
      entry.retry = setTimeout(() => this.follow(jobId), wait);
    };
  }

  // Drop the stream and open a new one from the last event received (what a lost connection ends in).
  reconnect(jobId) {
    const entry = this.rows.get(jobId);
    if (!entry) return;
    this.stop(entry);
    this.follow(jobId);
  }

  stop(entry) {
    entry.source?.close();
    entry.source = null;
    clearTimeout(entry.retry);
  }

  close() {
    for (const entry of this.rows.values()) this.stop(entry);
  }
}

class NewTraining {
  constructor(trainings) {
    this.trainings = trainings;
    const field = (label, input) => h("label", {}, label, input);
    this.name = h("input", { placeholder: "Ada", "data-testid": "atelier-subject-name" });
    this.kind = h("select", { "data-testid": "atelier-subject-kind" }, ["person", "style", "product", "character"].map((k) => h("option", { value: k }, k)));
    this.trigger = h("input", { placeholder: "ohwx_ada", "data-testid": "atelier-trigger-word" });
    this.confirmed = h("input", { type: "checkbox", "data-testid": "atelier-consent-confirmed" });
    this.adult = h("input", { type: "checkbox", "data-testid": "atelier-consent-adult" });
    this.statement = h("textarea", { rows: 2, placeholder: "How and when consent was given", "data-testid": "atelier-consent-statement" });
    this.photos = h("input", { type: "file", multiple: true, webkitdirectory: true, accept: "image/*", "data-testid": "atelier-photos" });
    this.base = h("select", { "data-testid": "atelier-base-model" });
    this.steps = h("input", { type: "number", min: 1, placeholder: "default", "data-testid": "atelier-steps" });
    this.status = h("div", { class: "atelier-status", "data-testid": "atelier-training-status" });
    this.el = h("section", {},
      h("h4", {}, "New training"),
      field("Subject", this.name), field("Kind", this.kind), field("Trigger word", this.trigger),
      h("fieldset", {}, h("legend", {}, "Consent (a person needs both)"),
        h("label", {}, this.confirmed, "The person agreed to a LoRA of their likeness"),
        h("label", {}, this.adult, "The person is an adult"), this.statement),
      field("Folder of photos", this.photos), field("Base model", this.base), field("Steps", this.steps),
      h("button", { onclick: () => this.start(), "data-testid": "atelier-start-training" }, "Start training"),
      this.status);
  }

  async load() {
    try {
      const models = await call(atelier("/v1/models"));
      this.base.replaceChildren(...models.checkpoints.map((c) => h("option", { value: c.name }, `${c.name}${c.family ? ` (${c.family})` : ""}`)));
    } catch (error) {
      say(this.status, error.message, "error");
    }
  }

  async start() {
    const files = [...this.photos.files].filter((f) => f.type.startsWith("image/"));
    if (!files.length) return say(this.status, "Pick a folder with photos first.", "error");
    try {
      say(this.status, "Creating the subject…");
      const subject = await call(atelier("/v1/subjects"), {
        method: "POST",
        body: JSON.stringify({
          name: this.name.value, kind: this.kind.value, trigger_word: this.trigger.value,
          consent: { confirmed: this.confirmed.checked, subject_is_adult: this.adult.checked, statement: this.statement.value || null },
        }),
      });
      say(this.status, `Uploading ${files.length} photos…`);
      const form = new FormData();
      for (const file of files) form.append("file", file, file.name);
      const upload = await call(atelier(`/v1/subjects/${subject.id}/photos`), { method: "POST", body: form });
      const refused = upload.verdicts.filter((v) => !v.accepted).map((v) => `${v.filename}: ${v.message}`);
      const body = { subject_id: subject.id, base_model: this.base.value };
      if (this.steps.value) body.steps = Number(this.steps.value);
      const accepted = await call(atelier("/v1/trainings"), { method: "POST", body: JSON.stringify(body) });
      say(this.status, `Training started with ${upload.accepted} photos.${refused.length ? ` Refused: ${refused.join("; ")}` : ""}`, "ok");
      this.trainings.show({ id: accepted.id, status: accepted.status || "queued", lora_name: this.name.value });
    } catch (error) {
      say(this.status, error.message, "error");
    }
  }
}

class Register {
  constructor() {
    this.name = h("input", { placeholder: "my-portrait", "data-testid": "atelier-template-name" });
    this.description = h("input", { placeholder: "What it makes", "data-testid": "atelier-template-description" });
    this.status = h("div", { class: "atelier-status", "data-testid": "atelier-register-status" });
    this.el = h("section", {}, h("h4", {}, "Register this workflow as a template"), this.name, this.description,
      h("button", { onclick: () => this.register(), "data-testid": "atelier-register" }, "Register"), this.status);
  }

  async register() {
    try {
      const { output } = await app.graphToPrompt();
      const body = { name: this.name.value, description: this.description.value, workflow: output };
      const summary = await call(atelier("/v1/templates"), { method: "POST", body: JSON.stringify(body) });
      const fields = Object.keys(summary.input_schema.properties || {});
      say(this.status, `Registered ${summary.name}: request fields ${fields.join(", ") || "(none)"}.`, "ok");
    } catch (error) {
      say(this.status, error.message, "error");
    }
  }
}

// ---------------------------------------------------------------------------------------------------- the tab

class Sidebar {
  mount(root) {
    this.loras = new Loras();
    this.trainings = new Trainings(() => this.loras.load(true));
    this.connection = new Connection(() => this.refresh());
    this.training = new NewTraining(this.trainings);
    this.register = new Register();
    root.replaceChildren(h("div", { class: "atelier-sidebar", "data-testid": "atelier-sidebar" },
      h("style", {}, STYLE), this.connection.el, this.loras.el, this.trainings.el, this.training.el, this.register.el));
    this.refresh();
  }

  async refresh() {
    if (await this.connection.load().catch(() => false)) {
      await Promise.all([this.loras.load(), this.trainings.load(), this.training.load()]);
    }
  }

  unmount() {
    this.trainings?.close();
  }
}

const STYLE = `
.atelier-sidebar { padding: 8px; display: flex; flex-direction: column; gap: 12px; font-size: 13px; overflow-y: auto; height: 100%; }
.atelier-sidebar section { display: flex; flex-direction: column; gap: 4px; }
.atelier-sidebar h4 { margin: 0; font-size: 13px; text-transform: uppercase; opacity: .8; }
.atelier-sidebar input:not([type=checkbox]), .atelier-sidebar select, .atelier-sidebar textarea { width: 100%; box-sizing: border-box; }
.atelier-sidebar label { display: flex; flex-direction: column; gap: 2px; }
.atelier-sidebar fieldset label { flex-direction: row; align-items: center; gap: 6px; }
.atelier-card { border: 1px solid var(--border-color, #444); border-radius: 6px; padding: 6px; display: flex; flex-direction: column; gap: 4px; }
.atelier-title { font-weight: 600; }
.atelier-muted { opacity: .7; }
.atelier-small { font-size: 11px; padding: 0 4px; }
.atelier-samples { display: flex; gap: 4px; }
.atelier-samples img { width: 56px; height: 56px; object-fit: cover; border-radius: 4px; }
.atelier-status[data-kind="error"] { color: #f66; white-space: pre-wrap; }
.atelier-status[data-kind="ok"] { color: #6c6; }
.atelier-sidebar progress { width: 100%; }
`;

const sidebar = new Sidebar();
window.atelierSidebar = sidebar; // for the browser console (and the engines test)

app.registerExtension({
  name: "atelier.sidebar",
  async setup() {
    if (!app.extensionManager?.registerSidebarTab) {
      console.warn("atelier_nodes: this ComfyUI frontend has no sidebar tabs (registerSidebarTab); the Atelier sidebar is off");
      return;
    }
    app.extensionManager.registerSidebarTab({
      id: TAB_ID,
      icon: "pi pi-palette",
      title: "Atelier",
      tooltip: "LoRA Atelier: your LoRAs, trainings and templates",
      type: "custom",
      render: (el) => sidebar.mount(el),
      destroy: () => sidebar.unmount(),
    });
  },
});
