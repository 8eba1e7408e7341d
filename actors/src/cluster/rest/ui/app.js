// Weir's web UI: hash-routed pages over the JobManager's REST API (served from the same
// origin), refreshed once a second while the tab is visible. Reads need no credentials;
// cancel, savepoint and stop send the REST token the user typed, kept in sessionStorage only.

import {
  badge,
  bar,
  bytes,
  count,
  duration,
  esc,
  micros,
  percent,
  rate,
  setAttr,
  setHTML,
  sparkline,
  statusClass,
  syncRows,
  time,
  watermark,
} from './format.js';
import { JobGraph } from './graph.js';

const POLL_MS = 1000;
/** Samples kept per vertex for its sparklines (a minute at one a second). */
const HISTORY = 60;
/** Rates and shares are taken over this window of samples, which smooths the steps of the
 * TaskManagers' reports: they reach the JobManager with heartbeats, and a subtask blocked on
 * backpressure publishes its counters only when it gets going again (seconds apart). */
const RATE_WINDOW_MS = 10_000;
const TOKEN_KEY = 'weir.rest-token';
const TERMINAL = new Set(['FINISHED', 'CANCELED', 'FAILED']);

const main = document.getElementById('main');
const tokenInput = document.getElementById('token');

// ---------------------------------------------------------------------------------------------
// The API.

