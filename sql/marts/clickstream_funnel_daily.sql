-- description: The portal's daily funnel: sessions, then those that viewed a product, added to cart, reached checkout and purchased, with step conversion
-- partitioned_by: day
-- unique_key: dt
-- diststyle: all
-- sortkey: dt
-- not_null: dt, sessions, viewed_product, added_to_cart, reached_checkout, purchased, product_rate, cart_rate, purchase_rate, conversion_rate, revenue, day_complete
-- owner: team:web-analytics
SELECT
    dt,
    count(*) AS sessions,
    count(*) FILTER (WHERE viewed_product) AS viewed_product,
    count(*) FILTER (WHERE added_to_cart) AS added_to_cart,
    count(*) FILTER (WHERE reached_checkout) AS reached_checkout,
    count(*) FILTER (WHERE purchased) AS purchased,
    round(count(*) FILTER (WHERE viewed_product) / greatest(count(*), 1), 4) AS product_rate,
    round(count(*) FILTER (WHERE added_to_cart) / greatest(count(*) FILTER (WHERE viewed_product), 1), 4) AS cart_rate,
    round(count(*) FILTER (WHERE purchased) / greatest(count(*) FILTER (WHERE added_to_cart), 1), 4) AS purchase_rate,
    round(count(*) FILTER (WHERE purchased) / greatest(count(*), 1), 4) AS conversion_rate,
    round(sum(revenue), 2) AS revenue,
    getvariable('day_complete') AS day_complete
FROM marts.clickstream_sessions_daily
GROUP BY dt
