-- One row per day with orders: volume, revenue, and distinct buyers.
select
    date_trunc('day', ordered_at) as order_day,
    count(*) as orders,
    count(distinct customer_id) as buyers,
    sum(amount) as revenue,
    sum(case when status = 'returned' then amount else 0 end) as returned_revenue
from {{ ref('stg_orders') }}
group by date_trunc('day', ordered_at)
