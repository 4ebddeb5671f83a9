-- description: Milking sessions, yield and duration per cow per day; flags cows milked fewer than twice once the day is complete (NULL before)
-- partitioned_by: day
-- unique_key: dt, cow_id
-- diststyle: key
-- distkey: cow_id
-- sortkey: dt, cow_id
-- not_null: dt, cow_id, milkings, first_milking_at, last_milking_at, day_complete
-- owner: team:dairy-data
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
    -- a cow milked once by noon is not news: judged only on a complete day (lake.day_completeness)
    CASE WHEN getvariable('day_complete') THEN count(*) < 2 END AS milked_fewer_than_twice,
    getvariable('day_complete') AS day_complete
FROM cleaned.robot_telemetry
WHERE event_type = 'milking_end' AND cow_id IS NOT NULL
GROUP BY dt, cow_id
ORDER BY cow_id
