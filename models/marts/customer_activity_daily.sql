-- Web activity per customer and day, kept up to date incrementally: each run
-- only reads events newer than the latest one already in the table (the
-- event-time watermark) and merges them on (customer_id, activity_day).
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key=['customer_id', 'activity_day'],
        on_schema_change='append_new_columns'
    )
}}
select
    customer_id,
    date_trunc('day', occurred_at) as activity_day,
    count(*) as events,
    count(distinct session_id) as sessions,
    sum(case when event_type = 'add_to_cart' then 1 else 0 end) as add_to_carts,
    sum(case when event_type = 'checkout' then 1 else 0 end) as checkouts,
    max(occurred_at) as last_event_at
from {{ ref('stg_web_events') }}
{% if is_incremental() %}
-- Whole days from the watermark's day on, so a day's totals stay complete.
where occurred_at >= (select date_trunc('day', max(last_event_at)) from {{ this }})
{% endif %}
group by customer_id, date_trunc('day', occurred_at)
