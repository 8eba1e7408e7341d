// The job graph of Weir's web UI: vertices laid out by depth from left to right, edges
// labelled with their partitioning, each vertex coloured as Flink colours it (blue idle, red
// busy, dark backpressured) and showing its records and watermark. Plain SVG, drawn once per
// plan and updated in place on every poll.

import { compact, esc, percent, rate, watermark } from './format.js';

const SVG = 'http://www.w3.org/2000/svg';
const NODE_WIDTH = 240;
const COLUMN_GAP = 130;
const ROW_GAP = 36;
const PAD = 28;
const LINE = 17;
/** Operator lines shown in a vertex before "+ n more". */
const MAX_OPERATOR_LINES = 3;
/** Characters of an operator name that fit a line of the vertex. */
const MAX_CHARS = 29;

/** The colours a vertex blends between (sRGB). */
const IDLE = [214, 232, 248];
const BUSY = [222, 45, 38];
const BACKPRESSURED = [45, 45, 52];

function mix(a, b, t) {
  const k = Math.max(0, Math.min(1, Number.isFinite(t) ? t : 0));
  return a.map((x, i) => Math.round(x + (b[i] - x) * k));
}

/** A vertex's colour from its busy and backpressured shares, as Flink's graph shows it: the
 * larger of the two wins, blending from idle blue towards red (busy) or dark (waiting on
 * output). Returns the fill and whether text on it should be light. */
