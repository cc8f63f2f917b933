// The crew page: sign in, my open alerts by deadline (with distance and map links), one alert with what
// was found and its recent readings, and acknowledge / start / resolve with a note.

import { ApiError, V1, getJson, postJson, session, signOut } from "./api.js";
import {
  SEVERITY,
  STATE,
  distanceText,
  fmt,
  h,
  mapLinks,
  metres,
  showError,
  signInForm,
  sparkline,
  timeLeft,
  when,
} from "./ui.js";

const LIVE = ["open", "acknowledged", "in_progress"];
const DEVICE_KINDS = ["lamp", "cabinet", "bridge_node", "pump_station", "flood_gauge", "bin"];
// The reading a crew looks at first for each kind (a rule's own field wins when one matches).
const FIRST_FIELD = {
  lamp: "active_power",
  cabinet: "active_power",
  bridge_node: "deflection",
  pump_station: "wet_well_level",
  flood_gauge: "water_depth",
  bin: "fill_level",
};

const main = document.getElementById("main");
const who = document.getElementById("who");
const signOutButton = document.getElementById("signout");
let here = null; // the phone's position, when it lets us know it
const onPosition = new Set();

function watchPosition() {
  if (!("geolocation" in navigator)) return;
  navigator.geolocation.watchPosition(
    (p) => {
      here = { lat: p.coords.latitude, lon: p.coords.longitude };
      for (const f of onPosition) f();
    },
    () => {
      here = null; // refused or unavailable: distances stay hidden
      for (const f of onPosition) f();
    },
    { enableHighAccuracy: true, maximumAge: 30000, timeout: 20000 },
  );
}

function distanceOf(el, place) {
  const update = () => {
    el.hidden = !(here && place);
    if (here && place) el.textContent = distanceText(metres(here, place));
  };
  onPosition.add(update);
  update();
}

async function guarded(work) {
  try {
    await work();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return start();
    const box = h("p", { class: "error", role: "alert" });
    showError(box, e);
    main.append(box);
  }
}

function badge(severity) {
  return h("span", { class: `badge sev-${severity}` }, SEVERITY[severity] ?? severity);
}

async function positions(ids) {
  if (ids.length === 0) return new Map();
  try {
    const found = await getJson(`${V1}/map/positions`, { alert: ids });
    return new Map(found.positions.map((p) => [p.alert_id, { lat: p.lat, lon: p.lon }]));
  } catch {
    return new Map(); // the map is loading or away: no distances, the list still works
  }
}

async function showList() {
  onPosition.clear();
  const status = h("p", { class: "muted", role: "status" }, "Loading…");
  const list = h("ul", { class: "alerts", "aria-label": "My open alerts" });
  main.replaceChildren(
    h(
      "div",
      { class: "row" },
      h("h1", {}, "My open alerts"),
      h("button", { type: "button", onclick: () => guarded(showList) }, "Refresh"),
    ),
    status,
    list,
  );
  const page = await getJson(`${V1}/alerts`, { state: LIVE, limit: 200 });
  const alerts = page.items.sort((a, b) => Date.parse(a.deadline_at) - Date.parse(b.deadline_at));
  const places = await positions(alerts.map((a) => a.id));
  status.textContent =
    alerts.length === 0 ? "Nothing open for your crew." : `${alerts.length} open, most urgent first.`;
  for (const a of alerts) {
    const left = timeLeft(a.deadline_at);
    const place = places.get(a.id);
    const distance = h("span", { class: "distance", hidden: true });
    distanceOf(distance, place);
    list.append(
      h(
        "li",
        { class: left.overdue ? "card overdue" : "card" },
        h(
          "a",
          { href: `#alert/${encodeURIComponent(a.id)}`, class: "open" },
          h("span", { class: "title" }, a.title || a.rule),
          h("span", { class: "meta" }, badge(a.severity), " ", STATE[a.state] ?? a.state),
          h("span", { class: left.overdue ? "due late" : "due" }, left.text),
          h("span", { class: "where" }, [a.subject, a.road, a.district].filter(Boolean).join(" · ")),
        ),
        h("div", { class: "links" }, distance, place ? mapLinks(place.lat, place.lon, a.subject) : null),
      ),
    );
  }
}