/** An error answer, or no answer: `status` 0 when the JobManager did not answer at all. */
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls the API at `path` (relative to the page, so a proxy may mount it under a prefix);
 * with `auth`, with the REST token (none when the field is empty: the API's 401 says so). */
async function api(path, { method = 'GET', body, auth = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const token = auth ? sessionStorage.getItem(TOKEN_KEY) : null;
  if (token) headers.Authorization = `Bearer ${token}`;
  const what = `${method} /${path}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    throw new ApiError(0, `${what}: the JobManager did not answer (${e.message})`);
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const reason = Array.isArray(json?.errors) ? json.errors.join('; ') : text.trim() || 'no reason given';
    throw new ApiError(response.status, `${what}: ${response.status} ${response.statusText} – ${reason}`);
  }
  return json;
}

// ---------------------------------------------------------------------------------------------
// The token field, the status bar, the navigation.

tokenInput.value = sessionStorage.getItem(TOKEN_KEY) ?? '';
tokenInput.addEventListener('input', () => {
  const value = tokenInput.value.trim();
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  document.body.classList.toggle('has-token', Boolean(value));
});
document.body.classList.toggle('has-token', Boolean(tokenInput.value));
document.getElementById('token-form').addEventListener('submit', (event) => event.preventDefault());
document.getElementById('token-forget').addEventListener('click', () => {
  tokenInput.value = '';
  tokenInput.dispatchEvent(new Event('input'));
});

const statusBar = document.getElementById('status-bar');
const statusText = document.getElementById('status-text');
const statusError = document.getElementById('status-error');

function showStatus(state, text, error = '') {
  setAttr(statusBar, 'data-state', state);
  statusText.textContent = text;
  statusError.textContent = error;
}

function markNav(section) {
  for (const a of document.querySelectorAll('.nav a')) a.classList.toggle('active', a.dataset.nav === section);
}

// ---------------------------------------------------------------------------------------------
// Shared rendering.

/** A figure in a card: `html` large, `sub` (HTML) small under it. */
function card(label, html, { id = '', sub = '', subClass = '' } = {}) {
  return (
    `<div class="card"${id ? ` id="${id}"` : ''}><div class="card-label">${esc(label)}</div>` +
    `<div class="card-value">${html}</div>${sub ? `<div class="card-sub ${subClass}">${sub}</div>` : ''}</div>`
  );
}

function empty(text) {
  return `<div class="empty">${esc(text)}</div>`;
}

function tableHead(columns) {
  return `<thead><tr>${columns
    .map((c) =>
      typeof c === 'string'
        ? `<th>${esc(c)}</th>`
        : `<th class="${c.cls ?? ''}" title="${esc(c.title ?? '')}">${esc(c.label)}</th>`,
    )
    .join('')}</tr></thead>`;
}

/** Counts of subtask statuses as small coloured tags, Flink's task summary. */
function taskSummary(statuses) {
  const counts = new Map();
  for (const s of statuses) counts.set(s, (counts.get(s) ?? 0) + 1);
  return [...counts]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([s, n]) => `<span class="tag ${statusClass(s)}" title="${esc(s)}">${n}</span>`)
    .join('');
}

/** A share of time as a percentage on a tint of its colour, stronger the larger it is. */
function shareCell(share, kind) {
  const heat = Number.isFinite(share) ? Math.min(4, Math.floor(share * 5)) : 0;
  return { html: percent(share), cls: `num share ${kind}-${heat}` };
}

// ---------------------------------------------------------------------------------------------
// Job figures: rates and shares of time from the deltas between polls.

const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

/** Per subtask (`vertex/subtask`), its recent samples, oldest first. */
class Samples {
  constructor() {
    this.bySubtask = new Map();
    this.vertexHistory = new Map();
  }

  /** Adds a sample of `subtask` (of vertex `v`) taken at `now`, and returns its rates and
   * shares over the window. Counters that went back (a restarted attempt) start afresh. */
  add(v, subtask, now) {
    const key = `${v}/${subtask.subtask}`;
    const sample = {
      t: now,
      read: subtask['read-records'] ?? 0,
      write: subtask['write-records'] ?? 0,
      bp: subtask['backpressure-ms'] ?? 0,
      busy: subtask['busy-ms'] ?? 0,
      idle: subtask['idle-ms'] ?? 0,
    };
    let list = this.bySubtask.get(key) ?? [];
    const last = list[list.length - 1];
    if (last && ['read', 'write', 'bp', 'busy', 'idle'].some((k) => sample[k] < last[k])) list = [];
    list.push(sample);
    while (list.length > 2 && now - list[1].t >= RATE_WINDOW_MS) list.shift();
    this.bySubtask.set(key, list);

    const first = list[0];
    const seconds = (sample.t - first.t) / 1000;
    const rates =
      seconds > 0.2
        ? { inRate: (sample.read - first.read) / seconds, outRate: (sample.write - first.write) / seconds }
        : { inRate: NaN, outRate: NaN };
    // The server's own shares, when it sends them, over the clients' estimate.
    if (isNum(subtask['busy-ratio']) || isNum(subtask['backpressure-ratio']) || isNum(subtask['idle-ratio'])) {
      return {
        ...rates,
        busy: subtask['busy-ratio'],
        backpressured: subtask['backpressure-ratio'],
        idle: subtask['idle-ratio'],
      };
    }
    const shares = (a, b) => {
      const [bp, busy, idle] = [a.bp - b.bp, a.busy - b.busy, a.idle - b.idle];
      const total = bp + busy + idle;
      return total > 0 ? { busy: busy / total, backpressured: bp / total, idle: idle / total } : null;
    };
    // The deltas over the window; the totals so far on the first poll (or while no report
    // arrived within the window).
    const zero = { bp: 0, busy: 0, idle: 0 };
    return {
      ...rates,
      ...(shares(sample, first) ?? shares(sample, zero) ?? { busy: NaN, backpressured: NaN, idle: NaN }),
    };
  }

  /** Appends a vertex's rates to its sparkline history. */
  record(v, inRate, outRate) {
    const h = this.vertexHistory.get(v) ?? { in: [], out: [] };
    h.in.push(inRate);
    h.out.push(outRate);
    if (h.in.length > HISTORY) h.in.shift();
    if (h.out.length > HISTORY) h.out.shift();
    this.vertexHistory.set(v, h);
    return h;
  }
}

const hasKey = (o, k) => o != null && Object.prototype.hasOwnProperty.call(o, k);

/** A subtask's low watermark: its input's, or its output's for a source (no input). */
function subtaskWatermark(s) {
  return hasKey(s, 'input-watermark') && s['input-watermark'] != null
    ? s['input-watermark']
    : (s['output-watermark'] ?? null);
}

/** Figures of every vertex and subtask of a job's details, from this poll and the ones before. */
function vertexStats(details, samples, now) {
  const withWatermark = details.vertices.some((v) =>
    v.subtasks.some((s) => hasKey(s, 'input-watermark') || hasKey(s, 'output-watermark')),
  );
  const vertices = details.vertices.map((v, vi) => {
    const subtasks = v.subtasks.map((s) => ({ raw: s, ...samples.add(vi, s, now), watermark: subtaskWatermark(s) }));
    const sum = (f) => subtasks.reduce((acc, s) => acc + (isNum(s[f]) ? s[f] : 0), 0);
    const max = (f) =>
      subtasks.some((s) => isNum(s[f])) ? Math.max(...subtasks.filter((s) => isNum(s[f])).map((s) => s[f])) : NaN;
    const mean = (f) => {
      const xs = subtasks.filter((s) => isNum(s[f]));
      return xs.length ? xs.reduce((a, s) => a + s[f], 0) / xs.length : NaN;
    };
    const inRate = subtasks.some((s) => isNum(s.inRate)) ? sum('inRate') : NaN;
    const outRate = subtasks.some((s) => isNum(s.outRate)) ? sum('outRate') : NaN;
    const history = samples.record(vi, inRate, outRate);
    const watermarks = subtasks.map((s) => s.watermark);
    const low = watermarks.length && watermarks.every(isNum) ? Math.min(...watermarks) : null;
    return {
      id: v.id,
      name: v.name,
      parallelism: v.parallelism,
      subtasks,
      readRecords: v.subtasks.reduce((a, s) => a + (s['read-records'] ?? 0), 0),
      writeRecords: v.subtasks.reduce((a, s) => a + (s['write-records'] ?? 0), 0),
      inRate,
      outRate,
      history,
      // Flink's graph shows the busiest and the most backpressured subtask's share.
      busy: max('busy'),
      backpressured: max('backpressured'),
      idle: mean('idle'),
      queued: v.subtasks.reduce((a, s) => a + (s['queued-out'] ?? 0), 0),
      peakQueued: Math.max(0, ...v.subtasks.map((s) => s['peak-queued-out'] ?? 0)),
      sink: !details.plan.edges.some((e) => e.source_vertex === v.id),
      hasWatermark: withWatermark,
      watermark: low,
    };
  });
  return { vertices, withWatermark };
}

// ---------------------------------------------------------------------------------------------
// Pages. Each has `mount()` (its frame, once) and `refresh()` (its figures, every poll).

/** Job rows for the overview and the jobs page: details fetched for jobs still running (once
 * more for ended ones, then kept). */
class JobTable {
  constructor() {
    this.details = new Map();
  }

  async load() {
    const { jobs } = await api('jobs');
    const wanted = jobs
      .filter((j) => !(TERMINAL.has(j.status) && this.details.get(j.id)?.state === j.status))
      .slice(0, 50);
    await Promise.all(
      wanted.map(async (j) => {
        try {
          this.details.set(j.id, await api(`jobs/${j.id}`));
        } catch (e) {
          if (e.status !== 404) throw e;
        }
      }),
    );
    return jobs;
  }

  render(tbody, jobs) {
    const order = (j) => (TERMINAL.has(j.status) ? 1 : 0);
    const sorted = [...jobs].sort((a, b) => order(a) - order(b));
    syncRows(
      tbody,
      sorted,
      (j) => j.id,
      (j) => {
        const d = this.details.get(j.id);
        const statuses = d ? d.vertices.flatMap((v) => v.subtasks.map((s) => s.status)) : [];
        const parallelism = d ? Math.max(0, ...d.vertices.map((v) => v.parallelism)) : NaN;
        return {
          attrs: { 'data-job-id': j.id, 'data-status': j.status },
          cells: [
            `<a class="job-link" href="#/jobs/${esc(j.id)}">${esc(j.name)}</a>`,
            { html: `<code>${esc(j.id)}</code>`, cls: 'mono' },
            badge(j.status),
            { html: d ? duration(d.duration) : '–', cls: 'num' },
            { html: Number.isFinite(parallelism) ? String(parallelism) : '–', cls: 'num' },
            taskSummary(statuses),
          ],
        };
      },
    );
  }
}

const JOB_COLUMNS = [
  'Job',
  'Job ID',
  'Status',
  { label: 'Duration', cls: 'num' },
  { label: 'Parallelism', cls: 'num' },
  'Tasks',
];

class OverviewPage {
  constructor() {
    this.jobs = new JobTable();
  }

  mount() {
    markNav('overview');
    main.innerHTML =
      `<h1 class="page-title">Cluster overview</h1>` +
      `<div class="cards" id="overview-cards"></div>` +
      `<section class="panel"><h2>Running jobs</h2><table class="grid jobs">${tableHead(JOB_COLUMNS)}<tbody id="running-jobs"></tbody></table>` +
      `<div id="running-empty"></div></section>` +
      `<section class="panel"><h2>Completed jobs</h2><table class="grid jobs">${tableHead(JOB_COLUMNS)}<tbody id="completed-jobs"></tbody></table>` +
      `<div id="completed-empty"></div></section>`;
  }

  async refresh() {
    const [overview, jobs] = await Promise.all([api('overview'), this.jobs.load()]);
    document.getElementById('version').textContent = `v${overview['weir-version']}`;
    const used = overview['slots-total'] - overview['slots-available'];
    const share = overview['slots-total'] ? used / overview['slots-total'] : 0;
    setHTML(
      document.getElementById('overview-cards'),
      card('TaskManagers', count(overview.taskmanagers), { id: 'card-taskmanagers' }) +
        card(
          'Slots available',
          `${count(overview['slots-available'])}<small> / ${count(overview['slots-total'])}</small>`,
          {
            id: 'card-slots',
            sub: `${bar([['slots-used', share]], { width: 70, height: 6, title: `${used} in use` })} ${count(used)} in use`,
            subClass: 'nowrap',
          },
        ) +
        card('Running jobs', count(overview['jobs-running']), { id: 'card-running' }) +
        card('Finished', count(overview['jobs-finished']), { id: 'card-finished' }) +
        card('Canceled', count(overview['jobs-cancelled']), { id: 'card-canceled' }) +
        card('Failed', count(overview['jobs-failed']), { id: 'card-failed' }),
    );
    const running = jobs.filter((j) => !TERMINAL.has(j.status));
    const completed = jobs.filter((j) => TERMINAL.has(j.status));
    this.jobs.render(document.getElementById('running-jobs'), running);
    this.jobs.render(document.getElementById('completed-jobs'), completed);
    setHTML(document.getElementById('running-empty'), running.length ? '' : empty('No job is running.'));
    setHTML(document.getElementById('completed-empty'), completed.length ? '' : empty('No job has ended yet.'));
  }
}

class JobsPage {
  constructor() {
    this.jobs = new JobTable();
    this.filter = 'ALL';
  }

  mount() {
    markNav('jobs');
    const filters = ['ALL', 'RUNNING', 'FINISHED', 'CANCELED', 'FAILED']
      .map(
        (f) =>
          `<button type="button" class="chip" data-filter="${f}">${f === 'ALL' ? 'All' : f.charAt(0) + f.slice(1).toLowerCase()}</button>`,
      )
      .join('');
    main.innerHTML =
      `<h1 class="page-title">Jobs</h1>` +
      `<section class="panel"><div class="chips" id="job-filters">${filters}</div>` +
      `<table class="grid jobs">${tableHead(JOB_COLUMNS)}<tbody id="all-jobs"></tbody></table><div id="jobs-empty"></div></section>`;
    document.getElementById('job-filters').addEventListener('click', (event) => {
      const chip = event.target.closest('[data-filter]');
      if (!chip) return;
      this.filter = chip.dataset.filter;
      this.show();
    });
  }

  show() {
    for (const chip of document.querySelectorAll('#job-filters .chip'))
      chip.classList.toggle('active', chip.dataset.filter === this.filter);
    const jobs = (this.list ?? []).filter(
      (j) => this.filter === 'ALL' || (this.filter === 'RUNNING' ? !TERMINAL.has(j.status) : j.status === this.filter),
    );
    this.jobs.render(document.getElementById('all-jobs'), jobs);
    setHTML(
      document.getElementById('jobs-empty'),
      jobs.length ? '' : empty(this.list?.length ? 'No job matches the filter.' : 'No job was submitted yet.'),
    );
  }

  async refresh() {
    this.list = await this.jobs.load();
    this.show();
  }
}

class TaskManagersPage {
  constructor() {
    this.jobs = new JobTable();
  }

  mount() {
    markNav('taskmanagers');
    main.innerHTML =
      `<h1 class="page-title">TaskManagers</h1><div class="cards" id="tm-cards"></div>` +
      `<section class="panel"><table class="grid" id="tm-table"><thead></thead><tbody id="taskmanagers"></tbody></table><div id="tm-empty"></div></section>`;
  }

  async refresh() {
    const [{ taskmanagers }, jobs] = await Promise.all([api('taskmanagers'), this.jobs.load()]);
    // What runs where: the subtasks of the jobs still running, per TaskManager.
    const running = new Map();
    for (const job of jobs.filter((j) => !TERMINAL.has(j.status))) {
      for (const v of this.jobs.details.get(job.id)?.vertices ?? []) {
        for (const sub of v.subtasks) {
          const tm = sub['taskmanager-id'];
          if (!tm || TERMINAL.has(sub.status)) continue;
          const entry = running.get(tm) ?? { subtasks: 0, jobs: new Set() };
          entry.subtasks += 1;
          entry.jobs.add(job.name);
          running.set(tm, entry);
        }
      }
    }
    const slots = taskmanagers.reduce((a, t) => a + (t.slotsNumber ?? 0), 0);
    const free = taskmanagers.reduce((a, t) => a + (t.freeSlots ?? 0), 0);
    setHTML(
      document.getElementById('tm-cards'),
      card('TaskManagers', count(taskmanagers.length)) + card('Slots', count(slots)) + card('Free slots', count(free)),
    );
    // Whatever else the API reports per TaskManager (process figures), one column per field.
    const known = new Set(['id', 'slotsNumber', 'freeSlots']);
    const extra = [];
    for (const tm of taskmanagers) {
      for (const [key, value] of flatten(tm)) if (!known.has(key) && !extra.includes(key)) extra.push(key);
    }
    // Nested fields (`metrics.rss-bytes`) are titled by their last part when that is unique.
    const short = (k) => {
      const last = k.split('.').pop();
      return extra.filter((e) => e.split('.').pop() === last).length === 1 ? last : k;
    };
    const columns = [
      'TaskManager',
      { label: 'Slots', cls: 'num' },
      { label: 'Free', cls: 'num' },
      'In use',
      { label: 'Subtasks', cls: 'num', title: 'subtasks of running jobs deployed here' },
      'Jobs',
      ...extra.map((k) => ({ label: label(short(k)), cls: 'num', title: k })),
    ];
    setHTML(document.querySelector('#tm-table thead'), tableHead(columns).replace(/^<thead>|<\/thead>$/g, ''));
    syncRows(
      document.getElementById('taskmanagers'),
      taskmanagers,
      (t) => t.id,
      (t) => {
        const values = new Map(flatten(t));
        const used = (t.slotsNumber ?? 0) - (t.freeSlots ?? 0);
        return {
          attrs: { 'data-taskmanager': t.id },
          cells: [
            { html: `<code>${esc(t.id)}</code>`, cls: 'mono' },
            { html: count(t.slotsNumber), cls: 'num' },
            { html: count(t.freeSlots), cls: 'num' },
            `${bar([['slots-used', t.slotsNumber ? used / t.slotsNumber : 0]], { width: 120, height: 6, title: `${used} of ${t.slotsNumber} in use` })} <span class="muted">${count(used)} / ${count(t.slotsNumber)}</span>`,
            { html: count(running.get(t.id)?.subtasks ?? 0), cls: 'num' },
            esc([...(running.get(t.id)?.jobs ?? [])].join(', ')) || '<span class="muted">–</span>',
            ...extra.map((k) => ({ html: value(k, values.get(k)), cls: 'num' })),
          ],
        };
      },
    );
    setHTML(document.getElementById('tm-empty'), taskmanagers.length ? '' : empty('No TaskManager is registered.'));
  }
}

/** `[key, value]` of an object's scalar fields, nested objects' as `outer.inner`. */
function flatten(object, prefix = '') {
  const out = [];
  for (const [k, v] of Object.entries(object ?? {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) out.push(...flatten(v, key));
    else out.push([key, v]);
  }
  return out;
}

const ACRONYMS = new Set(['cpu', 'rss', 'quic', 'tls', 'io', 'gc', 'jvm', 'id', 'tcp', 'udp']);

/** A field name as a column title, without the unit its value is shown in:
 * `rss-bytes` → `RSS`, `heartbeat-age-ms` → `Heartbeat age`. */
function label(key) {
  const words = key
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .split(/[-_. ]+/)
    .map((w) => w.toLowerCase());
  if (words.length > 1 && ['bytes', 'ms', 'ratio', 'seconds'].includes(words[words.length - 1])) words.pop();
  const text = words.map((w) => (ACRONYMS.has(w) ? w.toUpperCase() : w)).join(' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** A value of a field the UI does not know, formatted by what its name says it is. */
function value(key, v) {
  if (v == null) return '–';
  if (typeof v !== 'number') return esc(Array.isArray(v) ? v.join(', ') : v);
  const k = key.toLowerCase();
  if (/bytes$/.test(k)) return bytes(v);
  if (/(-|_|\b)ms$|millis/.test(k)) return duration(v);
  if (/ratio$|share$/.test(k)) return percent(v);
  if (/seconds$/.test(k)) return duration(v * 1000);
  return Number.isInteger(v) ? count(v) : v.toFixed(2);
}

// ---------------------------------------------------------------------------------------------
// A job.

const ACTIONS = {
  cancel: {
    question: (job) =>
      `Cancel job <b>${esc(job)}</b>? Its subtasks stop everywhere; the state survives only in its checkpoints and savepoints.`,
    confirm: 'Cancel job',
    pending: 'Cancelling…',
    run: (id) => api(`jobs/${id}?mode=cancel`, { method: 'PATCH', auth: true }),
    done: () => 'Cancellation requested: the job ends CANCELED once every subtask stopped.',
  },
  savepoint: {
    question: (job) => `Take a savepoint of job <b>${esc(job)}</b>? It keeps running.`,
    confirm: 'Take savepoint',
    pending: 'Taking a savepoint…',
    target: true,
    run: (id, target) =>
      api(`jobs/${id}/savepoints`, { method: 'POST', auth: true, body: target ? { 'target-directory': target } : {} }),
    done: (r) => `Savepoint completed: ${r?.location ?? ''}`,
  },
  stop: {
    question: (job) => `Stop job <b>${esc(job)}</b> with a savepoint? It ends FINISHED once the savepoint completed.`,
    confirm: 'Stop with savepoint',
    pending: 'Stopping with a savepoint…',
    target: true,
    drain: true,
    run: (id, target, drain) =>
      api(`jobs/${id}/stop`, {
        method: 'POST',
        auth: true,
        body: { ...(target ? { targetDirectory: target } : {}), drain },
      }),
    done: (r) => `Stopped with a savepoint: ${r?.location ?? ''}`,
  },
};

const VERTEX_COLUMNS = [
  'Vertex / subtask (TaskManager)',
  'Status',
  { label: 'Records in · rate', cls: 'num', title: 'records so far, and per second over the last 10 s' },
  { label: 'Records out · rate', cls: 'num', title: 'records so far, and per second over the last 10 s' },
  { label: 'Busy', cls: 'num', title: 'share of time working; a vertex shows its busiest subtask' },
  {
    label: 'Backpressured',
    cls: 'num',
    title: 'share of time waiting for room in full output channels; a vertex shows its most backpressured subtask',
  },
  { label: 'Idle', cls: 'num', title: 'share of time waiting for input; a vertex shows the mean of its subtasks' },
  { label: 'Queued out', cls: 'num', title: 'records in the output channels now (hover for the most so far)' },
];

class JobPage {
  constructor(id) {
    this.id = id;
    this.tab = 'graph';
    this.samples = new Samples();
    this.expanded = null;
    this.selected = null;
    this.pendingAction = null;
    this.busy = false;
    this.details = null;
  }

  mount() {
    markNav('jobs');
    const id = esc(this.id);
    main.innerHTML = `
      <header class="job-head" id="job-head" data-job-status="">
        <div class="crumbs"><a href="#/jobs">Jobs</a><span>/</span><code>${id}</code></div>
        <div class="job-title-row">
          <h1 class="page-title"><span id="job-name">Job</span> <span id="job-status-badge"></span></h1>
          <div class="actions" id="actions">
            <button type="button" class="btn" id="action-savepoint" data-action="savepoint">Savepoint</button>
            <button type="button" class="btn" id="action-stop" data-action="stop">Stop with savepoint</button>
            <button type="button" class="btn danger" id="action-cancel" data-action="cancel">Cancel job</button>
          </div>
        </div>
        <div class="facts" id="job-facts"></div>
        <div class="confirm" id="action-confirm-panel" hidden>
          <p id="action-question"></p>
          <div class="confirm-fields">
            <label id="action-target-field">Target directory
              <input type="text" id="action-target" placeholder="the cluster's default savepoint directory" autocomplete="off" spellcheck="false"></label>
            <label id="action-drain-field" class="check"><input type="checkbox" id="action-drain"> Drain (advance event time to the end, firing every window)</label>
          </div>
          <div class="confirm-buttons">
            <button type="button" class="btn danger" id="action-confirm">Confirm</button>
            <button type="button" class="btn" id="action-dismiss">Back</button>
            <span class="hint token-hint">Needs the REST token (field at the top right).</span>
          </div>
        </div>
        <div class="action-result" id="action-result" role="status" hidden></div>
        <div class="alert" id="job-cause" hidden></div>
      </header>
      <nav class="tabs" id="job-tabs">
        <a id="tab-graph" data-tab="graph" href="#/jobs/${id}">Overview</a>
        <a id="tab-checkpoints" data-tab="checkpoints" href="#/jobs/${id}/checkpoints">Checkpoints <span class="count" id="tab-checkpoints-count"></span></a>
        <a id="tab-exceptions" data-tab="exceptions" href="#/jobs/${id}/exceptions">Exceptions <span class="count" id="tab-exceptions-count"></span></a>
      </nav>
      <section class="tab-body" id="body-graph">
        <div class="panel graph-panel">
          <div class="legend">
            <span><i class="sw sw-idle"></i>idle</span><span><i class="sw sw-busy"></i>busy</span><span><i class="sw sw-bp"></i>backpressured</span>
            <span class="hint" id="graph-hint"></span>
          </div>
          <div class="graph" id="job-graph"></div>
        </div>
        <div class="panel"><h2>Vertices</h2>
          <table class="grid vertices" id="vertex-table">${tableHead(VERTEX_COLUMNS)}<tbody id="vertex-rows"></tbody></table>
        </div>
      </section>
      <section class="tab-body" id="body-checkpoints" hidden>
        <div class="cards" id="checkpoint-cards"></div>
        <div class="panel charts" id="checkpoint-charts"></div>
        <div class="panel"><h2>History</h2>
          <table class="grid" id="checkpoint-table">${tableHead([
            { label: 'ID', cls: 'num' },
            'Type',
            'Status',
            { label: 'Duration', cls: 'num' },
            { label: 'Size', cls: 'num' },
            { label: 'Alignment', cls: 'num', title: 'the longest barrier alignment of any subtask' },
            { label: 'Sync', cls: 'num', title: 'the longest synchronous snapshot part of any subtask (on its loop)' },
            { label: 'Async', cls: 'num', title: 'the longest asynchronous snapshot part of any subtask' },
            'Location / failure',
          ])}<tbody id="checkpoint-rows"></tbody></table><div id="checkpoint-empty"></div>
        </div>
      </section>
      <section class="tab-body" id="body-exceptions" hidden>
        <div class="cards" id="exception-cards"></div>
        <div class="panel"><h2>Failures</h2>
          <table class="grid" id="exception-table">${tableHead(['Time', { label: 'Attempt', cls: 'num' }, 'Cause'])}<tbody id="exception-rows"></tbody></table>
          <div id="exception-empty"></div>
        </div>
      </section>`;
    this.graph = new JobGraph(document.getElementById('job-graph'), (v) => this.select(v));
    document.getElementById('actions').addEventListener('click', (event) => {
      const button = event.target.closest('[data-action]');
      if (button && !button.disabled) this.ask(button.dataset.action);
    });
    document.getElementById('action-confirm').addEventListener('click', () => this.confirm());
    document.getElementById('action-dismiss').addEventListener('click', () => this.dismiss());
    document.getElementById('vertex-rows').addEventListener('click', (event) => {
      const row = event.target.closest('[data-vertex-row]');
      if (row) this.toggle(Number(row.dataset.vertexRow));
    });
  }

  setTab(tab) {
    this.tab = tab;
    for (const t of ['graph', 'checkpoints', 'exceptions']) {
      document.getElementById(`body-${t}`).hidden = t !== tab;
      document.getElementById(`tab-${t}`).classList.toggle('active', t === tab);
    }
  }

  select(v) {
    this.selected = v;
    this.expanded?.add(v);
    this.renderVertices();
    document.querySelector(`[data-vertex-row="${v}"]`)?.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  }

  toggle(v) {
    if (this.expanded.has(v)) this.expanded.delete(v);
    else this.expanded.add(v);
    this.selected = v;
    this.renderVertices();
  }

  // The in-page confirmation of an action, then its call.

  ask(action) {
    const a = ACTIONS[action];
    this.pendingAction = action;
    document.getElementById('action-question').innerHTML = a.question(this.details?.name ?? this.id);
    document.getElementById('action-target-field').hidden = !a.target;
    document.getElementById('action-drain-field').hidden = !a.drain;
    const confirm = document.getElementById('action-confirm');
    confirm.textContent = a.confirm;
    confirm.classList.toggle('danger', action !== 'savepoint');
    document.getElementById('action-confirm-panel').hidden = false;
    confirm.focus();
  }

  dismiss() {
    this.pendingAction = null;
    document.getElementById('action-confirm-panel').hidden = true;
  }

  async confirm() {
    const action = this.pendingAction;
    if (!action || this.busy) return;
    const a = ACTIONS[action];
    const target = document.getElementById('action-target').value.trim();
    const drain = document.getElementById('action-drain').checked;
    this.dismiss();
    this.busy = true;
    this.updateButtons();
    this.result('pending', a.pending, action);
    try {
      const answer = await a.run(this.id, target, drain);
      this.result('ok', a.done(answer), action);
    } catch (e) {
      let text = e.message;
      if (e.status === 401 || e.status === 403)
        text +=
          '. Enter the cluster’s REST token (the file token in the cluster directory) in the field at the top right.';
      this.result('error', text, action);
    } finally {
      this.busy = false;
      this.updateButtons();
      tick();
    }
  }

  result(state, text, action) {
    const el = document.getElementById('action-result');
    el.hidden = false;
    el.dataset.state = state;
    el.dataset.action = action;
    el.textContent = text;
  }

  updateButtons() {
    const status = this.details?.state;
    const running = status === 'RUNNING';
    const live = status != null && !TERMINAL.has(status);
    document.getElementById('action-cancel').disabled = this.busy || !live;
    document.getElementById('action-savepoint').disabled = this.busy || !running;
    document.getElementById('action-stop').disabled = this.busy || !running;
  }

  // Figures.

  async refresh() {
    let details;
    let checkpoints;
    let exceptions;
    try {
      [details, checkpoints, exceptions] = await Promise.all([
        api(`jobs/${this.id}`),
        api(`jobs/${this.id}/checkpoints`),
        api(`jobs/${this.id}/exceptions`),
      ]);
    } catch (e) {
      if (e.status === 404 || e.status === 400) {
        document.getElementById('job-name').textContent = 'No such job';
        setHTML(document.getElementById('job-facts'), `<span class="alert-text">${esc(e.message)}</span>`);
        return;
      }
      throw e;
    }
    const now = performance.now();
    this.details = details;
    document.title = `${details.name} · Weir`;
    document.getElementById('job-name').textContent = details.name;
    setHTML(document.getElementById('job-status-badge'), badge(details.state));
    setAttr(document.getElementById('job-head'), 'data-job-status', details.state);
    const cause = document.getElementById('job-cause');
    cause.hidden = !details.cause;
    cause.textContent = details.cause ? `Cause: ${details.cause}` : '';
    this.updateButtons();

    const stats = vertexStats(details, this.samples, now);
    this.stats = stats;
    if (this.expanded === null) {
      // Small jobs open with every subtask shown.
      const subtasks = details.vertices.reduce((a, v) => a + v.subtasks.length, 0);
      this.expanded = new Set(subtasks <= 16 ? details.vertices.map((_, i) => i) : []);
    }
    const parallelism = Math.max(0, ...details.vertices.map((v) => v.parallelism));
    const latest = checkpoints?.latest?.completed;
    const sources = stats.vertices.filter((v) => !details.plan.edges.some((e) => e.target_vertex === v.id));
    // What the sources read from outside: the job's intake.
    const sourceRate = sources.reduce((a, v) => a + (isNum(v.inRate) ? v.inRate : 0), 0);
    setHTML(
      document.getElementById('job-facts'),
      fact('Job ID', `<code>${esc(details.jid)}</code>`) +
        fact('Duration', duration(details.duration)) +
        fact('Parallelism', String(parallelism)) +
        fact('Tasks', taskSummary(details.vertices.flatMap((v) => v.subtasks.map((s) => s.status))) || '–') +
        fact('Sources read', rate(sourceRate)) +
        fact('Restarts', count(exceptions?.restarts ?? 0)) +
        fact(
          'Last checkpoint',
          latest ? `#${latest.id} · ${duration(latest.duration_ms)} · ${bytes(latest.bytes)}` : 'none yet',
        ),
    );
    setHTML(
      document.getElementById('tab-checkpoints-count'),
      checkpoints?.counts ? String(checkpoints.counts.completed) : '',
    );
    setHTML(
      document.getElementById('tab-exceptions-count'),
      exceptions?.exceptions?.length ? String(exceptions.exceptions.length) : '',
    );

    // An ended job's figures are its last: the graph says so, muted.
    const ended = TERMINAL.has(details.state);
    document.getElementById('job-graph').classList.toggle('ended', ended);
    document.getElementById('graph-hint').textContent = ended
      ? `The job ${{ FINISHED: 'finished', CANCELED: 'was canceled', FAILED: 'failed' }[details.state]}: its last figures. Click a vertex for its subtasks.`
      : `Colour: the busiest or most backpressured subtask, over the last ${RATE_WINDOW_MS / 1000} s. Click a vertex for its subtasks.`;
    this.graph.draw(details.plan, stats.withWatermark);
    this.graph.update(stats.vertices, this.selected);
    this.renderVertices();
    this.renderCheckpoints(checkpoints);
    this.renderExceptions(exceptions, details);
  }

  renderVertices() {
    const stats = this.stats;
    if (!stats) return;
    const table = document.getElementById('vertex-table');
    const columns = stats.withWatermark
      ? [
          ...VERTEX_COLUMNS,
          {
            label: 'Watermark · lag',
            title: 'the lowest input watermark (a source: its output watermark) and how far it is behind now',
          },
        ]
      : VERTEX_COLUMNS;
    setHTML(table.querySelector('thead'), tableHead(columns).replace(/^<thead>|<\/thead>$/g, ''));
    const rows = [];
    for (const v of stats.vertices) {
      rows.push({ kind: 'vertex', v });
      if (this.expanded.has(v.id)) for (const s of v.subtasks) rows.push({ kind: 'subtask', v, s });
    }
    syncRows(
      document.getElementById('vertex-rows'),
      rows,
      (r) => (r.kind === 'vertex' ? `v${r.v.id}` : `v${r.v.id}s${r.s.raw.subtask}`),
      (r) => {
        const wm = stats.withWatermark;
        if (r.kind === 'vertex') {
          const v = r.v;
          const open = this.expanded.has(v.id);
          const tms = new Set(v.subtasks.map((s) => s.raw['taskmanager-id']).filter(Boolean));
          return {
            cls: `vertex-row${this.selected === v.id ? ' selected' : ''}`,
            attrs: { 'data-vertex-row': v.id, 'aria-expanded': open },
            cells: [
              `<span class="twisty">${open ? '▾' : '▸'}</span><span class="vname" title="${esc(v.name)}">${esc(v.name.replaceAll(' -> ', ' → '))}</span>` +
                `<span class="muted" title="on ${tms.size} TaskManager${tms.size === 1 ? '' : 's'}"> ×${v.parallelism}</span>`,
              taskSummary(v.subtasks.map((s) => s.raw.status)),
              recordsCell(v.readRecords, v.inRate, v.history.in),
              v.sink ? { html: '–', cls: 'num' } : recordsCell(v.writeRecords, v.outRate, v.history.out),
              shareCell(v.busy, 'busy'),
              shareCell(v.backpressured, 'bp'),
              shareCell(v.idle, 'idle'),
              {
                html: `<span title="at most ${count(v.peakQueued)} in one subtask so far">${count(v.queued)}</span>`,
                cls: 'num',
              },
              ...(wm ? [watermarkCell(v.watermark, 'the lowest of its subtasks')] : []),
            ],
          };
        }
        const s = r.s;
        const raw = s.raw;
        return {
          cls: 'subtask-row',
          attrs: { 'data-subtask': `${r.v.id}/${raw.subtask}` },
          cells: [
            `Subtask ${raw.subtask} <span class="tm">${raw['taskmanager-id'] ? esc(raw['taskmanager-id']) : 'no slot yet'}</span>`,
            badge(raw.status),
            recordsCell(raw['read-records'], s.inRate),
            r.v.sink ? { html: '–', cls: 'num' } : recordsCell(raw['write-records'], s.outRate),
            shareCell(s.busy, 'busy'),
            shareCell(s.backpressured, 'bp'),
            shareCell(s.idle, 'idle'),
            {
              html: `<span title="at most ${count(raw['peak-queued-out'])} so far">${count(raw['queued-out'])}</span>`,
              cls: 'num',
            },
            ...(wm
              ? [
                  watermarkCell(
                    s.watermark,
                    hasKey(raw, 'input-watermark')
                      ? `input ${watermark(raw['input-watermark'])}, output ${watermark(raw['output-watermark'])}`
                      : `output ${watermark(raw['output-watermark'])}`,
                  ),
                ]
              : []),
          ],
        };
      },
    );
  }

  renderCheckpoints(c) {
    const counts = c?.counts;
    const latest = c?.latest?.completed;
    const restored = c?.latest?.restored;
    setHTML(
      document.getElementById('checkpoint-cards'),
      (counts
        ? card('Completed', count(counts.completed), { id: 'checkpoints-completed' }) +
          card('Failed', count(counts.failed)) +
          card('In progress', count(counts.in_progress)) +
          card('Restored', count(counts.restored))
        : card('Statistics', '–', { sub: 'not kept once the job ended' })) +
        card('Latest completed', latest ? `#${latest.id}` : '–', {
          sub: latest
            ? `${duration(latest.duration_ms)} · ${bytes(latest.bytes)} · alignment ${duration(latest.alignment_ms)}`
            : 'none yet',
        }) +
        card('Latest restored', restored != null ? `#${restored}` : '–', {
          sub:
            restored != null
              ? `restored ${(c.restored ?? []).length} time${(c.restored ?? []).length === 1 ? '' : 's'}`
              : 'started afresh',
        }),
    );
    const history = [...(c?.history ?? [])].reverse();
    const chart = (title, values, fmt, cls) => {
      const max = Math.max(1, ...values.map((x) => x.value));
      const w = 520;
      const h = 90;
      const step = w / Math.max(values.length, 20);
      const bars = values
        .map((x, i) => {
          const bh = Math.max(1, (x.value / max) * (h - 16));
          return `<rect class="${x.failed ? 'bar-failed' : cls}" x="${(i * step + 1).toFixed(1)}" y="${(h - bh).toFixed(1)}" width="${Math.max(1, step - 2).toFixed(1)}" height="${bh.toFixed(1)}"><title>#${x.id}: ${esc(fmt(x.value))}</title></rect>`;
        })
        .join('');
      return (
        `<div class="chart"><div class="chart-title">${esc(title)} <span class="muted">max ${esc(fmt(max))}</span></div>` +
        `<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img"><line class="axis" x1="0" x2="${w}" y1="${h - 0.5}" y2="${h - 0.5}"/>${bars}</svg></div>`
      );
    };
    const oldestFirst = c?.history ?? [];
    setHTML(
      document.getElementById('checkpoint-charts'),
      oldestFirst.length
        ? chart(
            'Duration',
            oldestFirst.map((x) => ({ id: x.id, value: x.duration_ms, failed: x.status !== 'COMPLETED' })),
            duration,
            'bar-duration',
          ) +
            chart(
              'Size',
              oldestFirst.map((x) => ({ id: x.id, value: x.bytes, failed: x.status !== 'COMPLETED' })),
              bytes,
              'bar-size',
            )
        : '',
    );
    document.getElementById('checkpoint-charts').hidden = !oldestFirst.length;
    syncRows(
      document.getElementById('checkpoint-rows'),
      history,
      (x) => x.id,
      (x) => ({
        attrs: { 'data-checkpoint-id': x.id, 'data-checkpoint-status': x.status },
        cells: [
          {
            html: `#${x.id}${restored === x.id ? ' <span class="tag st-finished" title="the job restored from it">restored</span>' : ''}`,
            cls: 'num',
          },
          x.savepoint ? 'Savepoint' : 'Checkpoint',
          badge(x.status === 'COMPLETED' ? 'COMPLETED' : x.status),
          { html: duration(x.duration_ms), cls: 'num' },
          { html: bytes(x.bytes), cls: 'num' },
          { html: duration(x.alignment_ms), cls: 'num' },
          { html: micros(x.sync_us), cls: 'num' },
          { html: micros(x.async_us), cls: 'num' },
          {
            html: x.failure
              ? `<span class="alert-text">${esc(x.failure)}</span>`
              : x.savepoint
                ? `<code>${esc(x.savepoint)}</code>`
                : '',
            cls: 'wrap',
          },
        ],
      }),
    );
    setHTML(
      document.getElementById('checkpoint-empty'),
      history.length
        ? ''
        : empty(
            counts ? 'No checkpoint yet: is checkpointing enabled (--checkpoint-interval)?' : 'No checkpoint history.',
          ),
    );
  }

  renderExceptions(x, details) {
    const list = [...(x?.exceptions ?? [])].reverse();
    setHTML(
      document.getElementById('exception-cards'),
      card('Restarts', count(x?.restarts ?? 0), { id: 'restarts' }) +
        card('Failures', count(list.length)) +
        card('Status', badge(details.state)),
    );
    syncRows(
      document.getElementById('exception-rows'),
      list,
      (e) => `${e.time_ms}/${e.attempt}`,
      (e) => ({
        attrs: { 'data-exception': e.attempt },
        cells: [
          { html: time(e.time_ms), cls: 'mono' },
          { html: String(e.attempt), cls: 'num' },
          { html: `<pre class="cause">${esc(e.cause)}</pre>`, cls: 'wrap' },
        ],
      }),
    );
    setHTML(
      document.getElementById('exception-empty'),
      list.length ? '' : empty('No failures: the job has not failed or restarted.'),
    );
  }
}

