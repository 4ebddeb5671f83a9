-- description: Robot anomalies, one row each, notified once: a robot down (critical errors), a robot silent while its cows are due, a burst of warnings, a milking far below the cow's trailing yield
-- partitioned_by: day
-- unique_key: anomaly_id
-- diststyle: key
-- distkey: robot_id
-- sortkey: dt, started_at
-- lookback_days: 7
-- alerts: true
-- not_null: dt, anomaly_id, kind, severity, robot_id, started_at, detected_at
-- owner: team:dairy-data
WITH events AS (
    SELECT robot_id, cow_id, ts, event_type, error_code, error_severity, milking_yield_kg
    FROM cleaned.robot_telemetry
    WHERE robot_id IS NOT NULL AND ts IS NOT NULL
),
data_now AS (SELECT max(ts) AS now FROM events),

-- A robot down: a critical error with no critical error of that robot in the 30 minutes before.
critical AS (
    SELECT robot_id, ts, error_code,
           lag(ts) OVER (PARTITION BY robot_id ORDER BY ts) AS previous_ts
    FROM events
    WHERE event_type = 'error' AND error_severity = 'critical'
),
robot_down AS (
    SELECT robot_id, NULL AS cow_id, ts AS started_at, 'robot_down' AS kind, 'critical' AS severity,
           'robot ' || robot_id || ' reported ' || error_code || ' and stopped' AS summary
    FROM critical
    WHERE previous_ts IS NULL OR ts - previous_ts > INTERVAL 30 MINUTE
),

-- A robot silent: no event for 20 minutes or more (up to now for its latest event) while
-- cows it milks are overdue (not milked for 10 hours), unless it went down just before.
gaps AS (
    SELECT robot_id, ts AS last_event_at,
           coalesce(lead(ts) OVER (PARTITION BY robot_id ORDER BY ts), (SELECT now FROM data_now)) AS gap_end
    FROM events
),
cow_robot AS (  -- each cow's robot and last milking
    SELECT cow_id, arg_max(robot_id, ts) AS robot_id, max(ts) AS last_milked_at
    FROM events
    WHERE event_type = 'milking_end' AND cow_id IS NOT NULL
    GROUP BY cow_id
),
silent AS (
    SELECT g.robot_id, g.last_event_at AS started_at, g.gap_end,
           (SELECT count(*) FROM cow_robot c
            WHERE c.robot_id = g.robot_id AND c.last_milked_at < g.gap_end - INTERVAL 10 HOUR) AS cows_due
    FROM gaps g
    WHERE g.gap_end - g.last_event_at >= INTERVAL 20 MINUTE
      AND NOT EXISTS (
          SELECT 1 FROM critical c
          WHERE c.robot_id = g.robot_id AND c.ts BETWEEN g.last_event_at - INTERVAL 10 MINUTE AND g.last_event_at)
),
silent_robot AS (
    SELECT robot_id, NULL AS cow_id, started_at, 'silent_robot' AS kind, 'critical' AS severity,
           'robot ' || robot_id || ' silent since ' || strftime(started_at, '%H:%M') || ' UTC with '
               || cows_due || ' cows due' AS summary
    FROM silent
    WHERE cows_due > 0
),

-- A burst of warnings: 3 or more within 15 minutes; bursts closer than 15 minutes are one.
warnings AS (
    SELECT robot_id, ts, count(*) OVER (
               PARTITION BY robot_id ORDER BY ts
               RANGE BETWEEN CURRENT ROW AND INTERVAL 15 MINUTE FOLLOWING) AS in_window
    FROM events
    WHERE event_type = 'error' AND error_severity = 'warning'
),
burst_starts AS (
    SELECT robot_id, ts, in_window,
           lag(ts) OVER (PARTITION BY robot_id ORDER BY ts) AS previous_start
    FROM warnings
    WHERE in_window >= 3
),
error_burst AS (
    SELECT robot_id, NULL AS cow_id, ts AS started_at, 'error_burst' AS kind, 'warning' AS severity,
           'robot ' || robot_id || ': ' || in_window || ' warnings within 15 minutes' AS summary
    FROM burst_starts
    WHERE previous_start IS NULL OR ts - previous_start > INTERVAL 15 MINUTE
),

-- A milking far below the cow's trailing yield: under half its mean of the 7 days before,
-- over at least 5 milkings.
milkings AS (
    SELECT robot_id, cow_id, ts, milking_yield_kg AS yield_kg,
           avg(milking_yield_kg) OVER w AS baseline_kg, count(milking_yield_kg) OVER w AS baseline_n
    FROM events
    WHERE event_type = 'milking_end' AND cow_id IS NOT NULL AND milking_yield_kg IS NOT NULL
    WINDOW w AS (PARTITION BY cow_id ORDER BY ts RANGE BETWEEN INTERVAL 7 DAY PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING)
),
yield_drop AS (
    SELECT robot_id, cow_id, ts AS started_at, 'yield_drop' AS kind, 'warning' AS severity,
           'cow ' || cow_id || ' gave ' || round(yield_kg, 1) || ' kg, trailing mean '
               || round(baseline_kg, 1) || ' kg' AS summary
    FROM milkings
    WHERE baseline_n >= 5 AND yield_kg < 0.5 * baseline_kg
),

anomalies AS (
    SELECT * FROM robot_down
    UNION ALL SELECT * FROM silent_robot
    UNION ALL SELECT * FROM error_burst
    UNION ALL SELECT * FROM yield_drop
)
SELECT
    CAST(started_at AS DATE) AS dt,
    kind || ':' || coalesce(cow_id, robot_id) || ':' || strftime(started_at, '%Y-%m-%dT%H:%M:%S') AS anomaly_id,
    kind,
    severity,
    robot_id,
    CAST(cow_id AS VARCHAR) AS cow_id,
    started_at,
    (SELECT now FROM data_now) AS detected_at,
    summary
FROM anomalies
ORDER BY started_at, anomaly_id
