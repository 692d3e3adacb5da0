// uPlot helpers: sizing, the alert markers on the time axis, bars.
// uPlot itself is the global from /vendor/uplot/uPlot.iife.min.js.
import { severityColor, fmtTime, el } from './app.js';

/**
 * Resolves to uPlot once its script has run: pages may load it with
 * `defer` and their module `async`, so the data is fetched meanwhile.
 */
export function uPlotReady() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  return new Promise((resolve, reject) => {
    const done = () => window.uPlot && resolve(window.uPlot);
    const script = document.querySelector('script[src*="uPlot"]');
    if (script) {
      script.addEventListener('load', done);
      script.addEventListener('error', () => reject(new Error('uPlot did not load (is web/node_modules installed?)')));
    }
    document.addEventListener('DOMContentLoaded', done);
    window.addEventListener('load', () => (window.uPlot ? done() : reject(new Error('uPlot did not load'))));
  });
}

/** Resolves once the document is parsed (for `async` module scripts). */
export function domReady() {
  if (document.readyState !== 'loading') return Promise.resolve();
  return new Promise((resolve) => document.addEventListener('DOMContentLoaded', resolve, { once: true }));
}

/** Width available to a chart inside `container`. */
export function chartWidth(container) {
  return Math.max(320, Math.floor(container.clientWidth || container.getBoundingClientRect().width || 800));
}

/** Keeps the charts as wide as their containers. */
export function autoResize(getCharts, container, height) {
  let last = chartWidth(container);
  const ro = new ResizeObserver(() => {
    const w = chartWidth(container);
    if (w === last) return;
    last = w;
    for (const c of getCharts()) if (c) c.setSize({ width: w, height: c.height || height });
  });
  ro.observe(container);
}

/**
 * A uPlot plugin drawing alerts as vertical lines in their severity's
 * colour, with a small flag at the top, and a tooltip when the cursor is
 * within a few pixels of one. `getAlerts()` returns [{time, severity, kind,
 * message, state, id}]; `getHot()` the id to emphasise (list hover).
 */
export function alertsPlugin(getAlerts, getHot = () => null) {
  let tip = null;
  return {
    hooks: {
      init: (u) => {
        tip = el('div', { class: 'alert-tip', hidden: true });
        u.over.append(tip);
      },
      draw: (u) => {
        const alerts = getAlerts() || [];
        if (!alerts.length) return;
        const { ctx } = u;
        const { left, top, width, height } = u.bbox;
        const hot = getHot();
        ctx.save();
        ctx.beginPath();
        ctx.rect(left, top, width, height);
        ctx.clip();
        const dpr = window.uPlot.pxRatio || 1;
        for (const a of alerts) {
          const x = Math.round(u.valToPos(a.time, 'x', true));
          if (x < left - 1 || x > left + width + 1) continue;
          const colour = severityColor(a.severity);
          const emph = hot && hot === a.id;
          ctx.strokeStyle = colour;
          ctx.globalAlpha = a.state === 'resolved' ? 0.45 : 0.9;
          ctx.lineWidth = (emph ? 3 : 1.5) * dpr;
          ctx.setLineDash(a.state === 'resolved' ? [3 * dpr, 3 * dpr] : []);
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
          // flag
          ctx.setLineDash([]);
          ctx.fillStyle = colour;
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x + 7 * dpr, top + 4 * dpr);
          ctx.lineTo(x, top + 8 * dpr);
          ctx.closePath();
          ctx.fill();
        }
        ctx.restore();
      },
      setCursor: (u) => {
        if (!tip) return;
        const { left } = u.cursor;
        const alerts = getAlerts() || [];
        if (left == null || left < 0 || !alerts.length) {
          tip.hidden = true;
          return;
        }
        const near = alerts.filter((a) => Math.abs(u.valToPos(a.time, 'x') - left) <= 5);
        if (!near.length) {
          tip.hidden = true;
          return;
        }
        tip.textContent = '';
        for (const a of near.slice(0, 4))
          tip.append(
            el(
              'div',
              {},
              el('span', { class: 'sev', style: { color: severityColor(a.severity) } }, a.severity || ''),
              ` ${a.kind || ''}${a.metric ? ' · ' + a.metric : ''} · ${a.state || ''} · ${fmtTime(a.time)}`,
              el('div', {}, a.message || ''),
            ),
          );
        tip.hidden = false;
        const w = u.over.clientWidth;
        tip.style.left = Math.min(left + 10, Math.max(0, w - 330)) + 'px';
        tip.style.top = '10px';
      },
    },
  };
}

/** Time axis values as HH:MM (or date + time over days). */
export function timeAxis(stroke = '#6b7382') {
  return { stroke, grid: { stroke: '#eef0f4' }, ticks: { stroke: '#dfe3ea' } };
}

export function yAxis(label, fmt) {
  return {
    label,
    labelSize: 18,
    stroke: '#6b7382',
    grid: { stroke: '#eef0f4' },
    ticks: { stroke: '#dfe3ea' },
    size: 52,
    values: fmt ? (u, splits) => splits.map(fmt) : undefined,
  };
}

/** The bars path builder (uPlot.paths.bars), when the build has it. */
export function barsPath() {
  const U = window.uPlot;
  return U.paths && U.paths.bars ? U.paths.bars({ size: [0.8, 60] }) : undefined;
}
