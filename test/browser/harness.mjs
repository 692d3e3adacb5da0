// What every browser test needs: a real `parallax serve` on a fresh data
// directory with every port of the kernel's choice, the simulator feeding
// it, headless Chromium through playwright-core, checks and screenshots.
//
//   node test/browser/<test>.mjs PARALLAX_BINARY SOURCE_DIR [ARTIFACT_DIR]
//
// (or PARALLAX_BINARY, PARALLAX_SOURCE_DIR, PARALLAX_ARTIFACTS in the
// environment). playwright-core comes from web/node_modules
// (scripts/setup.sh runs `npm ci` there); Chromium is Debian's
// /usr/bin/chromium (CHROMIUM overrides).
import { spawn, execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, mkdirSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const BIN = resolve(process.env.PARALLAX_BINARY || process.argv[2] || 'build/tools/parallax');
export const SRC = resolve(process.env.PARALLAX_SOURCE_DIR || process.argv[3] || '.');
export const ARTIFACTS = resolve(process.env.PARALLAX_ARTIFACTS || process.argv[4] || join(tmpdir(), 'parallax-test-artifacts'));
mkdirSync(ARTIFACTS, { recursive: true });

let failures = 0;
const cleanups = [];
// PARALLAX_QUIET_OK=1 (`parallax bench paint`): only failures are printed,
// on stderr, so that stdout holds the benchmark's figures alone.
const QUIET = process.env.PARALLAX_QUIET_OK === '1';

export function ok(what) {
  if (!QUIET) console.log(`ok: ${what}`);
}
export function fail(what) {
  failures++;
  (QUIET ? console.error : console.log)(`FAIL: ${what}`);
}
export function check(cond, what, detail = '') {
  if (cond) ok(what);
  else fail(detail ? `${what}: ${detail}` : what);
  return !!cond;
}

async function cleanup() {
  while (cleanups.length) {
    const f = cleanups.pop();
    try {
      await f();
    } catch (e) {
      console.log(`cleanup: ${e.message}`);
    }
  }
}

/** Runs the test body with a deadline; exits 0 when every check passed. */
export async function main(name, seconds, body) {
  const timer = setTimeout(async () => {
    fail(`${name}: still running after ${seconds} s`);
    await cleanup();
    process.exit(1);
  }, seconds * 1000);
  try {
    await body();
  } catch (e) {
    fail(`${name}: ${e.stack || e}`);
  }
  clearTimeout(timer);
  await cleanup();
  if (failures) (QUIET ? console.error : console.log)(`${name}: ${failures} check(s) failed`);
  else if (!QUIET) console.log(`${name}: all checks passed`);
  process.exit(failures ? 1 : 0);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export { sleep };

/** Starts `parallax serve`; resolves to {url, collector, dir, log(), stop()}. */
export async function startServer(extra = []) {
  const dir = mkdtempSync(join(tmpdir(), 'parallax-browser-'));
  const logPath = join(dir, 'serve.log');
  const args = [
    'serve', '--data', join(dir, 'var'),
    '--set', 'parallax.collector.endpoint=tcp://127.0.0.1:0',
    '--set', 'parallax.http.listen=127.0.0.1:0',
    '--set', 'parallax.publisher.endpoint=tcp://127.0.0.1:0',
    '--set', 'parallax.search.endpoint=tcp://127.0.0.1:0',
    '--set', `parallax.http.web-root=${join(SRC, 'web')}`,
    ...extra,
  ];
  const child = spawn(BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => (log += d));
  let exited = null;
  child.on('exit', (code, sig) => (exited = { code, sig }));
  const server = {
    dir,
    log: () => log,
    async stop() {
      if (exited) return exited;
      child.kill('SIGTERM');
      for (let i = 0; i < 100 && !exited; i++) await sleep(100);
      if (!exited) child.kill('SIGKILL');
      return exited;
    },
  };
  cleanups.push(async () => {
    await server.stop();
    if (process.env.PARALLAX_KEEP_TMP) console.log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  });
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    const http = /http on ([\d.]+):(\d+)/.exec(log);
    const listen = /listening on (tcp:\/\/[\d.]+:\d+)/.exec(log);
    if (http && listen) {
      server.url = `http://${http[1]}:${http[2]}`;
      server.collector = listen[1];
      return server;
    }
    if (exited) break;
    await sleep(50);
  }
  throw new Error(`parallax serve did not start (${JSON.stringify(exited)}):\n${log}`);
}

/** Runs `parallax simulate --endpoint <server> ...args`; resolves to its output. */
export function simulate(server, args, timeoutS = 300) {
  return new Promise((res, rej) => {
    execFile(BIN, ['simulate', '--endpoint', server.collector, ...args], { timeout: timeoutS * 1000, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      if (err) rej(new Error(`simulate ${args.join(' ')}: ${err.message}\n${stdout}${stderr}`));
      else res(stdout + stderr);
    });
  });
}

/** GET an API path of the server as JSON. */
export async function getJson(server, path, query = {}) {
  const u = new URL(path, server.url);
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) u.searchParams.set(k, v);
  const r = await fetch(u);
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new Error(`GET ${u}: HTTP ${r.status} ${JSON.stringify(body)}`);
  return body;
}

/** Waits until fn() resolves truthy (polling), or throws after `ms`. */
export async function until(fn, ms, what) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? ': ' + last.message : ''}`);
}

/** Headless Chromium with a fresh page; JS errors on the page fail the test. */
export async function browser({ width = 1400, height = 1000 } = {}) {
  const require = createRequire(join(SRC, 'web', 'package.json'));
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    throw new Error(`playwright-core is not installed in ${join(SRC, 'web')} (run scripts/setup.sh or npm ci there): ${e.message}`);
  }
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  if (!existsSync(executablePath)) throw new Error(`no Chromium at ${executablePath} (scripts/setup.sh installs it)`);
  const b = await chromium.launch({ executablePath, args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    // This machine's network is closed: without these Chromium keeps
    // trying to reach Google's services at every start.
    '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--disable-quic',
  ] });
  cleanups.push(() => b.close());
  const context = await b.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // The resource's address too: a test that expects one failed request
    // can tell it from any other.
    if (m.type() === 'error') errors.push(`console: ${m.text()}${m.location()?.url ? ` (${m.location().url})` : ''}`);
  });
  page.on('requestfailed', (r) => {
    // aborted requests are the page leaving (or a newer load), not errors
    const why = r.failure()?.errorText || '';
    if (!r.url().includes('/api/stream') && !why.includes('ERR_ABORTED')) errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  return { browser: b, context, page, errors };
}

export async function screenshot(page, name) {
  const path = join(ARTIFACTS, name);
  await page.screenshot({ path, fullPage: true });
  if (!QUIET) console.log(`screenshot: ${path}`);
  return path;
}

export function readText(path) {
  return readFileSync(path, 'utf8');
}
