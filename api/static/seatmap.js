// The seat map: a performance's seats drawn in place, by section and row, from its layout
// (GET /api/{option}/seat-map: runs of seats, each seat's place) and its taken seats (GET
// /api/{option}/taken-seats: one bit a place). A big venue shows its sections first and one
// section's seats on demand, so a 100,000-seat performance never draws 100,000 buttons.
//
// Each seat is a button (data-testid="seat", data-seat-id, data-state free | taken |
// held-by-me) named "Section A, Row 3, Seat 12, 1,500 points, free". The map is one Tab
// stop: the arrow keys move between seats (up and down to the nearest seat of the next
// row), Home and End to a row's ends, Enter or Space picks. Zoom with the buttons, Ctrl and
// the wheel, or two fingers; one finger pans (the viewport scrolls).
import { button, el, fmt, seatName } from "./common.js";

const TIERS = 6; // colours in page.css (.tier-0 dearest ... .tier-5)
const ZOOM = { min: 22, max: 48, step: 1.25 }; // a seat's size in CSS px
const STATE_WORD = { free: "free", taken: "taken", "held-by-me": "held for you" };

export class SeatMap {
  // root: the element with data-testid="seat-map"; on.pick(seat), on.section(name),
  // on.info(seat | null): what the map tells the page.
  constructor(root, on) {
    this.root = root;
    this.on = on;
    this.viewport = el("div", "map-viewport");
    this.canvas = el("div", "map-canvas");
    this.viewport.append(this.canvas);
    this.tools = el("div", "map-tools");
    this.tools.setAttribute("role", "group");
    this.tools.setAttribute("aria-label", "Zoom");
    this.tools.append(
      zoomButton("−", "Zoom out", () => this.zoom(1 / ZOOM.step)),
      zoomButton("+", "Zoom in", () => this.zoom(ZOOM.step)),
    );
    this.cards = el("div", "section-cards");
    this.cards.setAttribute("role", "list");
    root.replaceChildren(this.cards, this.viewport, this.tools);
    this.size = 30;
    this.byPlace = new Map(); // place -> seat button
    this.mine = new Set(); // the ids of the seats this visitor holds
    this.taken = null;
    this.prices = [];
    this.locked = false;
    this.clear();
    this.listen();
  }

  clear() {
    if (this.told) this.on.info(null);
    this.told = null;
    this.widest = 0;
    this.byPlace.clear();
    this.canvas.replaceChildren();
    this.cards.replaceChildren();
    this.viewport.hidden = this.tools.hidden = this.cards.hidden = true;
    this.root.dataset.view = "";
  }

  // --- the overview: one card a section, its free seats and prices --------------------------
  showOverview(layout, taken) {
    this.clear();
    this.prices = layout.prices;
    for (const section of layout.sections) {
      const card = button("section-card", undefined, () => this.on.section(section.name));
      card.dataset.testid = "section";
      card.dataset.section = section.name ?? "";
      const tier = this.tierOf(section.prices[0]);
      const swatch = el("span", `swatch tier-${tier}`);
      swatch.setAttribute("aria-hidden", "true");
      const free = el("span", "card-free");
      const bar = el("span", "card-bar");
      bar.setAttribute("aria-hidden", "true");
      bar.append(el("span", "card-bar-fill"));
      const low = section.prices[section.prices.length - 1];
      const high = section.prices[0];
      card.append(
        el("span", "card-name", section.name == null ? "Seats" : `Section ${section.name}`),
        swatch, free, bar,
        el("span", "card-price", low === high ? `${fmt(high)} points`
          : `${fmt(low)}–${fmt(high)} points`),
      );
      const item = el("div", "card-item");
      item.setAttribute("role", "listitem");
      item.append(card);
      this.cards.append(item);
    }
    this.layout = layout;
    this.cards.hidden = false;
    this.root.dataset.view = "overview";
    this.applyTaken(taken);
  }

