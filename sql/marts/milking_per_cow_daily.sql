-- description: Milking sessions, yield and duration per cow per day; flags cows milked fewer than twice
-- partitioned_by: day
-- unique_key: dt, cow_id
-- diststyle: key
-- distkey: cow_id
-- sortkey: dt, cow_id
SELECT
    dt,
    cow_id,
    arg_max(robot_id, ts) AS robot_id,
    count(*) AS milkings,
    round(sum(milking_yield_kg), 2) AS yield_kg,
    round(avg(milking_yield_kg), 2) AS avg_yield_kg,
    round(avg(milking_duration_s), 1) AS avg_duration_s,
    min(ts) AS first_milking_at,
    max(ts) AS last_milking_at,
    count(*) < 2 AS milked_fewer_than_twice
FROM cleaned.robot_telemetry
WHERE event_type = 'milking_end' AND cow_id IS NOT NULL
GROUP BY dt, cow_id
ORDER BY cow_id
