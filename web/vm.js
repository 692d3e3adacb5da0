// One VM seen from both sides (GET /api/vm/NAME): the process table on top,
// memory and CPU charts below on one time axis (hypervisor solid, the
// selected process dashed, the guest's own figure, the delta band shaded),
// the VM's alerts on that axis and in a list beside. Clicking a process
// redraws the dashed lines (GET /api/vm/NAME/process/PID); double-clicking
// opens its details. Live from /api/stream?vm=NAME.
import {
  api, ApiError, link, params, setQuery, stream, throttle, el, nav, setLive, showError,
  SortableTable, fmtBytes, fmtPct, fmtTime, fmtClock, isNum, severityColor,
} from './app.js';
import { uPlotReady, domReady, alertsPlugin, autoResize, chartWidth, yAxis, timeAxis } from './charts.js';

const RANGES = ['15m', '1h', '6h', '24h'];
const POINTS = 720;
const CHART_HEIGHT = 230;
const COLOURS = {
  hv: '#2f6fd6',
  proc: '#e8590c',
  guest: '#2b9348',
  ready: '#8e44ad',
  steal: '#c2185b',
  band: 'rgba(47, 111, 214, 0.13)',
};

const vmName = params.get('vm') || '';
let range = RANGES.includes(params.get('range')) ? params.get('range') : '1h';
let selectedPid = params.has('pid') && params.get('pid') !== '' ? Number(params.get('pid')) : null;
// The VM's answer is the slow part of the first paint: ask at once, while
// uPlot (deferred) and the page are still loading (this module is async).
let prefetched = vmName ? takePrefetch() ?? api(`/api/vm/${encodeURIComponent(vmName)}`, { earliest: '-' + range, latest: 'now', points: POINTS }) : null;
if (prefetched) prefetched.catch(() => {}); // reported where it is used
// The request vm.html's inline script started, if it asked for what this
// page would ask (same path and query), as api() would return it.
function takePrefetch() {
  const pre = window.parallaxPrefetch;
  window.parallaxPrefetch = null;
  if (!pre) return null;
  const u = new URL(`/api/vm/${encodeURIComponent(vmName)}`, location.origin);
  u.searchParams.set('earliest', '-' + range);
  u.searchParams.set('latest', 'now');
  u.searchParams.set('points', POINTS);
  if (pre.url !== u.pathname + u.search) return null;
  return pre.response.then(async (r) => {
    let body = null;
    try {
      body = await r.json();
    } catch {
      body = null;
    }
    if (!r.ok) throw new ApiError(r.status, body);
    return body;
  });
}
let uPlot = null;
await domReady();
nav('vms');
let vmData = null; // the VM's answer
let procData = null; // the selected process's answer
let memChart = null;
let cpuChart = null;
let cpuShape = ''; // which optional CPU series the chart has
let xRange = [0, 1];
let hotAlert = null;
let chartAlerts = [];

const errorBox = document.getElementById('error');
const memBox = document.getElementById('mem-chart');
const cpuBox = document.getElementById('cpu-chart');
const detail = document.getElementById('detail');

const state = {
  memChart: null,
  cpuChart: null,
  selectedPid: null,
  selectedName: null,
  vm: null,
  process: null,
  range: null,
  loads: 0,
  processLoads: 0,
  busy: false, // a load is under way
  chartsDrawnMs: null, // ms from navigation start to both charts drawn
  reload: () => load(),
  select: (pid) => select(pid),
};
window.parallax = state;

document.getElementById('title').textContent = vmName || '(no VM given)';
document.title = `Parallax · ${vmName}`;

// ---- process table ----------------------------------------------------------

