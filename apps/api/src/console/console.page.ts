import { createHash } from 'node:crypto';

/*
 * The web console: one static page, no build step and no framework. It is a TS string module rather than an .html
 * file because the build (`tsc -b`) copies no assets into dist. It talks to the public API only (fetch for the
 * routes and GET /v1/jobs/:id/events, whose events eventsource-parser reads), so it shows nothing a client could not see.
 */

const STYLE = `
:root { font-family: system-ui, sans-serif; color: #1b1f24; background: #f6f7f9; }
body { margin: 0 auto; max-width: 980px; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.4rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.05rem; margin: 0 0 .6rem; }
h2 button { margin: 0 0 0 .6rem; padding: .15rem .6rem; font-size: .8rem; }
section { background: #fff; border: 1px solid #d8dce2; border-radius: 8px; padding: 1rem; margin-bottom: 1rem; }
label { display: block; font-weight: 600; margin: .6rem 0 .25rem; font-size: .9rem; }
textarea, input[type=text], input[type=password], input[type=number], select { width: 100%; box-sizing: border-box; font: inherit; padding: .4rem; border: 1px solid #b8bec7; border-radius: 4px; }
textarea { min-height: 9rem; font-family: ui-monospace, monospace; font-size: .85rem; }
.row { display: flex; gap: 1rem; } .row > div { flex: 1; }
button { font: inherit; padding: .45rem 1.1rem; border-radius: 4px; border: 1px solid #1f6feb; background: #1f6feb; color: #fff; cursor: pointer; margin-top: .8rem; }
button.secondary { background: #fff; color: #1f6feb; }
button:disabled { opacity: .5; cursor: default; }
progress { width: 100%; height: 1rem; }
pre { white-space: pre-wrap; word-break: break-word; background: #f0f2f5; padding: .7rem; border-radius: 4px; min-height: 2.5rem; margin: .4rem 0 0; }
table { width: 100%; border-collapse: collapse; font-size: .85rem; }
th, td { text-align: left; padding: .3rem .4rem; border-bottom: 1px solid #e3e6ea; }
tbody tr { cursor: pointer; } tbody tr:hover { background: #f0f4ff; }
.status { font-weight: 600; } .status.succeeded { color: #1a7f37; } .status.failed { color: #cf222e; } .status.cancelled { color: #6e7781; }
.error { color: #cf222e; min-height: 1.2rem; margin-top: .4rem; }
.muted { color: #57606a; font-size: .85rem; }
`;

