// Every VM running a process (GET /api/process): the application's view,
// drilling down into VMs from a process rather than the other way round.
import { api, link, params, setQuery, el, nav, showError, SortableTable, shareBar, isNum } from './app.js';

nav('process');
const form = document.getElementById('form');
const input = document.getElementById('name');
const windowSel = document.getElementById('window');
const errorBox = document.getElementById('error');
const summary = document.getElementById('summary');
window.parallax = { process: null, loads: 0 };

const table = new SortableTable(
  document.getElementById('vms'),
  [
    { key: 'vm', label: 'VM', render: (v) => el('a', { href: link('/vm.html', { vm: v.vm, pid: v.pids && v.pids.length === 1 ? v.pids[0] : null }), testid: 'vm-link' }, v.vm) },
    { key: 'host', label: 'Host', render: (v) => v.host || '–' },
    { key: 'pids', label: 'PIDs', value: (v) => (v.pids || []).length, render: (v) => el('span', { class: 'mono' }, (v.pids || []).join(', ') || '–') },
    { key: 'cpu_share', label: 'Share of VM CPU', num: true, render: (v) => shareBar(v.cpu_share, 'cpu-share') },
    { key: 'mem_share', label: 'Share of VM memory', num: true, render: (v) => { const b = shareBar(v.mem_share, 'mem-share'); b.classList.add('mem'); return b; } },
  ],
  { sortKey: 'cpu_share', desc: true, rowAttrs: (v) => ({ testid: 'process-vm-row', dataset: { vm: v.vm } }), empty: 'no VM runs it' },
);

async function load() {
  const name = input.value.trim();
  document.getElementById('title').textContent = name ? `Process ${name}` : 'Process';
  document.title = `Parallax · ${name || 'process'}`;
  setQuery({ name, window: windowSel.value !== '-10m' ? windowSel.value : null });
  if (!name) {
    table.setRows([]);
    summary.textContent = 'Type a process name to see every VM running it.';
    return;
  }
  try {
    const r = await api('/api/process', { name, window: windowSel.value });
    showError(errorBox, null);
    const vms = r.vms || [];
    table.setRows(vms);
    const cpu = vms.map((v) => v.cpu_share).filter(isNum);
    summary.textContent = `${r.name || name} runs on ${vms.length} VM${vms.length === 1 ? '' : 's'}` +
      (cpu.length ? `; the largest CPU share is ${(Math.max(...cpu) * 100).toFixed(1)} %` : '') + '.';
    window.parallax.process = r;
    window.parallax.loads++;
  } catch (e) {
    table.setRows([]);
    summary.textContent = '';
    showError(errorBox, e);
  }
}

// Names to suggest: the processes seen in the last 10 minutes, by a search.
async function suggest() {
  try {
    const r = await api('/api/search', { q: 'sourcetype=os:process | stats count by process_name', earliest: '-10m', limit: 2000 });
    const list = document.getElementById('names');
    list.textContent = '';
    for (const row of r.rows || []) if (row.process_name) list.append(el('option', { value: row.process_name }));
  } catch {
    // suggestions are optional
  }
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  load();
});
windowSel.addEventListener('change', load);
input.value = params.get('name') || '';
if (params.get('window')) windowSel.value = params.get('window');
load();
suggest();
