// The booking page: choose a concert (the list on sale, or ?concert=7), join its queue, wait,
// pick a date, then seats on the map (seats.js) and pay. Plain JavaScript modules on the
// API's own endpoints (same origin); no framework, nothing fetched from elsewhere.
import {
  $, api, clockTime, dateLabel, el, fmt, formatWait, setText, venueDate,
} from "./common.js";
import {
  ACCESS_CODES, CHALLENGE, accessCodeBody, askAccessCode, showSoldOut, solveChallenge,
} from "./hooks.js";
import { announce, clearError, clearTransientError, showError } from "./problems.js";
import { initSeats } from "./seats.js";

const POLL_DEFAULT_S = 1; // when the API suggests no rate
const POLL_MIN_S = 0.25; // a hint of 0 must not turn into a busy loop
const POLL_MAX_S = 600;
const BACKOFF_MAX_S = 30;

const ui = {
  concertName: $("concert-name"), concertDates: $("concert-dates"),
  concertsStep: $("concerts-step"), concerts: $("concerts"), concertsTitle: $("concerts-title"),
  joinStep: $("join-step"), joinForm: $("join-form"), customerId: $("customer-id"),
  join: $("join"), joined: $("joined"), joinedText: $("joined-text"), startOver: $("start-over"),
  balanceBox: $("balance-box"), balance: $("balance"),
  queueStep: $("queue-step"), queueTitle: $("queue-title"), status: $("status"),
  position: $("position"), eta: $("eta"), progress: $("progress"),
  progressBar: $("progress-bar"), queueNote: $("queue-note"),
  datesStep: $("dates-step"), datesTitle: $("dates-title"), dates: $("dates"),
};

// Every answer that arrives for an older generation (after "start over" or a new join) is
// dropped, so a slow answer never paints over the current visit.
let generation = 0;
const app = { state: null, concert: null, ui };
app.state = freshState();

function freshState(keep = {}) {
  return {
    gen: ++generation, customerId: null, token: null, balance: null,
    pollTimer: 0, failures: 0, firstPosition: null, coolUntil: 0, ...keep,
  };
}

const clamp = (s) => Math.min(POLL_MAX_S, Math.max(POLL_MIN_S, s));

// The API's suggestion wins: Retry-After on the answer and/or pollAfterSeconds in the body
// (the later of the two), else the default rate.
function pollDelay(retryAfter, body) {
  const hints = [];
  if (retryAfter !== null && retryAfter !== undefined) hints.push(retryAfter);
  const hint = body ? body.pollAfterSeconds : undefined;
  if (typeof hint === "number" && Number.isFinite(hint)) hints.push(hint);
  return clamp(hints.length ? Math.max(...hints) : POLL_DEFAULT_S);
}

// After a failure: never before Retry-After, and longer after each failure in a row, with
// jitter so that a crowd of visitors does not come back in step.
app.backoffDelay = (err) => {
  const state = app.state;
  state.failures += 1;
  const exp = Math.min(BACKOFF_MAX_S, 2 ** (state.failures - 1)) * (0.75 + Math.random() / 2);
  return clamp(Math.max(err.retryAfter ?? 0, exp));
};

const visibleStep = () =>
  [...document.querySelectorAll("main > .step")].find((s) => !s.hidden);
app.showError = (err, ctx = {}) => showError(err, {
  balance: app.state.balance,
  back: () => visibleStep()?.querySelector("h2") || ui.customerId, ...ctx,
});

// A 429: nothing of the kind is tried again before Retry-After; the message counts down.
app.coolDown = (err, onDone) => {
  const state = app.state;
  const gen = state.gen;
  state.coolUntil = Date.now() + Math.max(1, err.retryAfter ?? 1) * 1000;
  app.showError(err, { wait: err.retryAfter ?? 1 });
  const tick = () => {
    if (gen !== app.state.gen) return;
    const left = (state.coolUntil - Date.now()) / 1000;
    if (left <= 0) {
      clearError();
      if (onDone) onDone();
      return;
    }
    const box = $("error").firstElementChild;
    if (box && box.dataset.code === "RATE_LIMITED") {
      box.querySelector(".alert-message").textContent =
        `Please wait a moment: you can try again in ${Math.ceil(left)} s.`;
    }
    window.setTimeout(tick, 250);
  };
  tick();
};
app.cooling = () => Date.now() < app.state.coolUntil;

