import { createHash } from 'node:crypto';

/*
 * The web console: one static page, no build step and no framework. It is a TS string module rather than an .html
 * file because the build (`tsc -b`) copies no assets into dist. It talks to the public API only (fetch for the
 * routes and GET /v1/jobs/:id/events, whose events eventsource-parser reads), so it shows nothing a client could not see.
 * A job opened from the list (or from the page's #job_... address, so a reload keeps it) is read from GET /v1/jobs/:id;
 * the list pages with GET /v1/jobs's cursor. Below 640 px wide the layout stacks (the jobs table becomes one card per
 * job), so a 390 px phone never scrolls sideways.
 */

const STYLE = `
:root { font-family: system-ui, sans-serif; color: #1b1f24; background: #f6f7f9; }
body { margin: 0 auto; max-width: 980px; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.4rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.05rem; margin: 0 0 .6rem; }
h2 button { margin: 0 0 0 .6rem; padding: .15rem .6rem; font-size: .8rem; }
h3 { font-size: .9rem; margin: .8rem 0 .3rem; }
section { background: #fff; border: 1px solid #d8dce2; border-radius: 8px; padding: 1rem; margin-bottom: 1rem; min-width: 0; }
label { display: block; font-weight: 600; margin: .6rem 0 .25rem; font-size: .9rem; }
textarea, input[type=text], input[type=password], input[type=number], input[type=file], select { width: 100%; max-width: 100%; box-sizing: border-box; font: inherit; padding: .4rem; border: 1px solid #b8bec7; border-radius: 4px; }
textarea { min-height: 9rem; font-family: ui-monospace, monospace; font-size: .85rem; }
.row { display: flex; gap: 1rem; } .row > div { flex: 1; min-width: 0; }
button { font: inherit; padding: .45rem 1.1rem; border-radius: 4px; border: 1px solid #1f6feb; background: #1f6feb; color: #fff; cursor: pointer; margin-top: .8rem; }
button.secondary { background: #fff; color: #1f6feb; }
button:disabled { opacity: .5; cursor: default; }
progress { width: 100%; height: 1rem; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f0f2f5; padding: .7rem; border-radius: 4px; min-height: 2.5rem; margin: .4rem 0 0; }
#job-id, .task, td { overflow-wrap: anywhere; }
.task { margin: 0 0 .5rem; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(9.5rem, 1fr)); gap: .3rem .8rem; margin: 0; font-size: .85rem; }
.facts div { display: flex; justify-content: space-between; gap: .5rem; border-bottom: 1px solid #eef0f3; }
.facts dt { color: #57606a; } .facts dd { margin: 0; font-variant-numeric: tabular-nums; }
table { width: 100%; border-collapse: collapse; font-size: .85rem; table-layout: fixed; }
th, td { text-align: left; padding: .3rem .4rem; border-bottom: 1px solid #e3e6ea; }
th:nth-child(1) { width: 30%; } th:nth-child(2) { width: 11%; } th:nth-child(4) { width: 8%; } th:nth-child(5) { width: 18%; }
tbody tr { cursor: pointer; } tbody tr:hover, tbody tr.open { background: #f0f4ff; }
.pager { display: flex; flex-wrap: wrap; align-items: center; gap: .4rem .8rem; margin-top: .4rem; }
.pager button { margin: 0; padding: .3rem .8rem; }
.pager label { display: flex; align-items: center; gap: .4rem; margin: 0; font-weight: normal; }
.pager select { width: auto; }
.status { font-weight: 600; } .status.succeeded { color: #1a7f37; } .status.failed { color: #cf222e; } .status.cancelled { color: #6e7781; }
.error { color: #cf222e; min-height: 1.2rem; margin-top: .4rem; overflow-wrap: anywhere; }
.muted { color: #57606a; font-size: .85rem; }
ol { padding-left: 1.4rem; }
@media (max-width: 640px) {
  body { padding: .5rem .5rem 2rem; }
  section { padding: .75rem; }
  .row { flex-direction: column; gap: 0; }
  table, tbody, tr, td { display: block; width: auto; }
  thead { display: none; }
  tbody tr { border-bottom: 1px solid #d8dce2; padding: .3rem 0; }
  td { border: 0; padding: .1rem .2rem; }
  td::before { content: attr(data-label) ": "; color: #57606a; }
}
`;

