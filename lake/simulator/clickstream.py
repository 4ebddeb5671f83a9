"""clickstream: visits to the farm's customer portal, a few hundred events an hour.

Sessions start as a Poisson process that is busier in the daytime; each session is a
handful of page views, clicks, cart additions and the odd purchase spread over minutes.
About 60% of sessions belong to a logged-in customer (with `user_id` and a nested `user`),
the rest are anonymous.
"""

from __future__ import annotations

import math
import random
from typing import Any

from lake.simulator.identities import USER_AGENTS, email_for, full_name, ipv4
from lake.simulator.scheduler import EventSource
from lake.simulator.simtime import HOUR_MS, SECOND_MS, hour_of_day, iso_ms

STREAM = "clickstream"
SITE = "https://portal.dairy017.example"
EVENT_TYPES = ("page_view", "click", "add_to_cart", "purchase", "login")
SESSIONS_PER_HOUR = 45.0  # daily mean; about 6 events each
PLANS = ("basic", "pro", "enterprise")
EXTERNAL_REFERRERS = (
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://newsletter.dairy017.example/2026-11",
    "https://www.facebook.com/",
)
PRODUCTS = (
    ("FEED-MINERAL-25", "Mineral feed 25 kg", 34.50),
    ("TEAT-DIP-20L", "Teat dip 20 l", 89.00),
    ("LINER-SET-4", "Liner set (4)", 56.20),
    ("FILTER-SOCK-100", "Milk filter socks (100)", 23.90),
    ("HOOF-SPRAY-1L", "Hoof spray 1 l", 18.75),
    ("CALF-MILK-25", "Calf milk replacer 25 kg", 72.00),
)
PAGES = (
    ("/", "Home"),
    ("/products", "Shop"),
    ("/herd", "My herd"),
    ("/reports/milk-yield", "Milk yield report"),
    ("/account", "Account"),
    ("/support", "Support"),
)
CLICK_TARGETS = ("nav-shop", "nav-herd", "nav-reports", "btn-filter", "btn-export-csv", "tab-week")


class Clickstream(EventSource):
    def __init__(self, rng: random.Random, origin_ms: int, *, users: int = 150) -> None:
        super().__init__(rng, origin_ms)
        self.users = []
        for n in range(1, users + 1):
            name = full_name(rng)
            self.users.append(
                {
                    "user_id": f"U{n:05d}",
                    "email": email_for(name, rng),
                    "full_name": name,
                    "plan": rng.choices(PLANS, weights=(6, 3, 1))[0],
                }
            )
        self._next_session(self.origin_ms)

    def _rate_per_ms(self, t: int) -> float:
        # Quiet at night, busiest early afternoon (UTC); averages 1.0 over the day.
        diurnal = 1.0 + 0.75 * math.sin((hour_of_day(t) - 8.0) / 24 * 2 * math.pi)
        return SESSIONS_PER_HOUR * diurnal / HOUR_MS

    def _next_session(self, t: int) -> None:
        self.at(t + self.rng.expovariate(self._rate_per_ms(t)), self._session)

    def _session(self, t: int) -> None:
        rng = self.rng
        user = rng.choice(self.users) if rng.random() < 0.6 else None
        ctx = {
            "session_id": self.hex_id(24),
            "user_id": user["user_id"] if user else None,
            "ip_address": ipv4(rng),
            "user_agent": rng.choice(USER_AGENTS),
            "user": {k: user[k] for k in ("email", "full_name", "plan")} if user else None,
        }
        referrer = rng.choice(EXTERNAL_REFERRERS) if rng.random() < 0.55 else None
        page, title = rng.choice(PAGES[:3])
        self._event(t, ctx, "page_view", page, referrer, self._view_props(title))
        referrer = SITE + page

        steps = min(20, 1 + int(rng.expovariate(1 / 5.0)))
        cart: list[dict[str, Any]] = []
        now = t
        if user and rng.random() < 0.7:
            now += self._gap()
            ok = rng.random() > 0.05
            self._event(
                now,
                ctx,
                "login",
                "/login",
                referrer,
                {"method": rng.choice(("password", "sso")), "success": ok},
            )
            referrer = SITE + "/login"
        for _ in range(steps):
            now += self._gap()
            roll = rng.random()
            if roll < 0.45:
                if rng.random() < 0.5:
                    sku, name, _price = rng.choice(PRODUCTS)
                    page, title = f"/products/{sku.lower()}", name
                elif rng.random() < 0.3 and user:
                    page, title = f"/herd/cows/C{rng.randint(1, 300):04d}", "Cow detail"
                else:
                    page, title = rng.choice(PAGES)
                self._event(now, ctx, "page_view", page, referrer, self._view_props(title))
                referrer = SITE + page
            elif roll < 0.8:
                props = {
                    "element_id": rng.choice(CLICK_TARGETS),
                    "x": rng.randint(0, 1400),
                    "y": rng.randint(0, 900),
                }
                self._event(now, ctx, "click", page, referrer, props)
            else:
                sku, _name, price = rng.choice(PRODUCTS)
                item = {"sku": sku, "quantity": rng.randint(1, 4), "price": price}
                cart.append(item)
                self._event(
                    now,
                    ctx,
                    "add_to_cart",
                    f"/products/{sku.lower()}",
                    referrer,
                    {**item, "currency": "EUR"},
                )
        if cart and user and rng.random() < 0.45:
            now += self._gap()
            total = round(sum(i["quantity"] * i["price"] for i in cart), 2)
            props = {
                "order_id": f"ORD-{self.hex_id(10).upper()}",
                "items": cart,
                "total": total,
                "currency": "EUR",
            }
            self._event(now, ctx, "purchase", "/checkout", SITE + "/cart", props)
        self._next_session(t)

    def _gap(self) -> int:
        return int(min(600.0, 3.0 + self.rng.expovariate(1 / 35.0)) * SECOND_MS)

    def _view_props(self, title: str) -> dict[str, Any]:
        return {"title": title, "load_ms": int(self.rng.lognormvariate(6.0, 0.5))}

    def _event(
        self,
        t: int,
        ctx: dict[str, Any],
        event_type: str,
        page: str,
        referrer: str | None,
        properties: dict[str, Any],
    ) -> None:
        self.emit(
            t,
            {
                "event_id": self.uuid(),
                "ts": iso_ms(t),
                "session_id": ctx["session_id"],
                "user_id": ctx["user_id"],
                "event_type": event_type,
                "page": page,
                "referrer": referrer,
                "ip_address": ctx["ip_address"],
                "user_agent": ctx["user_agent"],
                "user": dict(ctx["user"]) if ctx["user"] else None,
                "properties": properties,
            },
        )
