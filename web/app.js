// Shared helpers of Parallax's pages: the API (docs/web.md), the token,
// the event stream, formatting, sortable tables. Plain ES module, no build.

export const params = new URLSearchParams(location.search);

// Off loopback the server wants a bearer token; a page opened with
// ?token=T passes it on to the API, the stream and the links it makes.
export const token = params.get('token') || '';

/** A same-origin link that keeps the token: link('vm.html', {vm: 'web-01'}). */
export function link(path, query = {}) {
  const u = new URL(path, location.href);
  for (const [k, v] of Object.entries(query))
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, v);
  if (token) u.searchParams.set('token', token);
  return u.pathname + u.search;
}

/** Replaces the page's query string (keeping the token), no reload. */
export function setQuery(query) {
  history.replaceState(null, '', link(location.pathname, query));
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
    this.column = body && typeof body.column === 'number' ? body.column : null;
  }
}

/** GET an API path with query parameters; resolves to the JSON answer. */
export async function api(path, query = {}, { signal } = {}) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query))
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, v);
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(u, { headers, signal, cache: 'no-store' });
  let body = null;
  try {
    body = await r.json();
  } catch {
    body = null;
  }
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

/**
 * Follows GET /api/stream (server-sent events) and calls onMessage(topic,
 * data) for every message. Read with fetch rather than EventSource: topics
 * are event names (`delta.web-01`, `alert.drift`, ...) that are not known in
 * advance, and EventSource only delivers named events one listens for.
 * Reconnects after a pause; onState('live' | 'down') tells the page.
 * Returns a function that stops it.
 */
export function stream(query, onMessage, onState = () => {}) {
  let stopped = false;
  let controller = null;
  const u = new URL('/api/stream', location.origin);
  for (const [k, v] of Object.entries(query)) if (v) u.searchParams.set(k, v);
  if (token) u.searchParams.set('token', token);

  async function once() {
    controller = new AbortController();
    const r = await fetch(u, {
      headers: { Accept: 'text/event-stream' },
      signal: controller.signal,
      cache: 'no-store',
    });
    if (!r.ok || !r.body) throw new Error(`stream: HTTP ${r.status}`);
    onState('live');
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let event = '';
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let nl;
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf[nl] === '\r' && buf[nl + 1] === '\n' ? 2 : 1));
        if (line === '') {
          if (data.length) {
            let parsed = null;
            try {
              parsed = JSON.parse(data.join('\n'));
            } catch {
              parsed = { raw: data.join('\n') };
            }
            onState('live');
            try {
              onMessage(event || (parsed && parsed.topic) || 'message', parsed);
            } catch (e) {
              console.error(e);
            }
          }
          event = '';
          data = [];
        } else if (line.startsWith(':')) {
          // comment (keep-alive)
        } else {
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? '' : line.slice(colon + 1);
          if (val.startsWith(' ')) val = val.slice(1);
          if (field === 'event') event = val;
          else if (field === 'data') data.push(val);
        }
      }
    }
  }

  (async () => {
    let pause = 1000;
    while (!stopped) {
      try {
        await once();
        pause = 1000;
      } catch {
        // server away, stream not served, page leaving: retry below
      }
      if (stopped) break;
      onState('down');
      await new Promise((res) => setTimeout(res, pause));
      pause = Math.min(pause * 2, 15000);
    }
  })();
  return () => {
    stopped = true;
    if (controller) controller.abort();
  };
}

/** Calls fn at most once per `ms`, the last call of a burst included. */
export function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  return function throttled() {
    const now = Date.now();
    const wait = last + ms - now;
    if (wait <= 0) {
      last = now;
      fn();
    } else if (!timer) {
      timer = setTimeout(() => {
        timer = null;
        last = Date.now();
        fn();
      }, wait);
    }
  };
}

// ---- formatting -----------------------------------------------------------

const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
export { isNum };

export function fmtNum(v, digits = 1) {
  if (!isNum(v)) return '–';
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(digits) + ' G';
  if (a >= 1e6) return (v / 1e6).toFixed(digits) + ' M';
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(digits);
  if (a === 0) return '0';
  return v.toPrecision(2);
}

