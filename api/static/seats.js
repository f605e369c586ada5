// Steps 4 to 6 of the booking page: the seat map of the chosen date (seatmap.js), seats
// held from it one by one or the best ones together, the countdown, paying, the receipt.
import {
  $, api, dateLabel, fmt, mmss, seatName, seatsName, serverNow, setText,
} from "./common.js";
import { showTicketQr } from "./hooks.js";
import { clearError, clearTransientError } from "./problems.js";
import { SeatMap } from "./seatmap.js";

const DRAW_ALL_MAX = 600; // seats: up to this many every section is drawn; beyond, an overview
const REFRESH_S = 10; // the taken seats, read again while the map is on show
const MAX_TOGETHER = 8; // POST /api/reserve's quantity
const WIDE_ROW = 26; // seats: a longer row widens the map past the page's column

export function initSeats(app) {
  const ui = {
    step: $("seats-step"), title: $("seats-title"), hint: $("seats-hint"), map: $("seat-map"),
    nav: $("map-nav"), back: $("map-back"), where: $("map-where"), legend: $("legend"),
    info: $("seat-info"), help: $("map-help"), best: $("best-form"), quantity: $("best-quantity"),
    bestSection: $("best-section"), bestGo: $("best-go"),
    holdStep: $("hold-step"), holdTitle: $("hold-title"), holdSeat: $("hold-seat"),
    holdSeatLabel: $("hold-seat-label"), holdDate: $("hold-date"), holdPrice: $("hold-price"),
    countdown: $("countdown"), pay: $("pay"), release: $("release"),
    receiptStep: $("receipt-step"), receiptTitle: $("receipt-title"),
    receiptConcert: $("receipt-concert"), receiptDate: $("receipt-date"),
    receiptSeat: $("receipt-seat"), receiptSeatLabel: $("receipt-seat-label"),
    receiptId: $("receipt-id"), receiptAmount: $("receipt-amount"),
    receiptBalance: $("receipt-balance"), bookAnother: $("book-another"),
  };
  const map = new SeatMap(ui.map, { pick, section: (name) => openSection(name), info: showInfo });
  for (let n = 1; n <= MAX_TOGETHER; n++) {
    ui.quantity.append(new Option(n === 1 ? "1 seat" : `${n} seats`, String(n), n === 2, n === 2));
  }
  let s = fresh();

  function fresh() {
    return { option: null, layout: null, sections: new Map(), view: null, holds: [], paid: [],
      holdTimer: 0, refreshTimer: 0, warned: false, busy: false, paying: false };
  }
  const current = (gen, option) => gen === app.state.gen && (!option || option === s.option);
  const total = (list) => list.reduce((sum, h) => sum + Number(h.price), 0);
  const names = (list) => seatsName(list.map((h) => h.seat));
  // A mark once the browser has painted (after the next frame): loadtests/http_bench/seat_map.py
  // reads them.
  const painted = (name) => requestAnimationFrame(() => setTimeout(() => performance.mark(name)));

  // --- the map -------------------------------------------------------------------------------
  async function open(option, { focus = false } = {}) {
    stop();
    s.option = option;
    s.view = null;
    s.sections.clear();
    performance.mark("seatmap:asked");
    await loadMap({ focus });
  }

  async function loadMap({ focus = false } = {}) {
    const gen = app.state.gen;
    const option = s.option;
    map.lock(true);
    let m, t;
    try {
      [m, t] = await Promise.all([
        api("GET", `/api/${option.id}/seat-map`, { token: app.state.token, cache: "no-cache" }),
        api("GET", `/api/${option.id}/taken-seats`, { token: app.state.token })]);
      s.layout = m.data;
      if (s.layout.seats <= DRAW_ALL_MAX) {
        const parts = await Promise.all(s.layout.sections.map((x) => sectionLayout(x.name)));
        if (!current(gen, option)) return;
        map.showSections(s.layout, parts.map((p) => p.sections[0]), t.data);
        s.view = "all";
      } else if (s.view && s.view !== "all") {
        return openSection(s.view, { focusSeat: false });
      } else {
        map.showOverview(s.layout, t.data);
        painted("seatmap:overview");
      }
    } catch (err) {
      if (current(gen, option)) app.handleProblem(err);
      return;
    } finally {
      map.lock(false);
    }
    if (!current(gen, option)) return;
    shown(t.data);
    if (focus) ui.title.focus();
  }

  async function sectionLayout(name) {
    const kept = s.sections.get(name);
    if (kept && kept.version === s.layout.version) return kept;
    const { data } = await api("GET",
      `/api/${s.option.id}/seat-map?section=${encodeURIComponent(name)}`,
      { token: app.state.token, cache: "no-cache" });
    s.sections.set(name, data);
    return data;
  }

  async function openSection(name, { focusSeat = true } = {}) {
    performance.mark("seatmap:section-asked");
    const gen = app.state.gen;
    const option = s.option;
    map.lock(true);
    let layout, t;
    try {
      [layout, t] = await Promise.all([sectionLayout(name), api("GET",
        `/api/${option.id}/taken-seats?section=${encodeURIComponent(name)}`,
        { token: app.state.token })]);
    } catch (err) {
      if (current(gen, option)) app.handleProblem(err);
      return;
    } finally {
      map.lock(false);
    }
    if (!current(gen, option)) return;
    if (layout.version !== t.data.version || layout.version !== s.layout.version) {
      s.sections.clear(); // repriced meanwhile: the layout again, whole
      s.view = name;
      return loadMap();
    }
    map.showSections(s.layout, layout.sections, t.data);
    s.view = name;
    painted("seatmap:section");
    shown(t.data);
    if (focusSeat) ui.map.querySelector('.seat[tabindex="0"]')?.focus();
  }

  // After a draw: the words around the map, the legend, the best-seats form, then refresh.
  function shown(taken) {
    const where = s.view && s.view !== "all" ? `Section ${s.view}` : "";
    ui.nav.hidden = !where;
    setText(ui.where, where);
    const when = dateLabel(s.option.date);
    const free = taken.free;
    setText(ui.hint, `${when}: ${fmt(free)} of ${fmt(taken.count)} ` +
      `seats${where ? ` in ${where}` : ""} free. Prices in points.` +
      (map.root.dataset.view === "overview" ? " Choose a section to see its seats." : ""));
    map.legend(ui.legend);
    ui.help.hidden = map.root.dataset.view === "overview";
    map.setMine(s.holds.map((h) => h.seat.id));
    const keep = ui.bestSection.value;
    ui.bestSection.replaceChildren(new Option("any section", ""));
    for (const x of s.layout.sections) {
      if (x.name != null) ui.bestSection.append(new Option(`section ${x.name}`, x.name));
    }
    ui.bestSection.value = where ? s.view : keep;
    if (ui.bestSection.selectedIndex < 0) ui.bestSection.value = "";
    // Wider than the page's column when a row would not fit in it (page.css, 64rem up).
    ui.step.classList.toggle("wide", map.widest > WIDE_ROW);
    ui.step.hidden = false;
    map.fitWhenShown();
    scheduleRefresh();
  }

  function scheduleRefresh() {
    window.clearTimeout(s.refreshTimer);
    const gen = app.state.gen;
    s.refreshTimer = window.setTimeout(() => {
      if (current(gen) && !document.hidden && !s.paying) refreshTaken();
      else scheduleRefresh();
    }, REFRESH_S * 1000);
  }

  // The taken seats again (after a refusal, or now and then): repainted in place, unless the
  // layout changed (a reprice), then drawn again.
  async function refreshTaken() {
    const gen = app.state.gen;
    const option = s.option;
    if (!option || !s.layout) return;
    const one = s.view && s.view !== "all" ? `?section=${encodeURIComponent(s.view)}` : "";
    try {
      const { data } = await api("GET", `/api/${option.id}/taken-seats${one}`,
        { token: app.state.token });
      if (!current(gen, option)) return;
      clearTransientError();
      if (data.version !== s.layout.version) return loadMap();
      map.applyTaken(data);
      map.setMine(s.holds.map((h) => h.seat.id));
      shown(data);
    } catch (err) {
      if (!current(gen, option)) return;
      if (err.code === "TOKEN_UNKNOWN" && (s.holds.length || s.paid.length)) return;
      if (err.status === 503 || err.code === "NETWORK") scheduleRefresh();
      else app.handleProblem(err);
    }
  }

  function refreshAll() {
    refreshTaken();
    app.loadDates();
  }

  ui.back.addEventListener("click", async () => {
    const from = s.view;
    s.view = null;
    await loadMap();
    ui.map.querySelector(`.section-card[data-section="${CSS.escape(from || "")}"]`)?.focus();
  });

  function showInfo(seat, state) {
    setText(ui.info, !seat ? "" : `${seatName(seat)}: ${fmt(seat.price)} points, ` +
      `${state === "held-by-me" ? "held for you" : state}`);
  }

  // --- holding seats -------------------------------------------------------------------------
  async function pick(seat, state) {
    if (s.busy || s.paying || app.cooling()) return;
    if (state === "held-by-me") return release(s.holds.filter((h) => h.seat.id === seat.id));
    await reserve({ seatId: seat.id }, seat);
  }

  ui.best.addEventListener("submit", (event) => {
    event.preventDefault();
    if (s.busy || s.paying || app.cooling() || !s.option) return;
    const body = { quantity: Number(ui.quantity.value) };
    if (ui.bestSection.value) body.section = ui.bestSection.value;
    reserve(body, null);
  });

  async function reserve(body, seat) {
    const gen = app.state.gen;
    const option = s.option;
    s.busy = true;
    map.lock(true);
    ui.bestGo.disabled = true;
    clearError();
    let answer;
    try {
      answer = await api("POST", "/api/reserve", {
        token: app.state.token, body: { concertOptionId: option.id, ...body },
      });
    } catch (err) {
      if (!current(gen, option)) return;
      if (err.code === "SEAT_TAKEN" || err.code === "SEAT_NOT_FOUND") {
        app.showError(err, { seat });
        refreshAll();
      } else {
        app.handleProblem(err);
      }
      return;
    } finally {
      s.busy = false;
      map.lock(false);
      ui.bestGo.disabled = false;
    }
    if (!current(gen, option)) return;
    const d = answer.data;
    const got = d.seats ? d.seats.map((x) => ({ reservationId: x.reservationId, price: x.price,
      expiresAt: d.expiresAt, seat: x })) : [{ reservationId: d.reservationId, price: d.price,
      expiresAt: d.expiresAt, seat }];
    const first = s.holds.length === 0;
    s.holds.push(...got);
    app.announce(`${names(got)} held for you.`);
    // Seats found together in another section: show them where they are.
    const section = got[0].seat.section;
    if (d.seats && s.view !== "all" && section != null && section !== s.view) {
      await openSection(section, { focusSeat: false });
    }
    map.setMine(s.holds.map((h) => h.seat.id));
    showHold(first);
    refreshAll(); // the counts of free seats, now without these
  }

  function showHold(focus = false) {
    if (!s.holds.length) {
      window.clearInterval(s.holdTimer);
      ui.holdStep.hidden = true;
      app.lockDates(false);
      return;
    }
    app.lockDates(true);
    setText(ui.holdSeatLabel, s.holds.length === 1 ? "Seat" : `Seats (${s.holds.length})`);
    setText(ui.holdSeat, names(s.holds));
    setText(ui.holdDate, dateLabel(s.option.date));
    setText(ui.holdPrice, `${fmt(total(s.holds))} points`);
    setPayLabel();
    ui.pay.disabled = ui.release.disabled = false;
    ui.holdStep.hidden = false;
    window.clearInterval(s.holdTimer);
    tickCountdown();
    s.holdTimer = window.setInterval(tickCountdown, 250);
    if (focus) ui.holdTitle.focus();
  }

  function setPayLabel(text) {
    ui.pay.textContent = text || `Pay ${fmt(total(s.holds))} points`;
  }

  function tickCountdown() {
    if (!s.holds.length) return;
    const ends = Math.min(...s.holds.map((h) => Date.parse(h.expiresAt)));
    const leftMs = ends - serverNow();
    const left = Math.max(0, Math.ceil(leftMs / 1000));
    setText(ui.countdown, mmss(left));
    ui.countdown.classList.toggle("soon", left <= 60);
    if (left <= 60 && left > 0 && !s.warned) {
      s.warned = true;
      app.announce("One minute left to pay for your seats.");
    }
    if (leftMs <= 0 && !s.paying) {
      s.holds = s.holds.filter((h) => Date.parse(h.expiresAt) > serverNow());
      holdGone({ code: "HOLD_EXPIRED" });
    }
  }

  // A hold ran out or was closed: back to the map, with the reason.
  function holdGone(err) {
    const hadFocus = ui.holdStep.contains(document.activeElement);
    map.setMine(s.holds.map((h) => h.seat.id));
    showHold();
    app.showError(err);
    if (s.paid.length && !s.holds.length) return showReceipt();
    refreshAll();
    if (hadFocus) ui.title.focus();
  }

  async function release(list) {
    const gen = app.state.gen;
    s.busy = true;
    ui.release.disabled = true;
    try {
      for (const h of list) {
        try {
          await api("DELETE", `/api/reserve/${encodeURIComponent(h.reservationId)}`,
            { token: app.state.token });
        } catch (err) {
          if (err.code !== "HOLD_EXPIRED" && err.code !== "HOLD_CANCELLED") throw err;
        }
        s.holds = s.holds.filter((x) => x !== h);
      }
    } catch (err) {
      if (current(gen)) app.handleProblem(err);
    } finally {
      s.busy = false;
      ui.release.disabled = false;
    }
    if (!current(gen)) return;
    map.setMine(s.holds.map((h) => h.seat.id));
    app.announce(`${names(list)} released.`);
    const hadFocus = ui.holdStep.contains(document.activeElement);
    showHold();
    if (!s.holds.length && s.paid.length) return showReceipt();
    refreshAll();
    if (hadFocus && !s.holds.length) ui.title.focus();
  }

  ui.release.addEventListener("click", () => {
    if (!s.paying && s.holds.length) release([...s.holds]);
  });

  // --- paying: each hold in turn; the last pay finishes the token -----------------------
  ui.pay.addEventListener("click", async () => {
    if (!s.holds.length || s.paying) return;
    const gen = app.state.gen;
    s.paying = true;
    ui.pay.disabled = ui.release.disabled = true;
    setPayLabel("Paying…");
    clearError();
    let failed = null;
    for (const h of [...s.holds]) {
      try {
        const { data } = await api("POST", "/api/pay", {
          token: app.state.token, body: { reservationId: h.reservationId } });
        s.paid.push({ ...h, amount: data.amount });
        if (typeof data.balance === "number") app.setBalance(data.balance);
      } catch (err) {
        if (gen !== app.state.gen) return;
        if (err.code === "ALREADY_PAID") { // an earlier attempt went through: its answer was lost
          s.paid.push({ ...h, amount: h.price });
        } else {
          failed = err;
          if (err.code === "HOLD_EXPIRED" || err.code === "HOLD_CANCELLED") {
            s.holds = s.holds.filter((x) => x !== h);
          }
          break;
        }
      }
      s.holds = s.holds.filter((x) => x !== h);
    }
    if (gen !== app.state.gen) return;
    s.paying = false;
    if (!s.holds.length && s.paid.length) return showReceipt();
    map.setMine(s.holds.map((h) => h.seat.id));
    showHold();
    if (failed && (failed.code === "HOLD_EXPIRED" || failed.code === "HOLD_CANCELLED")) {
      return holdGone(failed);
    }
    if (failed) app.handleProblem(failed, { paying: true });
    if (s.paid.length) app.announce(`${names(s.paid)} paid.`);
  });

  function showReceipt() {
    window.clearInterval(s.holdTimer);
    window.clearTimeout(s.refreshTimer);
    app.state.token = null; // the pay of the last hold finished the token
    for (const step of [...document.querySelectorAll("main > .step")]) {
      if (step !== ui.receiptStep) step.hidden = step.id !== "join-step";
    }
    const paid = s.paid;
    setText(ui.receiptConcert, app.concert.name);
    setText(ui.receiptDate, dateLabel(s.option.date));
    setText(ui.receiptSeatLabel, paid.length === 1 ? "Seat" : `Seats (${paid.length})`);
    setText(ui.receiptSeat, names(paid));
    ui.receiptId.replaceChildren(...paid.map((h) => {
      const line = document.createElement("span");
      line.className = "receipt-line";
      line.textContent = h.reservationId;
      return line;
    }));
    setText(ui.receiptAmount, `${fmt(total(paid.map((h) => ({ price: h.amount }))))} points`);
    setText(ui.receiptBalance, app.state.balance == null ? "–" : `${fmt(app.state.balance)} points`);
    app.loadBalance().then(() => {
      if (app.state.balance != null) setText(ui.receiptBalance, `${fmt(app.state.balance)} points`);
    });
    showTicketQr(paid.map((h) => h.reservationId), app.state.customerId);
    ui.receiptStep.hidden = false;
    ui.receiptTitle.focus();
  }

  ui.bookAnother.addEventListener("click", () => app.join());

  function stop() {
    window.clearInterval(s.holdTimer);
    window.clearTimeout(s.refreshTimer);
  }

  return {
    steps: [ui.step, ui.holdStep],
    receiptStep: ui.receiptStep,
    open,
    stop,
    reset() {
      stop();
      s = fresh();
      map.clear();
      ui.step.hidden = ui.holdStep.hidden = true;
    },
    optionId: () => (s.option ? s.option.id : null),
    holding: () => s.holds.length > 0 || s.busy,
  };
}
