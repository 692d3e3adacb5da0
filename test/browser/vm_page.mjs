// The VM page (the patent's display) in headless Chromium, during a memory
// leak (leak.toml: nginx on web-01): the process table; the memory and CPU
// charts hold /api/vm's series; selecting a process redraws the dashed
// lines with /api/vm/NAME/process/PID's data; the leak alert is on the page;
// double-click details; the range picker; the process page. Screenshot:
// vm-leak.png (hypervisor line, the leaking process dashed, the alert).
import { join } from 'node:path';
import { main, startServer, simulate, getJson, browser, check, screenshot, until, SRC } from './harness.mjs';

const VM = 'web-01';
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// The charts' data with the range it was drawn for, taken while no reload
// is under way (live updates re-fetch with a later `latest`).
async function snapshot(page) {
  for (let i = 0; i < 50; i++) {
    const s = await page.evaluate(() => {
      const p = window.parallax;
      if (p.busy) return null;
      return {
        range: p.range,
        selectedPid: p.selectedPid,
        processPid: p.process && p.process.pid,
        loads: p.loads + p.processLoads,
        mem: p.memChart.data,
        cpu: p.cpuChart.data,
        memSeries: p.memChart.series.map((s) => ({ label: s.label, dash: s.dash || null })),
        cpuLabels: p.cpuChart.series.map((s) => s.label),
        bands: p.memChart.bands.map((b) => b.series),
        selectedRow: document.querySelector('[data-testid=process-row].selected')?.dataset.pid,
      };
    });
    if (s && s.processPid === s.selectedPid) return s;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('the VM page never settled');
}

main('browser: VM page', 300, async () => {
  const server = await startServer();
  const out = await simulate(server, ['--vms', '4', '--duration', '40m', '--scenario', join(SRC, 'test/browser/leak.toml')]);
  check(/0 rejected/.test(out), 'the leak scenario was stored', out);
  // The correlator works behind ingest: wait for its leak alert.
  const leak = await until(async () => {
    const r = await getJson(server, `/api/vm/${VM}`, { earliest: '-1h' });
    return (r.alerts || []).find((a) => a.kind === 'memory_leak' || (a.kind === 'drift' && /mem/.test(a.metric || '')));
  }, 60000, `a memory alert on ${VM}`);
  console.log(`alert: ${leak.kind} ${leak.severity} ${leak.message}`);

  const { page, errors } = await browser({ width: 1400, height: 1300 });
  await page.goto(`${server.url}/vm.html?vm=${VM}&range=1h`);
  await page.waitForFunction(() => window.parallax && window.parallax.chartsDrawnMs && window.parallax.process, null, { timeout: 20000 });
  const st = await snapshot(page);
  const vm = await getJson(server, `/api/vm/${VM}`, { earliest: st.range.earliest, latest: st.range.latest, points: st.range.points });
  check(same(st.mem[0], vm.series.time), `the charts' time axis is the VM's bins (${vm.series.time.length} of ${vm.span} s)`);
  check(same(st.mem[1], vm.series.hv_mem_pct), 'memory: the solid line is hv_mem_pct');
  check(same(st.mem[3], vm.series.guest_mem_pct), 'memory: the guest line is guest_mem_pct');
  check(same(st.cpu[1], vm.series.hv_cpu_pct) && same(st.cpu[3], vm.series.guest_cpu_pct), 'CPU: hypervisor and guest busy lines');
  check(st.cpuLabels.includes('ready'), `CPU: ready % drawn for a libvirt VM (${st.cpuLabels.join(', ')})`);
  check(!st.memSeries[1].dash && Array.isArray(st.memSeries[2].dash) && st.memSeries[2].dash.length > 0, 'hypervisor solid, process dashed');
  check(st.bands.length === 1 && same(st.bands[0], [1, 3]), 'the band between hypervisor and guest is shaded');
  const hv = vm.series.hv_mem_pct.filter((v) => v !== null);
  check(hv.length > 0 && hv[hv.length - 1] > hv[0] + 5, `the hypervisor's memory grows during the leak (${hv[0]?.toFixed(1)} → ${hv[hv.length - 1]?.toFixed(1)} %)`);

  // The table lists the API's processes; the leaking one is preselected.
  const rows = await page.locator('[data-testid=process-row]').evaluateAll((r) => r.map((x) => ({ pid: Number(x.dataset.pid), name: x.dataset.name })));
  check(rows.length === vm.processes.length && rows.length > 5, `the process table has the ${vm.processes.length} processes`);
  const nginx = vm.processes.filter((p) => p.name === 'nginx').sort((a, b) => b.rss_bytes - a.rss_bytes)[0];
  check(nginx && st.selectedPid === nginx.pid, `the leaking process is selected first (pid ${st.selectedPid}, nginx ${nginx?.pid})`);

  // Select another process: the dashed lines become its data.
  const other = vm.processes.find((p) => p.pid !== st.selectedPid && p.name !== 'nginx' && p.cpu_pct !== null) || vm.processes.find((p) => p.pid !== st.selectedPid);
  await page.click(`[data-testid=process-row][data-pid="${other.pid}"] td:first-child`);
  await page.waitForFunction((pid) => window.parallax.process && window.parallax.process.pid === pid, other.pid, { timeout: 10000 });
  const s2 = await snapshot(page);
  const proc = await getJson(server, `/api/vm/${VM}/process/${other.pid}`, { earliest: s2.range.earliest, latest: s2.range.latest, points: s2.range.points });
  check(s2.selectedPid === other.pid && Number(s2.selectedRow) === other.pid, `clicking ${other.name} (${other.pid}) selects it`);
  check(same(proc.series.time, s2.mem[0]), 'the process answer has the VM\'s bins');
  check(same(s2.mem[2], proc.series.mem_pct), 'the dashed memory line is the process\'s mem_pct', `${JSON.stringify(s2.mem[2].slice(-3))} vs ${JSON.stringify(proc.series.mem_pct.slice(-3))}`);
  check(same(s2.cpu[2], proc.series.cpu_pct), 'the dashed CPU line is the process\'s cpu_pct');
  check(!same(s2.mem[2], st.mem[2]), 'the dashed line changed with the selection');

  // Double-click: the details.
  await page.dblclick(`[data-testid=process-row][data-pid="${other.pid}"] td:first-child`);
  await page.waitForSelector('[data-testid=process-detail]:not([hidden])');
  const args = await page.textContent('[data-testid=detail-args]');
  check(args && args.trim() !== '–' && args.length > 1, `double-click shows the command line (${args})`);
  check((await page.textContent('[data-testid=detail-user]')).includes(other.user), 'the details show the owner');
  await page.click('[data-testid=detail-close]');

  // The alert is listed and drawn on the time axis.
  const items = await page.locator('[data-testid=alert-item]').evaluateAll((li) => li.map((x) => ({ kind: x.dataset.kind, severity: x.dataset.severity, text: x.textContent })));
  check(items.some((i) => i.kind === leak.kind), `the ${leak.kind} alert is listed (${items.map((i) => i.kind).join(', ')})`);

  // Back to the leaking process for the picture.
  await page.click(`[data-testid=process-row][data-pid="${nginx.pid}"] td:first-child`);
  await page.waitForFunction((pid) => window.parallax.process && window.parallax.process.pid === pid, nginx.pid, { timeout: 10000 });
  const dashed = await page.evaluate(() => window.parallax.memChart.data[2].filter((v) => v !== null));
  check(dashed.length > 0 && dashed[dashed.length - 1] > dashed[0], `the leaking process's dashed line grows (${dashed[0]?.toFixed(2)} → ${dashed[dashed.length - 1]?.toFixed(2)} %)`);
  await page.mouse.move(10, 10);
  await screenshot(page, 'vm-leak.png');

  // Range picker.
  await page.click('[data-testid=range-picker] button[data-range="15m"]');
  await page.waitForFunction(() => window.parallax.range.name === '15m', null, { timeout: 10000 });
  const r15 = await page.evaluate(() => window.parallax.range);
  check(Math.abs(r15.latest - r15.earliest - 900) <= 60, `15m shows 15 minutes (${r15.latest - r15.earliest} s)`);

  // The process name links to the process page.
  await page.click(`[data-testid=process-row][data-pid="${nginx.pid}"] a[data-testid=process-link]`);
  await page.waitForFunction(() => window.parallax && window.parallax.loads >= 1 && location.pathname === '/process.html', null, { timeout: 10000 });
  const pvms = await page.locator('[data-testid=process-vm-row]').evaluateAll((r) => r.map((x) => x.dataset.vm));
  check(pvms.includes(VM), `the process page lists ${VM} for nginx (${pvms.join(', ')})`);
  const share = await page.locator(`[data-testid=process-vm-row][data-vm=${VM}] [data-testid=mem-share]`).getAttribute('title');
  check(/%/.test(share || ''), `with a memory share bar (${share})`);
  check(errors.length === 0, 'no errors on the pages', errors.join('\n'));
});
