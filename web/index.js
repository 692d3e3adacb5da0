// The VM list (GET /api/vms): sortable, filterable, live.
import {
  api, link, params, setQuery, stream, throttle, el, nav, setLive, showError,
  SortableTable, fmtUnit, fmtPct, fmtAgo, fmtClock, isNum, worstSeverity, SEVERITY_RANK,
} from './app.js';

nav('vms');
const errorBox = document.getElementById('error');
const filterBox = document.getElementById('filter');
const count = document.getElementById('count');
const updated = document.getElementById('updated');

// A delta cell: hypervisor − guest in the delta's unit, relative difference.
function deltaCell(d) {
  if (!d || (!isNum(d.hv) && !isNum(d.guest))) return el('span', { class: 'muted' }, '–');
  const diff = isNum(d.hv) && isNum(d.guest) ? d.hv - d.guest : null;
  const sign = diff > 0 ? '+' : '';
  return el(
    'span',
    { title: `hypervisor ${fmtUnit(d.hv, d.unit)} · guest ${fmtUnit(d.guest, d.unit)}` },
    el('span', { class: diff > 0 ? 'delta-pos' : null }, diff === null ? '–' : sign + fmtUnit(diff, d.unit)),
    isNum(d.rel_diff) ? el('span', { class: 'rel' }, `(${d.rel_diff >= 0 ? '+' : ''}${(d.rel_diff * 100).toFixed(0)} %)`) : null,
  );
}

function alertsCell(vm) {
  const alerts = vm.open_alerts || [];
  if (!alerts.length) return el('span', { class: 'badge none', testid: 'alert-badge', dataset: { count: 0 } }, '0');
  const worst = worstSeverity(alerts);
  const title = alerts.map((a) => `[${a.severity}] ${a.kind}${a.metric ? ' ' + a.metric : ''}: ${a.message || ''}`).join('\n');
  return el('span', { class: `badge ${worst}`, title, testid: 'alert-badge', dataset: { count: alerts.length, severity: worst } }, String(alerts.length));
}

const columns = [
  { key: 'vm', label: 'VM', render: (v) => el('a', { href: link('/vm.html', { vm: v.vm }), testid: 'vm-link' }, v.vm) },
  { key: 'state', label: 'State', render: (v) => el('span', { class: v.state ? 'state-' + v.state : 'muted' }, v.state || '–') },
  { key: 'host', label: 'Host', render: (v) => v.host || '–' },
  { key: 'confidence', label: 'Identity', num: true, title: 'identity confidence: how sure the hypervisor domain is this guest', render: (v) => (isNum(v.confidence) ? fmtPct(v.confidence * 100, 0) : '–') },
  { key: 'mem', label: 'Memory Δ (hv − guest)', num: true, value: (v) => (v.mem_delta && isNum(v.mem_delta.hv) && isNum(v.mem_delta.guest) ? v.mem_delta.hv - v.mem_delta.guest : null), render: (v) => deltaCell(v.mem_delta) },
  { key: 'cpu', label: 'CPU Δ (hv − guest)', num: true, value: (v) => (v.cpu_delta && isNum(v.cpu_delta.hv) && isNum(v.cpu_delta.guest) ? v.cpu_delta.hv - v.cpu_delta.guest : null), render: (v) => deltaCell(v.cpu_delta) },
  { key: 'alerts', label: 'Open alerts', num: true, value: (v) => (v.open_alerts || []).length * 10 + (SEVERITY_RANK[worstSeverity(v.open_alerts)] || 0), render: alertsCell },
  { key: 'last_seen', label: 'Last seen', num: true, render: (v) => el('span', { title: isNum(v.last_seen) ? fmtClock(v.last_seen) : '' }, fmtAgo(v.last_seen)) },
];

const table = new SortableTable(document.getElementById('vms'), columns, {
  sortKey: params.get('sort') || 'vm',
  rowAttrs: (v) => ({ testid: 'vm-row', dataset: { vm: v.vm } }),
  empty: 'no VM has reported in the last 10 minutes',
});

function matches(v, needle) {
  if (!needle) return true;
  const hay = [v.vm, v.host, v.state, v.vm_uuid, ...(v.open_alerts || []).flatMap((a) => [a.kind, a.severity, a.metric, a.message])]
    .filter(Boolean)
    .join(' ')
    .toLowerCase();
  return needle
    .toLowerCase()
    .split(/\s+/)
    .every((w) => hay.includes(w));
}

function applyFilter() {
  const needle = filterBox.value.trim();
  table.setFilter(needle ? (v) => matches(v, needle) : null);
  const shown = table.tbody.querySelectorAll('tr[data-vm]').length;
  count.textContent = needle ? `${shown} of ${table.rows.length}` : `${table.rows.length}`;
  setQuery({ filter: needle });
}

let loading = null;
async function refresh() {
  if (loading) return loading;
  loading = (async () => {
    try {
      const r = await api('/api/vms');
      table.setRows(r.vms || []);
      applyFilter();
      showError(errorBox, null);
      updated.textContent = `as of ${fmtClock(r.time)}`;
      window.parallax.vms = r.vms;
      window.parallax.refreshes++;
    } catch (e) {
      showError(errorBox, e);
    } finally {
      loading = null;
    }
  })();
  return loading;
}

window.parallax = { vms: null, refreshes: 0, refresh };
filterBox.value = params.get('filter') || '';
filterBox.addEventListener('input', applyFilter);
refresh();
// Live: any published message may change the list; refresh at most every 2 s.
const live = throttle(refresh, 2000);
stream({}, live, setLive);
setInterval(refresh, 10000); // fallback when the stream is down