const procTable = new SortableTable(
  document.getElementById('processes'),
  [
    { key: 'pid', label: 'PID', num: true },
    {
      key: 'name',
      label: 'Name',
      render: (p) => [
        el('a', { href: link('/process.html', { name: p.name }), title: 'every VM running ' + p.name, testid: 'process-link' }, p.name || '?'),
        p.rogue ? el('span', { class: 'tag rogue', title: 'rogue process alert open' }, 'rogue') : null,
        p.non_admin ? el('span', { class: 'tag nonadmin', title: 'non-admin owner alert open' }, 'non-admin') : null,
      ],
    },
    { key: 'user', label: 'Owner', render: (p) => el('span', { title: isNum(p.uid) ? `uid ${p.uid}` : '' }, p.user || '–') },
    { key: 'cpu_pct', label: 'CPU %', num: true, render: (p) => fmtPct(p.cpu_pct) },
    { key: 'rss_bytes', label: 'RSS', num: true, render: (p) => fmtBytes(p.rss_bytes) },
  ],
  {
    sortKey: 'cpu_pct',
    desc: true,
    empty: 'no process samples in the last 2 minutes of the range',
    rowAttrs: (p) => ({
      testid: 'process-row',
      dataset: { pid: p.pid, name: p.name },
      class: [p.pid === selectedPid ? 'selected' : '', p.rogue ? 'rogue' : '', p.non_admin ? 'nonadmin' : ''].join(' ').trim() || null,
      title: 'click: show in the charts · double-click: details',
    }),
  },
);
procTable.tbody.addEventListener('click', (e) => {
  if (e.target.closest('a')) return;
  const tr = e.target.closest('tr');
  if (tr && tr._row) select(tr._row.pid);
});
procTable.tbody.addEventListener('dblclick', (e) => {
  if (e.target.closest('a')) return;
  const tr = e.target.closest('tr');
  if (tr && tr._row) openDetail(tr._row);
});

// ---- data shaping -----------------------------------------------------------

const nulls = (n) => new Array(n).fill(null);
function col(series, key, n) {
  const a = series && series[key];
  return Array.isArray(a) && a.length === n ? a : nulls(n);
}
const hasData = (a) => Array.isArray(a) && a.some((v) => isNum(v));

// The process's values on the VM's bins: same times when both answers used
// the same range (the usual case); otherwise the nearest bin within half a
// span.
function aligned(key) {
  const t = vmData.series.time || [];
  if (!procData || !procData.series) return nulls(t.length);
  const pt = procData.series.time || [];
  const pv = procData.series[key] || [];
  if (pt.length === t.length && pt.every((v, i) => v === t[i])) return pv.slice();
  const half = (vmData.span || 20) / 2;
  const out = nulls(t.length);
  let j = 0;
  for (let i = 0; i < t.length; i++) {
    while (j < pt.length - 1 && Math.abs(pt[j + 1] - t[i]) <= Math.abs(pt[j] - t[i])) j++;
    if (pt.length && Math.abs(pt[j] - t[i]) <= half) out[i] = pv[j] ?? null;
  }
  return out;
}

function memSeriesData() {
  const s = vmData.series;
  const n = (s.time || []).length;
  return [s.time || [], col(s, 'hv_mem_pct', n), aligned('mem_pct'), col(s, 'guest_mem_pct', n)];
}

function cpuShapeOf() {
  const s = vmData.series;
  return (hasData(s.ready_pct) ? 'r' : '') + (hasData(s.steal_pct) ? 's' : '');
}

function cpuSeriesData() {
  const s = vmData.series;
  const n = (s.time || []).length;
  const d = [s.time || [], col(s, 'hv_cpu_pct', n), aligned('cpu_pct'), col(s, 'guest_cpu_pct', n)];
  if (cpuShape.includes('r')) d.push(col(s, 'ready_pct', n));
  if (cpuShape.includes('s')) d.push(col(s, 'steal_pct', n));
  return d;
}

function processLabel() {
  if (selectedPid === null) return 'process (none selected)';
  const name = (procData && procData.name) || state.selectedName || '';
  return `${name} [${selectedPid}]`;
}

// ---- charts -----------------------------------------------------------------

function pctScale() {
  return {
    range: (u, min, max) => [0, isNum(max) ? Math.max(10, Math.ceil((max * 1.08) / 5) * 5) : 100],
  };
}

function baseOpts(title, series, extra = {}) {
  return {
    width: chartWidth(memBox),
    height: CHART_HEIGHT,
    series: [{ label: 'time', value: (u, v) => (v == null ? '–' : fmtTime(v)) }, ...series],
    scales: { x: { time: true, range: () => xRange }, y: pctScale() },
    axes: [timeAxis(), yAxis('%', (v) => v + '')],
    cursor: { sync: { key: 'parallax-vm' }, drag: { x: false, y: false } },
    legend: { live: true },
    plugins: [alertsPlugin(() => chartAlerts, () => hotAlert)],
    hooks: { draw: [markDrawn] },
    ...extra,
  };
}

const pctValue = (u, v) => (v == null ? '–' : v.toFixed(1) + ' %');

function buildMemChart() {
  if (memChart) memChart.destroy();
  memBox.textContent = '';
  memChart = new uPlot(
    baseOpts('memory', [
      { label: 'hypervisor', stroke: COLOURS.hv, width: 2, value: pctValue },
      { label: processLabel(), stroke: COLOURS.proc, width: 1.75, dash: [6, 4], value: pctValue },
      { label: 'guest used', stroke: COLOURS.guest, width: 1.5, value: pctValue },
    ], { bands: [{ series: [1, 3], fill: COLOURS.band }] }),
    memSeriesData(),
    memBox,
  );
  state.memChart = memChart;
}

