// The operators' console (/console, served only with ADMIN_TOKEN set): a concert's live
// numbers polled each second and charted, its settings changed live (pause and resume
// first), a catalogue loaded, the sales exported, a reservation refunded, a token revoked,
// a ticket checked in. Every call is the admin API's, with the token this tab keeps in
// sessionStorage (never localStorage: it goes with the tab).
import { $, api, dateLabel, el, fmt, setText } from "./common.js";
import { Chart } from "./chart.js";
import { clearError, showError } from "./problems.js";

const KEY = "ticketing.adminToken";
const POLL_S = 1;
const HISTORY_S = 300;
const KNOBS = [ // as PATCH /admin/concerts/{id}/settings takes them (paused: the buttons)
  { name: "activeLimit", label: "Active at most", kind: "count" },
  { name: "admitPerSecond", label: "Admissions a second", kind: "count" },
  { name: "activeTtlSeconds", label: "Turn length (s)", kind: "seconds" },
  { name: "holdTtlSeconds", label: "Hold length (s)", kind: "seconds" },
  { name: "waitingIdleSeconds", label: "Idle waiter leaves after (s)", kind: "seconds" },
  { name: "maxTicketsPerCustomer", label: "Tickets a customer (0: no limit)", kind: "count" },
  { name: "opensAt", label: "Opening (RFC 3339, e.g. 2027-03-01T10:00:00+09:00)", kind: "time" },
  { name: "queueing", label: "Queue order", kind: "choice", choices: ["fifo", "random"] },
];

const ui = Object.fromEntries([
  "title", "subtitle", "sign-out", "login-step", "login-form", "token", "login", "desk",
  "concert-form", "concert-pick", "concert-id", "state", "pause", "resume", "waiting", "active",
  "rate", "holds", "sold", "free", "stats-said", "chart", "settings-form", "settings-fields",
  "settings-result", "catalog-form", "catalog-file", "catalog-result", "sales", "sales-result",
  "refund-form", "refund-id", "refund-result", "revoke-form", "revoke-id", "revoke-result",
  "checkin-form", "checkin-ticket", "checkin-result",
].map((id) => [id.replace(/-(\w)/g, (_, c) => c.toUpperCase()), $(id)]));

const people = new Chart(ui.chart, [
  { key: "waiting", label: "Waiting", className: "s-waiting" },
  { key: "active", label: "Active", className: "s-active" },
  { key: "holds", label: "Holds", className: "s-holds" },
  { key: "rate", label: "Admissions/s", className: "s-rate" },
], HISTORY_S);

let token = sessionStorage.getItem(KEY);
let concert = null; // the concert on show: its id
let settings = null; // its settings as GET /settings answered
let pollTimer = 0;
let gen = 0; // answers for another concert (or after sign-out) are dropped
let lastState = "";
let names = new Map(); // concertId -> name, of the concerts on sale

const call = (method, path, options = {}) => api(method, path, { bearer: token, ...options });

function problem(err) {
  if (err.code === "ADMIN_UNAUTHORIZED") return signOut("That admin token is not accepted.");
  showError(err, { back: () => ui.title });
}

// --- signing in and out ------------------------------------------------------------------
ui.loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const given = ui.token.value.trim();
  if (!given) return ui.token.focus();
  ui.login.disabled = true;
  try { // any admin call answers 401 to a wrong token, whatever else it would answer
    const probe = wantedConcert() ?? names.keys().next().value ?? 1;
    await api("GET", `/admin/concerts/${probe}/settings`, { bearer: given });
  } catch (err) {
    if (err.code === "ADMIN_UNAUTHORIZED" || err.status === 401) {
      ui.login.disabled = false;
      ui.token.setAttribute("aria-invalid", "true");
      showError({ ...err, title: "Not signed in", detail: "That admin token is not accepted." });
      return ui.token.focus();
    }
    if (err.status !== 404) {
      ui.login.disabled = false;
      return showError(err);
    }
  }
  ui.login.disabled = false;
  ui.token.removeAttribute("aria-invalid");
  token = given;
  sessionStorage.setItem(KEY, token);
  ui.token.value = "";
  clearError();
  openDesk();
});

function signOut(why) {
  gen += 1;
  window.clearTimeout(pollTimer);
  token = null;
  sessionStorage.removeItem(KEY);
  ui.desk.hidden = ui.signOut.hidden = true;
  ui.loginStep.hidden = false;
  setText(ui.title, "Sign in");
  setText(ui.subtitle, "");
  if (why) showError({ code: "ADMIN_UNAUTHORIZED", title: "Signed out", detail: why });
  ui.token.focus();
}
ui.signOut.addEventListener("click", () => signOut());

// --- the concert on show -----------------------------------------------------------------
function wantedConcert() {
  const wanted = new URLSearchParams(location.search).get("concert");
  return wanted && /^[1-9]\d{0,15}$/.test(wanted) ? Number(wanted) : null;
}