export function vertexColour(busy, backpressured) {
  const rgb = (backpressured ?? 0) > (busy ?? 0) ? mix(IDLE, BACKPRESSURED, backpressured) : mix(IDLE, BUSY, busy);
  const luminance = (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255;
  return { fill: `rgb(${rgb.join(',')})`, light: luminance < 0.55 };
}

function truncate(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Columns by depth (the longest path from a source), ordered within a column by the mean row
 * of their inputs, which keeps most edges straight. */
export function layout(plan, withWatermark = false) {
  const n = plan.vertices.length;
  const inputs = Array.from({ length: n }, () => []);
  for (const e of plan.edges) {
    if (e.target_vertex < n && e.source_vertex < n) inputs[e.target_vertex].push(e.source_vertex);
  }
  const depth = new Array(n).fill(-1);
  const visiting = new Set();
  const depthOf = (v) => {
    if (depth[v] >= 0) return depth[v];
    if (visiting.has(v)) return 0; // a cycle: not a valid plan, but draw it anyway
    visiting.add(v);
    depth[v] = inputs[v].length === 0 ? 0 : 1 + Math.max(...inputs[v].map(depthOf));
    visiting.delete(v);
    return depth[v];
  };
  for (let v = 0; v < n; v += 1) depthOf(v);

  const heights = plan.vertices.map((v) => nodeHeight(v, withWatermark));
  const columns = [];
  for (let v = 0; v < n; v += 1) (columns[depth[v]] ??= []).push(v);
  const row = new Array(n).fill(0);
  for (const column of columns) {
    if (!column) continue;
    const key = (v) => (inputs[v].length ? inputs[v].reduce((s, u) => s + row[u], 0) / inputs[v].length : v);
    column.sort((a, b) => key(a) - key(b) || a - b);
    column.forEach((v, i) => {
      row[v] = i;
    });
  }
  const columnHeight = (column) => column.reduce((s, v) => s + heights[v], 0) + ROW_GAP * (column.length - 1);
  const tallest = Math.max(0, ...columns.filter(Boolean).map(columnHeight));
  const positions = new Array(n);
  columns.forEach((column, c) => {
    if (!column) return;
    let y = PAD + (tallest - columnHeight(column)) / 2;
    for (const v of column) {
      positions[v] = { x: PAD + c * (NODE_WIDTH + COLUMN_GAP), y, w: NODE_WIDTH, h: heights[v] };
      y += heights[v] + ROW_GAP;
    }
  });
  const width = PAD * 2 + columns.length * NODE_WIDTH + Math.max(0, columns.length - 1) * COLUMN_GAP;
  return { positions, width, height: tallest + PAD * 2 };
}

/** The chain's operators: on one line when they fit, else one a line (`→` marking the chained
 * ones), at most `MAX_OPERATOR_LINES` and "+ n more". */
function operatorLines(vertex) {
  const names = vertex.operators?.length ? vertex.operators.map((o) => o.name) : String(vertex.name).split(' -> ');
  const joined = names.join(' → ');
  if (joined.length <= MAX_CHARS) return [joined];
  const lines = names.slice(0, MAX_OPERATOR_LINES).map((name, i) => truncate(i === 0 ? name : `→ ${name}`, MAX_CHARS));
  if (names.length > MAX_OPERATOR_LINES) lines.push(`+ ${names.length - MAX_OPERATOR_LINES} more`);
  return lines;
}

/** The figures under a vertex's title: shares of time, records, rates, and the watermark when
 * the server reports one. */
function metricLines(withWatermark) {
  return withWatermark ? ['ratios', 'records', 'rates', 'watermark'] : ['ratios', 'records', 'rates'];
}

/** Title lines, the parallelism line, a rule, the metric lines. */
function nodeHeight(vertex, withWatermark) {
  return 26 + operatorLines(vertex).length * LINE + 26 + (metricLines(withWatermark).length - 1) * LINE + 12;
}

/** The SVG path of an edge and the point of its label: a curve from the producer's right side
 * to the consumer's left, spread apart when several edges join the same two vertices. */
function edgePath(from, to, slot, slots) {
  // Far enough apart for their labels (20 px high) not to overlap.
  const spread = (slot - (slots - 1) / 2) * 26;
  const x1 = from.x + from.w;
  const y1 = from.y + from.h / 2 + spread;
  const x2 = to.x - 6;
  const y2 = to.y + to.h / 2 + spread;
  const dx = Math.max(40, (x2 - x1) / 2);
  return {
    d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`,
    label: { x: (x1 + x2) / 2, y: (y1 + y2) / 2 },
  };
}

/** The partitioning, the producer's side output if not its main one, and which input of a
 * consumer with several. */
function edgeLabel(edge, inputs) {
  let label = String(edge.partitioning ?? '').toUpperCase();
  if (edge.output > 0) label += ` · side ${edge.output}`;
  if (inputs > 1) label += ` · in ${edge.input + 1}`;
  return label;
}

/** Draws a plan into `container` and updates its vertices' figures; `onSelect(vertex)` is
 * called when a vertex is clicked. */
export class JobGraph {
  constructor(container, onSelect) {
    this.container = container;
    this.onSelect = onSelect;
    this.key = null;
    this.nodes = [];
    container.addEventListener('click', (event) => {
      const node = event.target.closest('[data-vertex]');
      if (node) this.onSelect(Number(node.dataset.vertex));
    });
    window.addEventListener('resize', () => this.fit());
    container.addEventListener('keydown', (event) => {
      const node = event.target.closest('[data-vertex]');
      if (node && (event.key === 'Enter' || event.key === ' ')) {
        event.preventDefault();
        this.onSelect(Number(node.dataset.vertex));
      }
    });
  }

  /** Redraws only when the plan changed (another job, or a rescaled restart), or watermarks
   * appeared. */
  draw(plan, withWatermark) {
    const key = `${plan.fingerprint}/${plan.vertices.map((v) => v.parallelism).join(',')}/${withWatermark}`;
    if (key === this.key) return;
    this.key = key;
    const { positions, width, height } = layout(plan, withWatermark);
    const pairs = new Map();
    for (const e of plan.edges) {
      const pair = `${e.source_vertex}>${e.target_vertex}`;
      pairs.set(pair, [...(pairs.get(pair) ?? []), e]);
    }
    let edges = '';
    let labels = '';
    for (const group of pairs.values()) {
      group.forEach((e, slot) => {
        const from = positions[e.source_vertex];
        const to = positions[e.target_vertex];
        if (!from || !to) return;
        const { d, label } = edgePath(from, to, slot, group.length);
        const text = edgeLabel(e, plan.edges.filter((x) => x.target_vertex === e.target_vertex).length);
        const w = text.length * 7 + 16;
        edges += `<path class="edge" d="${d}" marker-end="url(#weir-arrow)" data-edge="${e.id}"/>`;
        labels +=
          `<g class="edge-label" data-edge-label="${e.id}" data-partitioning="${esc(e.partitioning)}">` +
          `<rect x="${label.x - w / 2}" y="${label.y - 10}" width="${w}" height="20" rx="10"/>` +
          `<text x="${label.x}" y="${label.y + 4}" text-anchor="middle">${esc(text)}</text></g>`;
      });
    }
    let nodes = '';
    plan.vertices.forEach((v, i) => {
      const p = positions[i];
      if (!p) return;
      let y = p.y + 26;
      let text = '';
      for (const line of operatorLines(v)) {
        text += `<text class="v-title" x="${p.x + 12}" y="${y}">${esc(line)}</text>`;
        y += LINE;
      }
      text += `<text class="v-sub" x="${p.x + 12}" y="${y}">Parallelism ${esc(v.parallelism)}</text>`;
      text += `<text class="v-sub" x="${p.x + p.w - 12}" y="${y}" text-anchor="end">vertex ${esc(v.id)}</text>`;
      const rule = y + 9;
      y = rule + 17;
      for (const name of metricLines(withWatermark)) {
        text += `<text class="v-metric" data-field="${name}" x="${p.x + 12}" y="${y}"></text>`;
        y += LINE;
      }
      nodes +=
        `<g class="vertex" data-vertex="${i}" tabindex="0" role="button">` +
        `<title>${esc(v.name)}</title>` +
        `<rect class="v-box" x="${p.x}" y="${p.y}" width="${p.w}" height="${p.h}" rx="8"/>` +
        `<line class="v-rule" x1="${p.x + 12}" x2="${p.x + p.w - 12}" y1="${rule}" y2="${rule}"/>` +
        `${text}` +
        `</g>`;
    });
    this.container.innerHTML =
      `<svg class="job-graph" xmlns="${SVG}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
      `<defs><marker id="weir-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">` +
      `<path d="M0,0 L10,5 L0,10 z" class="arrow"/></marker></defs>` +
      `<g class="edges">${edges}</g><g class="vertices">${nodes}</g><g class="labels">${labels}</g></svg>`;
    this.size = { width, height };
    this.fit();
    this.nodes = plan.vertices.map((_, i) => {
      const g = this.container.querySelector(`[data-vertex="${i}"]`);
      const field = (name) => g?.querySelector(`[data-field="${name}"]`);
      return {
        g,
        box: g?.querySelector('.v-box'),
        ratios: field('ratios'),
        records: field('records'),
        rates: field('rates'),
        watermark: field('watermark'),
      };
    });
  }

  /** Shrinks a graph wider than its panel to fit, down to 70 % (then it scrolls), through the
   * CSSOM: the page's CSP allows no inline style attributes. */
  fit() {
    const svg = this.container.querySelector('svg');
    if (!svg || !this.size) return;
    const { width, height } = this.size;
    const available = this.container.clientWidth;
    const w = available > 0 ? Math.max(Math.min(width, available), width * 0.7) : width;
    svg.style.width = `${w}px`;
    svg.style.height = `${(w / width) * height}px`;
  }

  /** Updates every vertex from `stats[i]` (see `vertexStats` in app.js). */
  update(stats, selected) {
    this.nodes.forEach((node, i) => {
      const s = stats[i];
      if (!node.g || !s) return;
      const { fill, light } = vertexColour(s.busy, s.backpressured);
      node.box.setAttribute('fill', fill);
      node.g.classList.toggle('light', light);
      node.g.classList.toggle('selected', selected === i);
      node.g.dataset.readRecords = String(s.readRecords);
      node.g.dataset.writeRecords = String(s.writeRecords);
      node.g.dataset.inRate = String(s.inRate);
      node.g.dataset.busy = String(s.busy ?? '');
      node.g.dataset.backpressured = String(s.backpressured ?? '');
      node.ratios.textContent = `Busy ${percent(s.busy)} · Backpressured ${percent(s.backpressured)}`;
      // A sink writes to no channel: its output is not records out.
      node.records.textContent = `Records in ${compact(s.readRecords)}${s.sink ? '' : ` · out ${compact(s.writeRecords)}`}`;
      node.rates.textContent = `Rate in ${rate(s.inRate)}${s.sink ? '' : ` · out ${rate(s.outRate)}`}`;
      if (node.watermark) {
        // The lag only: a node is too narrow for a date and time (the table below has both).
        const full = watermark(s.watermark);
        const lag = /\(lag (.*)\)$/.exec(full);
        node.watermark.textContent = lag ? `Watermark lag ${lag[1]}` : `Watermark ${full}`;
      }
    });
  }
}
