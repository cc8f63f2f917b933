// Small pieces both pages share: building elements (text is always set as text, never parsed as HTML),
// words for times and distances, the sign-in form and the sparkline.

import { ApiError, signIn } from "./api.js";

/** An element: h("p", { class: "x", onclick: f }, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const svg = ["svg", "circle", "rect", "polyline", "text", "line", "g", "title", "path"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const SEVERITY = { emergency: "Emergency", serious: "Serious", ordinary: "Ordinary" };
export const STATE = {
  open: "Open",
  acknowledged: "Acknowledged",
  in_progress: "Work started",
  resolved: "Resolved",
  closed: "Closed",
};

function span(ms) {
  const minutes = Math.round(Math.abs(ms) / 60000);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} days ${hours % 24} h`;
}

/** "Overdue by 3 h 5 min" or "5 h 20 min left", and whether it is overdue. */
export function timeLeft(deadlineIso, now = Date.now()) {
  const left = Date.parse(deadlineIso) - now;
  return left < 0
    ? { text: `Overdue by ${span(left)}`, overdue: true }
    : { text: `${span(left)} left`, overdue: false };
}

export function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

/** Metres between two WGS 84 points (haversine; a phone's fix is no better than that). */
export function metres(a, b) {
  const rad = Math.PI / 180;
  const dlat = (b.lat - a.lat) * rad;
  const dlon = (b.lon - a.lon) * rad;
  const s = Math.sin(dlat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dlon / 2) ** 2;
  return 2 * 6371008.8 * Math.asin(Math.sqrt(s));
}

export function distanceText(m) {
  return m < 1000 ? `${Math.round(m / 10) * 10} m away` : `${(m / 1000).toFixed(m < 10000 ? 1 : 0)} km away`;
}

/** Links to a place: the phone's map app (geo: URI, RFC 5870) and OpenStreetMap. */
export function mapLinks(lat, lon, label) {
  const la = lat.toFixed(6);
  const lo = lon.toFixed(6);
  return h(
    "span",
    { class: "maplinks" },
    h("a", { href: `geo:${la},${lo}?q=${la},${lo}`, "aria-label": `Open ${label} in the map app` }, "Map app"),
    h(
      "a",
      {
        href: `https://www.openstreetmap.org/?mlat=${la}&mlon=${lo}#map=18/${la}/${lo}`,
        target: "_blank",
        rel: "noopener",
        "aria-label": `Open ${label} on OpenStreetMap`,
      },
      "OpenStreetMap",
    ),
  );
}

export function showError(box, error) {
  box.textContent = error instanceof ApiError ? error.message : `Something went wrong: ${error}`;
  box.hidden = false;
}

/** The sign-in form; resolves with the session once a sign-in succeeds. */
export function signInForm(root, title) {
  return new Promise((resolve) => {
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const name = h("input", {
      id: "name",
      name: "username",
      autocomplete: "username",
      autocapitalize: "none",
      required: true,
    });
    const password = h("input", {
      id: "password",
      name: "password",
      type: "password",
      autocomplete: "current-password",
      required: true,
    });
    const button = h("button", { type: "submit", class: "primary" }, "Sign in");
    const form = h(
      "form",
      { class: "signin", "aria-labelledby": "signin-title" },
      h("h1", { id: "signin-title" }, title),
      h("label", { for: "name" }, "Name"),
      name,
      h("label", { for: "password" }, "Password"),
      password,
      error,
      button,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      button.disabled = true;
      try {
        resolve(await signIn(name.value.trim(), password.value));
      } catch (e) {
        showError(error, e.status === 401 ? new ApiError("Wrong name or password.", 401) : e);
        password.value = "";
        password.focus();
      } finally {
        button.disabled = false;
      }
    });
    root.replaceChildren(form);
    name.focus();
  });
}

/** An inline SVG sparkline of history points (mean, else max), with min and max labelled. */
export function sparkline(points, unit, width = 320, height = 72) {
  const values = points.map((p) => (p.mean ?? p.max)).filter((v) => v !== null && v !== undefined);
  if (values.length === 0) return h("p", { class: "muted" }, "No readings in the last 24 h.");
  const times = points.filter((p) => (p.mean ?? p.max) !== null).map((p) => Date.parse(p.start));
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const t0 = times[0];
  const t1 = times[times.length - 1];
  const x = (t) => (t1 === t0 ? width / 2 : ((t - t0) / (t1 - t0)) * (width - 8) + 4);
  const y = (v) => (hi === lo ? height / 2 : height - 6 - ((v - lo) / (hi - lo)) * (height - 12));
  const line = values.map((v, i) => `${x(times[i]).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const last = values[values.length - 1];
  const label = `Last ${values.length} readings: from ${fmt(lo)} to ${fmt(hi)} ${unit}, latest ${fmt(last)} ${unit}`;
  return h(
    "figure",
    { class: "spark" },
    h(
      "svg",
      { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, preserveAspectRatio: "none" },
      h("polyline", { points: line, fill: "none", stroke: "currentColor", "stroke-width": 2 }),
      h("circle", { cx: x(times[times.length - 1]), cy: y(last), r: 3.5, fill: "currentColor" }),
    ),
    h("figcaption", {}, `min ${fmt(lo)} · max ${fmt(hi)} · latest ${fmt(last)} ${unit}`),
  );
}

export function fmt(v) {
  if (typeof v !== "number") return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
}