const SCRIPT = `
'use strict';
const $ = (id) => document.getElementById(id);
const TERMINAL = ['succeeded', 'failed', 'cancelled'];
let current = null;

function apiKey() { return $('api-key').value.trim(); }
function headers(extra) {
  const h = Object.assign({ accept: 'application/json' }, extra || {});
  if (apiKey()) h.authorization = 'Bearer ' + apiKey();
  return h;
}
async function api(method, path, body) {
  const init = { method, headers: headers() };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) { init.body = JSON.stringify(body); init.headers['content-type'] = 'application/json'; }
  const res = await fetch(path, init);
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const e = data && data.error ? data.error : { code: 'HTTP_' + res.status, message: res.statusText };
    throw Object.assign(new Error(e.message), { code: e.code });
  }
  return data;
}

function taskFromForm() {
  const type = $('task').value;
  const prompt = $('prompt').value.trim();
  if (type === 'qa') return { type, question: prompt };
  if (type === 'instruct') return { type, instruction: prompt };
  return { type };
}
function onTaskChange() {
  const type = $('task').value;
  $('prompt-row').hidden = type !== 'qa' && type !== 'instruct';
  $('prompt-label').textContent = type === 'instruct' ? 'Instruction' : 'Question';
}

function showJob(job) {
  current = job.id;
  $('job-id').textContent = job.id;
  setStatus(job.status);
  showProgress(job.progress);
  if (job.result) { setAnswer(job.result.text, true); showEvidence(job.result.evidence || []); }
  if (job.error) $('job-error').textContent = job.error.code + ': ' + job.error.message;
}
function setStatus(status) {
  const el = $('job-status');
  el.textContent = status;
  el.className = 'status ' + status;
}
function showProgress(p) {
  if (!p) return;
  const done = Math.min(p.chunksTotal, p.chunksEncoded + p.chunksCached);
  $('progress').max = Math.max(1, p.chunksTotal);
  $('progress').value = done;
  $('chunks').textContent = done + ' / ' + p.chunksTotal + ' chunks (' + p.chunksEncoded + ' encoded, ' + p.chunksCached + ' cached)';
}
/** The chunks the answer rests on, best first: where they are in the text and what they say. */
function showEvidence(list) {
  const items = list.map((e) => {
    const li = document.createElement('li');
    const where = document.createElement('div');
    where.className = 'muted';
    where.textContent = 'chunk ' + e.chunkIndex + ', characters ' + e.charStart + '-' + e.charEnd + (e.page ? ', page ' + e.page : '') + (e.expanded ? ', read as text' : '') + ', score ' + e.score.toFixed(3);
    const text = document.createElement('pre');
    text.textContent = e.text;
    li.append(where, text);
    return li;
  });
  $('evidence').replaceChildren(...items);
  $('evidence-section').hidden = items.length === 0;
}
function setAnswer(text, final) {
  $('answer').textContent = text;
  $('answer').dataset.state = final ? 'done' : 'streaming';
}

/**
 * Follows a job's events (fetch, so an API key can be sent) through eventsource-parser, served from its npm package.
 * A dropped stream is opened again with Last-Event-ID, so no event is missed or applied twice; after five drops in a
 * row without an event the job is polled instead.
 */
let sseParser = null;
async function follow(id) {
  const { createParser } = await (sseParser ??= import('/console/assets/eventsource-parser.js'));
  let lastEventId = null;
  let drops = 0;
  while (id === current) {
    let ended = false;
    try {
      const h = headers({ accept: 'text/event-stream' });
      if (lastEventId) h['last-event-id'] = lastEventId;
      const res = await fetch('/v1/jobs/' + encodeURIComponent(id) + '/events', { headers: h });
      if (res.status === 204) return; // the job ended with the last event this page applied
      if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
      const parser = createParser({
        onEvent(e) {
          if (ended) return;
          if (e.id) lastEventId = e.id;
          drops = 0;
          if (onEvent(id, e.event || 'message', e.data)) ended = true;
        },
      });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      while (!ended) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(value);
      }
      if (ended) { reader.cancel(); return; }
    } catch (e) {
      // the connection dropped: open it again below
    }
    if (++drops > 5) return poll(id);
    await new Promise((r) => setTimeout(r, 500 * drops));
  }
}
/** Applies one server-sent event; true once the job has ended. */
function onEvent(id, type, raw) {
  if (id !== current) return true;
  const data = JSON.parse(raw);
  if (type === 'progress') showProgress(data.progress);
  else if (type === 'text') setAnswer($('answer').textContent + data.delta, false);
  else if (type === 'status') {
    if (data.object === 'job') showJob(data); else setStatus(data.status);
    if (TERMINAL.includes(data.status)) { finished(); return true; }
  }
  return false;
}
async function poll(id) {
  while (id === current) {
    const job = await api('GET', '/v1/jobs/' + encodeURIComponent(id)).catch(() => null);
    if (job) { showJob(job); if (TERMINAL.includes(job.status)) return finished(); }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
function finished() {
  $('submit').disabled = false;
  $('cancel').disabled = true;
  loadJobs();
}

async function submit(ev) {
  ev.preventDefault();
  $('form-error').textContent = '';
  const task = taskFromForm();
  const generation = {};
  if ($('max-new-tokens').value) generation.maxNewTokens = Number($('max-new-tokens').value);
  const file = $('file').files[0];
  let body;
  if (file) {
    body = new FormData();
    body.set('file', file, file.name);
    body.set('task', JSON.stringify(task));
    if (Object.keys(generation).length) body.set('generation', JSON.stringify(generation));
  } else {
    body = { text: $('text').value, task };
    if (Object.keys(generation).length) body.generation = generation;
  }
  $('submit').disabled = true;
  try {
    const job = await api('POST', '/v1/jobs', body);
    $('job-error').textContent = '';
    setAnswer('', false);
    showEvidence([]);
    showJob(job);
    $('cancel').disabled = false;
    loadJobs();
    follow(job.id);
  } catch (e) {
    $('form-error').textContent = (e.code || 'ERROR') + ': ' + e.message;
    $('submit').disabled = false;
  }
}
async function cancel() {
  if (!current) return;
  try { showJob(await api('POST', '/v1/jobs/' + encodeURIComponent(current) + '/cancel')); }
  catch (e) { $('job-error').textContent = (e.code || 'ERROR') + ': ' + e.message; }
}

function describeTask(t) {
  if (t.type === 'qa') return 'qa: ' + t.question;
  if (t.type === 'instruct') return 'instruct: ' + t.instruction;
  return t.type;
}
async function loadJobs() {
  try {
    const page = await api('GET', '/v1/jobs?limit=20');
    const rows = page.data.map((j) => {
      const tr = document.createElement('tr');
      tr.dataset.id = j.id;
      const cells = [j.id, j.status, describeTask(j.task), String(j.chars), new Date(j.createdAt).toLocaleString()];
      cells.forEach((text, i) => {
        const td = document.createElement('td');
        td.textContent = text.length > 60 ? text.slice(0, 57) + '...' : text;
        if (i === 1) td.className = 'status ' + j.status;
        tr.appendChild(td);
      });
      tr.addEventListener('click', () => { setAnswer('', false); showEvidence([]); $('job-error').textContent = ''; showJob(j); if (!TERMINAL.includes(j.status)) follow(j.id); });
      return tr;
    });
    $('jobs-body').replaceChildren(...rows);
    $('jobs-error').textContent = '';
  } catch (e) {
    $('jobs-error').textContent = (e.code || 'ERROR') + ': ' + e.message;
  }
}

$('api-key').value = sessionStorage.getItem('e2llm-api-key') || '';
$('api-key').addEventListener('change', () => { sessionStorage.setItem('e2llm-api-key', apiKey()); loadJobs(); });
$('task').addEventListener('change', onTaskChange);
$('job-form').addEventListener('submit', submit);
$('cancel').addEventListener('click', cancel);
$('refresh').addEventListener('click', loadJobs);
onTaskChange();
loadJobs();
`;