// Refusals that change where the visitor is, whatever the request was.
app.handleProblem = (err, ctx = {}) => {
  if (err.code === "TOKEN_UNKNOWN") return tokenLost();
  if (err.code === "TOKEN_WAITING") {
    app.showError(err);
    hideAfterQueue();
    schedulePoll(pollDelay(err.retryAfter, null));
    return;
  }
  if (err.code === "RATE_LIMITED") return app.coolDown(err);
  app.showError(err, ctx);
};

function hideAfterQueue() {
  for (const s of [ui.datesStep, ...seats.steps]) s.hidden = true;
}

function tokenLost() {
  stopTimers();
  app.state.token = null;
  seats.reset();
  hideAfterQueue();
  setText(ui.status, "ENDED");
  ui.status.dataset.state = "ended";
  setText(ui.position, "–");
  setText(ui.eta, "–");
  ui.progressBar.style.width = "0%";
  ui.progress.setAttribute("aria-valuenow", "0");
  ui.progress.setAttribute("aria-valuetext", "Not in the queue");
  setText(ui.queueNote, "");
  showSoldOut(null);
  const again = app.showError({ code: "TOKEN_UNKNOWN" }, {
    action: { label: "Join again", run: () => join(app.state.customerId) },
  });
  again.focus();
}

function stopTimers() {
  window.clearTimeout(app.state.pollTimer);
  seats.stop();
}

// --- 0. the concert ------------------------------------------------------------------------
async function boot() {
  const wanted = new URLSearchParams(location.search).get("concert");
  if (wanted === null) return listConcerts();
  if (!/^[1-9]\d{0,15}$/.test(wanted)) {
    app.showError({ code: "CONCERT_NOT_FOUND" });
    return listConcerts();
  }
  try {
    const { data } = await api("GET", `/api/concerts/${wanted}`);
    useConcert(data);
  } catch (err) {
    app.showError(err, err.status === 404 ? {} : {
      action: { label: "Try again", run: boot },
    });
    if (err.status === 404) listConcerts();
  }
}

function useConcert(concert) {
  app.concert = concert;
  document.title = `Tickets · ${concert.name}`;
  setText(ui.concertName, concert.name);
  const days = concert.dates.map((d) => venueDate(d.date).day);
  const span = days.length > 1 ? `${days[0]} – ${days[days.length - 1]}` : days[0] || "";
  const count = concert.dates.length === 1 ? "1 performance" : `${concert.dates.length} performances`;
  setText(ui.concertDates, [span, count].filter(Boolean).join(" · "));
  ui.concertsStep.hidden = true;
  ui.joinStep.hidden = false;
}

async function listConcerts() {
  setText(ui.concertName, "Concerts on sale");
  ui.concertsStep.hidden = false;
  ui.concerts.replaceChildren(el("li", "empty", "Loading…"));
  let answer;
  try {
    answer = await api("GET", "/api/concerts");
  } catch (err) {
    ui.concerts.replaceChildren();
    app.showError(err, { action: { label: "Try again", run: listConcerts } });
    return;
  }
  ui.concerts.replaceChildren();
  const list = answer.data.concerts || [];
  if (!list.length) ui.concerts.append(el("li", "empty", "No concerts are on sale right now."));
  for (const c of list) {
    const a = el("a", "concert");
    a.href = `/?concert=${c.concertId}`;
    a.dataset.concertId = String(c.concertId);
    const next = venueDate(c.nextDate).day;
    const last = venueDate(c.lastDate).day;
    const notes = [c.performances === 1 ? "1 performance" : `${c.performances} performances`,
      c.freeSeats ? `${fmt(c.freeSeats)} seats free` : "Sold out"];
    if (c.paused) notes.push("sales paused");
    if (c.opensAt) notes.push(`opens ${dateLabel(c.opensAt)}`);
    a.append(el("span", "concert-name", c.name),
      el("span", "concert-when", next === last ? next : `${next} – ${last}`),
      el("span", "concert-notes", notes.join(" · ")));
    const li = el("li");
    li.append(a);
    ui.concerts.append(li);
  }
}

// --- 1. join -------------------------------------------------------------------------------
function parseCustomerId(raw) {
  const v = raw.trim();
  if (!/^\d{1,16}$/.test(v)) return null;
  const n = Number(v);
  return n >= 1 && n <= Number.MAX_SAFE_INTEGER ? n : null;
}

