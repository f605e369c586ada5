// A line chart drawn by hand as inline SVG (no library): the last minutes of a few series on
// one scale (the highest value on show), with each one's latest value in the legend.
const NS = "http://www.w3.org/2000/svg";
const H = 180; // px; the width is the box's own, so that text is never stretched
const PAD = { left: 44, right: 12, top: 12, bottom: 22 };

function node(name, attrs = {}, text) {
  const n = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

// A round top for the axis: 1, 2, 5 times a power of ten.
function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v);
}

export class Chart {
  // series: [{key, label, className}]; seconds: how far back the chart goes
  constructor(root, series, seconds) {
    this.root = root;
    this.series = series;
    this.seconds = seconds;
    this.points = []; // {at: ms, values: {key: number}}
    this.svg = node("svg", { class: "chart", role: "img" });
    this.legend = document.createElement("ul");
    this.legend.className = "chart-legend";
    root.replaceChildren(this.svg, this.legend);
    this.width = 0;
    new ResizeObserver(() => { // drawn to the box's width: again when it changes
      if (root.clientWidth !== this.width) this.draw();
    }).observe(root);
  }

  clear() {
    this.points = [];
    this.draw();
  }

  add(at, values) {
    this.points.push({ at, values });
    const since = at - this.seconds * 1000;
    while (this.points.length && this.points[0].at < since) this.points.shift();
    this.draw();
  }

  draw() {
    this.width = this.root.clientWidth;
    const W = Math.max(280, Math.round(this.width || 640));
    this.svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const now = this.points.length ? this.points[this.points.length - 1].at : Date.now();
    // From the first point on, at least a minute, at most the chart's span.
    const first = this.points.length ? this.points[0].at : now;
    const span = Math.min(this.seconds * 1000, Math.max(60_000, now - first));
    const x = (at) => PAD.left + ((at - (now - span)) / span) * (W - PAD.left - PAD.right);
    let top = 0;
    for (const p of this.points) for (const s of this.series) top = Math.max(top, p.values[s.key]);
    top = niceMax(top);
    const y = (v) => H - PAD.bottom - (v / top) * (H - PAD.top - PAD.bottom);
    const parts = [];
    for (const frac of [0, 0.5, 1]) { // grid lines and their values
      const v = top * frac;
      parts.push(node("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v),
        class: "chart-grid" }));
      parts.push(node("text", { x: PAD.left - 6, y: y(v) + 4, class: "chart-label",
        "text-anchor": "end" }, String(Math.round(v * 100) / 100)));
    }
    parts.push(node("text", { x: PAD.left, y: H - 4, class: "chart-label" },
      `−${Math.round(span / 60_000)} min`));
    parts.push(node("text", { x: W - PAD.right, y: H - 4, class: "chart-label",
      "text-anchor": "end" }, "now"));
    for (const s of this.series) {
      const line = this.points.map((p) => `${x(p.at).toFixed(1)},${y(p.values[s.key]).toFixed(1)}`);
      if (line.length) {
        parts.push(node("polyline", { points: line.join(" "), class: `chart-line ${s.className}` }));
      }
    }
    this.svg.replaceChildren(...parts);
    const last = this.points[this.points.length - 1];
    const said = this.series.map((s) => `${s.label} ${last ? last.values[s.key] : "–"}`);
    this.svg.setAttribute("aria-label",
      `Chart of the last ${Math.round(this.seconds / 60)} minutes; now: ${said.join(", ")}`);
    this.legend.replaceChildren(...this.series.map((s, i) => {
      const li = document.createElement("li");
      const mark = document.createElement("span");
      mark.className = `chart-key ${s.className}`;
      mark.setAttribute("aria-hidden", "true");
      li.append(mark, `${said[i]}`);
      return li;
    }));
  }
}
