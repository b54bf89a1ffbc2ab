// A bar chart drawn as SVG, one bar per hour: small enough to read, nothing to vendor.

const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Every hour from `from` to `to` (Date), each with the sum of `value(row)` of the rows of that
 * hour (`row.hour`, ISO). */
export function hourly(rows, value, from, to) {
  const sums = new Map();
  for (const row of rows) {
    const hour = new Date(row.hour).getTime();
    sums.set(hour, (sums.get(hour) || 0) + value(row));
  }
  const points = [];
  const start = new Date(from);
  start.setMinutes(0, 0, 0);
  for (let t = start.getTime(); t <= to.getTime(); t += 3600_000) {
    points.push({ at: new Date(t), value: sums.get(t) || 0 });
  }
  return points;
}

/** An SVG bar chart of `points` ({at: Date, value}), titled `label`. */
export function barChart(points, { label, width = 720, height = 200 } = {}) {
  const pad = { left: 48, right: 8, top: 12, bottom: 28 };
  const max = Math.max(1, ...points.map((p) => p.value));
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const step = plotW / Math.max(1, points.length);
  // Past a day and a half of hours: a tick per day (at most about ten), else about eight hours.
  const days = points.length > 36;
  const everyDay = Math.ceil(points.length / 24 / 10);
  const everyHour = Math.ceil(points.length / 8);
  let midnights = 0;
  const tick = (point, index) => {
    if (days) {
      if (point.at.getHours() !== 0 || midnights++ % everyDay) return null;
      return point.at.toLocaleDateString(undefined, { month: "short", day: "numeric" });
    }
    if (index % everyHour) return null;
    return point.at.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  };
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": label,
  });
  svg.append(el("title", {}, label));
  for (const fraction of [0, 0.5, 1]) {
    const y = pad.top + plotH * (1 - fraction);
    svg.append(el("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: "grid" }));
    const text = Number.isInteger(max * fraction) ? max * fraction : (max * fraction).toFixed(1);
    svg.append(el("text", { x: pad.left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, text));
  }
  points.forEach((point, index) => {
    const barH = (point.value / max) * plotH;
    const x = pad.left + index * step + step * 0.15;
    const bar = el("rect", {
      x, y: pad.top + plotH - barH, width: Math.max(1, step * 0.7), height: barH, class: "bar",
    });
    bar.append(el("title", {}, `${point.at.toLocaleString()}: ${point.value}`));
    svg.append(bar);
    const text = tick(point, index);
    if (text) {
      svg.append(el("text", { x: x + step * 0.35, y: height - 8, class: "axis", "text-anchor": "middle" }, text));
    }
  });
  return svg;
}
