// The openveo playground: the native job API (/v1/jobs) driven from a page, with the visitor's key.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "openveo.apiKey";
const WORDS = { queued: "Queued", running: "Generating", succeeded: "Done", failed: "Failed",
                canceled: "Canceled", expired: "Expired" };
const state = { key: "", models: [], loras: [], job: null, stream: null };

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const headers = { "x-api-key": state.key, ...(options.body ? { "content-type": "application/json" } : {}) };
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) throw await apiError(response);
  return response.json();
}

async function apiError(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    message = typeof body.error === "string" ? body.error : body.error?.message || message;
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(response.status, message);
}

function explain(error) {
  if (!(error instanceof ApiError)) return `Could not reach the server: ${error.message}`;
  const lead = { 401: "That key was not accepted", 406: "Not enough credits", 422: "Please check the form",
                 429: "Too many requests" }[error.status];
  return lead ? `${lead}: ${error.message}` : error.message;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

// ---- key, credits, models --------------------------------------------------------------------

async function useKey(key) {
  state.key = key.trim();
  showError("");
  try {
    const [credits, models, loras] = await Promise.all(
      [api("/v1/get-user-credits"), api("/v1/models"), api("/v1/loras")]);
    localStorage.setItem(KEY_STORE, state.key);
    showCredits(credits.credits);
    state.models = models.data;
    state.loras = loras.data;
    fillModels();
    $("history-panel").hidden = false;
    await loadHistory();
  } catch (error) {
    showError(explain(error));
  }
}

function showCredits(credits) {
  $("credits").textContent = `${credits} credits`;
  $("credits").dataset.credits = credits;
}

async function refreshCredits() {
  try { showCredits((await api("/v1/get-user-credits")).credits); } catch { /* shown on the next action */ }
}

function options(select, values, labels = values) {
  const previous = select.value;
  select.replaceChildren(...values.map((value, i) => new Option(labels[i], value)));
  if (values.map(String).includes(previous)) select.value = previous;
}

function currentModel() {
  return state.models.find((m) => m.id === $("model").value) || state.models[0];
}

function fillModels() {
  const labels = state.models.map((m) => (m.test_model ? `${m.id} (test model)` : m.id));
  options($("model"), state.models.map((m) => m.id), labels);
  const preferred = state.models.find((m) => m.default);
  if (preferred && !$("model").dataset.touched) $("model").value = preferred.id;
  fillModelChoices();
}

function fillModelChoices() {
  const model = currentModel();
  if (!model) return;
  options($("duration"), model.durations.map(String), model.durations.map((d) => `${d} s`));
  if (!$("duration").dataset.touched) $("duration").value = String(model.default_duration);
  const ratios = Object.keys(model.aspect_ratios);
  options($("aspect-ratio"), ratios, ratios.map((r) => `${r} (${model.aspect_ratios[r]})`));
  // The operator's adapters that fit this model (GET /v1/loras); the row hides when there are none.
  const fitting = state.loras.filter((l) => l.models.includes(model.id)).map((l) => l.name);
  options($("lora"), ["", ...fitting], ["none", ...fitting.map((n) => n)]);
  $("lora-row").hidden = fitting.length === 0;
  // The images this model takes (GET /v1/models: capabilities, and what it requires).
  const fields = { "first-frame": "first_frame", "last-frame": "last_frame", references: "reference_images" };
  for (const [id, capability] of Object.entries(fields)) {
    $(`${id}-field`).hidden = !model.capabilities.includes(capability);
  }
  $("first-frame-need").textContent = model.requires.includes("first_frame") ? "(required)" : "(optional)";
  $("last-frame-need").textContent =
    model.requires.includes("last_frame") ? "(required)" : "(optional, after a first)";
  $("media-row").hidden = Object.keys(fields).every((id) => $(`${id}-field`).hidden);
  showPrice();
}

// An uploaded file as a data URL, which the job API takes wherever it takes an image.
function dataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// The first served model that extends videos (capability "extend"), for the result's Extend button.
function extender() {
  return state.models.find((m) => m.capabilities.includes("extend"));
}

function showPrice() {
  const model = currentModel();
  if (!model) return;
  const lora = state.loras.find((l) => l.name === $("lora").value);
  const perSecond = model.price_per_second + (lora ? lora.price_per_second : 0);
  const cost = perSecond * Number($("duration").value || model.default_duration);
  $("price").textContent = `${+cost.toFixed(6)} credits`;
}

// ---- one job -----------------------------------------------------------------------------------

async function formRequest() {
  const body = { prompt: $("prompt").value, model: $("model").value,
                 duration_s: Number($("duration").value), aspect_ratio: $("aspect-ratio").value };
  const negative = $("negative-prompt").value.trim();
  if (negative) body.negative_prompt = negative;
  if ($("seed").value !== "") body.seed = Number($("seed").value);
  if ($("lora").value) body.loras = [{ name: $("lora").value, scale: Number($("lora-scale").value) }];
  // Only the images the chosen model takes (their fields are hidden otherwise).
  const [first] = $("first-frame-field").hidden ? [] : $("first-frame").files;
  const [last] = $("last-frame-field").hidden ? [] : $("last-frame").files;
  const references = $("references-field").hidden ? [] : [...$("references").files];
  if (first) body.image = await dataUrl(first);
  if (last) body.last_image = await dataUrl(last);
  if (references.length) body.reference_images = await Promise.all(references.map(dataUrl));
  return body;
}

async function generate(event) {
  event.preventDefault();
  await submit(formRequest);
}

// One click on a finished video: the same video with the most seconds the extending model adds,
// continuing from its last frames (the prompt box, or the video's own prompt, says what happens).
async function extend() {
  const shown = $("result-video").dataset;  // the video on screen, not the job being followed
  const model = extender();
  if (!shown.jobId || !model) return;
  await submit(async () => ({ prompt: $("prompt").value.trim() || shown.prompt, model: model.id,
                              source_video: { id: shown.jobId } }));
}

async function submit(buildBody) {
  if (!state.key) return showError("Enter an API key first.");
  showError("");
  $("generate").disabled = $("extend").disabled = true;
  try {
    const job = await api("/v1/jobs", { method: "POST", body: JSON.stringify(await buildBody()) });
    $("result-panel").hidden = true;
    showJob(job);
    refreshCredits();
    loadHistory();
    await follow(job.id);
  } catch (error) {
    if (error.name !== "AbortError") showError(explain(error));
  } finally {
    $("generate").disabled = $("extend").disabled = false;
  }
}

// Follow a job until it ends, reconnecting if the stream closes early (a proxy's idle timeout, say).
async function follow(jobId) {
  for (;;) {
    await stream(jobId);
    const job = state.job;
    if (!job || job.id !== jobId || !["queued", "running"].includes(job.status)) return;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// Server-sent events through fetch (EventSource cannot send the key header): one `job` event per change.
async function stream(jobId) {
  state.stream?.abort();
  const controller = (state.stream = new AbortController());
  const response = await fetch(`/v1/jobs/${jobId}/events`,
                               { headers: { "x-api-key": state.key }, signal: controller.signal });
  if (!response.ok) throw await apiError(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const lines = buffer.slice(0, end).split("\n");
      buffer = buffer.slice(end + 2);
      const data = lines.filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (data) showJob(JSON.parse(data));
    }
  }
}

function showJob(job) {
  state.job = job;
  const live = job.status === "queued" || job.status === "running";
  $("job-panel").hidden = false;
  $("job-panel").dataset.status = job.status;
  $("status").textContent = WORDS[job.status] || job.status;
  $("progress").value = Math.round(job.progress * 100);
  $("queue-position").textContent =
    job.status === "queued" && job.queue_position != null
      ? (job.queue_position === 0 ? "next in line" : `${job.queue_position} ahead in the queue`)
      : job.status === "running" && job.total_steps ? `step ${job.step} of ${job.total_steps}` : "";
  $("cancel").hidden = !live;
  if (live) return;
  if (job.status === "succeeded") showResult(job);
  if (job.status === "failed") showError(`The generation failed and was not charged: ${job.error}`);
  refreshCredits();
  loadHistory();
}

async function cancel() {
  if (!state.job) return;
  try {
    showJob(await api(`/v1/jobs/${state.job.id}/cancel`, { method: "POST" }));
  } catch (error) {
    showError(explain(error));
  }
}

function showResult(job) {
  const video = job.videos[0];
  const player = $("result-video");
  player.src = video.url;
  player.dataset.jobId = job.id;
  player.dataset.prompt = job.request.prompt;
  const model = extender();
  $("extend").hidden = !model;
  if (model) $("extend").textContent = `Extend by ${model.max_extension_s} s`;
  $("download").href = video.url;
  $("download").download = `openveo-${video.seed}.mp4`;
  const r = job.request;
  $("result-meta").textContent =
    `${r.model} · ${r.duration_s} s · ${r.aspect_ratio} · seed ${video.seed}` +
    (r.loras && r.loras.length ? ` · LoRA ${r.loras.map((l) => `${l.name} ×${l.scale}`).join(", ")}` : "") +
    (job.timings ? ` · ${Object.values(job.timings).reduce((a, b) => a + b, 0).toFixed(1)} s to make` : "");
  const asked = pick(r, ["prompt", "negative_prompt", "model", "duration_s", "aspect_ratio"]);
  if (r.loras && r.loras.length) asked.loras = r.loras.map((l) => ({ name: l.name, scale: l.scale }));
  showSnippets({ ...asked, seed: video.seed });
  $("result-panel").hidden = false;
}

// Fit the video in the panel and 65% of the screen height, in its own proportions (a 9:16 video is
// shown tall), scaling small videos up.
function fitVideo() {
  const player = $("result-video");
  if (!player.videoWidth) return;
  const room = [player.parentElement.clientWidth - 2, Math.min(window.innerHeight * 0.65, 640)];
  const scale = Math.min(room[0] / player.videoWidth, room[1] / player.videoHeight);
  player.style.width = `${Math.floor(player.videoWidth * scale)}px`;
  player.style.height = `${Math.floor(player.videoHeight * scale)}px`;
}

function pick(object, names) {
  return Object.fromEntries(names.filter((n) => object[n] != null).map((n) => [n, object[n]]));
}

function showSnippets(body) {
  const base = window.location.origin;
  const json = JSON.stringify(body);
  $("snippet-curl").textContent =
    `curl -s ${base}/v1/jobs -H "x-api-key: $OPENVEO_API_KEY" -H "content-type: application/json" \\\n` +
    `  -d '${json.replaceAll("'", "'\\''")}'\n` +
    `# then poll until "status" is "succeeded"; videos[0].url is the MP4:\n` +
    `curl -s ${base}/v1/jobs/JOB_ID -H "x-api-key: $OPENVEO_API_KEY"`;
  $("snippet-python").textContent = [
    "import os, time, httpx",
    "",
    `base, headers = "${base}", {"x-api-key": os.environ["OPENVEO_API_KEY"]}`,
    `job = httpx.post(f"{base}/v1/jobs", headers=headers, json=${json}).json()`,
    'while job["status"] in ("queued", "running"):',
    "    time.sleep(1)",
    '    job = httpx.get(f"{base}/v1/jobs/{job[\'id\']}", headers=headers).json()',
    'with open("video.mp4", "wb") as f:',
    '    f.write(httpx.get(job["videos"][0]["url"]).content)',
  ].join("\n");
  $("snippet-js").textContent = [
    `const base = "${base}";`,
    'const headers = { "x-api-key": process.env.OPENVEO_API_KEY, "content-type": "application/json" };',
    `let job = await (await fetch(\`\${base}/v1/jobs\`, { method: "POST", headers, body: JSON.stringify(${json}) })).json();`,
    'while (["queued", "running"].includes(job.status)) {',
    "  await new Promise((resolve) => setTimeout(resolve, 1000));",
    "  job = await (await fetch(`${base}/v1/jobs/${job.id}`, { headers })).json();",
    "}",
    "console.log(job.videos[0].url);  // the MP4",
  ].join("\n");
}

async function copy(button) {
  const text = $(button.dataset.copy).textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = Object.assign(document.createElement("textarea"), { value: text });
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  button.textContent = "Copied";
  setTimeout(() => (button.textContent = "Copy"), 1500);
}

// ---- history -----------------------------------------------------------------------------------

async function loadHistory() {
  try {
    const page = await api("/v1/jobs?limit=24");
    $("history").replaceChildren(...page.data.map(card));
  } catch (error) {
    showError(explain(error));
  }
}

function card(job) {
  const element = document.createElement("div");
  element.className = "card";
  element.dataset.jobId = job.id;
  element.dataset.status = job.status;
  const thumbnail = job.videos[0]?.thumbnail_url;
  if (thumbnail) {
    const image = Object.assign(document.createElement("img"), { src: thumbnail, alt: job.request.prompt });
    element.append(image);
  }
  for (const [text, kind] of [[job.request.prompt, "prompt"], [WORDS[job.status] || job.status, "state"]]) {
    const line = Object.assign(document.createElement("div"), { textContent: text, className: kind });
    element.append(line);
  }
  element.title = job.request.prompt;
  element.addEventListener("click", () => {
    if (job.status === "succeeded") showResult(job);
    else showJob(job);
  });
  return element;
}

// ---- wiring ------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    useKey($("api-key").value);
  });
  $("create-form").addEventListener("submit", generate);
  $("model").addEventListener("change", () => {
    $("model").dataset.touched = "1";
    fillModelChoices();
  });
  $("duration").addEventListener("change", () => {
    $("duration").dataset.touched = "1";
    showPrice();
  });
  $("lora").addEventListener("change", showPrice);
  $("random-seed").addEventListener("click", () => {
    $("seed").value = crypto.getRandomValues(new Uint32Array(1))[0];
  });
  $("cancel").addEventListener("click", cancel);
  $("extend").addEventListener("click", extend);
  $("result-video").addEventListener("loadedmetadata", fitVideo);
  window.addEventListener("resize", fitVideo);
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", () => copy(button));
  }
  const saved = localStorage.getItem(KEY_STORE);
  if (saved) {
    $("api-key").value = saved;
    useKey(saved);
  }
});
