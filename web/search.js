// The search page (GET /api/search): a query box; events (a timeline of
// `<q> | timechart count`, the list, the fields sidebar), statistics (the
// result table) and visualization (a chart of a timechart or stats result).
import { api, params, setQuery, el, nav, fmtTime, isNum } from './app.js';
import { barsPath, chartWidth, timeAxis, yAxis } from './charts.js';

const uPlot = window.uPlot; // a classic script before this module

nav('search');
const form = document.getElementById('form');
const qBox = document.getElementById('q');
const earliestSel = document.getElementById('earliest');
const errorBox = document.getElementById('error');
const summary = document.getElementById('summary');
const results = document.getElementById('results');
const PAGE = 100;
const LIMIT = 1000;
const PALETTE = ['#2f6fd6', '#e8590c', '#2b9348', '#8e44ad', '#c2185b', '#00838f', '#6d4c41', '#7cb342', '#f9a825', '#5c6bc0'];

const state = { result: null, timeline: null, timelineChart: null, vizChart: null, tab: null, runs: 0, error: null };
window.parallax = state;

// ---- tabs -------------------------------------------------------------------

function showTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll('.tabs button')) b.classList.toggle('active', b.dataset.tab === tab);
  for (const p of document.querySelectorAll('[data-pane]')) p.hidden = p.dataset.pane !== tab;
  if (tab === 'visualization') drawViz();
  if (tab === 'events') drawTimeline();
}
for (const b of document.querySelectorAll('.tabs button')) b.addEventListener('click', () => !b.disabled && showTab(b.dataset.tab));

// ---- errors -----------------------------------------------------------------

function showSearchError(q, e) {
  state.error = e ? { message: e.message, code: e.code, column: e.column } : null;
  errorBox.textContent = '';
  errorBox.hidden = !e;
  if (!e) return;
  errorBox.append(el('strong', {}, e.code === 'bad_query' ? 'Bad query' : 'Error'), `: ${e.message}`);
  if (isNum(e.column)) {
    // The query and a caret under the column the error names (0-based).
    // Only the line holding the column is shown, for multi-line queries.
    let start = q.lastIndexOf('\n', e.column - 1) + 1;
    let end = q.indexOf('\n', e.column);
    if (end < 0) end = q.length;
    const line = q.slice(start, end);
    errorBox.append(
      el('pre', { testid: 'error-query' }, line, '\n', el('span', { class: 'caret', testid: 'error-caret' }, ' '.repeat(e.column - start) + '^')),
    );
  }
}

// ---- run --------------------------------------------------------------------

let runSeq = 0;
async function run() {
  const q = qBox.value.trim();
  const earliest = earliestSel.value;
  setQuery({ q, earliest });
  if (!q) return;
  const seq = ++runSeq;
  summary.textContent = 'searching…';
  const t0 = performance.now();
  const timelineQuery = `${q} | timechart count`;
  const main = api('/api/search', { q, earliest, latest: 'now', limit: LIMIT });
  // The timeline only makes sense for events; it runs beside the search.
  const timeline = api('/api/search', { q: timelineQuery, earliest, latest: 'now' }).catch(() => null);
  let r;
  try {
    r = await main;
  } catch (e) {
    if (seq !== runSeq) return;
    summary.textContent = '';
    results.hidden = true;
    state.result = null;
    showSearchError(q, e);
    state.runs++;
    return;
  }
  if (seq !== runSeq) return;
  showSearchError(q, null);
  state.result = r;
  state.timeline = null;
  const ms = Math.round(performance.now() - t0);
  const rows = r.rows || [];
  const st = r.stats || {};
  summary.textContent =
    `${rows.length}${rows.length >= LIMIT ? '+' : ''} ${r.events ? 'events' : 'rows'} in ${ms} ms` +
    (isNum(st.events_read) ? ` · ${st.events_read} events read, ${st.events_matched ?? '?'} matched, ${st.buckets ?? '?'} buckets` : '');
  results.hidden = false;
  const tabs = Object.fromEntries([...document.querySelectorAll('.tabs button')].map((b) => [b.dataset.tab, b]));
  tabs.events.disabled = !r.events;
  tabs.statistics.disabled = r.events;
  tabs.visualization.disabled = r.events;
  tabs.statistics.title = r.events ? 'add a stats or timechart command for a table' : '';
  renderStats(r);
  if (r.events) {
    renderEvents(rows);
    renderFields(rows);
  }
  showTab(r.events ? 'events' : 'statistics');
  if (r.events) {
    const tl = await timeline;
    if (seq !== runSeq) return;
    state.timeline = tl;
    drawTimeline();
  }
  state.runs++;
}

// ---- events -----------------------------------------------------------------

const HIDDEN = new Set(['_raw', '_time']);
function fieldText(v) {
  if (Array.isArray(v)) return v.join(', ');
  return v === null || v === undefined ? '' : String(v);
}

