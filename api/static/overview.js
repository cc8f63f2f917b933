// The control room's overview: the city's rates against their targets, open alerts by severity, and the
// fault map clustered on the server; kept current by the live feed, or by a bounded poll without it.

import { ApiError, V1, getJson, readFeed, session, signOut } from "./api.js";
import { FaultMap } from "./faultmap.js";
import { SEVERITY, h, showError, signInForm, timeLeft, when } from "./ui.js";

const POLL_MS = 30000; // without the feed: refresh this often
const FEED_RETRY_MS = 60000; // and try the feed again after this long
const NEAR = 0.02; // a rate within two points of its target shows amber, not red

const main = document.getElementById("main");
const who = document.getElementById("who");
const live = document.getElementById("live");
const signOutButton = document.getElementById("signout");
let map = null;
let targets = null;
let feed = null;

// Two decimals just under 100 %, where one would round a shortfall away.
const percent = (r) =>
  r === null || r === undefined ? "no data" : `${(r * 100).toFixed(r >= 0.999 && r < 1 ? 2 : 1)} %`;

function judged(rate, target) {
  if (rate === null || rate === undefined) return "";
  return rate >= target ? "meets" : rate >= target - NEAR ? "near" : "misses";
}

function since(hours) {
  return new Date(Date.now() - hours * 3600000).toISOString();
}

function monthStart() {
  const now = new Date();
  return new Date(now.getFullYear(), now.getMonth(), 1).toISOString();
}

async function rate(metric, start, scope = "city") {
  const found = await getJson(`${V1}/rates`, { metric, scope, start });
  return new Map(found.series.map((s) => [s.scope_id, s.points.at(-1) ?? null]));
}

function tile(id, label, point, target, note) {
  const value = point?.rate ?? null;
  return h(
    "div",
    { class: `tile ${judged(value, target)}`, id, role: "group", "aria-label": label },
    h("div", {}, label),
    h("div", { class: "value" }, percent(value)),
    h("div", { class: "target" }, `target ${percent(target)} · ${note}`),
    value !== null && value < target ? h("div", { class: "target" }, "below target") : null,
  );
}

async function drawRates(box) {
  const [lighting, intact, closure] = await Promise.all([
    rate("lighting", since(24)),
    rate("intact", since(24)),
    rate("on_time_closure", monthStart()),
  ]);
  box.replaceChildren(
    tile("rate-lighting", "Lighting rate", lighting.get("city"), targets.lighting, "last 24 h"),
    tile("rate-intact", "Facility intact rate", intact.get("city"), targets.intact, "last 24 h"),
    tile("rate-closure", "On-time closure", closure.get("city"), targets.on_time_closure, "this month"),
  );
}

async function drawDistricts(box) {
  const [lighting, intact] = await Promise.all([
    rate("lighting", since(24), "district"),
    rate("intact", since(24), "district"),
  ]);
  const names = [...new Set([...lighting.keys(), ...intact.keys()])].sort();
  if (names.length === 0) {
    return box.replaceChildren(h("p", { class: "muted" }, "No district figures in the last 24 h."));
  }
  const cell = (p, target) =>
    h("td", { class: `num ${judged(p?.rate, target) === "misses" ? "late" : ""}` }, percent(p?.rate));
  box.replaceChildren(
    h(
      "table",
      {},
      h("caption", { class: "muted" }, "Last 24 h"),
      h(
        "thead",
        {},
        h("tr", {}, h("th", {}, "District"), h("th", { class: "num" }, "Lighting"), h("th", { class: "num" }, "Intact")),
      ),
      h(
        "tbody",
        {},
        names.map((n) =>
          h("tr", {}, h("td", {}, n), cell(lighting.get(n), targets.lighting), cell(intact.get(n), targets.intact)),
        ),
      ),
    ),
  );
}

function drawSummary(box, s) {
  const unplaced = s.unplaced ? `, ${s.unplaced} without a place on the map (a district or the city)` : "";
  box.replaceChildren(
    h(
      "div",
      { class: "tiles" },
      ...Object.entries(SEVERITY).map(([sev, label]) =>
        h(
          "div",
          { class: "tile", id: `open-${sev}`, role: "group", "aria-label": `${label} open` },
          h("div", {}, h("span", { class: `badge sev-${sev}` }, label)),
          h("div", { class: "value" }, s.by_severity[sev] ?? 0),
        ),
      ),
      h(
        "div",
        { class: `tile ${s.overdue ? "misses" : "meets"}`, id: "open-overdue", role: "group", "aria-label": "Overdue" },
        h("div", {}, "Overdue"),
        h("div", { class: "value" }, s.overdue),
      ),
    ),
    h("p", { class: "muted" }, `${s.open} open in all${unplaced}. As of ${when(s.as_of)}.`),
  );
}