function buildCpuChart() {
  if (cpuChart) cpuChart.destroy();
  cpuBox.textContent = '';
  cpuShape = cpuShapeOf();
  const series = [
    { label: 'hypervisor', stroke: COLOURS.hv, width: 2, value: pctValue },
    { label: processLabel(), stroke: COLOURS.proc, width: 1.75, dash: [6, 4], value: pctValue },
    { label: 'guest busy', stroke: COLOURS.guest, width: 1.5, value: pctValue },
  ];
  if (cpuShape.includes('r')) series.push({ label: 'ready', stroke: COLOURS.ready, width: 1.25, value: pctValue });
  if (cpuShape.includes('s')) series.push({ label: 'steal', stroke: COLOURS.steal, width: 1.25, dash: [2, 3], value: pctValue });
  cpuChart = new uPlot(baseOpts('cpu', series, { bands: [{ series: [1, 3], fill: COLOURS.band }] }), cpuSeriesData(), cpuBox);
  state.cpuChart = cpuChart;
}

function setProcessLegend() {
  for (const c of [memChart, cpuChart]) {
    if (!c) continue;
    const label = c.root.querySelectorAll('.u-legend .u-series')[2]?.querySelector('.u-label');
    if (label) label.textContent = processLabel();
    c.series[2].label = processLabel();
  }
}

function drawCharts() {
  if (!memChart) buildMemChart();
  else memChart.setData(memSeriesData());
  if (!cpuChart || cpuShapeOf() !== cpuShape) buildCpuChart();
  else cpuChart.setData(cpuSeriesData());
  setProcessLegend();
}

function redrawProcessSeries() {
  if (!vmData) return;
  if (memChart) memChart.setData(memSeriesData());
  if (cpuChart) cpuChart.setData(cpuSeriesData());
  setProcessLegend();
}

let drawnCharts = new Set();
function markDrawn(u) {
  if (state.chartsDrawnMs !== null) return;
  drawnCharts.add(u);
  if (memChart && cpuChart && drawnCharts.has(memChart) && drawnCharts.has(cpuChart)) {
    state.chartsDrawnMs = performance.now();
    document.body.dataset.chartsDrawn = 'true';
  }
}

autoResize(() => [memChart, cpuChart], memBox, CHART_HEIGHT);

// ---- alerts -----------------------------------------------------------------

function renderAlerts() {
  const list = document.getElementById('alerts');
  const events = (vmData && vmData.alerts) || [];
  // Lines: each alert's opening and resolution (updates would crowd the axis).
  chartAlerts = events.filter((a) => a.state === 'open' || a.state === 'resolved');
  // The list: one entry per alert id, newest state.
  const byId = new Map();
  for (const a of events) {
    const key = a.id || `${a.kind}-${a.time}`;
    const cur = byId.get(key);
    if (!cur) byId.set(key, { ...a, opened: a.time, last: a.time });
    else Object.assign(cur, { ...a, opened: Math.min(cur.opened, a.time), last: a.time });
  }
  const alerts = [...byId.values()].sort((a, b) => b.last - a.last);
  document.getElementById('alert-count').textContent = alerts.length ? `${alerts.filter((a) => a.state !== 'resolved').length} open · ${alerts.length} in range` : '';
  list.textContent = '';
  if (!alerts.length) list.append(el('li', { class: 'muted', style: { borderLeftColor: 'transparent' } }, 'no alerts in this range'));
  for (const a of alerts) {
    const li = el(
      'li',
      {
        class: a.state === 'resolved' ? 'resolved' : null,
        style: { borderLeftColor: severityColor(a.severity) },
        testid: 'alert-item',
        dataset: { id: a.id || '', kind: a.kind || '', severity: a.severity || '', state: a.state || '' },
        title: 'hover: highlight on the charts',
      },
      el('div', { class: 'when' }, `${fmtTime(a.opened)}${a.state === 'resolved' ? ' → ' + fmtClock(a.last) : ''} · ${a.state}`),
      el('div', { class: 'what' }, el('span', { style: { color: severityColor(a.severity) } }, a.severity || ''), ` ${a.kind || ''}${a.metric ? ' · ' + a.metric : ''}${a.process ? ' · ' + a.process : ''}`),
      el('div', { class: 'msg' }, a.message || ''),
    );
    li.addEventListener('mouseenter', () => {
      hotAlert = a.id;
      li.classList.add('hot');
      memChart?.redraw(false);
      cpuChart?.redraw(false);
    });
    li.addEventListener('mouseleave', () => {
      hotAlert = null;
      li.classList.remove('hot');
      memChart?.redraw(false);
      cpuChart?.redraw(false);
    });
    list.append(li);
  }
}