ui.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (app.cooling()) return;
  const id = parseCustomerId(ui.customerId.value);
  if (id === null) {
    ui.customerId.setAttribute("aria-invalid", "true");
    app.showError({ code: "INVALID_CUSTOMER" });
    ui.customerId.focus();
    return;
  }
  ui.customerId.removeAttribute("aria-invalid");
  join(id);
});

function setJoining(busy) {
  ui.join.disabled = busy;
  ui.join.textContent = busy ? "Joining…" : "Join";
}

async function join(customerId, proof = {}) {
  stopTimers();
  app.state = freshState({ customerId, balance: app.state.balance });
  const gen = app.state.gen;
  for (const s of [ui.queueStep, ui.datesStep, ...seats.steps, seats.receiptStep]) s.hidden = true;
  seats.reset();
  ui.dates.replaceChildren();
  clearError();
  setJoining(true);
  let answer;
  try {
    answer = await api("POST", "/api/token/issue", {
      body: { customerId, concertId: app.concert.concertId,
        ...accessCodeBody(), ...proof },
    });
  } catch (err) {
    if (gen !== app.state.gen) return;
    setJoining(false);
    if (err.code === CHALLENGE && !proof.altcha) {
      const solved = await solveChallenge(err, () => gen === app.state.gen);
      if (solved) return join(customerId, solved);
    }
    if (ACCESS_CODES.has(err.code)) {
      ui.joinForm.hidden = false;
      askAccessCode(err);
      app.showError(err);
      return;
    }
    if (err.code === "RATE_LIMITED") return app.coolDown(err);
    if (!ui.joinForm.hidden) {
      app.showError(err);
      ui.customerId.focus();
    } else { // joining again: the form is gone, so the message carries the way back
      app.showError(err, { action: { label: "Try again", run: () => join(customerId) } }).focus();
    }
    return;
  }
  if (gen !== app.state.gen) return;
  setJoining(false);
  app.state.token = answer.data.tokenValue;
  ui.joinForm.hidden = true;
  $("intro").hidden = true;
  ui.joined.hidden = false;
  setText(ui.joinedText, `Joined as customer ${customerId}.`);
  ui.queueStep.hidden = false;
  showToken(answer.data);
  ui.queueTitle.focus();
  loadBalance();
  if (answer.data.status === "ACTIVE") becomeActive();
  else schedulePoll(pollDelay(answer.retryAfter, answer.data));
}
app.join = () => join(app.state.customerId);

ui.startOver.addEventListener("click", () => {
  stopTimers();
  app.state = freshState();
  for (const s of [ui.queueStep, ui.datesStep, ...seats.steps, seats.receiptStep]) s.hidden = true;
  seats.reset();
  clearError();
  showSoldOut(null);
  ui.balanceBox.hidden = true;
  ui.joined.hidden = true;
  ui.joinForm.hidden = false;
  $("intro").hidden = false;
  ui.customerId.value = "";
  ui.customerId.focus();
});

app.loadBalance = loadBalance;
async function loadBalance() {
  const gen = app.state.gen;
  try {
    const { data } = await api("GET", `/api/point?customerId=${app.state.customerId}`);
    if (gen === app.state.gen) app.setBalance(data.balance);
  } catch (err) {
    if (gen === app.state.gen) app.showError(err);
  }
}

app.setBalance = (balance) => {
  app.state.balance = balance;
  setText(ui.balance, fmt(balance));
  ui.balanceBox.hidden = false;
};

// --- 2. wait in the queue ------------------------------------------------------------------
function schedulePoll(seconds) {
  window.clearTimeout(app.state.pollTimer);
  const gen = app.state.gen;
  app.state.pollTimer = window.setTimeout(() => poll(gen), seconds * 1000);
}

async function poll(gen) {
  if (gen !== app.state.gen || !app.state.token) return;
  let answer;
  try {
    answer = await api("GET", "/api/token/status", { token: app.state.token });
  } catch (err) {
    if (gen !== app.state.gen) return;
    if (err.code === "TOKEN_UNKNOWN") return tokenLost();
    const wait = app.backoffDelay(err);
    app.showError(err, { transient: true, retryIn: wait });
    schedulePoll(wait);
    return;
  }
  if (gen !== app.state.gen) return;
  app.state.failures = 0;
  clearTransientError();
  showToken(answer.data);
  if (answer.data.status === "ACTIVE") becomeActive();
  else schedulePoll(pollDelay(answer.retryAfter, answer.data));
}