async function openDesk() {
  ui.loginStep.hidden = true;
  ui.desk.hidden = ui.signOut.hidden = false;
  const listed = await listConcerts();
  const first = wantedConcert() ?? (listed.length ? listed[0].concertId : null);
  if (first !== null) show(first);
  else setText(ui.subtitle, "No concert on sale: load a catalogue below.");
}

async function listConcerts() {
  let list = [];
  try {
    list = (await api("GET", "/api/concerts")).data.concerts;
  } catch (err) {
    problem(err);
  }
  names = new Map(list.map((c) => [c.concertId, c.name]));
  ui.concertPick.replaceChildren(...list.map((c) =>
    new Option(`${c.name} (${c.concertId})`, String(c.concertId), false, c.concertId === concert)));
  return list;
}

ui.concertForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const typed = ui.concertId.value.trim();
  const id = typed ? Number(typed) : Number(ui.concertPick.value);
  if (!Number.isSafeInteger(id) || id < 1) {
    return showError({ code: "INVALID_ID", title: "Check the concert id",
      detail: "A whole number from 1." });
  }
  ui.concertId.value = "";
  show(id);
});
ui.concertPick.addEventListener("change", () => show(Number(ui.concertPick.value)));

async function show(id) {
  gen += 1;
  concert = id;
  lastState = "";
  window.clearTimeout(pollTimer);
  history.replaceState(null, "", `/console?concert=${id}`);
  setText(ui.title, names.get(id) || `Concert ${id}`);
  document.title = `Console · ${names.get(id) || `concert ${id}`}`;
  if (names.has(id)) ui.concertPick.value = String(id);
  people.clear();
  for (const out of [ui.settingsResult, ui.catalogResult, ui.salesResult, ui.refundResult,
    ui.revokeResult, ui.checkinResult]) setText(out, "");
  clearError();
  await loadSettings();
  poll(gen);
}

// --- live numbers ------------------------------------------------------------------------
async function poll(mine) {
  if (mine !== gen) return;
  let wait = POLL_S;
  try {
    const { data } = await call("GET", `/admin/concerts/${concert}/stats`);
    if (mine !== gen) return;
    showStats(data);
  } catch (err) {
    if (mine !== gen) return;
    if (err.status === 503 || err.code === "NETWORK") wait = Math.max(err.retryAfter ?? 2, 2);
    else return problem(err); // a concert that does not exist is not polled again
    showError({ ...err, title: "Live numbers paused", detail: `${err.detail} Retrying.` });
  }
  pollTimer = window.setTimeout(() => poll(mine), wait * 1000);
}

function showStats(s) {
  for (const key of ["waiting", "active", "holds", "sold"]) setText(ui[key], fmt(s[key]));
  setText(ui.free, fmt(s.freeSeats));
  setText(ui.rate, fmt(Math.round(s.admissionsPerSecond * 100) / 100));
  const opens = s.opensAt && Date.parse(s.opensAt) > Date.now() ? s.opensAt : null;
  const state = s.paused ? "Paused" : opens ? `Opens ${dateLabel(opens)}` : "Admitting";
  setText(ui.state, state);
  ui.state.dataset.state = s.paused ? "ended" : opens ? "waiting" : "active";
  ui.pause.disabled = s.paused;
  ui.resume.disabled = !s.paused;
  if (state !== lastState) { // said once a change, not every second
    lastState = state;
    setText(ui.statsSaid, `Concert ${concert}: ${state}.`);
  }
  people.add(Date.now(), { waiting: s.waiting, active: s.active, holds: s.holds,
    rate: s.admissionsPerSecond });
}

async function setPaused(paused) {
  const mine = gen;
  ui.pause.disabled = ui.resume.disabled = true;
  try {
    const { data } = await call("PATCH", `/admin/concerts/${concert}/settings`, { body: { paused } });
    if (mine !== gen) return;
    renderSettings(data);
    window.clearTimeout(pollTimer);
    poll(mine); // the new state at once
  } catch (err) {
    if (mine === gen) problem(err);
  }
}
ui.pause.addEventListener("click", () => setPaused(true));
ui.resume.addEventListener("click", () => setPaused(false));

// --- settings ----------------------------------------------------------------------------
async function loadSettings() {
  const mine = gen;
  try {
    const { data } = await call("GET", `/admin/concerts/${concert}/settings`);
    if (mine === gen) renderSettings(data);
  } catch (err) {
    if (mine === gen) problem(err);
  }
}

function renderSettings(data) {
  settings = data;
  const set = new Set(data.overridden);
  ui.settingsFields.replaceChildren(...KNOBS.map((k) => {
    const box = el("div", "setting");
    const id = `set-${k.name}`;
    const label = el("label", "", k.label);
    label.htmlFor = id;
    let input;
    if (k.kind === "choice") {
      input = el("select");
      input.append(new Option(`default (${data.settings[k.name]})`, ""),
        ...k.choices.map((c) => new Option(c, c)));
      input.value = set.has(k.name) ? data.settings[k.name] : "";
    } else {
      input = el("input");
      input.type = "text";
      input.inputMode = k.kind === "time" ? "text" : "decimal";
      const now = data.settings[k.name];
      input.placeholder = now == null ? "none" : String(now);
      input.value = set.has(k.name) && now != null ? String(now) : "";
    }
    input.id = id;
    input.name = k.name;
    box.append(label, input);
    return box;
  }));
  setText(ui.subtitle, `Concert ${data.concertId} · ` +
    (data.settings.paused ? "admission paused" : "admission open"));
}

