// States the page shows when the API gives them, for what other changes add to the API:
// each is one function here and one hidden element with its data-testid in index.html, and
// each does nothing while the API does not answer so.
//
//   sold-out     a token answer with "status": "SOLD_OUT" (issue 20): shown while it lasts,
//                gone when the seats are back on sale (the page goes on polling).
//   access-code  a 403 ACCESS_CODE_REQUIRED (or ACCESS_CODE_INVALID) to an issue (issue 22):
//                the code's field, sent as "accessCode" with the next issue.
//   challenge    a 403 CHALLENGE_REQUIRED to an issue (issue 22): the problem's "challenge"
//                (ALTCHA: algorithm, challenge, salt, signature, maxnumber) solved here, sent
//                as "altcha" (base64 JSON, ALTCHA's payload) with the next issue.
//   ticket-qr    the receipt's QR code as SVG from GET /api/tickets/{reservationId}
//                ?customerId= (issue 22: JSON with "qrSvg"), when that answers 200.
import { $, api, el, fmt, setText } from "./common.js";

// --- sold out ------------------------------------------------------------------------------
export function showSoldOut(token) {
  const box = $("sold-out");
  const sold = token && token.status === "SOLD_OUT";
  if (box.hidden === !sold) return sold;
  box.hidden = !sold;
  return sold;
}

// --- presale access code -------------------------------------------------------------------
export const ACCESS_CODES = new Set(["ACCESS_CODE_REQUIRED", "ACCESS_CODE_INVALID"]);

export function askAccessCode(err) {
  const box = $("access-code-box");
  box.hidden = false;
  const input = $("access-code");
  input.setAttribute("aria-invalid", String(err.code === "ACCESS_CODE_INVALID"));
  input.focus();
}

// What the next issue sends: the code typed, when the field is shown.
export function accessCodeBody() {
  const box = $("access-code-box");
  const code = $("access-code").value.trim();
  return !box.hidden && code ? { accessCode: code } : {};
}

// --- proof of work (ALTCHA) ----------------------------------------------------------------
export const CHALLENGE = "CHALLENGE_REQUIRED";

// The number n in 0..maxnumber with SHA-256(salt + n) = challenge, as ALTCHA's widget finds
// it, then its payload. Returns null when the problem has no challenge this page can solve.
export async function solveChallenge(err, isCurrent) {
  const c = err.body && err.body.challenge;
  const box = $("challenge");
  if (!c || String(c.algorithm).toUpperCase() !== "SHA-256" || !crypto.subtle) return null;
  box.hidden = false;
  const status = $("challenge-status");
  setText(status, "Checking your browser before you join (this takes a moment)…");
  const max = Number(c.maxnumber ?? c.maxNumber ?? 1e6);
  const started = performance.now();
  const encoder = new TextEncoder();
  for (let n = 0; n <= max; n++) {
    if (n % 5000 === 0) {
      if (!isCurrent()) return null;
      $("challenge-progress").value = n / max;
      await new Promise((resolve) => setTimeout(resolve, 0)); // let the page breathe
    }
    const digest = await crypto.subtle.digest("SHA-256", encoder.encode(`${c.salt}${n}`));
    if (hex(digest) === c.challenge) {
      setText(status, `Checked in ${fmt(Math.round(performance.now() - started))} ms.`);
      box.hidden = true;
      return { altcha: btoa(JSON.stringify({ algorithm: c.algorithm, challenge: c.challenge,
        number: n, salt: c.salt, signature: c.signature,
        took: Math.round(performance.now() - started) })) };
    }
  }
  setText(status, "The check could not be completed.");
  return null;
}

function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// --- the ticket's QR code ------------------------------------------------------------------
// The SVG as the ticket endpoint gives it (the body, or a JSON field holding it), shown as an
// image: an SVG in <img> runs no script and loads nothing, whatever it holds (the page's CSP
// lets images come from blob: for this).
export async function showTicketQr(reservationIds, customerId) {
  const box = $("ticket-qr");
  box.replaceChildren();
  box.hidden = true;
  for (const id of reservationIds) {
    let answer;
    try {
      answer = await api("GET",
        `/api/tickets/${encodeURIComponent(id)}?customerId=${encodeURIComponent(customerId)}`);
    } catch {
      continue; // no ticket endpoint (yet), or none for this one: nothing to show
    }
    const data = answer.data;
    const svg = typeof data === "string" ? data
      : data && (data.qrSvg || data.svg || data.qr || (data.ticket && data.ticket.qrSvg));
    if (typeof svg !== "string" || !svg.includes("<svg")) continue;
    const img = el("img", "ticket-code");
    img.alt = `Ticket QR code for reservation ${id}`;
    img.src = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
    const figure = el("figure", "ticket");
    figure.append(img, el("figcaption", "hint", "Show this code at the entrance."));
    box.append(figure);
    box.hidden = false;
  }
}
