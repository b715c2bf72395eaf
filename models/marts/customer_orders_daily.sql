-- Each customer's order history as it stood at the end of each day they
-- ordered: running totals stamped with that day's last order time, so a
-- point-in-time join sees them only from that moment on (the features of
-- the `customer_orders` feature view).
with daily as (
    select
        customer_id,
        date_trunc('day', ordered_at) as order_day,
        count(*) as orders,
        sum(amount) as revenue,
        max(ordered_at) as last_order_at
    from {{ ref('stg_orders') }}
    group by customer_id, date_trunc('day', ordered_at)
)

select
    customer_id,
    order_day,
    last_order_at,
    sum(orders) over (partition by customer_id order by order_day rows unbounded preceding) as orders_to_date,
    round(sum(revenue) over (partition by customer_id order by order_day rows unbounded preceding), 2) as revenue_to_date
from daily