function showToken(token) {
  const state = app.state;
  const waiting = token.status !== "ACTIVE";
  const position = Number(token.position) || 0;
  if (waiting && (state.firstPosition === null || position > state.firstPosition)) {
    state.firstPosition = position;
  }
  setText(ui.status, token.status);
  ui.status.dataset.state = token.status === "SOLD_OUT" ? "ended" : waiting ? "waiting" : "active";
  const soldOut = showSoldOut(token);
  setText(ui.position, token.position == null ? "–" : fmt(position));
  setText(ui.eta, soldOut ? "–" : waiting ? formatWait(token.estimatedWaitSeconds) : "Now");
  // The bar fills from the first position seen down to 0.
  const first = state.firstPosition;
  const pct = !waiting ? 100 : first ? Math.round((100 * (first - position)) / first) : 0;
  ui.progressBar.style.width = `${pct}%`;
  ui.progress.setAttribute("aria-valuenow", String(pct));
  ui.progress.setAttribute("aria-valuetext",
    waiting ? `Position ${fmt(position)} in the queue` : "Your turn");
  const until = clockTime(token.expiresAt);
  const opens = token.opensAt && token.position == null ? clockTime(token.opensAt) : "";
  setText(ui.queueNote, soldOut ? "" : opens
    ? `The sale opens at ${opens}: keep this page open, your place is drawn then.`
    : waiting ? "Keep this page open: it checks your place for you, and your place is kept."
      : `It's your turn${until ? `: book your seats by ${until}` : ""}.`);
}

function becomeActive() {
  window.clearTimeout(app.state.pollTimer);
  // Move focus on only if the visitor has not gone somewhere else meanwhile.
  const active = document.activeElement;
  const moveFocus = !active || active === document.body || ui.queueStep.contains(active) ||
    ui.joinStep.contains(active);
  loadDates({ focus: moveFocus });
}

// --- 3. dates ------------------------------------------------------------------------------
app.loadDates = loadDates;
async function loadDates({ focus = false } = {}) {
  const gen = app.state.gen;
  let answer;
  try {
    answer = await api("GET", `/api/${app.concert.concertId}/available-dates`,
      { token: app.state.token });
  } catch (err) {
    if (gen !== app.state.gen) return;
    if (err.status === 503 || err.code === "NETWORK") {
      // Nothing else would load them (no button to press yet): try again by itself.
      const wait = app.backoffDelay(err);
      app.showError(err, { transient: true, retryIn: wait });
      window.setTimeout(() => { if (gen === app.state.gen) loadDates({ focus }); }, wait * 1000);
    } else {
      app.handleProblem(err);
    }
    return;
  }
  if (gen !== app.state.gen) return;
  app.state.failures = 0;
  clearTransientError();
  renderDates(answer.data.dates || []);
  ui.datesStep.hidden = false;
  if (focus) ui.datesTitle.focus();
}

function renderDates(dates) {
  ui.dates.replaceChildren();
  if (!dates.length) {
    ui.dates.append(el("p", "empty", "No dates are on sale right now."));
    return;
  }
  for (const d of dates) {
    const when = venueDate(d.date);
    const free = Number(d.availableSeats) || 0;
    const b = el("button", "date");
    b.type = "button";
    b.dataset.optionId = String(d.concertOptionId);
    b.dataset.free = String(free);
    b.append(el("span", "date-day", when.day), el("span", "date-time", when.time),
      el("span", "date-free", free === 0 ? "Sold out" :
        free === 1 ? "1 seat free" : `${fmt(free)} seats free`));
    b.setAttribute("aria-pressed", String(seats.optionId() === d.concertOptionId));
    b.disabled = free === 0 || seats.holding();
    b.addEventListener("click", () => chooseDate(d));
    ui.dates.append(b);
  }
}

app.lockDates = (locked) => {
  for (const b of ui.dates.querySelectorAll("button.date")) {
    b.disabled = locked || b.dataset.free === "0";
  }
};

function chooseDate(d) {
  if (seats.holding()) return;
  for (const b of ui.dates.querySelectorAll("button.date")) {
    b.setAttribute("aria-pressed", String(Number(b.dataset.optionId) === d.concertOptionId));
  }
  clearError();
  seats.open({ id: d.concertOptionId, date: d.date }, { focus: true });
}

app.announce = announce;
const seats = initSeats(app);
boot();
