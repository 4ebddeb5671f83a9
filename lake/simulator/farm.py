"""robot_telemetry: a dairy farm whose milking robots log gates, milkings, feed and errors.

Each cow belongs to one robot and comes to it roughly every 8-14 hours. A robot milks one
cow at a time (others wait at the gate), sends a heartbeat about every minute, raises the
odd warning, and now and then breaks down for hours: it sends critical errors and then
nothing at all until it recovers, while its cows go unmilked.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from lake.simulator.identities import email_for, full_name
from lake.simulator.scheduler import EventSource, Record
from lake.simulator.simtime import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS, iso_ms

STREAM = "robot_telemetry"
FARM_ID = "NL-DAIRY-017"
FIRMWARE_OLD = "4.2.1"
FIRMWARE_NEW = "5.0.0"
QUARTERS = ("lf", "rf", "lr", "rr")
EVENT_TYPES = ("gate_pass", "milking_start", "milking_end", "feed", "error", "heartbeat")

MEAN_BREAKDOWN_GAP_MS = 2 * DAY_MS  # across the whole farm
BREAKDOWN_HOURS = (2.0, 6.0)
MEAN_WARNING_GAP_MS = 8 * HOUR_MS  # per robot

CRITICAL_ERRORS = (
    ("E_VACUUM_LOW", "vacuum below 30 kPa, milking stopped"),
    ("E_ARM_FAULT", "robot arm position fault"),
    ("E_PUMP_FAILURE", "milk pump does not start"),
)
STOPPED_ERROR = ("E_ROBOT_STOPPED", "robot halted, service call required")
WARNINGS = (
    ("E_TEAT_DETECT_FAIL", "teat detection failed, cow sent away"),
    ("E_KICK_OFF", "teat cup kicked off"),
    ("E_MILK_TEMP_HIGH", "milk temperature above threshold"),
    ("E_FEED_BLOCKED", "concentrate dispenser blocked"),
)


@dataclass
class Robot:
    robot_id: str
    gate_id: str
    feeder_id: str
    vacuum_kpa: float
    busy_until_ms: int = 0
    current_cow: Cow | None = None
    breakdowns: list[tuple[int, int]] = field(default_factory=list)

    def down_until(self, t_ms: int) -> int | None:
        """The end of the breakdown covering `t_ms`, or None when the robot works."""
        for start, end in self.breakdowns:
            if start <= t_ms < end:
                return end
        return None


@dataclass
class Cow:
    cow_id: str
    robot: Robot
    daily_kg: float
    visits_per_day: float
    quarter_shares: tuple[float, ...]
    conductivity: tuple[float, ...]
    high_scc: bool
    last_milked_ms: int = 0


class Farm(EventSource):
    def __init__(
        self,
        rng: random.Random,
        origin_ms: int,
        *,
        cows: int = 300,
        robots: int = 4,
        firmware_update_ms: int | None = None,
        breakdowns: tuple[tuple[str, int, int], ...] = (),
        random_breakdowns: bool = True,
    ) -> None:
        super().__init__(rng, origin_ms)
        self.firmware_update_ms = firmware_update_ms
        self.robots = [
            Robot(f"R{i:02d}", f"G{i}", f"F{i}", vacuum_kpa=rng.uniform(43.5, 45.0))
            for i in range(1, robots + 1)
        ]
        self.operators = []
        for _ in range(3):
            name = full_name(rng)
            self.operators.append({"name": name, "email": email_for(name, rng, "dairy017.example")})
        self.cows = [self._new_cow(i, self.robots[(i - 1) % robots]) for i in range(1, cows + 1)]

        by_id = {r.robot_id: r for r in self.robots}
        for robot_id, start, end in breakdowns:
            robot = by_id[robot_id]
            robot.breakdowns.append((start, end))
            if start >= self.origin_ms:
                self.at(start, partial(self._send_breakdown_errors, robot))

        origin = self.origin_ms
        for cow in self.cows:
            gap = HOUR_MS * 24 / cow.visits_per_day
            first = origin + rng.uniform(0, gap)
            cow.last_milked_ms = int(first - gap)
            self.at(first, partial(self._visit, cow))
        for robot in self.robots:
            self.at(origin + rng.uniform(0, MINUTE_MS), partial(self._heartbeat, robot))
            self.at(origin + rng.expovariate(1 / MEAN_WARNING_GAP_MS), partial(self._warn, robot))
        if random_breakdowns:
            self.at(origin + rng.expovariate(1 / MEAN_BREAKDOWN_GAP_MS), self._random_breakdown)

    def _new_cow(self, n: int, robot: Robot) -> Cow:
        rng = self.rng
        shares = [rng.uniform(0.2, 0.26), rng.uniform(0.2, 0.26), rng.uniform(0.26, 0.32)]
        shares.append(1.0 - sum(shares))
        conductivity = [rng.gauss(5.0, 0.25) for _ in QUARTERS]
        high_scc = rng.random() < 0.06
        if high_scc:  # a quarter with (subclinical) mastitis conducts more
            conductivity[rng.randrange(4)] += rng.uniform(1.0, 2.0)
        return Cow(
            cow_id=f"C{n:04d}",
            robot=robot,
            daily_kg=rng.uniform(22.0, 34.0),
            visits_per_day=rng.uniform(2.0, 3.0),
            quarter_shares=tuple(shares),
            conductivity=tuple(conductivity),
            high_scc=high_scc,
        )

    # -- records ---------------------------------------------------------------------------

    def _record(
        self, t: int, robot: Robot, event_type: str, cow: Cow | None, sensors: dict[str, Any]
    ) -> Record:
        new_firmware = self.firmware_update_ms is not None and t >= self.firmware_update_ms
        return {
            "event_id": self.uuid(),
            "ts": iso_ms(t),
            "robot_id": robot.robot_id,
            "cow_id": cow.cow_id if cow else None,
            "event_type": event_type,
            "firmware": FIRMWARE_NEW if new_firmware else FIRMWARE_OLD,
            "farm_id": FARM_ID,
            "sensors": sensors,
        }

    def _sensors(self, robot: Robot, milking: Cow | None = None) -> dict[str, Any]:
        rng = self.rng
        return {
            "vacuum_kpa": round(rng.gauss(robot.vacuum_kpa, 0.4), 1),
            "temperature_c": round(rng.gauss(38.6, 0.25), 1) if milking else None,
            "conductivity_ms_cm": (
                {
                    q: round(rng.gauss(c, 0.15), 1)
                    for q, c in zip(QUARTERS, milking.conductivity, strict=True)
                }
                if milking
                else None
            ),
        }

    def _error(
        self, t: int, robot: Robot, code: str, message: str, severity: str, vacuum: float | None
    ) -> None:
        sensors = self._sensors(robot)
        if vacuum is not None:
            sensors["vacuum_kpa"] = vacuum
        rec = self._record(t, robot, "error", robot.current_cow, sensors)
        rec["error"] = {"code": code, "message": message, "severity": severity}
        rec["operator"] = dict(self.rng.choice(self.operators))
        self.emit(t, rec)

    # -- a cow's visit: gate in, milking start, feed, milking end, gate out ------------------

    def _visit(self, cow: Cow, t: int) -> None:
        robot = cow.robot
        down = robot.down_until(t)
        if down is not None:
            self._come_back_after(cow, down)
            return
        if robot.current_cow is not None or robot.busy_until_ms > t:  # wait at the gate
            retry = max(t, robot.busy_until_ms) + self.rng.uniform(5, 40) * SECOND_MS
            self.at(retry, partial(self._visit, cow))
            return
        robot.current_cow = cow
        robot.busy_until_ms = t + 45 * SECOND_MS  # extended once the milking starts
        rec = self._record(t, robot, "gate_pass", cow, self._sensors(robot))
        rec["gate"] = {"gate_id": robot.gate_id, "direction": "in"}
        if self.rng.random() < 0.03:  # an operator fetched the cow
            rec["operator"] = dict(self.rng.choice(self.operators))
        self.emit(t, rec)
        self.at(t + self.rng.uniform(15, 45) * SECOND_MS, partial(self._milking_start, cow))

    def _milking_start(self, cow: Cow, t: int) -> None:
        rng = self.rng
        robot = cow.robot
        if self._aborted_by_breakdown(cow, t):
            return
        self.emit(t, self._record(t, robot, "milking_start", cow, self._sensors(robot, cow)))
        hours_since = (t - cow.last_milked_ms) / HOUR_MS
        yield_kg = cow.daily_kg * hours_since / 24 * rng.uniform(0.92, 1.08)
        yield_kg = min(24.0, max(3.0, yield_kg))
        duration_s = int(60 * yield_kg / rng.uniform(2.2, 3.2) + rng.uniform(40, 80))
        robot.busy_until_ms = t + (duration_s + 15) * SECOND_MS
        self.at(t + rng.uniform(10, 30) * SECOND_MS, partial(self._feed, cow))
        self.at(t + duration_s * SECOND_MS, partial(self._milking_end, cow, yield_kg, duration_s))

    def _feed(self, cow: Cow, t: int) -> None:
        robot = cow.robot
        if robot.down_until(t) is not None:
            return
        rec = self._record(t, robot, "feed", cow, self._sensors(robot))
        rec["feed"] = {
            "ration_kg": round(self.rng.uniform(0.8, 3.0), 1),
            "feeder_id": robot.feeder_id,
        }
        self.emit(t, rec)

    def _milking_end(self, cow: Cow, yield_kg: float, duration_s: int, t: int) -> None:
        rng = self.rng
        robot = cow.robot
        if self._aborted_by_breakdown(cow, t):
            return
        quarters = [
            {"quarter": q, "yield_kg": round(yield_kg * share * rng.uniform(0.95, 1.05), 1)}
            for q, share in zip(QUARTERS, cow.quarter_shares, strict=True)
        ]
        rec = self._record(t, robot, "milking_end", cow, self._sensors(robot, cow))
        rec["milking"] = {
            "yield_kg": round(sum(q["yield_kg"] for q in quarters), 1),
            "duration_s": duration_s,
            "quarters": quarters,
        }
        if rec["firmware"] == FIRMWARE_NEW:
            scc = rng.lognormvariate(13.0 if cow.high_scc else 11.7, 0.45)
            rec["milk_quality"] = {
                "somatic_cell_count": int(scc),
                "fat_pct": round(rng.gauss(4.4, 0.35), 2),
            }
        self.emit(t, rec)
        cow.last_milked_ms = t
        self.at(t + rng.uniform(5, 15) * SECOND_MS, partial(self._gate_out, cow))
        self.at(t + self._next_interval_ms(cow), partial(self._visit, cow))

    def _gate_out(self, cow: Cow, t: int) -> None:
        robot = cow.robot
        robot.current_cow = None
        robot.busy_until_ms = t + 10 * SECOND_MS  # rinsing the cups
        if robot.down_until(t) is not None:
            return
        rec = self._record(t, robot, "gate_pass", cow, self._sensors(robot))
        rec["gate"] = {"gate_id": robot.gate_id, "direction": "out"}
        self.emit(t, rec)

    def _aborted_by_breakdown(self, cow: Cow, t: int) -> bool:
        """Whether the cow's robot is down at t (her milking is then aborted)."""
        down = cow.robot.down_until(t)
        if down is not None:
            self._abort(cow, down)
        return down is not None

    def _abort(self, cow: Cow, down_until: int) -> None:
        robot = cow.robot
        if robot.current_cow is cow:
            robot.current_cow = None
            robot.busy_until_ms = 0
        self._come_back_after(cow, down_until)

    def _come_back_after(self, cow: Cow, t: int) -> None:
        self.at(t + self.rng.uniform(5, 120) * MINUTE_MS, partial(self._visit, cow))

    def _next_interval_ms(self, cow: Cow) -> float:
        hours = 24 / cow.visits_per_day * self.rng.uniform(0.85, 1.2)
        return min(14.0, max(8.0, hours)) * HOUR_MS

    # -- the robot itself ------------------------------------------------------------------

    def _heartbeat(self, robot: Robot, t: int) -> None:
        down = robot.down_until(t)
        if down is not None:
            self.at(down + self.rng.uniform(0, 60) * SECOND_MS, partial(self._heartbeat, robot))
            return
        self.emit(t, self._record(t, robot, "heartbeat", None, self._sensors(robot)))
        self.at(t + self.rng.uniform(58, 62) * SECOND_MS, partial(self._heartbeat, robot))

    def _warn(self, robot: Robot, t: int) -> None:
        if robot.down_until(t) is None:
            code, message = self.rng.choice(WARNINGS)
            self._error(t, robot, code, message, "warning", None)
        self.at(t + self.rng.expovariate(1 / MEAN_WARNING_GAP_MS), partial(self._warn, robot))

    def _random_breakdown(self, t: int) -> None:
        rng = self.rng
        robot = rng.choice(self.robots)
        hours = rng.uniform(*BREAKDOWN_HOURS)
        if robot.down_until(t) is None:
            robot.breakdowns.append((t, t + int(hours * HOUR_MS)))
            self._send_breakdown_errors(robot, t)
        self.at(t + rng.expovariate(1 / MEAN_BREAKDOWN_GAP_MS), self._random_breakdown)

    def _send_breakdown_errors(self, robot: Robot, t: int) -> None:
        code, message = self.rng.choice(CRITICAL_ERRORS)
        vacuum = round(self.rng.uniform(22.0, 29.5), 1) if code == "E_VACUUM_LOW" else None
        self._error(t, robot, code, message, "critical", vacuum)
        t_stop = t + int(self.rng.uniform(2, 10) * SECOND_MS)
        self._error(t_stop, robot, *STOPPED_ERROR, "critical", vacuum)