let shown = 0;
let eventRows = [];
function renderEvents(rows) {
  eventRows = rows;
  shown = 0;
  document.getElementById('events').textContent = '';
  moreEvents();
}

function moreEvents() {
  const list = document.getElementById('events');
  const upto = Math.min(eventRows.length, shown + PAGE);
  const frag = document.createDocumentFragment();
  for (let i = shown; i < upto; i++) {
    const r = eventRows[i];
    const meta = ['host', 'sourcetype', 'vm'].filter((k) => r[k] != null).map((k) => `${k}=${fieldText(r[k])}`).join('  ');
    let body;
    if (r._raw != null && r._raw !== '') body = el('div', { class: 'raw mono' }, r._raw);
    else {
      const kv = Object.entries(r).filter(([k, v]) => !HIDDEN.has(k) && !['host', 'sourcetype', 'source', 'index', 'vm'].includes(k) && v !== null);
      body = el('div', { class: 'kv mono' }, kv.map(([k, v]) => el('span', {}, el('b', {}, k), '=', fieldText(v))));
    }
    frag.append(el('li', { testid: 'event-row' }, el('div', { class: 't' }, fmtTime(r._time)), el('div', {}, body, el('div', { class: 'meta' }, meta))));
  }
  shown = upto;
  list.append(frag);
  if (!eventRows.length) list.append(el('li', { class: 'muted' }, 'no events match'));
  const more = document.getElementById('more');
  more.hidden = shown >= eventRows.length;
  more.textContent = `Show more (${eventRows.length - shown} left)`;
}
document.getElementById('more').addEventListener('click', moreEvents);

// The most common fields of the returned events and their top values.
const SELECTED = ['host', 'source', 'sourcetype', 'vm'];
function renderFields(rows) {
  const box = document.getElementById('fields');
  box.textContent = '';
  const stats = new Map();
  for (const r of rows)
    for (const [k, v] of Object.entries(r)) {
      if (HIDDEN.has(k) || v === null || v === undefined || v === '') continue;
      let s = stats.get(k);
      if (!s) stats.set(k, (s = { name: k, count: 0, values: new Map() }));
      s.count++;
      const t = fieldText(v);
      s.values.set(t, (s.values.get(t) || 0) + 1);
    }
  const all = [...stats.values()].sort((a, b) => b.count - a.count || a.name.localeCompare(b.name));
  const selected = all.filter((f) => SELECTED.includes(f.name));
  // "Interesting": in at least a fifth of the events, at most 30 of them.
  const interesting = all.filter((f) => !SELECTED.includes(f.name) && f.count >= rows.length * 0.2).slice(0, 30);
  const section = (title, fields) => {
    if (!fields.length) return;
    box.append(el('h3', {}, title));
    for (const f of fields) {
      const top = [...f.values.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5);
      box.append(
        el(
          'details',
          { testid: 'field', dataset: { field: f.name, count: f.count, distinct: f.values.size } },
          el('summary', {}, el('span', { class: 'mono' }, f.name), el('span', { class: 'cov', title: 'events with the field · distinct values' }, `${Math.round((f.count / rows.length) * 100)} % · ${f.values.size}`)),
          el(
            'ol',
            {},
            top.map(([v, n]) =>
              el('li', { title: 'add to the query', testid: 'field-value', dataset: { value: v }, onclick: () => addTerm(f.name, v) }, el('span', { class: 'val mono' }, v), el('span', { class: 'muted' }, ` ${n} (${Math.round((n / rows.length) * 100)} %)`)),
            ),
          ),
        ),
      );
    }
  };
  section('Selected fields', selected);
  section('Interesting fields', interesting);
  if (!all.length) box.append(el('p', { class: 'muted' }, 'no fields'));
}

