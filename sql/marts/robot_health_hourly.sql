-- description: Per robot and hour of the day: events, errors, error rate, last event, minutes since its last milking (a silent robot shows as an hour with no events)
-- partitioned_by: day
-- unique_key: dt, hour, robot_id
-- diststyle: key
-- distkey: robot_id
-- sortkey: dt, hour, robot_id
-- lookback_days: 1
-- not_null: dt, hour, robot_id, events, errors, critical_errors, milkings, error_rate
-- owner: team:dairy-data
WITH events AS (
    SELECT robot_id, ts, event_type, error_severity
    FROM cleaned.robot_telemetry
    WHERE robot_id IS NOT NULL AND ts IS NOT NULL
),
data_now AS (  -- the data's time span: hours outside it have no data yet, not silence
    SELECT min(ts) AS first, max(ts) AS now FROM events
),
grid AS (
    SELECT r.robot_id, h.hour
    FROM (SELECT DISTINCT robot_id FROM events) r
    CROSS JOIN (
        SELECT unnest(generate_series(
            greatest(getvariable('mart_day')::TIMESTAMPTZ, date_trunc('hour', (SELECT first FROM data_now))),
            least(getvariable('mart_day')::TIMESTAMPTZ + INTERVAL 23 HOUR,
                  date_trunc('hour', (SELECT now FROM data_now))),
            INTERVAL 1 HOUR)) AS hour
    ) h
),
per_hour AS (
    SELECT robot_id, date_trunc('hour', ts) AS hour,
           count(*) AS events,
           count(*) FILTER (WHERE event_type = 'error') AS errors,
           count(*) FILTER (WHERE event_type = 'error' AND error_severity = 'critical') AS critical_errors,
           count(*) FILTER (WHERE event_type = 'milking_end') AS milkings,
           max(ts) AS last_event_at
    FROM events
    GROUP BY ALL
),
hour_end AS (
    SELECT g.robot_id, g.hour,
           least(g.hour + INTERVAL 1 HOUR, (SELECT now FROM data_now)) AS as_of
    FROM grid g
),
last_seen AS (
    SELECT e.robot_id, e.hour, e.as_of,
           (SELECT max(ts) FROM events x WHERE x.robot_id = e.robot_id AND x.ts < e.as_of) AS last_seen_at,
           (SELECT max(ts) FROM events x
            WHERE x.robot_id = e.robot_id AND x.event_type = 'milking_end' AND x.ts < e.as_of) AS last_milking_at
    FROM hour_end e
)
SELECT
    CAST(s.hour AS DATE) AS dt,
    s.hour,
    s.robot_id,
    coalesce(p.events, 0) AS events,
    coalesce(p.errors, 0) AS errors,
    coalesce(p.critical_errors, 0) AS critical_errors,
    coalesce(p.milkings, 0) AS milkings,
    round(coalesce(p.errors, 0) / greatest(coalesce(p.events, 0), 1), 4) AS error_rate,
    s.last_seen_at,
    s.last_milking_at,
    date_diff('minute', s.last_milking_at, s.as_of) AS minutes_since_last_milking
FROM last_seen s
LEFT JOIN per_hour p USING (robot_id, hour)
ORDER BY s.hour, s.robot_id
