// The fault map: an SVG drawn from the server's clusters (GET /api/v1/map/faults) in Web Mercator
// pixels, with zoom and pan by buttons, wheel, drag and keys. No tiles: the page works on a closed
// network; the city's extent is drawn as a dashed frame for orientation.

import { SEVERITY, h } from "./ui.js";

const TILE = 256;
const MAX_LAT = 85.05112878;
const MAX_ZOOM = 22;

function project(lat, lon, zoom) {
  const world = TILE * 2 ** zoom;
  const phi = (Math.max(-MAX_LAT, Math.min(MAX_LAT, lat)) * Math.PI) / 180;
  return {
    x: ((lon + 180) / 360) * world,
    y: ((1 - Math.log(Math.tan(phi) + 1 / Math.cos(phi)) / Math.PI) / 2) * world,
  };
}

function unproject(x, y, zoom) {
  const world = TILE * 2 ** zoom;
  const n = Math.PI * (1 - (2 * y) / world);
  return { lat: (Math.atan(Math.sinh(n)) * 180) / Math.PI, lon: (x / world) * 360 - 180 };
}

const clampLon = (v) => Math.max(-180, Math.min(180, v));
const clampLat = (v) => Math.max(-MAX_LAT, Math.min(MAX_LAT, v));

export class FaultMap {
  /** `load(bbox, zoom)` fetches the clusters (bbox null: the city); `onPoint(point)` opens one fault. */
  constructor(container, load, onPoint) {
    this.load = load;
    this.onPoint = onPoint;
    this.center = null;
    this.zoom = 12;
    this.extent = null;
    this.seq = 0;
    this.layer = h("g");
    this.svg = h("svg", { role: "img", "aria-label": "Fault map", tabindex: 0 }, this.layer);
    this.caption = h("p", { class: "muted", role: "status" });
    const button = (label, title, action, cls = "") =>
      h("button", { type: "button", title, "aria-label": title, class: cls, onclick: action }, label);
    container.replaceChildren(
      h(
        "div",
        { class: "map" },
        this.svg,
        h(
          "div",
          { class: "controls" },
          button("+", "Zoom in", () => this.zoomBy(1)),
          button("−", "Zoom out", () => this.zoomBy(-1)),
          button("City", "Show the whole city", () => this.fit(this.extent), "wide"),
        ),
      ),
      h(
        "p",
        { class: "legend" },
        ...Object.entries(SEVERITY).map(([s, label]) =>
          h(
            "span",
            {},
            h("svg", { width: 14, height: 14, "aria-hidden": "true" }, h("circle", { cx: 7, cy: 7, r: 6, class: `fill-${s}` })),
            ` ${label} (worst in a cluster)`,
          ),
        ),
      ),
      this.caption,
    );
    this.interact();
  }

  size() {
    const r = this.svg.getBoundingClientRect();
    return { w: Math.max(r.width, 100), h: Math.max(r.height, 100) };
  }

  topLeft() {
    const { w, h: height } = this.size();
    const c = project(this.center.lat, this.center.lon, this.zoom);
    return { x: c.x - w / 2, y: c.y - height / 2 };
  }

  bbox() {
    const { w, h: height } = this.size();
    const tl = this.topLeft();
    const nw = unproject(tl.x, tl.y, this.zoom);
    const se = unproject(tl.x + w, tl.y + height, this.zoom);
    return [clampLon(nw.lon), clampLat(se.lat), clampLon(se.lon), clampLat(nw.lat)];
  }

  /** Show the box [min_lon, min_lat, max_lon, max_lat] as large as fits. */
  fit(box) {
    if (!box) return this.refresh(true);
    const { w, h: height } = this.size();
    let zoom = MAX_ZOOM;
    for (; zoom > 0; zoom--) {
      const a = project(box[3], box[0], zoom);
      const b = project(box[1], box[2], zoom);
      if (b.x - a.x <= w * 0.9 && b.y - a.y <= height * 0.9) break;
    }
    this.zoom = Math.min(zoom, 18);
    this.center = { lat: (box[1] + box[3]) / 2, lon: (box[0] + box[2]) / 2 };
    return this.refresh();
  }

  zoomBy(steps, at = null) {
    if (!this.center) return;
    const zoom = Math.max(0, Math.min(MAX_ZOOM, this.zoom + steps));
    if (at) this.center = at;
    this.zoom = zoom;
    this.refresh();
  }

  panBy(dx, dy) {
    if (!this.center) return;
    const c = project(this.center.lat, this.center.lon, this.zoom);
    this.center = unproject(c.x + dx, c.y + dy, this.zoom);
    this.refresh();
  }

