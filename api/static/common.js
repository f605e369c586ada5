// What the booking page and the operators' console share: calling the API (problem answers
// as errors, Retry-After read), the server's clock, numbers and dates as people read them,
// and a few DOM helpers. Plain JavaScript, no framework, nothing fetched from elsewhere.

export const lang = document.documentElement.lang || "en";
const whole = new Intl.NumberFormat(lang, { maximumFractionDigits: 0 });
const cents = new Intl.NumberFormat(lang, { minimumFractionDigits: 2 });
// Points have at most two decimals: 1,000 and 1,234.50, never 1,234.5.
export const fmt = (n) => (Number.isInteger(Number(n)) ? whole : cents).format(Number(n));

// --- talking to the API ------------------------------------------------------------------
export class Problem extends Error {
  constructor(body, status, retryAfter) {
    super(body.detail || body.title || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || (status ? `HTTP_${status}` : "NETWORK");
    this.title = body.title || "Something went wrong";
    this.detail = body.detail || "";
    this.retryAfter = retryAfter;
    this.body = body; // the whole problem: some carry more (a challenge to solve)
  }
}

let clockOffsetMs = 0;

// fetch with JSON in and out: `{data, retryAfter, etag}`, or a Problem thrown for any answer
// that is not 2xx (and for no answer at all). `cache: "no-cache"` lets the browser keep an
// answer with an ETag and ask whether it is current (a 304 then reads as the kept 200).
export async function api(method, path, { body, token, bearer, cache = "no-store" } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers["X-Queue-Token"] = token;
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const sent = Date.now();
  let resp;
  try {
    resp = await fetch(path, {
      method, headers, cache,
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
  } catch {
    throw new Problem({ code: "NETWORK", title: "No connection" }, 0, null);
  }
  noteClock(resp.headers.get("Date"), sent);
  const retryAfter = parseRetryAfter(resp.headers.get("Retry-After"));
  const type = resp.headers.get("Content-Type") || "";
  let data = null;
  try {
    data = type.includes("json") ? await resp.json() : await resp.text();
  } catch {
    data = null;
  }
  if (!resp.ok) {
    throw new Problem(data && typeof data === "object" ? data : {}, resp.status, retryAfter);
  }
  return { data, retryAfter, type, etag: resp.headers.get("ETag") };
}

// The hold's countdown runs on the server's clock. The Date header has 1 s resolution, so
// only a clock that is clearly off is corrected.
function noteClock(header, sent) {
  const server = Date.parse(header || "");
  if (Number.isNaN(server)) return;
  const offset = server + 500 - (sent + Date.now()) / 2;
  clockOffsetMs = Math.abs(offset) > 2000 ? offset : 0;
}
export const serverNow = () => Date.now() + clockOffsetMs;

export function parseRetryAfter(value) {
  if (!value) return null;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const at = Date.parse(v); // the HTTP-date form
  return Number.isNaN(at) ? null : Math.max(0, (at - serverNow()) / 1000);
}

// --- formatting --------------------------------------------------------------------------
export function venueDate(iso) {
  // The date carries the venue's offset: show the venue's wall clock, not the visitor's.
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(iso || "");
  if (!m) return { day: String(iso), time: "" };
  const day = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return {
    day: day.toLocaleDateString(lang, {
      weekday: "short", day: "numeric", month: "short", year: "numeric", timeZone: "UTC",
    }),
    time: `${m[4]}:${m[5]}`,
  };
}

export const dateLabel = (iso) => {
  const d = venueDate(iso);
  return d.time ? `${d.day}, ${d.time}` : d.day;
};

export function formatWait(seconds) {
  const s = Math.max(1, Math.round(Number(seconds) || 0));
  if (s < 60) return s === 1 ? "about 1 second" : `about ${s} seconds`;
  const m = Math.round(s / 60);
  if (m < 60) return m === 1 ? "about 1 minute" : `about ${m} minutes`;
  const h = Math.floor(m / 60);
  return `about ${h} h ${m % 60} min`;
}

export const mmss = (s) =>
  `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;

export function clockTime(iso) {
  const t = Date.parse(iso || "");
  if (Number.isNaN(t)) return "";
  return new Date(t - clockOffsetMs)
    .toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" })
    .replace(/\s/g, "\u00a0"); // "08:01 AM" never breaks before "AM"
}

export function seatName(seat) {
  const parts = [];
  if (seat.section != null) parts.push(`Section ${seat.section}`);
  if (seat.row != null) parts.push(`Row ${seat.row}`);
  parts.push(`Seat ${seat.number}`);
  return parts.join(" · ");
}

// Seats as people say them: "Section A · Row 1 · Seats 1, 2; Section B · Row 4 · Seat 7".
export function seatsName(seats) {
  const groups = new Map();
  for (const seat of seats) {
    const where = seatName({ ...seat, number: 0 }).replace(/( · )?Seat 0$/, "");
    if (!groups.has(where)) groups.set(where, []);
    groups.get(where).push(seat.number);
  }
  return [...groups].map(([where, numbers]) => {
    const which = `${numbers.length === 1 ? "Seat" : "Seats"} ${numbers.join(", ")}`;
    return where ? `${where} · ${which}` : which;
  }).join("; ");
}

// --- small DOM helpers -------------------------------------------------------------------
export const $ = (id) => document.getElementById(id);

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Write only what changed: live regions then announce changes, not every poll.
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export function button(className, text, onClick) {
  const b = el("button", className, text);
  b.type = "button";
  if (onClick) b.addEventListener("click", onClick);
  return b;
}
