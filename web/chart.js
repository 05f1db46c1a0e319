// The score trend: an inline SVG line of the daily percentage, drawn here (no library).

const NS = 'http://www.w3.org/2000/svg';

function el(name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Draw `points` ([{date, percentage}] with percentage in 0..1) into `container`. */
export function trend(container, points) {
  container.replaceChildren();
  if (points.length === 0) {
    container.textContent = 'No score history in this period yet.';
    return;
  }
  const w = 600;
  const h = 160;
  const pad = { l: 44, r: 12, t: 10, b: 26 };
  const values = points.map((p) => p.percentage * 100);
  const lo = Math.max(0, Math.floor(Math.min(...values) / 10) * 10 - (Math.min(...values) % 10 === 0 ? 10 : 0));
  const hi = Math.min(100, Math.ceil(Math.max(...values) / 10) * 10 || 10);
  const x = (i) => pad.l + (points.length === 1 ? (w - pad.l - pad.r) / 2 : (i * (w - pad.l - pad.r)) / (points.length - 1));
  const y = (v) => pad.t + (h - pad.t - pad.b) * (1 - (v - lo) / Math.max(1, hi - lo));
  const first = values[0].toFixed(2);
  const last = values[values.length - 1].toFixed(2);
  const svg = el('svg', {
    viewBox: `0 0 ${w} ${h}`,
    role: 'img',
    class: 'chart',
    'aria-label': `Secure score from ${points[0].date} (${first} %) to ${points[points.length - 1].date} (${last} %)`,
  });
  for (const v of [lo, (lo + hi) / 2, hi]) {
    svg.append(el('line', { x1: pad.l, x2: w - pad.r, y1: y(v), y2: y(v), class: 'grid' }));
    svg.append(el('text', { x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, `${v} %`));
  }
  svg.append(el('text', { x: pad.l, y: h - 6, class: 'axis' }, points[0].date));
  svg.append(el('text', { x: w - pad.r, y: h - 6, 'text-anchor': 'end', class: 'axis' }, points[points.length - 1].date));
  const d = values.map((v, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  svg.append(el('path', { d, class: 'line' }));
  values.forEach((v, i) => {
    const dot = el('circle', { cx: x(i), cy: y(v), r: 3, class: 'dot' });
    dot.append(el('title', {}, `${points[i].date}: ${v.toFixed(2)} %`));
    svg.append(dot);
  });
  container.append(svg);
}