  /** Fetch and draw; with `first` (no view yet) the server picks the city's box. */
  async refresh(first = false) {
    const seq = ++this.seq;
    const found = first || !this.center ? await this.load(null, null) : await this.load(this.bbox(), this.zoom);
    if (seq !== this.seq) return; // a newer view was asked for meanwhile
    if (first || !this.center) {
      this.extent = found.bbox;
      return this.fit(found.bbox);
    }
    this.draw(found);
  }

  draw(found) {
    const tl = this.topLeft();
    const at = (lat, lon) => {
      const p = project(lat, lon, this.zoom);
      return { x: p.x - tl.x, y: p.y - tl.y };
    };
    const shapes = [];
    if (this.extent) {
      const a = at(this.extent[3], this.extent[0]);
      const b = at(this.extent[1], this.extent[2]);
      shapes.push(h("rect", { class: "extent", x: a.x, y: a.y, width: b.x - a.x, height: b.y - a.y }));
    }
    for (const c of found.clusters) {
      const p = at(c.lat, c.lon);
      const r = 11 + 4 * Math.log2(c.count);
      const counts = Object.entries(c.by_severity).map(([s, n]) => `${n} ${s}`).join(", ");
      shapes.push(
        h(
          "g",
          { class: "cluster-group" },
          h(
            "circle",
            {
              class: `cluster fill-${c.worst}`,
              cx: p.x.toFixed(1),
              cy: p.y.toFixed(1),
              r: r.toFixed(1),
              "data-count": c.count,
              onclick: () => this.zoomBy(2, { lat: c.lat, lon: c.lon }),
            },
            h("title", {}, `${c.count} faults (${counts}): click to zoom in`),
          ),
          h("text", { x: p.x.toFixed(1), y: (p.y + 4).toFixed(1), "text-anchor": "middle" }, c.count),
        ),
      );
    }
    for (const f of found.points) {
      const p = at(f.lat, f.lon);
      shapes.push(
        h(
          "circle",
          {
            class: `point fill-${f.severity}`,
            cx: p.x.toFixed(1),
            cy: p.y.toFixed(1),
            r: 7,
            onclick: () => this.onPoint(f),
          },
          h("title", {}, `${f.title}: ${f.subject} (${SEVERITY[f.severity]})`),
        ),
      );
    }
    this.layer.removeAttribute("transform");
    this.layer.replaceChildren(...shapes);
    const n = (count, one, many) => `${count} ${count === 1 ? one : many}`;
    const summary =
      `${n(found.faults_in_view, "open fault", "open faults")} in view: ` +
      `${n(found.clusters.length, "cluster", "clusters")} and ${n(found.points.length, "single fault", "single faults")}`;
    this.svg.setAttribute("aria-label", `Fault map. ${summary}.`);
    this.caption.textContent = `${summary} (zoom ${found.zoom}).`;
  }

  interact() {
    let drag = null;
    this.svg.addEventListener("pointerdown", (e) => {
      if (e.target !== this.svg && !e.target.classList.contains("extent")) return; // a click on a fault
      drag = { x: e.clientX, y: e.clientY, dx: 0, dy: 0 };
      this.svg.setPointerCapture(e.pointerId);
    });
    this.svg.addEventListener("pointermove", (e) => {
      if (!drag) return;
      drag.dx = e.clientX - drag.x;
      drag.dy = e.clientY - drag.y;
      this.layer.setAttribute("transform", `translate(${drag.dx} ${drag.dy})`);
    });
    const end = () => {
      if (drag && (Math.abs(drag.dx) > 2 || Math.abs(drag.dy) > 2)) this.panBy(-drag.dx, -drag.dy);
      drag = null;
    };
    this.svg.addEventListener("pointerup", end);
    this.svg.addEventListener("pointercancel", end);
    let wheel = 0;
    this.svg.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        if (Date.now() - wheel < 250) return; // one step per flick
        wheel = Date.now();
        this.zoomBy(e.deltaY < 0 ? 1 : -1);
      },
      { passive: false },
    );
    this.svg.addEventListener("keydown", (e) => {
      const step = 100;
      const keys = {
        "+": () => this.zoomBy(1),
        "=": () => this.zoomBy(1),
        "-": () => this.zoomBy(-1),
        ArrowLeft: () => this.panBy(-step, 0),
        ArrowRight: () => this.panBy(step, 0),
        ArrowUp: () => this.panBy(0, -step),
        ArrowDown: () => this.panBy(0, step),
      };
      if (keys[e.key]) {
        e.preventDefault();
        keys[e.key]();
      }
    });
  }
}