  // --- seats in place: the sections given (each with its rows) ------------------------------
  showSections(layout, sections, taken) {
    this.clear();
    this.prices = layout.prices;
    this.layout = layout;
    const frag = document.createDocumentFragment();
    let first = true;
    for (const section of sections) frag.append(this.drawSection(section, sections.length > 1));
    this.viewport.hidden = this.tools.hidden = false;
    this.unfit = true;
    this.fitWhenShown(); // sized from the layout, before the seats exist: one layout, not two
    this.canvas.append(frag);
    this.root.dataset.view = "seats";
    this.applyTaken(taken);
    for (const seat of this.byPlace.values()) { // one Tab stop: the first free seat
      if (first && seat.dataset.state === "free") {
        seat.tabIndex = 0;
        first = false;
      }
    }
    if (first && this.byPlace.size) this.byPlace.values().next().value.tabIndex = 0;
  }

  // Fit a new drawing once it is on screen (a hidden map has no width to fit in).
  fitWhenShown() {
    if (this.unfit && this.viewport.clientWidth > 0) {
      this.unfit = false;
      this.fit();
    }
  }

  drawSection(section, titled) {
    const box = el("div", "map-section");
    box.dataset.section = section.name ?? "";
    if (titled && section.name != null) {
      const title = el("h3", "map-section-title", `Section ${section.name}`);
      box.append(title);
    }
    const numbers = section.rows.flatMap((r) => r.runs.map((u) => [u.number, u.number + u.count]));
    const lowest = Math.min(...numbers.map((n) => n[0]));
    for (const row of section.rows) {
      const line = el("div", "map-row");
      line.setAttribute("role", "group");
      const where = [section.name != null ? `Section ${section.name}` : "",
        row.name != null ? `Row ${row.name}` : ""].filter(Boolean).join(", ");
      line.setAttribute("aria-label", where || "Seats");
      const label = (side) => {
        const l = el("span", `row-label ${side}`, row.name ?? "");
        l.setAttribute("aria-hidden", "true");
        return l;
      };
      line.append(label("start"));
      let next = lowest;
      for (const run of row.runs) {
        if (run.number > next) line.append(gap(run.number - next));
        for (let i = 0; i < run.count; i++) {
          line.append(this.seat({ id: run.id + i, number: run.number + i, price: run.price,
            section: section.name, row: row.name, place: run.place + i }));
        }
        next = run.number + run.count;
      }
      line.append(label("end"));
      // Its width while off screen (page.css: rows out of view are not laid out).
      line.style.setProperty("--row-seats", String(next - lowest));
      box.append(line);
      this.widest = Math.max(this.widest, next - lowest);
    }
    return box;
  }