function fieldFor(alert, readings) {
  const numeric = Object.keys(readings).filter((k) => typeof readings[k] === "number" && k !== "seq");
  const words = alert.rule.split("_").filter((w) => w.length >= 4);
  const own = numeric.find((f) => f.split("_").some((w) => words.includes(w)));
  const first = FIRST_FIELD[alert.subject_kind];
  return { field: own ?? first ?? numeric[0], fields: [...new Set([first, ...numeric].filter(Boolean))] };
}

async function findingBox(alert) {
  const box = h("dl", { class: "facts" });
  let readings = {};
  let url = null;
  if (DEVICE_KINDS.includes(alert.subject_kind)) url = `${V1}/live/devices/${encodeURIComponent(alert.subject)}`;
  else if (alert.subject_kind === "circuit") url = `${V1}/live/circuits/${encodeURIComponent(alert.subject)}`;
  if (url) {
    try {
      const live = await getJson(url);
      readings = live.readings ?? live.cabinet?.readings ?? {};
      const finding = (live.findings ?? []).find((f) => f.rule === alert.rule);
      if (finding) {
        box.append(h("dt", {}, "Rule"), h("dd", {}, alert.rule));
        if (finding.value !== null) {
          const versus = finding.threshold !== null ? ` (threshold ${fmt(finding.threshold)})` : "";
          box.append(h("dt", {}, "Value"), h("dd", { class: "value" }, `${fmt(finding.value)}${versus}`));
        }
        box.append(h("dt", {}, "Since"), h("dd", {}, when(finding.since)));
      }
    } catch {
      // the live state is extra: the alert's own explanation stands
    }
  }
  return { box, readings };
}

async function readingsBox(alert, readings) {
  const section = h(
    "section",
    { "aria-labelledby": "readings-title" },
    h("h2", { id: "readings-title" }, "Recent readings"),
  );
  if (!DEVICE_KINDS.includes(alert.subject_kind)) {
    section.append(h("p", { class: "muted" }, "This alert is about a group of devices: see them on site."));
    return section;
  }
  const { field, fields } = fieldFor(alert, readings);
  if (!field) return section;
  const chart = h("div", { class: "chart" });
  const select = h(
    "select",
    { id: "field", onchange: () => draw(select.value) },
    fields.map((f) => h("option", { value: f, selected: f === field }, f.replaceAll("_", " "))),
  );
  section.append(h("label", { for: "field" }, "Reading"), select, chart);
  async function draw(name) {
    chart.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const history = await getJson(`${V1}/history/${encodeURIComponent(alert.subject)}/${name}`, { points: 60 });
      chart.replaceChildren(sparkline(history.points, history.unit));
    } catch (e) {
      const box = h("p", { class: "error", role: "alert" });
      showError(box, e);
      chart.replaceChildren(box);
    }
  }
  await draw(field);
  return section;
}

