// Talking to the CityWatch API from the pages: the bearer token (kept in sessionStorage, so it leaves
// with the tab), JSON calls whose errors read as plain words, and the live feed read with fetch (an
// EventSource cannot send the Authorization header).

const TOKEN_KEY = "citywatch.token";
const USER_KEY = "citywatch.user";
export const V1 = "/api/v1";

/** An error a person can read: `message` is what to show, `status` the HTTP status (0: no answer). */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export function session() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const user = sessionStorage.getItem(USER_KEY);
  return token && user ? { token, user: JSON.parse(user) } : null;
}

function forget() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(USER_KEY);
}

// What the server said, as a sentence: its problem detail, else a word for the status.
async function reason(response) {
  let detail = "";
  try {
    const body = await response.json();
    detail = typeof body.detail === "string" ? body.detail : "";
  } catch {
    // not JSON: say it with the status alone
  }
  const plain = {
    401: "You are signed out. Sign in again.",
    403: "Your role may not do this.",
    404: "Not found: it may have been removed.",
    409: "Someone changed this meanwhile. It has been reloaded; try again.",
    429: "Too many attempts. Wait a moment and try again.",
    503: "The service is busy or starting. Try again in a moment.",
  };
  const text = detail || plain[response.status] || `The server answered ${response.status}.`;
  return text.charAt(0).toUpperCase() + text.slice(1);
}

async function send(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new ApiError("Cannot reach the server. Check the connection and try again.", 0);
  }
  if (!response.ok) {
    const message = await reason(response);
    if (response.status === 401) forget();
    throw new ApiError(message, response.status);
  }
  return response;
}

function authorized(headers = {}) {
  const s = session();
  return s ? { ...headers, Authorization: `Bearer ${s.token}` } : headers;
}

/** GET a JSON document; `params` may hold arrays (repeated parameters). */
export async function getJson(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== null) query.append(name, String(v));
    }
  }
  const text = query.toString();
  const url = text ? `${path}?${text}` : path;
  const response = await send(url, { headers: authorized({ Accept: "application/json" }) });
  return response.json();
}

export async function postJson(path, body) {
  const response = await send(path, {
    method: "POST",
    headers: authorized({ "Content-Type": "application/json", Accept: "application/json" }),
    body: JSON.stringify(body),
  });
  return response.json();
}

export async function signIn(name, password) {
  const form = new URLSearchParams({ username: name, password });
  const response = await send(`${V1}/auth/token`, { method: "POST", body: form });
  const token = await response.json();
  sessionStorage.setItem(TOKEN_KEY, token.access_token);
  sessionStorage.setItem(USER_KEY, JSON.stringify({ name: token.user, role: token.role, crew: token.crew }));
  return session();
}

export async function signOut() {
  try {
    await send(`${V1}/auth/logout`, { method: "POST", headers: authorized() });
  } catch {
    // signed out here whatever the server says
  }
  forget();
}

/**
 * Read the live feed (server-sent events) until `signal` aborts; `onEvent(name, data)` gets each event.
 * Resolves when the server ends the stream (it does after feed_max_s) and rejects when it fails, so the
 * caller decides whether to reconnect or to poll.
 */
export async function readFeed(onEvent, signal, after) {
  const query = after ? `?after=${after}` : "";
  const response = await send(`${V1}/feed${query}`, {
    headers: authorized({ Accept: "text/event-stream" }),
    signal,
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let last = after;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return last;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // heartbeat
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = text;
        else if (field === "data") data.push(text);
        else if (field === "id" && /^\d+$/.test(text)) last = text;
      }
      if (data.length) {
        try {
          onEvent(name, JSON.parse(data.join("\n")));
        } catch {
          // one bad event must not stop the feed
        }
      }
    }
  }
}