// ---- header -----------------------------------------------------------------

function renderHead() {
  const f = document.getElementById('facts');
  f.textContent = '';
  const d = vmData;
  f.append(
    el('span', {}, 'host ', el('b', { testid: 'vm-host' }, d.host || '–')),
    el('span', {}, 'state ', el('b', { class: d.state ? 'state-' + d.state : null }, d.state || '–')),
    d.vm_uuid ? el('span', { class: 'mono', title: 'BIOS UUID' }, d.vm_uuid) : null,
    el('span', { title: 'bin width' }, `${fmtTime(d.earliest)} – ${d.latest - d.earliest > 43200 ? fmtTime(d.latest) : fmtClock(d.latest)} · ${d.span} s bins`),
  );
  for (const b of document.querySelectorAll('#ranges button')) b.classList.toggle('active', b.dataset.range === range);
}

// ---- loading ----------------------------------------------------------------

let loadSeq = 0;
let procSeq = 0;

function pickDefaultPid(processes, alerts) {
  if (!processes.length) return null;
  // The process named by the newest open alert (its pid when the alert
  // gives one, in a field or its message; else the largest of that name),
  // else the busiest.
  const latest = new Map();
  for (const a of alerts || []) if (a.id) latest.set(a.id, a);
  const named = [...latest.values()].filter((a) => a.state !== 'resolved' && a.process).sort((a, b) => b.time - a.time);
  for (const a of named) {
    const m = /\bpid (\d+)/.exec(a.message || '');
    const pid = isNum(a.pid) ? a.pid : m ? Number(m[1]) : null;
    const byPid = pid !== null && processes.find((x) => x.pid === pid);
    if (byPid) return byPid.pid;
    const same = processes.filter((x) => x.name === a.process).sort((x, y) => (y.rss_bytes || 0) - (x.rss_bytes || 0));
    if (same.length) return same[0].pid;
  }
  return processes[0].pid;
}

async function fetchProcess(pid) {
  const seq = ++procSeq;
  const answer = await api(`/api/vm/${encodeURIComponent(vmName)}/process/${pid}`, {
    earliest: vmData ? vmData.earliest : '-' + range,
    latest: vmData ? vmData.latest : 'now',
    points: POINTS,
  });
  if (seq !== procSeq || pid !== selectedPid) return; // a newer selection won
  procData = answer;
  state.process = answer;
  state.selectedName = answer.name;
  state.processLoads++;
  if (!detail.hidden && Number(detail.dataset.pid) === pid) renderDetail(answer);
}

async function load() {
  if (!vmName) {
    showError(errorBox, new Error('no VM given: open vm.html?vm=NAME'));
    return;
  }
  const seq = ++loadSeq;
  state.busy = true;
  try {
    await loadOnce(seq);
  } finally {
    if (seq === loadSeq) state.busy = false;
  }
}

async function loadOnce(seq) {
  const query = { earliest: '-' + range, latest: 'now', points: POINTS };
  // With a pid in the address, fetch both at once (first paint).
  const early = selectedPid !== null && !vmData ? fetchProcess(selectedPid).catch(() => {}) : null;
  let answer;
  try {
    const pending = prefetched;
    prefetched = null;
    answer = await (pending || api(`/api/vm/${encodeURIComponent(vmName)}`, query));
    if (!uPlot) uPlot = await uPlotReady();
  } catch (e) {
    if (seq === loadSeq) showError(errorBox, e.status === 404 ? new Error(`no VM named "${vmName}" has data in this range`) : e);
    return;
  }
  if (seq !== loadSeq) return;
  showError(errorBox, null);
  vmData = answer;
  state.vm = answer;
  state.range = { earliest: answer.earliest, latest: answer.latest, points: POINTS, span: answer.span, name: range };
  xRange = [answer.earliest, answer.latest];
  const processes = answer.processes || [];
  const chosen = selectedPid === null;
  if (chosen) selectedPid = pickDefaultPid(processes, answer.alerts);
  state.selectedPid = selectedPid;
  const row = processes.find((p) => p.pid === selectedPid);
  if (row) state.selectedName = row.name;
  renderHead();
  procTable.setRows(processes);
  if (chosen) procTable.tbody.querySelector('tr.selected')?.scrollIntoView({ block: 'nearest' });
  document.getElementById('proc-note').textContent = `${processes.length} running`;
  renderAlerts();
  drawCharts(); // first paint: the VM's lines, the process's when it is here
  state.loads++;
  if (selectedPid !== null) {
    try {
      if (early) await early;
      // Re-fetch on the VM answer's exact range so the bins are the same.
      await fetchProcess(selectedPid);
    } catch (e) {
      if (e.status !== 404) showError(errorBox, e);
      procData = null;
      state.process = null;
    }
    if (seq === loadSeq) redrawProcessSeries();
  }
}

