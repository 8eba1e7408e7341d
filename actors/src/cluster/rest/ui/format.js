// Formatting and small DOM helpers of Weir's web UI: numbers, durations, sizes and times as
// people read them, HTML escaping, in-place table updates and sparklines.

/** Escapes text for HTML: every string from the API goes through this before `innerHTML`. */
export function esc(value) {
  return String(value ?? '').replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
  );
}

const grouped = new Intl.NumberFormat('en-US');

/** A count in full with thousands separators: 1,234,567. */
export function count(n) {
  return Number.isFinite(n) ? grouped.format(Math.round(n)) : '–';
}

/** A count in at most four characters and a unit: 999, 1.2k, 35k, 4.1M. */
export function compact(n) {
  if (!Number.isFinite(n)) return '–';
  const units = ['', 'k', 'M', 'G', 'T'];
  let i = 0;
  let v = Math.abs(n);
  while (v >= 999.5 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  const digits = i === 0 || v >= 99.95 ? 0 : v >= 9.995 ? 1 : 2;
  return `${n < 0 ? '-' : ''}${v.toFixed(digits)}${units[i]}`;
}

/** Records per second: 0/s, 12/s, 4.03k/s. */
export function rate(perSecond) {
  if (!Number.isFinite(perSecond)) return '–';
  if (perSecond > 0 && perSecond < 10) return `${perSecond.toFixed(1)}/s`;
  return `${compact(perSecond)}/s`;
}

/** A duration in milliseconds: 850 ms, 1.25 s, 3m 20s, 2h 05m, 3d 4h. */
export function duration(ms) {
  if (!Number.isFinite(ms)) return '–';
  if (ms < 0) return `-${duration(-ms)}`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  const [d, h, m, sec] = [Math.floor(s / 86400), Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60, s % 60];
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  return `${m}m ${String(sec).padStart(2, '0')}s`;
}

/** Microseconds, as `duration` does milliseconds but below a millisecond too. */
export function micros(us) {
  if (!Number.isFinite(us)) return '–';
  return us < 1000 ? `${Math.round(us)} µs` : duration(us / 1000);
}

/** Bytes in binary units: 512 B, 1.5 KiB, 20.3 MiB. */
export function bytes(n) {
  if (!Number.isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

/** A ratio 0..1 as a whole percentage. */
export function percent(ratio) {
  return Number.isFinite(ratio) ? `${Math.round(ratio * 100)}%` : '–';
}

const two = (n) => String(n).padStart(2, '0');

/** An epoch-ms instant in local time: 14:03:07.251, with the date when it is not today. */
export function time(epochMs) {
  if (!Number.isFinite(epochMs)) return '–';
  const t = new Date(epochMs);
  const clock = `${two(t.getHours())}:${two(t.getMinutes())}:${two(t.getSeconds())}.${String(t.getMilliseconds()).padStart(3, '0')}`;
  const today = new Date();
  if (t.toDateString() === today.toDateString()) return clock;
  return `${t.getFullYear()}-${two(t.getMonth() + 1)}-${two(t.getDate())} ${clock}`;
}

/** Watermarks at or past this (Flink's Long.MAX_VALUE, beyond any date) mean the input ended. */
const END_OF_INPUT = 8.64e15;

/** A watermark (epoch ms, or null before the first) with its lag behind the wall clock:
 * "14:03:07.251 (lag 1.20 s)", "none yet", "end of input". */
export function watermark(epochMs, now = Date.now()) {
  if (epochMs == null || !Number.isFinite(epochMs) || epochMs <= -END_OF_INPUT) return 'none yet';
  if (epochMs >= END_OF_INPUT) return 'end of input';
  return `${time(epochMs)} (lag ${duration(Math.max(0, now - epochMs))})`;
}

/** The CSS class of a job or subtask status badge. */
export function statusClass(status) {
  switch (status) {
    case 'RUNNING':
    case 'COMPLETED':
      return 'st-running';
    case 'FINISHED':
      return 'st-finished';
    case 'CANCELED':
      return 'st-canceled';
    case 'FAILED':
    case 'FAILING':
      return 'st-failed';
    case 'CANCELLING':
    case 'RESTARTING':
      return 'st-transient';
    default:
      return 'st-pending';
  }
}

/** A status badge. */
export function badge(status) {
  return `<span class="badge ${statusClass(status)}">${esc(status)}</span>`;
}

/** Sets an element's HTML only when it changed, so an unchanged part of the page keeps its
 * nodes (focus, selection, a click in progress) across refreshes. */
export function setHTML(el, html) {
  if (el.__html !== html) {
    el.innerHTML = html;
    el.__html = html;
  }
}

/** Sets an attribute only when it changed. */
export function setAttr(el, name, value) {
  const v = value == null ? null : String(value);
  if (v === null) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
  } else if (el.getAttribute(name) !== v) {
    el.setAttribute(name, v);
  }
}

/** Makes `tbody` hold one row per item, in order, reusing the rows of the same key: `render`
 * gives `{cells: [html | {html, cls}], attrs: {name: value}, cls}` for an item. */
export function syncRows(tbody, items, keyOf, render) {
  const existing = new Map();
  for (const tr of tbody.children) existing.set(tr.dataset.key, tr);
  let previous = null;
  for (const item of items) {
    const key = String(keyOf(item));
    let tr = existing.get(key);
    if (tr) {
      existing.delete(key);
    } else {
      tr = document.createElement('tr');
      tr.dataset.key = key;
    }
    const { cells, attrs = {}, cls = '' } = render(item);
    while (tr.children.length < cells.length) tr.appendChild(document.createElement('td'));
    while (tr.children.length > cells.length) tr.lastElementChild.remove();
    cells.forEach((cell, i) => {
      const td = tr.children[i];
      const { html, cls: cellClass = '' } = typeof cell === 'object' && cell !== null ? cell : { html: cell };
      setHTML(td, html);
      if (td.className !== cellClass) td.className = cellClass;
    });
    if (tr.className !== cls) tr.className = cls;
    for (const [name, value] of Object.entries(attrs)) setAttr(tr, name, value);
    const wanted = previous ? previous.nextElementSibling : tbody.firstElementChild;
    if (wanted !== tr) tbody.insertBefore(tr, wanted);
    previous = tr;
  }
  for (const tr of existing.values()) tr.remove();
}

/** A sparkline of `values` (oldest first) as inline SVG: a line over a light area, the last
 * point marked; `max` fixes the scale's top (else the highest value). */
export function sparkline(values, { width = 120, height = 28, max, cls = '' } = {}) {
  const points = values.filter(Number.isFinite);
  if (points.length < 2) {
    return `<svg class="spark ${cls}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" aria-hidden="true"></svg>`;
  }
  const top = Math.max(max ?? Math.max(...points), 1e-9);
  const step = width / (points.length - 1);
  const y = (v) => (height - 2 - (Math.min(v, top) / top) * (height - 4)).toFixed(1);
  const line = points.map((v, i) => `${(i * step).toFixed(1)},${y(v)}`).join(' ');
  const lastX = ((points.length - 1) * step).toFixed(1);
  return (
    `<svg class="spark ${cls}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" aria-hidden="true">` +
    `<polygon class="spark-area" points="0,${height} ${line} ${lastX},${height}"/>` +
    `<polyline class="spark-line" points="${line}"/>` +
    `<circle class="spark-dot" cx="${lastX}" cy="${y(points[points.length - 1])}" r="2"/></svg>`
  );
}

/** A horizontal bar of shares (0..1) as inline SVG, one class per segment: `[[cls, share], …]`
 * (SVG geometry, as the page's CSP allows no inline style). */
export function bar(segments, { width = 90, height = 8, title = '' } = {}) {
  let x = 0;
  const rects = segments
    .filter(([, share]) => Number.isFinite(share) && share > 0)
    .map(([cls, share]) => {
      const w = Math.min(share, 1) * width;
      const rect = `<rect class="${cls}" x="${x.toFixed(1)}" y="0" width="${w.toFixed(1)}" height="${height}"/>`;
      x += w;
      return rect;
    })
    .join('');
  return (
    `<svg class="bar" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img">` +
    `<title>${esc(title)}</title><rect class="bar-bg" width="${width}" height="${height}" rx="2"/>${rects}</svg>`
  );
}

/** The three shares of a loop's time: busy, backpressured, idle. */
export function ratioBar(busy, backpressured, idle) {
  const title = `busy ${percent(busy)}, backpressured ${percent(backpressured)}, idle ${percent(idle)}`;
  return bar(
    [
      ['r-busy', busy],
      ['r-bp', backpressured],
      ['r-idle', idle],
    ],
    { title },
  );
}
