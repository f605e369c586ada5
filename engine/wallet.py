"""Points: balance (balance.lua), charge (charge.lua) and history (history.lua)."""

from __future__ import annotations

import hashlib

from engine import memory
from engine.ids import iso_ms
from engine.keys import CustomerKeys
from engine.money import MAX_BALANCE, from_minor
from engine.store import Store


async def balance(store: Store, customer_id: int) -> dict:
    k = CustomerKeys(customer_id)
    _, minor = await store.run("balance", (k.balance,))
    return {"customerId": customer_id, "balance": from_minor(minor)}


async def charge(
    store: Store, customer_id: int, amount_minor: int, idempotency_key: str | None = None
) -> tuple[dict, bool]:
    """Add ``amount_minor`` to the balance. With ``idempotency_key`` a retry of the same
    request returns the first answer and charges once. Returns the answer and whether it was
    such a replay. Past the memory watermark, a charge that would add a customer's balance or
    an idempotency record is refused (engine/memory.py)."""
    k = CustomerKeys(customer_id)
    keys = [k.balance, k.history]
    if idempotency_key is not None:
        # Hashed, so the client's key text never becomes part of a Redis key name.
        keys.append(k.idempotency(hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]))
    if store.crowded:  # a master is past MEMORY_WATERMARK: a new customer or key is refused
        await memory.refuse_growth(store, [k.balance, *keys[2:]])
    s = store.settings
    _, minor, replayed = await store.run(
        "charge",
        keys,
        (amount_minor, MAX_BALANCE, str(amount_minor), s.keep_ms, s.history_limit),
    )
    return {"customerId": customer_id, "balance": from_minor(minor)}, bool(replayed)


async def history(store: Store, customer_id: int, limit: int) -> dict:
    """The customer's latest charges and payments, newest first."""
    k = CustomerKeys(customer_id)
    reply = await store.run("history", (k.history,), (min(limit, store.settings.history_limit),))
    entries = []
    for raw in reply[1:]:
        kind, amount, after, at, ref = raw.decode().split("|")
        entry = {"type": kind, "amount": from_minor(int(amount)),
                 "balance": from_minor(int(after)), "at": iso_ms(int(at))}
        if ref:
            entry["reservationId"] = ref
        entries.append(entry)
    return {"customerId": customer_id, "entries": entries}