function showPoint(panel, f) {
  const left = timeLeft(f.deadline_at);
  panel.replaceChildren(
    h("h2", {}, f.title || f.rule),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Subject"),
      h("dd", {}, `${f.subject} (${f.subject_kind.replaceAll("_", " ")})`),
      h("dt", {}, "Severity"),
      h("dd", {}, h("span", { class: `badge sev-${f.severity}` }, SEVERITY[f.severity])),
      h("dt", {}, "State"),
      h("dd", {}, f.state.replaceAll("_", " ")),
      h("dt", {}, "Deadline"),
      h("dd", { class: left.overdue ? "late" : "" }, `${when(f.deadline_at)} (${left.text})`),
      h("dt", {}, "Alert"),
      h("dd", {}, f.alert_id),
    ),
  );
}

async function layout() {
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const rates = h("div", { class: "tiles", id: "rates" }, h("p", { class: "muted" }, "Loading rates…"));
  const summary = h("div", { id: "summary" });
  const mapBox = h("div", { id: "faultmap" });
  const panel = h(
    "div",
    { id: "selected" },
    h("p", { class: "muted" }, "Click a fault on the map to see it; click a cluster to zoom in."),
  );
  const districts = h("div", { id: "districts" });
  main.replaceChildren(
    h("h1", {}, "City overview"),
    error,
    h("section", { "aria-labelledby": "rates-title" }, h("h2", { id: "rates-title" }, "Rates against targets"), rates),
    h(
      "section",
      { "aria-labelledby": "open-title" },
      h("h2", { id: "open-title" }, "Open alerts by severity"),
      summary,
    ),
    h(
      "div",
      { class: "layout" },
      h("section", { "aria-labelledby": "map-title" }, h("h2", { id: "map-title" }, "Faults on the map"), mapBox),
      h("aside", {}, panel, h("h2", {}, "Districts"), districts),
    ),
  );
  const guard = async (work) => {
    try {
      await work();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return start();
      showError(error, e);
    }
  };
  const refreshFaults = () =>
    guard(async () => {
      const s = await getJson(`${V1}/map/summary`);
      targets = s.targets;
      drawSummary(summary, s);
      await map.refresh();
    });
  const refreshRates = () => guard(() => Promise.all([drawRates(rates), drawDistricts(districts)]));
  const clusters = (bbox, zoom) =>
    getJson(`${V1}/map/faults`, { bbox: bbox?.map((v) => v.toFixed(6)).join(","), zoom });
  map = new FaultMap(mapBox, clusters, (f) => showPoint(panel, f));
  await guard(async () => {
    const s = await getJson(`${V1}/map/summary`);
    targets = s.targets;
    drawSummary(summary, s);
    await map.refresh(true);
  });
  if (targets) await refreshRates();
  follow(refreshFaults, refreshRates);
}

// The live feed when it works; a bounded poll while it does not.
function follow(refreshFaults, refreshRates) {
  feed?.abort();
  const controller = new AbortController();
  feed = controller;
  const debounce = (f, ms) => {
    let timer = null;
    return () => {
      clearTimeout(timer);
      timer = setTimeout(f, ms);
    };
  };
  const faults = debounce(refreshFaults, 1000);
  const rates = debounce(refreshRates, 1000);
  let after = null;
  let poll = null;
  const connect = async () => {
    live.textContent = "Live";
    try {
      const onEvent = (name) => (name === "alert" ? faults() : name === "rate" ? rates() : null);
      after = await readFeed(onEvent, controller.signal, after);
      if (!controller.signal.aborted) setTimeout(connect, 1000); // the server ended the stream: resume
    } catch (e) {
      if (controller.signal.aborted) return;
      if (e instanceof ApiError && e.status === 401) return start();
      live.textContent = `Updating every ${POLL_MS / 1000} s`;
      poll ??= setInterval(() => {
        refreshFaults();
        refreshRates();
      }, POLL_MS);
      setTimeout(() => {
        clearInterval(poll);
        poll = null;
        connect();
      }, FEED_RETRY_MS);
    }
  };
  connect();
}

async function start() {
  feed?.abort();
  who.textContent = "";
  live.textContent = "";
  signOutButton.hidden = true;
  const s = session() ?? (await signInForm(main, "CityWatch overview: sign in"));
  who.textContent = `${s.user.name} · ${s.user.role}`;
  signOutButton.hidden = false;
  await layout();
}

signOutButton.addEventListener("click", async () => {
  feed?.abort();
  await signOut();
  start();
});
start();
