// The VM list in headless Chromium: empty at first, then filled live (no
// reload) while the simulator feeds the demo scenario; every VM of
// /api/vms shown with its host and alert count; the filter box; sorting;
// links to the VM pages. Screenshot: vm-list.png.
import { join } from 'node:path';
import { main, startServer, simulate, getJson, browser, check, screenshot, SRC } from './harness.mjs';

main('browser: VM list', 240, async () => {
  const server = await startServer();
  const { page, errors } = await browser();
  await page.goto(server.url + '/');
  await page.waitForFunction(() => window.parallax && window.parallax.refreshes >= 1, null, { timeout: 15000 });
  check((await page.locator('[data-testid=vm-row]').count()) === 0, 'an empty store lists no VM');

  const out = await simulate(server, ['--scenario', join(SRC, 'etc/scenarios/demo.toml'), '--duration', '40m']);
  check(/0 rejected/.test(out), 'the demo scenario was stored', out);
  // Live: the rows come without a reload (stream, or the 10 s poll).
  const t0 = Date.now();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=vm-row]').length >= 12, null, { timeout: 40000 });
  check(true, `the VMs appeared without a reload after ${Date.now() - t0} ms`);

  const api = await getJson(server, '/api/vms');
  const apiNames = api.vms.map((v) => v.vm).sort();
  const pageNames = (await page.locator('[data-testid=vm-row]').evaluateAll((rows) => rows.map((r) => r.dataset.vm))).sort();
  check(JSON.stringify(pageNames) === JSON.stringify(apiNames), `the page lists the ${apiNames.length} VMs of /api/vms`, `${pageNames} vs ${apiNames}`);
  check(['web-01', 'db-02', 'app-03', 'cache-04'].every((n) => pageNames.includes(n)), 'web-01, db-02, app-03, cache-04 are listed');

  // Hosts and alert counts as the API says. The correlator may still be
  // opening and resolving alerts: refresh, compare, retry until they agree.
  let mismatched = [];
  let api2 = null;
  for (let i = 0; i < 20; i++) {
    await page.evaluate(() => window.parallax.refresh());
    const cells = await page.locator('[data-testid=vm-row]').evaluateAll((rows) =>
      rows.map((r) => ({ vm: r.dataset.vm, host: r.children[2].textContent, alerts: Number(r.querySelector('[data-testid=alert-badge]').dataset.count) })),
    );
    api2 = await getJson(server, '/api/vms');
    const byName = Object.fromEntries(api2.vms.map((v) => [v.vm, v]));
    mismatched = cells.filter((c) => !byName[c.vm] || (byName[c.vm].host || '–') !== c.host || (byName[c.vm].open_alerts || []).length !== c.alerts);
    if (!mismatched.length) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  check(mismatched.length === 0, 'hosts and open-alert counts match /api/vms', JSON.stringify(mismatched));
  const withAlerts = api2.vms.filter((v) => (v.open_alerts || []).length).map((v) => v.vm);
  console.log(`VMs with open alerts: ${withAlerts.join(', ') || 'none'}`);
  const deltas = api2.vms.filter((v) => v.mem_delta && typeof v.mem_delta.hv === 'number').length;
  check(deltas >= 10, `memory deltas shown for ${deltas} VMs`);

  // Filter.
  await page.fill('[data-testid=vm-filter]', 'db-');
  const filtered = await page.locator('[data-testid=vm-row]').evaluateAll((rows) => rows.map((r) => r.dataset.vm));
  check(filtered.length >= 3 && filtered.every((n) => n.includes('db-')), `the filter "db-" keeps ${filtered.join(', ')}`);
  await page.fill('[data-testid=vm-filter]', '');

  // Sorting: by VM descending, then by host.
  await page.click('[data-testid=vm-table] th[data-key=vm]');
  const desc = await page.locator('[data-testid=vm-row]').evaluateAll((rows) => rows.map((r) => r.dataset.vm));
  check(JSON.stringify(desc) === JSON.stringify([...desc].sort().reverse()), 'clicking the VM header sorts descending');
  await page.click('[data-testid=vm-table] th[data-key=host]');
  const hosts = await page.locator('[data-testid=vm-row]').evaluateAll((rows) => rows.map((r) => r.children[2].textContent));
  check(JSON.stringify(hosts) === JSON.stringify([...hosts].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))), 'clicking the host header sorts by host');

  const href = await page.locator('[data-testid=vm-row][data-vm=web-01] a[data-testid=vm-link]').getAttribute('href');
  check(href === '/vm.html?vm=web-01', `web-01 links to its page (${href})`);
  await page.click('[data-testid=vm-table] th[data-key=vm]');
  await screenshot(page, 'vm-list.png');
  check(errors.length === 0, 'no errors on the page', errors.join('\n'));
});