const sha256 = (s: string) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`;

/** Only this page's own inline script and style may run; it may only talk to its own origin. */
export const CONSOLE_CSP = [
  "default-src 'none'",
  // 'self': the page imports eventsource-parser from /console/assets (served from the npm package).
  `script-src ${sha256(SCRIPT)} 'self'`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const CONSOLE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>E2LLM console</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<h1>E2LLM console</h1>
<section>
  <h2>New job</h2>
  <form id="job-form">
    <label for="api-key">API key <span class="muted">(only when the API has API_KEYS)</span></label>
    <input id="api-key" type="password" autocomplete="off" placeholder="none">
    <label for="text">Document text</label>
    <textarea id="text" placeholder="Paste a long document here"></textarea>
    <label for="file">or upload a file <span class="muted">(.txt .md .html .pdf .docx; it replaces the text)</span></label>
    <input id="file" type="file" accept=".txt,.md,.html,.htm,.pdf,.docx">
    <div class="row">
      <div>
        <label for="task">Task</label>
        <select id="task">
          <option value="qa">question answering</option>
          <option value="summarize">summarize</option>
          <option value="reconstruct">reconstruct</option>
          <option value="instruct">instruct</option>
        </select>
      </div>
      <div>
        <label for="max-new-tokens">Max new tokens</label>
        <input id="max-new-tokens" type="number" min="1" placeholder="128">
      </div>
    </div>
    <div id="prompt-row">
      <label id="prompt-label" for="prompt">Question</label>
      <input id="prompt" type="text">
    </div>
    <button id="submit" type="submit">Submit</button>
    <div id="form-error" class="error"></div>
  </form>
</section>
<section>
  <h2>Job <span id="job-id" class="muted"></span> <span id="job-status" class="status"></span></h2>
  <progress id="progress" value="0" max="1"></progress>
  <div id="chunks" class="muted"></div>
  <label for="answer">Answer</label>
  <pre id="answer" data-state="empty"></pre>
  <div id="evidence-section" hidden>
    <label for="evidence">Evidence: the chunks the answer rests on, best first</label>
    <ol id="evidence"></ol>
  </div>
  <div id="job-error" class="error"></div>
  <button id="cancel" type="button" class="secondary" disabled>Cancel</button>
</section>
<section>
  <h2>Past jobs <button id="refresh" type="button" class="secondary">Refresh</button></h2>
  <table>
    <thead><tr><th>id</th><th>status</th><th>task</th><th>chars</th><th>created</th></tr></thead>
    <tbody id="jobs-body"></tbody>
  </table>
  <div id="jobs-error" class="error"></div>
</section>
<script>${SCRIPT}</script>
</body>
</html>
`;