function addTerm(field, value) {
  const v = /^[\w.:\-/*@]+$/.test(value) ? value : `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  const q = qBox.value.trim();
  const pipe = q.indexOf('|');
  qBox.value = pipe < 0 ? `${q} ${field}=${v}` : `${q.slice(0, pipe).trim()} ${field}=${v} ${q.slice(pipe)}`;
  run();
}

function drawTimeline() {
  const box = document.getElementById('timeline');
  if (state.timelineChart) {
    state.timelineChart.destroy();
    state.timelineChart = null;
  }
  box.textContent = '';
  const tl = state.timeline;
  if (!tl || !tl.rows || !tl.rows.length || results.hidden || state.tab !== 'events') {
    if (state.result && state.result.events) box.append(el('p', { class: 'muted' }, tl === null ? 'timeline…' : 'no timeline'));
    return;
  }
  const xs = tl.rows.map((r) => r._time);
  const ys = tl.rows.map((r) => (isNum(r.count) ? r.count : 0));
  const span = xs.length > 1 ? xs[1] - xs[0] : 60;
  state.timelineChart = new uPlot(
    {
      width: chartWidth(box),
      height: 120,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: () => [xs[0], xs[xs.length - 1] + span] }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      axes: [timeAxis(), { ...yAxis(''), size: 46 }],
      series: [{}, { label: 'events', fill: 'rgba(47,111,214,0.55)', stroke: '#2f6fd6', width: 0, paths: barsPath() }],
    },
    [xs.map((x) => x + span / 2), ys],
    box,
  );
}

// ---- statistics -------------------------------------------------------------

function cell(v) {
  if (isNum(v)) return Number.isInteger(v) ? String(v) : String(Math.round(v * 10000) / 10000);
  return fieldText(v);
}

function renderStats(r) {
  const t = document.getElementById('stats');
  t.textContent = '';
  if (r.events) return;
  const cols = r.columns || (r.rows && r.rows[0] ? Object.keys(r.rows[0]) : []);
  const numeric = new Set(cols.filter((c) => (r.rows || []).some((row) => isNum(row[c]))));
  t.append(el('thead', {}, el('tr', {}, cols.map((c) => el('th', { class: numeric.has(c) ? 'num' : null }, c)))));
  const tb = el('tbody');
  for (const row of r.rows || [])
    tb.append(el('tr', { testid: 'stats-row' }, cols.map((c) => el('td', { class: numeric.has(c) ? 'num' : null }, c === '_time' && isNum(row[c]) ? fmtTime(row[c]) : cell(row[c])))));
  if (!(r.rows || []).length) tb.append(el('tr', { class: 'empty' }, el('td', { colspan: cols.length || 1 }, 'no rows')));
  t.append(tb);
}

// ---- visualization ----------------------------------------------------------

function drawViz() {
  const box = document.getElementById('viz');
  if (state.vizChart) {
    state.vizChart.destroy();
    state.vizChart = null;
  }
  box.textContent = '';
  const r = state.result;
  if (!r || r.events) return;
  const rows = r.rows || [];
  const cols = r.columns || (rows[0] ? Object.keys(rows[0]) : []);
  const numeric = cols.filter((c) => c !== '_time' && rows.some((row) => isNum(row[c])) && rows.every((row) => row[c] === null || isNum(row[c])));
  if (!rows.length || !numeric.length) {
    box.append(el('p', { class: 'muted' }, 'nothing numeric to draw'));
    return;
  }
  const width = chartWidth(box);
  if (cols.includes('_time')) {
    // timechart: one line per column
    const xs = rows.map((row) => row._time);
    state.vizChart = new uPlot(
      {
        width,
        height: 320,
        scales: { x: { time: true } },
        axes: [timeAxis(), yAxis('')],
        series: [{ label: 'time', value: (u, v) => (v == null ? '–' : fmtTime(v)) }, ...numeric.map((c, i) => ({ label: c, stroke: PALETTE[i % PALETTE.length], width: 1.75, spanGaps: false }))],
      },
      [xs, ...numeric.map((c) => rows.map((row) => (isNum(row[c]) ? row[c] : null)))],
      box,
    );
  } else {
    // stats: bars per group, the group named by the non-numeric columns
    const groupCols = cols.filter((c) => !numeric.includes(c));
    const labels = rows.map((row) => (groupCols.length ? groupCols.map((c) => fieldText(row[c])).join(' · ') : 'all'));
    const xs = rows.map((_, i) => i);
    const k = numeric.length;
    state.vizChart = new uPlot(
      {
        width,
        height: 320,
        scales: { x: { time: false, range: () => [-0.5, rows.length - 0.5] }, y: { range: (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.05 : 1] } },
        axes: [
          { stroke: '#6b7382', grid: { show: false }, splits: () => xs, values: (u, splits) => splits.map((i) => (Number.isInteger(i) && labels[i] !== undefined ? labels[i] : '')), rotate: 0, size: 40 },
          yAxis(''),
        ],
        series: [
          { label: groupCols.join(', ') || 'group', value: (u, v) => (v == null ? '–' : labels[v] ?? '') },
          ...numeric.map((c, i) => ({
            label: c,
            stroke: PALETTE[i % PALETTE.length],
            fill: PALETTE[i % PALETTE.length] + (k > 1 ? '99' : 'cc'),
            width: 1,
            paths: uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [Math.max(0.2, 0.8 - i * (0.6 / k)), Math.max(20, 80 - i * (60 / k))] }) : undefined,
          })),
        ],
      },
      [xs, ...numeric.map((c) => rows.map((row) => (isNum(row[c]) ? row[c] : null)))],
      box,
    );
  }
}

// ---- start ------------------------------------------------------------------

form.addEventListener('submit', (e) => {
  e.preventDefault();
  run();
});
qBox.value = params.get('q') || '';
if (params.get('earliest')) {
  const v = params.get('earliest');
  if (![...earliestSel.options].some((o) => o.value === v)) earliestSel.append(el('option', { value: v }, v));
  earliestSel.value = v;
}
if (qBox.value) run();
else {
  qBox.value = 'sourcetype=os:auth';
  summary.textContent = 'Search hypervisor and guest events together (docs/search.md).';
}