async function select(pid) {
  if (pid === selectedPid && procData && procData.pid === pid) return;
  selectedPid = pid;
  state.selectedPid = pid;
  procData = null;
  state.process = null;
  const row = ((vmData && vmData.processes) || []).find((p) => p.pid === pid);
  state.selectedName = row ? row.name : null;
  procTable.render();
  setQuery({ vm: vmName, range, pid });
  redrawProcessSeries();
  try {
    await fetchProcess(pid);
  } catch (e) {
    showError(errorBox, e);
  }
  redrawProcessSeries();
}

// ---- details ----------------------------------------------------------------

function renderDetail(p, row) {
  detail.textContent = '';
  const r = row || ((vmData && vmData.processes) || []).find((x) => x.pid === p.pid) || {};
  const close = el('button', { class: 'close', testid: 'detail-close', onclick: () => (detail.hidden = true) }, 'Close');
  const logs = p.logs || [];
  detail.append(
    close,
    el('h2', {}, `${p.name || r.name || '?'} `, el('span', { class: 'muted' }, `pid ${p.pid ?? r.pid}`)),
    el(
      'dl',
      {},
      el('dt', {}, 'command line'), el('dd', { class: 'mono', testid: 'detail-args' }, p.args || r.args || '–'),
      el('dt', {}, 'started'), el('dd', { testid: 'detail-start' }, fmtTime(p.start_time ?? r.start_time)),
      el('dt', {}, 'owner'), el('dd', { testid: 'detail-user' }, `${p.user || r.user || '–'}${isNum(r.uid) ? ` (uid ${r.uid})` : ''}`),
      el('dt', {}, 'CPU now'), el('dd', {}, fmtPct(r.cpu_pct)),
      el('dt', {}, 'RSS now'), el('dd', {}, fmtBytes(r.rss_bytes)),
      el('dt', {}, 'flags'), el('dd', {}, [r.rogue ? 'rogue process' : null, r.non_admin ? 'non-admin owner' : null].filter(Boolean).join(', ') || '–'),
      el('dt', {}, 'VM'), el('dd', {}, el('a', { href: link('/process.html', { name: p.name || r.name }) }, `every VM running ${p.name || r.name}`)),
    ),
    el('h2', {}, `Recent log lines `, el('span', { class: 'muted' }, `(${logs.length})`)),
    el(
      'ul',
      { class: 'logs', testid: 'detail-logs' },
      logs.length
        ? logs.map((l) => el('li', { class: 'mono' }, el('span', { class: 'st' }, `${fmtTime(l.time)} ${l.sourcetype || ''}`), l.raw || ''))
        : el('li', { class: 'muted' }, 'no log lines mention this process in the range'),
    ),
  );
}

async function openDetail(row) {
  detail.hidden = false;
  detail.dataset.pid = row.pid;
  renderDetail({ pid: row.pid, name: row.name, user: row.user, args: row.args, start_time: row.start_time, logs: [] }, row);
  if (selectedPid !== row.pid) await select(row.pid);
  else if (procData && procData.pid === row.pid) renderDetail(procData, row);
}
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape') detail.hidden = true;
});

// ---- range, live ------------------------------------------------------------

for (const b of document.querySelectorAll('#ranges button'))
  b.addEventListener('click', () => {
    range = b.dataset.range;
    setQuery({ vm: vmName, range, pid: selectedPid });
    for (const x of document.querySelectorAll('#ranges button')) x.classList.toggle('active', x === b);
    load();
  });

load();
// Live: messages about this VM (deltas every 20 s, alerts) trigger a
// re-fetch, at most every 5 s; a poll every 30 s covers a dead stream.
const live = throttle(() => load(), 5000);
if (vmName) {
  stream({ vm: vmName }, live, setLive);
  setInterval(() => load(), 30000);
}