ui.settingsForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const mine = gen;
  const changes = {};
  const set = new Set(settings.overridden);
  for (const k of KNOBS) {
    const raw = ui.settingsForm.elements[k.name].value.trim();
    const was = set.has(k.name) ? String(settings.settings[k.name] ?? "") : "";
    if (raw === was) continue;
    changes[k.name] = raw === "" ? null : k.kind === "count" || k.kind === "seconds"
      ? Number(raw) : raw;
  }
  if (!Object.keys(changes).length) return setText(ui.settingsResult, "Nothing to change.");
  try {
    const { data } = await call("PATCH", `/admin/concerts/${concert}/settings`, { body: changes });
    if (mine !== gen) return;
    renderSettings(data);
    setText(ui.settingsResult, `Saved: ${Object.keys(changes).join(", ")}.`);
  } catch (err) {
    if (mine === gen) problem(err);
  }
});

// --- catalogue, sales, refund, revoke, check-in ------------------------------------------
ui.catalogForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = ui.catalogFile.files[0];
  if (!file) return setText(ui.catalogResult, "Choose a catalogue document first.");
  const text = await file.text();
  let id, name;
  try {
    ({ concertId: id, name } = JSON.parse(text));
  } catch {
    return showError({ code: "INVALID_JSON", title: "Not a catalogue document",
      detail: `${file.name} is not JSON.` });
  }
  if (!Number.isSafeInteger(id) || id < 1) {
    return showError({ code: "INVALID_DOCUMENT", title: "Not a catalogue document",
      detail: "concertId: must be an integer from 1." });
  }
  try {
    const { data } = await call("PUT", `/admin/concerts/${id}`, { body: text });
    await listConcerts();
    names.set(id, name); // the list is kept a moment by the API: it may not show it yet
    if (id !== concert) await show(id); // the concert just loaded
    setText(ui.catalogResult, `Concert ${id} loaded: ${data.created.length} performance(s) ` +
      `created, ${fmt(data.repriced)} seat(s) repriced, ${data.unchanged.length} unchanged; ` +
      `${fmt(data.seats)} seats in all.`);
  } catch (err) {
    problem(err);
  }
});

ui.sales.addEventListener("click", async () => {
  const id = concert;
  try {
    const { data } = await call("GET", `/admin/concerts/${id}/sales.csv`);
    const rows = data.split("\n").filter((line) => line.trim()).length - 1;
    const link = el("a", "", `sales-${id}.csv`);
    link.href = URL.createObjectURL(new Blob([data], { type: "text/csv" }));
    link.download = `sales-${id}.csv`;
    ui.salesResult.replaceChildren(`${fmt(rows)} sale${rows === 1 ? "" : "s"}: `, link);
    link.click();
  } catch (err) {
    problem(err);
  }
});

ui.refundForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const rid = ui.refundId.value.trim();
  try {
    const { data } = await call("POST", `/admin/reservations/${encodeURIComponent(rid)}/refund`);
    setText(ui.refundResult, `Refunded ${data.reservationId}: ${fmt(data.amount)} points back ` +
      `to customer ${data.customerId}; the seat is on sale again.`);
  } catch (err) {
    problem(err);
  }
});

ui.revokeForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const customer = ui.revokeId.value.trim();
  try {
    const { data } = await call("DELETE",
      `/admin/concerts/${concert}/tokens/${encodeURIComponent(customer)}`);
    setText(ui.revokeResult, data.revoked
      ? `Token of customer ${customer} revoked; ${data.holdsReleased} hold(s) released.`
      : `Customer ${customer} had no token for this concert.`);
  } catch (err) {
    problem(err);
  }
});

// POST /admin/checkin {"ticket": ...}: the answer shown as it comes (another change adds it).
ui.checkinForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const { data } = await call("POST", "/admin/checkin",
      { body: { ticket: ui.checkinTicket.value.trim() } });
    setText(ui.checkinResult, data && data.status === "CHECKED_IN"
      ? `Checked in: let the holder in (reservation ${data.reservationId}, seat ${data.seatId}).`
      : `Answered: ${typeof data === "string" ? data : JSON.stringify(data)}`);
  } catch (err) {
    if (err.code === "ADMIN_UNAUTHORIZED") return problem(err);
    setText(ui.checkinResult, err.status === 404 && err.code === "NOT_FOUND"
      ? "Check-in is not available on this API (404)."
      : `Not checked in: ${err.title}${err.detail ? `: ${err.detail}` : ""}`);
  }
});

if (token) openDesk();
else {
  signOut();
  listConcerts(); // public: their names, and a concert to try the token on
}