/** A count of records over its rate, with the rate's recent history when given. */
function recordsCell(total, perSecond, history) {
  const spark = history ? sparkline(history, { width: 56, height: 16 }) : '';
  return { html: `<div>${count(total)}</div><div class="rate">${rate(perSecond)}${spark}</div>`, cls: 'num records' };
}

/** A watermark as its time and, muted, its lag behind now; `detail` in the tooltip. */
function watermarkCell(epochMs, detail) {
  const text = watermark(epochMs);
  const match = /^(.*) \(lag (.*)\)$/.exec(text);
  const html = match
    ? `${esc(match[1])} <span class="muted">${esc(match[2])}</span>`
    : `<span class="muted">${esc(text)}</span>`;
  return { html: `<span title="${esc(detail)}">${html}</span>`, cls: 'wm' };
}

function fact(label, html) {
  return `<div class="fact"><div class="fact-label">${esc(label)}</div><div class="fact-value">${html}</div></div>`;
}

class NotFoundPage {
  mount() {
    markNav('');
    main.innerHTML = `<h1 class="page-title">Not found</h1>${empty(`Nothing at ${location.hash}: try the overview.`)}`;
  }

  async refresh() {}
}

// ---------------------------------------------------------------------------------------------
// Routing and polling.

let page = null;
let pageKey = null;

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  let key;
  let make;
  let tab = null;
  if (parts.length === 0 || (parts[0] === 'overview' && parts.length === 1)) {
    [key, make] = ['overview', () => new OverviewPage()];
  } else if (parts[0] === 'jobs' && parts.length === 1) {
    [key, make] = ['jobs', () => new JobsPage()];
  } else if (
    parts[0] === 'jobs' &&
    parts.length <= 3 &&
    (parts.length === 2 || ['checkpoints', 'exceptions'].includes(parts[2]))
  ) {
    const id = decodeURIComponent(parts[1]);
    [key, make] = [`job/${id}`, () => new JobPage(id)];
    tab = parts[2] ?? 'graph';
  } else if (parts[0] === 'taskmanagers' && parts.length === 1) {
    [key, make] = ['taskmanagers', () => new TaskManagersPage()];
  } else {
    [key, make] = [`404/${location.hash}`, () => new NotFoundPage()];
  }
  if (key !== pageKey) {
    page = make();
    pageKey = key;
    page.mount();
    window.scrollTo(0, 0);
  }
  if (tab) page.setTab(tab);
  tick();
}

let timer = null;
let generation = 0;

/** Refreshes the page now and again a second after it answered; stops while the tab is hidden. */
async function tick() {
  clearTimeout(timer);
  const mine = ++generation;
  if (document.hidden) {
    showStatus('paused', 'Paused while the tab is hidden');
    return;
  }
  try {
    await page.refresh();
    if (mine === generation) showStatus('ok', `Live · updated ${time(Date.now())} · every ${POLL_MS / 1000} s`);
  } catch (e) {
    if (mine === generation) showStatus('error', `Not updated since the error at ${time(Date.now())}`, e.message);
  } finally {
    if (mine === generation) timer = setTimeout(tick, POLL_MS);
  }
}

// The version, for the sidebar on whichever page opens first (the overview refreshes it).
api('overview')
  .then((o) => {
    document.getElementById('version').textContent = `v${o['weir-version']}`;
  })
  .catch(() => {
    // The page's own refresh reports an unreachable JobManager in the status bar.
  });
window.addEventListener('hashchange', route);
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) tick();
  else showStatus('paused', 'Paused while the tab is hidden');
});
route();
