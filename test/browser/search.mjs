// The search page in headless Chromium: an events search (timeline, list,
// fields sidebar) against /api/search's answer, a stats search (statistics
// and visualization tabs), a timechart, and a bad query's caret.
// Screenshots: search.png (events), search-stats.png (visualization).
import { main, startServer, simulate, getJson, browser, check, screenshot } from './harness.mjs';

async function search(page, q) {
  const before = await page.evaluate(() => window.parallax.runs);
  await page.fill('[data-testid=query-input]', q);
  await page.click('[data-testid=search-button]');
  await page.waitForFunction((n) => window.parallax.runs > n, before, { timeout: 20000 });
}

main('browser: search page', 240, async () => {
  const server = await startServer();
  const out = await simulate(server, ['--vms', '4', '--duration', '30m']);
  check(/0 rejected/.test(out), 'the fleet was stored', out);
  const { page, errors } = await browser();

  // Events: the URL's query runs on load.
  const q = 'sourcetype=os:auth';
  await page.goto(`${server.url}/search.html?q=${encodeURIComponent(q)}&earliest=-24h`);
  await page.waitForFunction(() => window.parallax && window.parallax.runs >= 1 && window.parallax.timeline, null, { timeout: 20000 });
  const api = await getJson(server, '/api/search', { q, earliest: '-24h', latest: 'now', limit: 1000 });
  check(api.events && api.rows.length > 10, `the API finds ${api.rows.length} os:auth events`);
  const shown = await page.locator('[data-testid=event-row]').count();
  check(shown === Math.min(100, api.rows.length), `the list shows the first ${shown} events`);
  const first = await page.locator('[data-testid=event-row]').first().textContent();
  check(first.includes(api.rows[0]._raw), 'the newest event comes first with its raw text', first);
  const tl = await page.evaluate(() => window.parallax.timelineChart && window.parallax.timelineChart.data[1].reduce((a, b) => a + b, 0));
  check(tl === api.rows.length, `the timeline counts ${tl} events, the list has ${api.rows.length}`);
  const fields = await page.locator('[data-testid=field]').evaluateAll((f) => f.map((x) => ({ name: x.dataset.field, count: Number(x.dataset.count), distinct: Number(x.dataset.distinct) })));
  const st = fields.find((f) => f.name === 'sourcetype');
  check(st && st.count === api.rows.length && st.distinct === 1, 'fields sidebar: sourcetype in every event, one value');
  const vmField = fields.find((f) => f.name === 'vm');
  const vms = new Set(api.rows.map((r) => r.vm).filter(Boolean));
  check(vmField && vmField.distinct === vms.size, `fields sidebar: vm with ${vms.size} values`);
  check(fields.some((f) => f.name === 'user'), 'fields sidebar: the search-time field user');
  check(await page.isDisabled('[data-testid=tab-statistics]'), 'no statistics tab for events');
  await screenshot(page, 'search.png');

  // A field value adds a term and runs again.
  await page.click('[data-testid=field][data-field=vm] summary');
  const before = await page.evaluate(() => window.parallax.runs);
  await page.locator('[data-testid=field][data-field=vm] [data-testid=field-value]').first().click();
  await page.waitForFunction((n) => window.parallax.runs > n, before, { timeout: 20000 });
  const q2 = await page.inputValue('[data-testid=query-input]');
  check(/^sourcetype=os:auth vm=\S+$/.test(q2), `clicking a value narrows the query (${q2})`);

  // Statistics and visualization of a stats result.
  await search(page, 'sourcetype=os:process | stats count, avg(cpu_pct) as cpu by vm');
  const sapi = await getJson(server, '/api/search', { q: 'sourcetype=os:process | stats count, avg(cpu_pct) as cpu by vm', earliest: '-24h', latest: 'now', limit: 1000 });
  const tab = await page.evaluate(() => window.parallax.tab);
  check(tab === 'statistics', 'a stats result opens the statistics tab');
  const srows = await page.locator('[data-testid=stats-row]').evaluateAll((r) => r.map((x) => [...x.children].map((c) => c.textContent)));
  check(srows.length === sapi.rows.length && srows.length === 4, `the table has one row per VM (${srows.length})`);
  check(srows.every((r, i) => r[0] === sapi.rows[i].vm && Number(r[1]) === sapi.rows[i].count), 'the table holds the counts of /api/search');
  await page.click('[data-testid=tab-visualization]');
  const viz = await page.evaluate(() => ({ series: window.parallax.vizChart.series.map((s) => s.label), n: window.parallax.vizChart.data[1].length, counts: window.parallax.vizChart.data[1] }));
  check(viz.n === 4 && viz.series.includes('count') && viz.series.includes('cpu'), `the bar chart draws count and cpu for 4 VMs (${viz.series.slice(1).join(', ')})`);
  check(JSON.stringify(viz.counts) === JSON.stringify(sapi.rows.map((r) => r.count)), 'the bars are the counts');

  // A timechart draws one line per VM.
  await search(page, 'sourcetype=os:system | timechart span=1m avg(mem_used_pct) by vm');
  await page.click('[data-testid=tab-visualization]');
  const tc = await page.evaluate(() => ({ series: window.parallax.vizChart.series.slice(1).map((s) => s.label), time: window.parallax.vizChart.scales.x.time, n: window.parallax.vizChart.data[0].length }));
  // (events stored before the correlator knew the VM form the series NULL)
  const fleet = ['web-01', 'db-02', 'app-03', 'cache-04'];
  check(fleet.every((v) => tc.series.includes(v)) && tc.series.every((s) => fleet.includes(s) || s === 'NULL') && tc.time && tc.n >= 29,
    `the timechart draws a line per VM over ${tc.n} minutes (${tc.series.join(', ')})`);
  await screenshot(page, 'search-stats.png');

  // A bad query: the message and a caret under its column.
  const bad = 'sourcetype=os:auth | stats count by';
  const err = await fetch(`${server.url}/api/search?q=${encodeURIComponent(bad)}`).then((r) => r.json().then((b) => ({ status: r.status, ...b })));
  await search(page, bad);
  const shownErr = await page.evaluate(() => ({ visible: !document.querySelector('[data-testid=search-error]').hidden, caret: document.querySelector('[data-testid=error-caret]')?.textContent, state: window.parallax.error }));
  check(err.status === 400 && typeof err.column === 'number', `the API answers 400 with a column (${err.column})`);
  check(shownErr.visible && shownErr.caret === ' '.repeat(err.column) + '^', `the caret sits under column ${err.column}`, JSON.stringify(shownErr));
  // The errors expected: 400s from /api/search for the bad query (the
  // page asks for the events and for the timechart).
  const badQuery = `/api/search?${new URLSearchParams({ q: bad })}`;
  const expected = (e) => /status of 400/.test(e) && e.includes(badQuery);
  check(errors.filter(expected).length >= 1, 'the bad query shows as a 400 from /api/search in the console', errors.join('\n'));
  check(errors.filter((e) => !expected(e)).length === 0, 'no other errors on the page', errors.join('\n'));
});
