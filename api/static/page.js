// The booking page of the waiting room: join the queue, wait, pick a date and a seat, pay.
// Plain JavaScript on the API's own endpoints (same origin); no framework, nothing fetched
// from elsewhere.
"use strict";

(() => {
  const main = document.getElementById("main");
  const CONCERT_ID = Number(main.dataset.concertId) || 2;
  const POLL_DEFAULT_S = 1; // when the API suggests no rate
  const POLL_MIN_S = 0.25; // a hint of 0 must not turn into a busy loop
  const POLL_MAX_S = 600;
  const BACKOFF_MAX_S = 30;
  const lang = document.documentElement.lang || "en";
  const whole = new Intl.NumberFormat(lang, { maximumFractionDigits: 0 });
  const cents = new Intl.NumberFormat(lang, { minimumFractionDigits: 2 });
  // Points have at most two decimals: 1,000 and 1,234.50, never 1,234.5.
  const fmt = (n) => (Number.isInteger(Number(n)) ? whole : cents).format(Number(n));

  const $ = (id) => document.getElementById(id);
  const ui = {
    error: $("error"), announcer: $("announcer"),
    joinStep: $("join-step"), joinForm: $("join-form"), customerId: $("customer-id"),
    join: $("join"), joined: $("joined"), joinedText: $("joined-text"), startOver: $("start-over"),
    balanceBox: $("balance-box"), balance: $("balance"),
    queueStep: $("queue-step"), queueTitle: $("queue-title"), status: $("status"),
    position: $("position"), eta: $("eta"), progress: $("progress"),
    progressBar: $("progress-bar"), queueNote: $("queue-note"),
    datesStep: $("dates-step"), datesTitle: $("dates-title"), dates: $("dates"),
    seatsStep: $("seats-step"), seatsTitle: $("seats-title"), seatsHint: $("seats-hint"),
    seatMap: $("seat-map"),
    holdStep: $("hold-step"), holdTitle: $("hold-title"), holdSeat: $("hold-seat"),
    holdDate: $("hold-date"), holdPrice: $("hold-price"), countdown: $("countdown"),
    pay: $("pay"), release: $("release"),
    receiptStep: $("receipt-step"), receiptTitle: $("receipt-title"), receiptId: $("receipt-id"),
    receiptSeat: $("receipt-seat"), receiptDate: $("receipt-date"),
    receiptAmount: $("receipt-amount"), receiptBalance: $("receipt-balance"),
    bookAnother: $("book-another"),
  };
  const STEPS = [ui.queueStep, ui.datesStep, ui.seatsStep, ui.holdStep, ui.receiptStep];

  // Every answer that arrives for an older generation (after "start over" or a new join) is
  // dropped, so a slow answer never paints over the current visit.
  let generation = 0;
  let clockOffsetMs = 0;
  let state = freshState();

  function freshState(keep = {}) {
    return {
      gen: ++generation, customerId: null, token: null, balance: null,
      pollTimer: 0, failures: 0, firstPosition: null,
      option: null, seats: [], hold: null, holdTimer: 0, warned: false,
      reserving: false, paying: false, ...keep,
    };
  }

  // --- talking to the API ----------------------------------------------------------------
  class Problem extends Error {
    constructor(body, status, retryAfter) {
      super(body.detail || body.title || `HTTP ${status}`);
      this.status = status;
      this.code = body.code || (status ? `HTTP_${status}` : "NETWORK");
      this.title = body.title || "Something went wrong";
      this.detail = body.detail || "";
      this.retryAfter = retryAfter;
    }
  }

  async function api(method, path, { body, token } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = `Bearer ${token}`;
    const sent = Date.now();
    let resp;
    try {
      resp = await fetch(path, {
        method, headers, cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new Problem({ code: "NETWORK", title: "No connection" }, 0, null);
    }
    noteClock(resp.headers.get("Date"), sent);
    const retryAfter = parseRetryAfter(resp.headers.get("Retry-After"));
    let data = null;
    try {
      data = await resp.json();
    } catch {
      data = null;
    }
    if (!resp.ok) {
      throw new Problem(data && typeof data === "object" ? data : {}, resp.status, retryAfter);
    }
    return { data, retryAfter };
  }

  // The hold's countdown runs on the server's clock. The Date header has 1 s resolution, so
  // only a clock that is clearly off is corrected.
  function noteClock(header, sent) {
    const server = Date.parse(header || "");
    if (Number.isNaN(server)) return;
    const offset = server + 500 - (sent + Date.now()) / 2;
    clockOffsetMs = Math.abs(offset) > 2000 ? offset : 0;
  }
  const serverNow = () => Date.now() + clockOffsetMs;

  function parseRetryAfter(value) {
    if (!value) return null;
    const v = value.trim();
    if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
    const at = Date.parse(v); // the HTTP-date form
    return Number.isNaN(at) ? null : Math.max(0, (at - serverNow()) / 1000);
  }

  const clamp = (s) => Math.min(POLL_MAX_S, Math.max(POLL_MIN_S, s));

  // The API's suggestion wins: Retry-After on the answer and/or pollAfterSeconds in the body
  // (the later of the two), else the default rate.
  function pollDelay(retryAfter, body) {
    const hints = [];
    if (retryAfter !== null) hints.push(retryAfter);
    const hint = body ? body.pollAfterSeconds : undefined;
    if (typeof hint === "number" && Number.isFinite(hint)) hints.push(hint);
    return clamp(hints.length ? Math.max(...hints) : POLL_DEFAULT_S);
  }

  // After a failure: never before Retry-After, and longer after each failure in a row, with
  // jitter so that a crowd of visitors does not come back in step.
  function backoffDelay(err) {
    state.failures += 1;
    const exp = Math.min(BACKOFF_MAX_S, 2 ** (state.failures - 1)) * (0.75 + Math.random() / 2);
    return clamp(Math.max(err.retryAfter ?? 0, exp));
  }

  // --- formatting ------------------------------------------------------------------------
  function venueDate(iso) {
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
  const dateLabel = (iso) => {
    const d = venueDate(iso);
    return d.time ? `${d.day}, ${d.time}` : d.day;
  };

  function formatWait(seconds) {
    const s = Math.max(1, Math.round(Number(seconds) || 0));
    if (s < 60) return s === 1 ? "about 1 second" : `about ${s} seconds`;
    const m = Math.round(s / 60);
    if (m < 60) return m === 1 ? "about 1 minute" : `about ${m} minutes`;
    const h = Math.floor(m / 60);
    return `about ${h} h ${m % 60} min`;
  }

  const mmss = (s) =>
    `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;

  function seatName(seat) {
    const parts = [];
    if (seat.section != null) parts.push(`Section ${seat.section}`);
    if (seat.row != null) parts.push(`Row ${seat.row}`);
    parts.push(`Seat ${seat.number}`);
    return parts.join(" · ");
  }

  function clockTime(iso) {
    const t = Date.parse(iso || "");
    if (Number.isNaN(t)) return "";
    return new Date(t - clockOffsetMs)
      .toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" })
      .replace(/\s/g, "\u00a0"); // "08:01 AM" never breaks before "AM"
  }

  // --- small DOM helpers -----------------------------------------------------------------
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  // Write only what changed: live regions then announce changes, not every poll.
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }
  const focusIn = (node) => node.contains(document.activeElement);
  const nothingFocused = () =>
    !document.activeElement || document.activeElement === document.body;
  function announce(text) {
    ui.announcer.textContent = "";
    window.setTimeout(() => { ui.announcer.textContent = text; }, 50);
  }

  // --- the one place for errors ----------------------------------------------------------
  function describe(err, ctx) {
    const seat = ctx.seat ? seatName(ctx.seat) : "That seat";
    const retry = ctx.retryIn ? ` Trying again in ${Math.ceil(ctx.retryIn)} s.` : "";
    switch (err.code) {
      case "SEAT_TAKEN":
        return ["Seat just taken", `${seat} was just taken by someone else. The seat map ` +
          "is refreshed: please choose another seat."];
      case "INSUFFICIENT_BALANCE": {
        const have = state.balance === null ? "" : ` (${fmt(state.balance)} points)`;
        return ["Not enough points", `Your balance${have} is too low for this seat. ` +
          "It stays held for you until the timer runs out."];
      }
      case "TOKEN_UNKNOWN":
        return ["Your turn has ended", "Your place in the queue expired or was used up. " +
          "Join again to get a new place."];
      case "TOKEN_WAITING":
        return ["Still in the queue", "It is not your turn yet: this page shows when it is."];
      case "HOLD_EXPIRED":
        return ["Hold expired", "Your hold ran out and the seat was released. " +
          "Please choose a seat again."];
      case "HOLD_CANCELLED":
        return ["Hold released", "This hold was released. Please choose a seat again."];
      case "ALREADY_PAID":
        return ["Already paid", "This seat is already paid for."];
      case "PAYMENT_IN_PROGRESS":
        return ["Payment in progress", "A payment for this seat is under way. " +
          "Wait a moment, then press Pay again."];
      case "PAY_STALE":
      case "PAY_SUPERSEDED":
      case "PAY_ORPHANED":
        return ["Payment interrupted", "Your payment was interrupted. Press Pay again: " +
          "you are charged at most once."];
      case "STORE_UNAVAILABLE":
      case "STORE_FULL":
        return ["Service busy", ctx.paying
          ? "The booking service could not confirm your payment. Press Pay again: you are " +
            "charged at most once."
          : `The booking service is busy.${retry || " Please try again in a few seconds."}`];
      case "NETWORK":
        return ["No connection", "The booking service could not be reached." +
          (retry || " Check your connection and try again.")];
      case "INVALID_CUSTOMER":
        return ["Check your customer id", "Enter a whole number from 1, e.g. 7."];
      default:
        return [err.title || "Something went wrong",
          err.detail || `The service answered with status ${err.status}.`];
    }
  }

  // ctx: seat, retryIn, paying; transient (cleared by the next good poll); action {label, run}.
  function showError(err, ctx = {}) {
    const [title, message] = describe(err, ctx);
    const box = el("div", "alert");
    box.dataset.code = err.code;
    box.dataset.transient = ctx.transient ? "1" : "";
    const text = el("p", "alert-text");
    text.append(el("strong", "alert-title", title), " ", el("span", "", message));
    const actions = el("div", "alert-actions");
    let actionButton = null;
    if (ctx.action) {
      actionButton = el("button", "primary small", ctx.action.label);
      actionButton.type = "button";
      actionButton.addEventListener("click", () => {
        clearError();
        ctx.action.run();
      });
      actions.append(actionButton);
    }
    const dismiss = el("button", "link dismiss", "Dismiss");
    dismiss.type = "button";
    dismiss.addEventListener("click", () => {
      const back = document.activeElement === dismiss;
      clearError();
      if (back) (STEPS.find((s) => !s.hidden)?.querySelector("h2") || ui.customerId).focus();
    });
    actions.append(dismiss);
    box.append(text, actions);
    ui.error.replaceChildren(box);
    return actionButton;
  }

  const clearError = () => ui.error.replaceChildren();
  function clearTransientError() {
    const box = ui.error.firstElementChild;
    if (box && box.dataset.transient) clearError();
  }

  // Refusals that change where the visitor is, whatever the request was.
  function handleProblem(err, ctx = {}) {
    if (err.code === "TOKEN_UNKNOWN") return tokenLost();
    if (err.code === "TOKEN_WAITING") {
      showError(err);
      for (const s of [ui.datesStep, ui.seatsStep, ui.holdStep]) s.hidden = true;
      schedulePoll(pollDelay(err.retryAfter, null));
      return;
    }
    showError(err, ctx);
  }

  function tokenLost() {
    stopTimers();
    state.token = null;
    state.hold = null;
    for (const s of [ui.datesStep, ui.seatsStep, ui.holdStep]) s.hidden = true;
    setText(ui.status, "ENDED");
    ui.status.dataset.state = "ended";
    setText(ui.position, "–");
    setText(ui.eta, "–");
    ui.progressBar.style.width = "0%";
    ui.progress.setAttribute("aria-valuenow", "0");
    ui.progress.setAttribute("aria-valuetext", "Not in the queue");
    setText(ui.queueNote, "");
    const again = showError({ code: "TOKEN_UNKNOWN" }, {
      action: { label: "Join again", run: () => join(state.customerId) },
    });
    again.focus();
  }

  function stopTimers() {
    window.clearTimeout(state.pollTimer);
    window.clearInterval(state.holdTimer);
  }

  // --- 1. join ---------------------------------------------------------------------------
  function parseCustomerId(raw) {
    const v = raw.trim();
    if (!/^\d{1,16}$/.test(v)) return null;
    const n = Number(v);
    return n >= 1 && n <= Number.MAX_SAFE_INTEGER ? n : null;
  }

  ui.joinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = parseCustomerId(ui.customerId.value);
    if (id === null) {
      ui.customerId.setAttribute("aria-invalid", "true");
      showError({ code: "INVALID_CUSTOMER" });
      ui.customerId.focus();
      return;
    }
    ui.customerId.removeAttribute("aria-invalid");
    join(id);
  });

  async function join(customerId) {
    stopTimers();
    state = freshState({ customerId, balance: state.balance });
    const gen = state.gen;
    for (const s of STEPS) s.hidden = true;
    ui.dates.replaceChildren();
    ui.seatMap.replaceChildren();
    clearError();
    ui.join.disabled = true;
    ui.join.textContent = "Joining…";
    let answer;
    try {
      answer = await api("POST", "/api/token/issue", {
        body: { customerId, concertId: CONCERT_ID },
      });
    } catch (err) {
      if (gen !== state.gen) return;
      ui.join.disabled = false;
      ui.join.textContent = "Join";
      if (!ui.joinForm.hidden) {
        showError(err);
        ui.customerId.focus();
      } else { // joining again: the form is gone, so the message carries the way back
        showError(err, { action: { label: "Try again", run: () => join(customerId) } }).focus();
      }
      return;
    }
    if (gen !== state.gen) return;
    ui.join.disabled = false;
    ui.join.textContent = "Join";
    state.token = answer.data.tokenValue;
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

  ui.startOver.addEventListener("click", () => {
    stopTimers();
    state = freshState();
    for (const s of STEPS) s.hidden = true;
    clearError();
    ui.balanceBox.hidden = true;
    ui.joined.hidden = true;
    ui.joinForm.hidden = false;
    $("intro").hidden = false;
    ui.customerId.value = "";
    ui.customerId.focus();
  });

  async function loadBalance() {
    const gen = state.gen;
    try {
      const { data } = await api("GET", `/api/point?customerId=${state.customerId}`);
      if (gen === state.gen) setBalance(data.balance);
    } catch (err) {
      if (gen === state.gen) showError(err);
    }
  }

  function setBalance(balance) {
    state.balance = balance;
    setText(ui.balance, fmt(balance));
    ui.balanceBox.hidden = false;
  }

  // --- 2. wait in the queue --------------------------------------------------------------
  function schedulePoll(seconds) {
    window.clearTimeout(state.pollTimer);
    const gen = state.gen;
    state.pollTimer = window.setTimeout(() => poll(gen), seconds * 1000);
  }

  async function poll(gen) {
    if (gen !== state.gen || !state.token) return;
    let answer;
    try {
      answer = await api("GET", "/api/token/status", { token: state.token });
    } catch (err) {
      if (gen !== state.gen) return;
      if (err.code === "TOKEN_UNKNOWN") return tokenLost();
      const wait = backoffDelay(err);
      showError(err, { transient: true, retryIn: wait });
      schedulePoll(wait);
      return;
    }
    if (gen !== state.gen) return;
    state.failures = 0;
    clearTransientError();
    showToken(answer.data);
    if (answer.data.status === "ACTIVE") becomeActive();
    else schedulePoll(pollDelay(answer.retryAfter, answer.data));
  }

  function showToken(token) {
    const waiting = token.status !== "ACTIVE";
    const position = Number(token.position) || 0;
    if (waiting && (state.firstPosition === null || position > state.firstPosition)) {
      state.firstPosition = position;
    }
    setText(ui.status, token.status);
    ui.status.dataset.state = waiting ? "waiting" : "active";
    setText(ui.position, fmt(position));
    setText(ui.eta, waiting ? formatWait(token.estimatedWaitSeconds) : "Now");
    // The bar fills from the first position seen down to 0.
    const first = state.firstPosition;
    const pct = !waiting ? 100 : first ? Math.round((100 * (first - position)) / first) : 0;
    ui.progressBar.style.width = `${pct}%`;
    ui.progress.setAttribute("aria-valuenow", String(pct));
    ui.progress.setAttribute("aria-valuetext",
      waiting ? `Position ${fmt(position)} in the queue` : "Your turn");
    const until = clockTime(token.expiresAt);
    setText(ui.queueNote, waiting
      ? "Keep this page open: it checks your place for you, and your place is kept."
      : `It's your turn${until ? `: book your seat by ${until}` : ""}.`);
  }

  function becomeActive() {
    window.clearTimeout(state.pollTimer);
    // Move focus on only if the visitor has not gone somewhere else meanwhile.
    const moveFocus = nothingFocused() || focusIn(ui.queueStep) || focusIn(ui.joinStep);
    loadDates({ focus: moveFocus });
  }

  // --- 3. dates --------------------------------------------------------------------------
  async function loadDates({ focus = false } = {}) {
    const gen = state.gen;
    let answer;
    try {
      answer = await api("GET", `/api/${CONCERT_ID}/available-dates`, { token: state.token });
    } catch (err) {
      if (gen !== state.gen) return;
      if (err.status === 503 || err.code === "NETWORK") {
        // Nothing else would load them (no button to press yet): try again by itself.
        const wait = backoffDelay(err);
        showError(err, { transient: true, retryIn: wait });
        window.setTimeout(() => { if (gen === state.gen) loadDates({ focus }); }, wait * 1000);
      } else {
        handleProblem(err);
      }
      return;
    }
    if (gen !== state.gen) return;
    state.failures = 0;
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
      b.setAttribute("aria-pressed",
        String(state.option !== null && state.option.id === d.concertOptionId));
      b.disabled = free === 0 || state.hold !== null;
      b.addEventListener("click", () => chooseDate(d));
      ui.dates.append(b);
    }
  }

  function chooseDate(d) {
    if (state.hold || state.reserving) return;
    state.option = { id: d.concertOptionId, date: d.date };
    for (const b of ui.dates.querySelectorAll("button.date")) {
      b.setAttribute("aria-pressed", String(Number(b.dataset.optionId) === d.concertOptionId));
    }
    clearError();
    loadSeats({ focus: true });
  }

  // --- 4. seats --------------------------------------------------------------------------
  async function loadSeats({ focus = false } = {}) {
    const gen = state.gen;
    const option = state.option;
    if (!option) return;
    ui.seatMap.setAttribute("aria-busy", "true");
    let answer;
    try {
      answer = await api("GET", `/api/${option.id}/available-seats`, { token: state.token });
    } catch (err) {
      if (gen === state.gen) handleProblem(err);
      return;
    } finally {
      ui.seatMap.removeAttribute("aria-busy");
    }
    if (gen !== state.gen || state.option !== option) return;
    renderSeats(answer.data.seats || []);
    ui.seatsStep.hidden = false;
    if (focus) ui.seatsTitle.focus();
  }

  // Seats grouped by section, then row, when they carry them; otherwise one group.
  function groupSeats(seats) {
    const key = (v) => (v === undefined || v === null ? null : String(v));
    const sections = new Map();
    for (const s of seats) {
      const section = key(s.section);
      const row = key(s.row);
      if (!sections.has(section)) sections.set(section, new Map());
      const rows = sections.get(section);
      if (!rows.has(row)) rows.set(row, []);
      rows.get(row).push(s);
    }
    // Sections and rows in the order the API lists their seats (by number); seats by number.
    return [...sections].map(([section, rows]) => [section,
      [...rows].map(([row, list]) => [row, list.sort((a, b) => a.number - b.number)])]);
  }

  function renderSeats(seats) {
    state.seats = seats;
    const when = state.option ? dateLabel(state.option.date) : "";
    setText(ui.seatsHint, seats.length
      ? `${when}: ${seats.length === 1 ? "1 free seat" : `${fmt(seats.length)} free seats`}. ` +
        "Prices in points."
      : `${when}: no free seats left. Please choose another date.`);
    ui.seatMap.replaceChildren();
    for (const [section, rows] of groupSeats(seats)) {
      const box = el("div", "seat-section");
      if (section !== null) box.append(el("h3", "section-title", `Section ${section}`));
      for (const [row, list] of rows) {
        const line = el("div", "seat-row");
        line.setAttribute("role", "group");
        line.setAttribute("aria-label", [section !== null ? `Section ${section}` : "",
          row !== null ? `Row ${row}` : ""].filter(Boolean).join(", ") || "Free seats");
        if (row !== null) {
          const label = el("span", "row-label", `Row ${row}`);
          label.setAttribute("aria-hidden", "true");
          line.append(label);
        }
        const wrap = el("div", "seats");
        for (const seat of list) wrap.append(seatButton(seat));
        line.append(wrap);
        box.append(line);
      }
      ui.seatMap.append(box);
    }
  }

  function seatButton(seat) {
    const b = el("button", "seat");
    b.type = "button";
    b.dataset.testid = "seat";
    b.dataset.seatId = String(seat.id);
    b.append(el("span", "seat-no", String(seat.number)),
      el("span", "seat-price", fmt(seat.price)));
    b.setAttribute("aria-label", `${seatName(seat)}, ${fmt(seat.price)} points`);
    b.disabled = state.hold !== null;
    b.addEventListener("click", () => chooseSeat(seat));
    return b;
  }

  function lockChoices(locked) {
    for (const b of ui.seatMap.querySelectorAll("button.seat")) b.disabled = locked;
    for (const b of ui.dates.querySelectorAll("button.date")) {
      b.disabled = locked || b.dataset.free === "0";
    }
  }

  async function chooseSeat(seat) {
    if (state.hold || state.reserving) return;
    const gen = state.gen;
    const option = state.option;
    state.reserving = true;
    lockChoices(true);
    clearError();
    let answer;
    try {
      answer = await api("POST", "/api/reserve", {
        token: state.token, body: { concertOptionId: option.id, seatId: seat.id },
      });
    } catch (err) {
      if (gen !== state.gen) return;
      state.reserving = false;
      lockChoices(false);
      if (err.code === "SEAT_TAKEN" || err.code === "SEAT_NOT_FOUND") {
        showError(err, { seat });
        refreshChoices();
      } else {
        handleProblem(err);
      }
      return;
    }
    if (gen !== state.gen) return;
    state.reserving = false;
    startHold({ ...answer.data, seat, option });
  }

  // The seat map and the dates' free counts, after seats changed under the visitor.
  function refreshChoices({ focus = false } = {}) {
    loadSeats({ focus });
    loadDates();
  }

  // --- 5. hold and pay -------------------------------------------------------------------
  function startHold(hold) {
    state.hold = hold;
    state.warned = false;
    lockChoices(true);
    for (const b of ui.seatMap.querySelectorAll("button.seat")) {
      b.classList.toggle("is-held", Number(b.dataset.seatId) === hold.seat.id);
    }
    setText(ui.holdSeat, seatName(hold.seat));
    setText(ui.holdDate, dateLabel(hold.option.date));
    setText(ui.holdPrice, `${fmt(hold.price)} points`);
    setPayLabel();
    ui.pay.disabled = false;
    ui.release.disabled = false;
    ui.holdStep.hidden = false;
    tickCountdown();
    state.holdTimer = window.setInterval(tickCountdown, 250);
    ui.holdTitle.focus();
  }

  function setPayLabel(text) {
    ui.pay.textContent = text || `Pay ${fmt(state.hold.price)} points`;
  }

  function tickCountdown() {
    const hold = state.hold;
    if (!hold) return;
    const leftMs = Date.parse(hold.expiresAt) - serverNow();
    const s = Math.max(0, Math.ceil(leftMs / 1000));
    setText(ui.countdown, mmss(s));
    ui.countdown.classList.toggle("soon", s <= 60);
    if (s <= 60 && s > 0 && !state.warned) {
      state.warned = true;
      announce("One minute left to pay for your seat.");
    }
    if (leftMs <= 0 && !state.paying) holdGone({ code: "HOLD_EXPIRED" });
  }

  function endHold() {
    window.clearInterval(state.holdTimer);
    state.hold = null;
    ui.holdStep.hidden = true;
    for (const b of ui.seatMap.querySelectorAll(".is-held")) b.classList.remove("is-held");
  }

  // The hold ran out or was closed: back to the seat map, with the reason.
  function holdGone(err) {
    const hadFocus = focusIn(ui.holdStep);
    endHold();
    lockChoices(false);
    showError(err);
    refreshChoices({ focus: hadFocus });
  }

  ui.pay.addEventListener("click", async () => {
    const hold = state.hold;
    if (!hold || state.paying) return;
    const gen = state.gen;
    state.paying = true;
    ui.pay.disabled = true;
    ui.release.disabled = true;
    setPayLabel("Paying…");
    clearError();
    let answer;
    try {
      answer = await api("POST", "/api/pay", {
        token: state.token, body: { reservationId: hold.reservationId },
      });
    } catch (err) {
      if (gen !== state.gen) return;
      state.paying = false;
      if (err.code === "HOLD_EXPIRED" || err.code === "HOLD_CANCELLED") return holdGone(err);
      if (err.code === "ALREADY_PAID") {
        // An earlier attempt went through (its answer was lost): show it as paid.
        return showReceipt({ reservationId: hold.reservationId, amount: hold.price }, hold);
      }
      setPayLabel();
      ui.pay.disabled = false;
      ui.release.disabled = false;
      handleProblem(err, { paying: true });
      if (state.hold) tickCountdown();
      return;
    }
    if (gen !== state.gen) return;
    state.paying = false;
    showReceipt(answer.data, hold);
  });

  ui.release.addEventListener("click", async () => {
    const hold = state.hold;
    if (!hold || state.paying) return;
    const gen = state.gen;
    ui.release.disabled = true;
    try {
      await api("DELETE", `/api/reserve/${encodeURIComponent(hold.reservationId)}`,
        { token: state.token });
    } catch (err) {
      if (gen !== state.gen) return;
      if (err.code === "HOLD_EXPIRED" || err.code === "HOLD_CANCELLED") return holdGone(err);
      ui.release.disabled = false;
      handleProblem(err);
      return;
    }
    if (gen !== state.gen) return;
    endHold();
    lockChoices(false);
    clearError();
    announce(`${seatName(hold.seat)} released.`);
    refreshChoices({ focus: true });
  });

  function showReceipt(paid, hold) {
    endHold();
    // The pay of the last hold finishes the token: a new booking joins the queue again.
    state.token = null;
    for (const s of STEPS) s.hidden = true;
    setText(ui.receiptId, paid.reservationId);
    setText(ui.receiptSeat, seatName(hold.seat));
    setText(ui.receiptDate, dateLabel(hold.option.date));
    setText(ui.receiptAmount, `${fmt(paid.amount)} points`);
    if (typeof paid.balance === "number") {
      setBalance(paid.balance);
      setText(ui.receiptBalance, `${fmt(paid.balance)} points`);
    } else {
      setText(ui.receiptBalance, "–");
      loadBalance().then(() => {
        if (state.balance !== null) setText(ui.receiptBalance, `${fmt(state.balance)} points`);
      });
    }
    ui.receiptStep.hidden = false;
    ui.receiptTitle.focus();
  }

  ui.bookAnother.addEventListener("click", () => join(state.customerId));
})();
