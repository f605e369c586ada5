// The booking page's one place for problems: every answer that is not 2xx, said the way a
// fan reads it (the API's own title and detail for any code not listed here), with an
// action when there is something to do, and kept in view while scrolling.
import { $, el, fmt, seatName } from "./common.js";

const region = () => $("error");

export function describe(err, ctx = {}) {
  const seat = ctx.seat ? seatName(ctx.seat) : "That seat";
  const retry = ctx.retryIn ? ` Trying again in ${Math.ceil(ctx.retryIn)} s.` : "";
  switch (err.code) {
    case "SEAT_TAKEN":
      return ["Seat just taken", `${seat} was just taken by someone else. The seat map ` +
        "is refreshed: please choose another seat."];
    case "NO_ADJACENT_SEATS":
      return ["No seats together", "There are not that many free seats next to each other " +
        "there. Try fewer seats, another section, or pick seats on the map."];
    case "TICKET_LIMIT":
      return ["Ticket limit reached", "You hold or have bought as many tickets for this " +
        "concert as one customer may."];
    case "INSUFFICIENT_BALANCE": {
      const have = ctx.balance == null ? "" : ` (${fmt(ctx.balance)} points)`;
      return ["Not enough points", `Your balance${have} is too low for these seats. ` +
        "They stay held for you until the timer runs out."];
    }
    case "RATE_LIMITED":
      return ["Too many requests", `Please wait a moment: you can try again in ` +
        `${Math.max(1, Math.ceil(ctx.wait ?? err.retryAfter ?? 1))} s.`];
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
    case "CONCERT_NOT_FOUND":
      return ["No such concert", "There is no concert with that number on sale. Please " +
        "choose one from the list."];
    case "QUEUE_FULL":
      return ["Queue full", "The queue for this concert is full right now." +
        (retry || " Please try again in a little while.")];
    case "ACCESS_CODE_REQUIRED":
      return ["Access code needed", "This sale is for code holders: enter your access code, " +
        "then join."];
    case "ACCESS_CODE_INVALID":
      return ["Access code not accepted", "Check the code and try again."];
    case "CHALLENGE_REQUIRED":
      return ["A check before you join", err.detail ||
        "The service wants a check this browser could not do. Please try again."];
    case "STORE_UNAVAILABLE":
    case "STORE_FULL":
    case "OVERLOADED":
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

// ctx: seat, retryIn, paying, balance, wait; transient (cleared by the next good answer);
// action {label, run}; back: where the focus goes when the message is dismissed.
export function showError(err, ctx = {}) {
  const [title, message] = describe(err, ctx);
  const box = el("div", "alert");
  box.dataset.code = err.code;
  box.dataset.transient = ctx.transient ? "1" : "";
  const text = el("p", "alert-text");
  text.append(el("strong", "alert-title", title), " ", el("span", "alert-message", message));
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
    if (back && ctx.back) ctx.back().focus();
  });
  actions.append(dismiss);
  box.append(text, actions);
  region().replaceChildren(box);
  return actionButton;
}

export const clearError = () => region().replaceChildren();

export function clearTransientError() {
  const box = region().firstElementChild;
  if (box && box.dataset.transient) clearError();
}

// The message of the problem on show now, rewritten in place (a countdown in it).
export function updateError(code, text) {
  const box = region().firstElementChild;
  if (box && box.dataset.code === code) box.querySelector(".alert-message").textContent = text;
}

export function announce(text) {
  const announcer = $("announcer");
  announcer.textContent = "";
  window.setTimeout(() => { announcer.textContent = text; }, 50);
}