function actions(alert) {
  const note = h("textarea", { id: "note", rows: 3, maxlength: 4000 });
  const message = h("p", { class: "ok", role: "status", hidden: true });
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const live = LIVE.includes(alert.state);
  const act = async (verb, done) => {
    error.hidden = true;
    message.hidden = true;
    if (verb === "resolve" && !note.value.trim()) {
      showError(error, new ApiError("Write what you did in the note before resolving.", 0));
      note.focus();
      return;
    }
    try {
      const body = note.value.trim() ? { note: note.value.trim() } : {};
      const updated = await postJson(`${V1}/alerts/${encodeURIComponent(alert.id)}/${verb}`, body);
      await showAlert(updated.id, `${done}.`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return start();
      showError(error, e);
    }
  };
  const button = (verb, label, done, enabled, cls = "") =>
    h("button", { type: "button", class: cls, disabled: !enabled, onclick: () => act(verb, done) }, label);
  return h(
    "section",
    { class: "act", "aria-labelledby": "act-title" },
    h("h2", { id: "act-title" }, live ? "Act" : "Done"),
    h("label", { for: "note" }, "Note (what you found, what you did)"),
    note,
    error,
    message,
    h(
      "div",
      { class: "buttons" },
      button("ack", "Acknowledge", "Acknowledged", alert.state === "open"),
      button("start", "Start work", "Work started", alert.state === "open" || alert.state === "acknowledged"),
      button("note", "Add note", "Note added", true),
      button("resolve", "Resolve", "Resolved", live, "primary"),
    ),
  );
}

function deadlineNote(alert, left) {
  if (!alert.resolved_at) return left.text;
  return Date.parse(alert.resolved_at) <= Date.parse(alert.deadline_at) ? "resolved on time" : "resolved late";
}

async function showAlert(id, said = "") {
  onPosition.clear();
  const alert = await getJson(`${V1}/alerts/${encodeURIComponent(id)}`);
  const left = timeLeft(alert.deadline_at);
  const places = await positions([alert.id]);
  const place = places.get(alert.id);
  const distance = h("span", { class: "distance", hidden: true });
  distanceOf(distance, place);
  const { box, readings } = await findingBox(alert);
  const done = h("p", { class: "ok", role: "status", hidden: !said }, said);
  const act = actions(alert);
  act.insertBefore(done, act.children[1]);
  main.replaceChildren(
    h("p", {}, h("a", { href: "#", class: "back" }, "← My open alerts")),
    h("h1", {}, alert.title || alert.rule),
    h(
      "p",
      { class: "meta" },
      badge(alert.severity),
      " ",
      h("span", { class: "state" }, STATE[alert.state] ?? alert.state),
    ),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Subject"),
      h("dd", {}, `${alert.subject} (${alert.subject_kind.replaceAll("_", " ")})`),
      h("dt", {}, "Where"),
      h("dd", {}, [alert.road, alert.grid_cell, alert.district].filter(Boolean).join(" · ") || "—"),
      h("dt", {}, "Opened"),
      h("dd", {}, when(alert.opened_at)),
      h("dt", {}, "Deadline"),
      h(
        "dd",
        { class: left.overdue && LIVE.includes(alert.state) ? "late" : "" },
        `${when(alert.deadline_at)} (${deadlineNote(alert, left)})`,
      ),
    ),
    h("div", { class: "links" }, distance, place ? mapLinks(place.lat, place.lon, alert.subject) : null),
    h(
      "section",
      { "aria-labelledby": "found-title" },
      h("h2", { id: "found-title" }, "What was found"),
      h("p", { class: "explanation" }, alert.explanation || "—"),
      box,
    ),
    await readingsBox(alert, readings),
    act,
    h(
      "section",
      { "aria-labelledby": "history-title" },
      h("h2", { id: "history-title" }, "History"),
      h(
        "ol",
        { class: "history" },
        alert.history.map((t) =>
          h(
            "li",
            {},
            h("span", { class: "muted" }, `${when(t.at)} · ${t.actor}`),
            " ",
            t.event.replaceAll("_", " "),
            t.note ? h("q", {}, t.note) : null,
          ),
        ),
      ),
    ),
  );
  if (said) done.focus?.();
}

function route() {
  const m = location.hash.match(/^#alert\/(.+)$/);
  return guarded(() => (m ? showAlert(decodeURIComponent(m[1])) : showList()));
}

async function start() {
  who.textContent = "";
  signOutButton.hidden = true;
  const s = session() ?? (await signInForm(main, "CityWatch crew: sign in"));
  who.textContent = s.user.crew ? `${s.user.name} · crew ${s.user.crew}` : s.user.name;
  signOutButton.hidden = false;
  await route();
}

signOutButton.addEventListener("click", async () => {
  await signOut();
  location.hash = "";
  start();
});
window.addEventListener("hashchange", () => session() && route());
watchPosition();
start();