  seat(seat) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = `seat tier-${this.tierOf(seat.price)}`;
    b.dataset.testid = "seat";
    b.dataset.seatId = String(seat.id);
    b.dataset.place = String(seat.place);
    b.tabIndex = -1;
    b.textContent = String(seat.number);
    b.seat = seat;
    this.byPlace.set(seat.place, b);
    return b;
  }

  tierOf(price) {
    const i = this.prices.indexOf(price);
    return Math.min(i < 0 ? TIERS - 1 : i, TIERS - 1);
  }

  // --- states -------------------------------------------------------------------------------
  // taken: a taken-seats answer; the seats it covers get their state, the cards their counts.
  applyTaken(taken) {
    if (!taken) return;
    this.taken = { ...taken, bytes: decode(taken.taken) };
    for (const [place, b] of this.byPlace) this.paint(b, place);
    const free = new Map(taken.sections.map((s) => [s.name ?? "", s.free]));
    for (const card of this.cards.querySelectorAll(".section-card")) {
      const name = card.dataset.section;
      const section = this.layout.sections.find((s) => (s.name ?? "") === name);
      if (!free.has(name) || !section) continue;
      const n = free.get(name);
      card.querySelector(".card-free").textContent = n === 0 ? "Sold out"
        : `${fmt(n)} of ${fmt(section.count)} free`;
      card.querySelector(".card-bar-fill").style.width = `${(100 * n) / section.count}%`;
      card.dataset.free = String(n);
    }
  }

  isTaken(place) {
    const t = this.taken;
    if (!t || place < t.place || place >= t.place + t.count) return false;
    const i = place - t.place;
    return ((t.bytes[i >> 3] >> (7 - (i & 7))) & 1) === 1;
  }

  paint(b, place) {
    const state = this.mine.has(b.seat.id) ? "held-by-me" : this.isTaken(place) ? "taken" : "free";
    if (b.dataset.state === state && b.getAttribute("aria-label")) return;
    if (b === this.told) this.on.info(b.seat, state); // the seat the page describes now
    b.dataset.state = state;
    b.setAttribute("aria-label",
      `${seatName(b.seat).replaceAll(" · ", ", ")}, ${fmt(b.seat.price)} points, ${STATE_WORD[state]}`);
    if (state === "taken") b.setAttribute("aria-disabled", "true");
    else b.removeAttribute("aria-disabled");
    b.setAttribute("aria-pressed", String(state === "held-by-me"));
  }

  // ids: the seats this visitor holds now (drawn or not)
  setMine(ids) {
    this.mine = new Set(ids);
    for (const [place, b] of this.byPlace) this.paint(b, place);
  }

  lock(locked) {
    this.locked = locked;
    this.root.setAttribute("aria-busy", String(locked));
  }

  seatById(id) {
    for (const b of this.byPlace.values()) if (b.seat.id === id) return b;
    return null;
  }

  // --- zoom and pan -------------------------------------------------------------------------
  setSize(px, focus) {
    const size = Math.max(ZOOM.min, Math.min(ZOOM.max, px));
    const v = this.viewport;
    // Keep the point under the fingers (or the middle) where it is.
    const fx = focus ? focus.x : v.clientWidth / 2;
    const fy = focus ? focus.y : v.clientHeight / 2;
    const ratio = size / this.size;
    const x = (v.scrollLeft + fx) * ratio - fx;
    const y = (v.scrollTop + fy) * ratio - fy;
    this.size = size;
    this.root.style.setProperty("--seat", `${size}px`);
    v.scrollLeft = x;
    v.scrollTop = y;
    this.tools.children[0].disabled = size <= ZOOM.min;
    this.tools.children[1].disabled = size >= ZOOM.max;
  }

  zoom(factor, focus) {
    this.setSize(this.size * factor, focus);
  }

  // As large as lets the widest row (and its two labels) fit, within the zoom's bounds.
  fit() {
    const room = this.viewport.clientWidth - 24;
    this.setSize(this.widest ? Math.floor(room / ((this.widest + 2.2) * 1.14)) : 30);
    const v = this.viewport;
    requestAnimationFrame(() => { // wider than the viewport: start from the middle
      v.scrollLeft = Math.max(0, (v.scrollWidth - v.clientWidth) / 2);
      v.scrollTop = 0;
    });
  }

  listen() {
    this.canvas.addEventListener("click", (event) => {
      const b = event.target.closest(".seat");
      if (!b || this.locked || b.dataset.state === "taken") return;
      this.on.pick(b.seat, b.dataset.state);
    });
    this.canvas.addEventListener("focusin", (event) => {
      const b = event.target.closest(".seat");
      if (!b) return;
      for (const other of this.canvas.querySelectorAll('.seat[tabindex="0"]')) {
        if (other !== b) other.tabIndex = -1;
      }
      b.tabIndex = 0;
      this.tell(b);
    });
    this.canvas.addEventListener("pointerover", (event) => {
      const b = event.target.closest(".seat");
      if (b) this.tell(b);
    });
    this.canvas.addEventListener("keydown", (event) => this.key(event));
    this.viewport.addEventListener("wheel", (event) => {
      if (!event.ctrlKey) return; // a trackpad's pinch comes as Ctrl + wheel
      event.preventDefault();
      const r = this.viewport.getBoundingClientRect();
      this.zoom(event.deltaY < 0 ? 1.1 : 1 / 1.1, { x: event.clientX - r.left, y: event.clientY - r.top });
    }, { passive: false });
    this.pinch();
  }

  // Two fingers zoom around their middle; one finger scrolls the viewport (native pan).
  pinch() {
    const touches = new Map();
    let start = null;
    const spread = () => {
      const [a, b] = [...touches.values()];
      return Math.hypot(a.x - b.x, a.y - b.y);
    };
    this.viewport.addEventListener("pointerdown", (e) => {
      if (e.pointerType !== "touch") return;
      touches.set(e.pointerId, { x: e.clientX, y: e.clientY });
      if (touches.size === 2) start = { spread: spread(), size: this.size };
    });
    this.viewport.addEventListener("pointermove", (e) => {
      if (!touches.has(e.pointerId)) return;
      touches.set(e.pointerId, { x: e.clientX, y: e.clientY });
      if (touches.size !== 2 || !start) return;
      const [a, b] = [...touches.values()];
      const r = this.viewport.getBoundingClientRect();
      this.setSize(start.size * (spread() / start.spread),
        { x: (a.x + b.x) / 2 - r.left, y: (a.y + b.y) / 2 - r.top });
    });
    const end = (e) => {
      touches.delete(e.pointerId);
      if (touches.size < 2) start = null;
    };
    for (const type of ["pointerup", "pointercancel", "pointerleave"]) {
      this.viewport.addEventListener(type, end);
    }
  }

  tell(b) {
    this.told = b;
    this.on.info(b.seat, b.dataset.state);
  }

  key(event) {
    const b = event.target.closest(".seat");
    if (!b) return;
    const row = b.parentElement;
    const inRow = [...row.querySelectorAll(".seat")];
    let to = null;
    switch (event.key) {
      case "ArrowLeft": to = inRow[inRow.indexOf(b) - 1]; break;
      case "ArrowRight": to = inRow[inRow.indexOf(b) + 1]; break;
      case "Home": to = inRow[0]; break;
      case "End": to = inRow[inRow.length - 1]; break;
      case "ArrowUp": to = this.nearest(b, -1); break;
      case "ArrowDown": to = this.nearest(b, 1); break;
      default: return;
    }
    event.preventDefault();
    if (to) {
      to.focus();
      to.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
  }

  // The seat of the row above (-1) or below (1) nearest across, over sections' bounds.
  nearest(b, direction) {
    const rows = [...this.canvas.querySelectorAll(".map-row")];
    const target = rows[rows.indexOf(b.parentElement) + direction];
    if (!target) return null;
    const x = b.getBoundingClientRect().left;
    let best = null;
    for (const s of target.querySelectorAll(".seat")) {
      const d = Math.abs(s.getBoundingClientRect().left - x);
      if (!best || d < best.d) best = { s, d };
    }
    return best && best.s;
  }

  // The legend's entries: each price tier's colour and price, then taken and yours.
  legend(list) {
    list.replaceChildren();
    const item = (swatch, text) => {
      const li = el("li", "legend-item");
      const s = el("span", `swatch ${swatch}`);
      s.setAttribute("aria-hidden", "true");
      li.append(s, el("span", "", text));
      list.append(li);
    };
    this.prices.slice(0, TIERS).forEach((price, i) => {
      item(`tier-${i}`, i === TIERS - 1 && this.prices.length > TIERS
        ? `${fmt(price)} points or less` : `${fmt(price)} points`);
    });
    item("is-taken", "Taken");
    item("is-mine", "Held for you");
  }
}

function zoomButton(text, label, onClick) {
  const b = button("zoom", text, onClick);
  b.setAttribute("aria-label", label);
  return b;
}

function gap(seats) {
  const g = el("span", "seat-gap");
  g.style.setProperty("--gap-seats", String(seats));
  g.setAttribute("aria-hidden", "true");
  return g;
}

function decode(b64) {
  const text = atob(b64 || "");
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}
