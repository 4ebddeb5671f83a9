-- description: One row per portal session (by the day it started): length, pages, and how far it got (product, cart, checkout, purchase)
-- partitioned_by: day
-- unique_key: dt, session_id
-- diststyle: key
-- distkey: session_id
-- sortkey: dt, started_at
-- lookback_days: 1
-- not_null: dt, session_id, started_at, ended_at, duration_s, events, page_views, distinct_pages, viewed_product, added_to_cart, reached_checkout, purchased, revenue
-- owner: team:web-analytics
-- pii: true
WITH sessions AS (
    SELECT
        session_id,
        min(ts) AS started_at,
        max(ts) AS ended_at,
        any_value(user_id) FILTER (WHERE user_id IS NOT NULL) AS user_id,
        any_value(user_plan) FILTER (WHERE user_plan IS NOT NULL) AS user_plan,
        arg_min(page, ts) FILTER (WHERE event_type = 'page_view') AS landing_page,
        count(*) AS events,
        count(*) FILTER (WHERE event_type = 'page_view') AS page_views,
        count(DISTINCT page) AS distinct_pages,
        bool_or(page LIKE '/products/%') AS viewed_product,
        bool_or(event_type = 'add_to_cart') AS added_to_cart,
        bool_or(page = '/checkout') AS reached_checkout,
        bool_or(event_type = 'purchase') AS purchased,
        sum(properties_total) FILTER (WHERE event_type = 'purchase') AS revenue
    FROM cleaned.clickstream
    WHERE session_id IS NOT NULL
    GROUP BY session_id
)
SELECT
    CAST(started_at AS DATE) AS dt,
    session_id,
    user_id,
    user_plan,
    started_at,
    ended_at,
    date_diff('second', started_at, ended_at) AS duration_s,
    landing_page,
    events,
    page_views,
    distinct_pages,
    coalesce(viewed_product, false) AS viewed_product,
    coalesce(added_to_cart, false) AS added_to_cart,
    coalesce(reached_checkout, false) AS reached_checkout,
    coalesce(purchased, false) AS purchased,
    round(coalesce(revenue, 0), 2) AS revenue
FROM sessions
ORDER BY started_at, session_id