const SCRIPT = `
'use strict';
const $ = (id) => document.getElementById(id);
const TERMINAL = ['succeeded', 'failed', 'cancelled'];
/** The job the view shows (its id), and the one the elapsed-time ticker counts for. */
let current = null;
let ticker = null;

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
function errorText(e) { return (e.code || 'ERROR') + ': ' + e.message; }

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

/** 850 ms, 12.3 s, 4 min 05 s. */
function formatMs(ms) {
  if (ms < 1000) return Math.round(ms) + ' ms';
  if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
  const s = Math.floor(ms / 1000);
  return Math.floor(s / 60) + ' min ' + String(s % 60).padStart(2, '0') + ' s';
}

/** Empties the job view before another job is shown in it. */
function clearJob(id) {
  current = id;
  stopTicker();
  $('job-id').textContent = id || '';
  $('job-task').textContent = '';
  setStatus('');
  $('elapsed').textContent = '';
  $('elapsed').dataset.state = 'none';
  $('progress').value = 0;
  $('chunks').textContent = '';
  setAnswer('', false);
  $('answer').dataset.state = 'empty';
  showResultDetails(null);
  showEvidence([]);
  $('job-error').textContent = '';
  $('cancel').disabled = true;
  for (const tr of $('jobs-body').children) tr.classList.toggle('open', tr.dataset.id === id);
}
/** Shows a job as GET /v1/jobs/:id (or an SSE snapshot) gives it: everything the API says about it. */
function showJob(job) {
  if (job.id !== current) return;
  $('job-id').textContent = job.id;
  $('job-task').textContent = describeTask(job.task, true);
  setStatus(job.status);
  showProgress(job.progress);
  showElapsed(job);
  if (job.result) {
    setAnswer(job.result.text, true);
    showResultDetails(job.result);
    showEvidence(job.result.evidence || []);
  }
  $('job-error').textContent = job.error ? job.error.code + ': ' + job.error.message : '';
  $('cancel').disabled = TERMINAL.includes(job.status);
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

/**
 * While a job is queued, encoding or decoding, the time since it was created ticks (the API's createdAt against this
 * browser's clock, never below zero); once it has ended, its total from the API's own createdAt and finishedAt.
 */
function showElapsed(job) {
  const el = $('elapsed');
  if (TERMINAL.includes(job.status)) {
    stopTicker();
    const total = job.finishedAt ? Date.parse(job.finishedAt) - Date.parse(job.createdAt) : job.result ? job.result.timings.totalMs : null;
    if (total === null) return;
    el.dataset.state = 'done';
    el.dataset.ms = String(Math.max(0, total));
    el.textContent = job.status + ' after ' + formatMs(Math.max(0, total));
    return;
  }
  if (ticker && ticker.id === job.id) return;
  stopTicker();
  const created = Date.parse(job.createdAt);
  const tick = () => {
    const ms = Math.max(0, Date.now() - created);
    el.dataset.state = 'running';
    el.dataset.ms = String(ms);
    el.textContent = 'elapsed ' + formatMs(ms);
  };
  tick();
  ticker = { id: job.id, handle: setInterval(tick, 200) };
}
function stopTicker() {
  if (ticker) clearInterval(ticker.handle);
  ticker = null;
}

const USAGE = [
  ['chunks', 'chunks'], ['softTokens', 'soft tokens'], ['encoderTokens', 'encoder tokens'], ['expandedChunks', 'expanded chunks'],
  ['expandedTokens', 'expanded tokens'], ['promptTokens', 'prompt tokens'], ['generatedTokens', 'generated tokens'], ['chars', 'characters'],
];
const TIMINGS = [
  ['queueMs', 'queued'], ['chunkMs', 'chunking'], ['encodeMs', 'encoding'], ['adapterMs', 'adapter'], ['scoringMs', 'scoring'],
  ['expandMs', 'expansion'], ['prefillMs', 'prefill'], ['decodeMs', 'decoding'], ['totalMs', 'total'],
];
function facts(list, values, format) {
  return list.map(([key, label]) => {
    const div = document.createElement('div');
    div.dataset.key = key;
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    dd.dataset.value = String(values[key]);
    dd.textContent = format(values[key]);
    div.append(dt, dd);
    return div;
  });
}
/** Finish reason, usage and timings of a result (null hides them). */
function showResultDetails(result) {
  $('result-details').hidden = !result;
  if (!result) return;
  $('finish-reason').textContent = result.finishReason;
  const u = result.usage;
  const usage = facts(USAGE, u, String);
  if (u.expansionLimitedBy) usage.push(...facts([['expansionLimitedBy', 'expansion limited by']], u, String));
  $('usage').replaceChildren(...usage);
  $('timings').replaceChildren(...facts(TIMINGS, result.timings, formatMs));
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
    if (TERMINAL.includes(data.status)) {
      // A terminal event carries the whole job; should one not, read it so the result and total are shown.
      if (data.object !== 'job') refresh(id);
      finished();
      return true;
    }
  }
  return false;
}
async function refresh(id) {
  const job = await api('GET', '/v1/jobs/' + encodeURIComponent(id)).catch(() => null);
  if (job) showJob(job);
}
async function poll(id) {
  while (id === current) {
    const job = await api('GET', '/v1/jobs/' + encodeURIComponent(id)).catch(() => null);
    if (job) { showJob(job); if (TERMINAL.includes(job.status)) return finished(); }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
function finished() {
  loadJobs();
}

/** Opens a job by id (a row of the list, or the page's address): read whole from GET /v1/jobs/:id, then followed if it runs. */
async function openJob(id) {
  clearJob(id);
  if (location.hash !== '#' + id) history.replaceState(null, '', '#' + id);
  try {
    const job = await api('GET', '/v1/jobs/' + encodeURIComponent(id));
    if (id !== current) return;
    showJob(job);
    if (!TERMINAL.includes(job.status)) follow(id);
  } catch (e) {
    if (id === current) $('job-error').textContent = errorText(e);
  }
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
    clearJob(job.id);
    history.replaceState(null, '', '#' + job.id);
    showJob(job);
    cursors = [null];
    loadJobs();
    follow(job.id);
  } catch (e) {
    $('form-error').textContent = errorText(e);
  } finally {
    $('submit').disabled = false;
  }
}
async function cancel() {
  if (!current) return;
  try { showJob(await api('POST', '/v1/jobs/' + encodeURIComponent(current) + '/cancel')); }
  catch (e) { $('job-error').textContent = errorText(e); }
}

function describeTask(t, long) {
  if (t.type === 'qa') return (long ? 'Question: ' : 'qa: ') + t.question;
  if (t.type === 'instruct') return (long ? 'Instruction: ' : 'instruct: ') + t.instruction;
  return long ? 'Task: ' + t.type : t.type;
}

/**
 * The list pages with GET /v1/jobs's cursor: cursors[i] is the \`after\` that page i+1 was read with (null: the newest
 * page), so Newer goes back exactly to the page seen before; nextCursor is the API's cursor for the page after this one.
 */
let cursors = [null];
let nextCursor = null;
let listing = 0;
async function loadJobs() {
  const seq = ++listing;
  const after = cursors[cursors.length - 1];
  const q = new URLSearchParams({ limit: $('page-size').value });
  if (after) q.set('after', after);
  try {
    const page = await api('GET', '/v1/jobs?' + q);
    if (seq !== listing) return;
    const labels = ['id', 'status', 'task', 'chars', 'created'];
    const rows = page.data.map((j) => {
      const tr = document.createElement('tr');
      tr.dataset.id = j.id;
      if (j.id === current) tr.className = 'open';
      const cells = [j.id, j.status, describeTask(j.task, false), String(j.chars), new Date(j.createdAt).toLocaleString()];
      cells.forEach((text, i) => {
        const td = document.createElement('td');
        td.dataset.label = labels[i];
        td.textContent = text.length > 60 ? text.slice(0, 57) + '...' : text;
        if (i === 1) td.className = 'status ' + j.status;
        tr.appendChild(td);
      });
      tr.addEventListener('click', () => openJob(j.id));
      return tr;
    });
    $('jobs-body').replaceChildren(...rows);
    nextCursor = page.hasMore ? page.nextCursor : null;
    $('older').disabled = !nextCursor;
    $('newer').disabled = cursors.length === 1;
    $('page-info').textContent = 'page ' + cursors.length + (rows.length ? '' : ' (no jobs)');
    $('jobs-error').textContent = '';
  } catch (e) {
    if (seq === listing) $('jobs-error').textContent = errorText(e);
  }
}
function older() { if (nextCursor) { cursors.push(nextCursor); loadJobs(); } }
function newer() { if (cursors.length > 1) { cursors.pop(); loadJobs(); } }
function firstPage() { cursors = [null]; loadJobs(); }

/** Opens the job the address names (#job_...), unless it is already open (force: read it again, as after a new API key). */
function openFromAddress(force) {
  const id = decodeURIComponent(location.hash.slice(1));
  if (id && (force === true || id !== current)) openJob(id);
}

$('api-key').value = sessionStorage.getItem('e2llm-api-key') || '';
$('api-key').addEventListener('change', () => { sessionStorage.setItem('e2llm-api-key', apiKey()); firstPage(); openFromAddress(true); });
$('task').addEventListener('change', onTaskChange);
$('job-form').addEventListener('submit', submit);
$('cancel').addEventListener('click', cancel);
$('refresh').addEventListener('click', loadJobs);
$('older').addEventListener('click', older);
$('newer').addEventListener('click', newer);
$('page-size').addEventListener('change', firstPage);
window.addEventListener('hashchange', openFromAddress);
onTaskChange();
loadJobs();
openFromAddress();
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
<section id="job-section">
  <h2>Job <span id="job-id" class="muted"></span> <span id="job-status" class="status"></span></h2>
  <p id="job-task" class="task"></p>
  <div id="elapsed" class="muted" data-state="none"></div>
  <progress id="progress" value="0" max="1"></progress>
  <div id="chunks" class="muted"></div>
  <label for="answer">Answer</label>
  <pre id="answer" data-state="empty"></pre>
  <div id="result-details" hidden>
    <div class="muted">finish reason: <span id="finish-reason"></span></div>
    <h3>Usage</h3>
    <dl id="usage" class="facts"></dl>
    <h3>Timings</h3>
    <dl id="timings" class="facts"></dl>
  </div>
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
  <div class="pager">
    <button id="newer" type="button" class="secondary" disabled>Newer</button>
    <span id="page-info" class="muted"></span>
    <button id="older" type="button" class="secondary" disabled>Older</button>
    <label for="page-size">per page
      <select id="page-size"><option>5</option><option>10</option><option selected>20</option><option>50</option><option>100</option></select>
    </label>
  </div>
  <div id="jobs-error" class="error"></div>
</section>
<script>${SCRIPT}</script>
</body>
</html>
`;
