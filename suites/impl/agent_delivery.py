"""Tool implementation for suites/agent_delivery.yaml: a fixed delivery date per order id.

Deterministic so that the final answer can be checked: order 1017 always arrives on
2024-11-28. Unknown orders raise, and evalkit hands the model the error text.
"""

from __future__ import annotations

import datetime as _dt

DELIVERY_DATES = {
    "1017": "2024-11-28",
    "1018": "2024-11-29",
    "2048": "2024-12-03",
    "5566": "2024-12-24",
}


def get_delivery_date(order_id: str) -> dict:
    key = str(order_id).strip().lstrip("#").strip()
    if key not in DELIVERY_DATES:
        raise LookupError(f"order {order_id!r} not found: no order with this ID exists")
    date = _dt.date.fromisoformat(DELIVERY_DATES[key])
    return {
        "order_id": key,
        "status": "in transit",
        "delivery_date": date.isoformat(),
        "weekday": date.strftime("%A"),
    }