export function fmtBytes(v) {
  if (!isNum(v)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let a = Math.abs(v);
  let i = 0;
  while (a >= 1024 && i < units.length - 1) {
    a /= 1024;
    i++;
  }
  const s = i === 0 ? String(Math.round(a)) : a.toFixed(a >= 100 ? 0 : 1);
  return (v < 0 ? '-' : '') + s + ' ' + units[i];
}

export function fmtPct(v, digits = 1) {
  return isNum(v) ? v.toFixed(digits) + ' %' : '–';
}

/** A value in a delta's unit (`bytes`, `pct`, `bytes_per_s`, ...). */
export function fmtUnit(v, unit) {
  if (!isNum(v)) return '–';
  if (unit === 'bytes') return fmtBytes(v);
  if (unit === 'bytes_per_s') return fmtBytes(v) + '/s';
  if (unit === 'pct') return fmtPct(v);
  return fmtNum(v) + (unit ? ' ' + unit : '');
}

const pad = (n) => String(n).padStart(2, '0');

/** Epoch seconds as local `YYYY-MM-DD HH:MM:SS`. */
export function fmtTime(t) {
  if (!isNum(t)) return '–';
  const d = new Date(t * 1000);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

export function fmtClock(t) {
  if (!isNum(t)) return '–';
  const d = new Date(t * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtAgo(t, now = Date.now() / 1000) {
  if (!isNum(t)) return '–';
  const s = Math.max(0, Math.round(now - t));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

// ---- severities -----------------------------------------------------------

export const SEVERITY_RANK = { info: 1, warning: 2, critical: 3 };
export const SEVERITY_COLOR = {
  info: '#2f7ed8',
  warning: '#e0a100',
  critical: '#d63b3b',
};
export function severityColor(s) {
  return SEVERITY_COLOR[s] || '#888';
}
export function worstSeverity(alerts) {
  let best = null;
  for (const a of alerts || [])
    if (!best || (SEVERITY_RANK[a.severity] || 0) > (SEVERITY_RANK[best] || 0)) best = a.severity;
  return best;
}

// ---- DOM ------------------------------------------------------------------

/** el('td', {class: 'num', dataset: {x: 1}}, 'text', child) */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k === 'style' && typeof v === 'object') Object.assign(e.style, v);
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'testid') e.setAttribute('data-testid', v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function showError(target, err) {
  target.textContent = '';
  if (!err) {
    target.hidden = true;
    return;
  }
  target.hidden = false;
  target.append(
    el('strong', {}, err.status === 401 ? 'Not authorised' : 'Error'),
    ': ',
    err.message || String(err),
    err.status === 401 ? ' (open the page with ?token=TOKEN)' : '',
  );
}

/**
 * A sortable table: columns are {key, label, value(row), render(row) ->
 * Node|string, num: bool, title}. Clicking a header sorts by it (again:
 * reverses). setRows() re-renders keeping the order; rowAttrs(row) gives
 * the <tr>'s attributes.
 */
export class SortableTable {
  constructor(table, columns, { sortKey, desc = false, rowAttrs = () => ({}), empty = 'nothing' } = {}) {
    this.table = table;
    this.columns = columns;
    this.sortKey = sortKey || columns[0].key;
    this.desc = desc;
    this.rowAttrs = rowAttrs;
    this.empty = empty;
    this.rows = [];
    this.filter = null;
    const thead = el('thead');
    const tr = el('tr');
    for (const c of columns) {
      const th = el(
        'th',
        { class: c.num ? 'num sortable' : 'sortable', title: c.title || 'sort', dataset: { key: c.key } },
        c.label,
      );
      th.addEventListener('click', () => {
        if (this.sortKey === c.key) this.desc = !this.desc;
        else {
          this.sortKey = c.key;
          this.desc = !!c.num;
        }
        this.render();
      });
      tr.append(th);
    }
    thead.append(tr);
    this.tbody = el('tbody');
    table.textContent = '';
    table.append(thead, this.tbody);
  }

  setRows(rows) {
    this.rows = rows || [];
    this.render();
  }

  setFilter(fn) {
    this.filter = fn;
    this.render();
  }

  sorted() {
    const col = this.columns.find((c) => c.key === this.sortKey) || this.columns[0];
    const get = col.value || ((r) => r[col.key]);
    const dir = this.desc ? -1 : 1;
    const rows = this.filter ? this.rows.filter(this.filter) : this.rows.slice();
    return rows.sort((a, b) => {
      const x = get(a);
      const y = get(b);
      const xn = x === null || x === undefined || x === '';
      const yn = y === null || y === undefined || y === '';
      if (xn || yn) return xn === yn ? 0 : xn ? 1 : -1; // empty last
      if (typeof x === 'number' && typeof y === 'number') return (x - y) * dir;
      return String(x).localeCompare(String(y), undefined, { numeric: true }) * dir;
    });
  }

  render() {
    for (const th of this.table.querySelectorAll('th')) {
      th.classList.toggle('sorted', th.dataset.key === this.sortKey);
      th.classList.toggle('desc', th.dataset.key === this.sortKey && this.desc);
    }
    const rows = this.sorted();
    const frag = document.createDocumentFragment();
    for (const r of rows) {
      const tr = el('tr', this.rowAttrs(r));
      tr._row = r;
      for (const c of this.columns) {
        const v = c.render ? c.render(r) : r[c.key];
        tr.append(el('td', { class: c.num ? 'num' : null }, v));
      }
      frag.append(tr);
    }
    if (!rows.length)
      frag.append(el('tr', { class: 'empty' }, el('td', { colspan: this.columns.length }, this.empty)));
    this.tbody.textContent = '';
    this.tbody.append(frag);
  }
}

/** A horizontal share bar (0..1) with its percentage. */
export function shareBar(v, testid) {
  const ok = isNum(v);
  const pct = ok ? Math.max(0, Math.min(1, v)) * 100 : 0;
  return el(
    'span',
    { class: 'share', testid, title: ok ? pct.toFixed(1) + ' %' : 'no guest figures' },
    el('span', { class: 'share-bar' }, el('span', { class: 'share-fill', style: { width: pct + '%' } })),
    el('span', { class: 'share-label' }, ok ? pct.toFixed(1) + ' %' : '–'),
  );
}

/** The top navigation, inserted into <header id="nav">. */
export function nav(active) {
  const h = document.getElementById('nav');
  if (!h) return;
  h.textContent = '';
  const item = (href, label, key) =>
    el('a', { href: link(href), class: key === active ? 'active' : null }, label);
  h.append(
    el('a', { href: link('/'), class: 'brand' }, 'Parallax'),
    el('nav', {}, item('/', 'VMs', 'vms'), item('/process.html', 'Processes', 'process'), item('/search.html', 'Search', 'search')),
    el('span', { id: 'live', class: 'live', testid: 'live-status', title: 'live updates' }, ''),
  );
}

export function setLive(state) {
  const s = document.getElementById('live');
  if (!s) return;
  s.dataset.state = state;
  s.textContent = state === 'live' ? '● live' : state === 'down' ? '○ polling' : '…';
}
