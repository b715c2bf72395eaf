-- One row per customer: orders, revenue, web activity and support experience.
{% set order_statuses = ['completed', 'shipped', 'returned'] %}
with orders as (
    select
        customer_id,
        count(*) as orders,
        sum(amount) as revenue,
        {% for status in order_statuses -%}
        sum(case when status = '{{ status }}' then 1 else 0 end) as {{ status }}_orders,
        {% endfor -%}
        max(ordered_at) as last_order_at
    from {{ ref('stg_orders') }}
    group by customer_id
),

web as (
    select
        customer_id,
        count(*) as web_events,
        count(distinct session_id) as sessions
    from {{ ref('stg_web_events') }}
    group by customer_id
),

support as (
    select
        customer_id,
        count(*) as tickets,
        avg(satisfaction) as avg_satisfaction,
        avg(resolution_hours) as avg_resolution_hours
    from {{ ref('stg_support_tickets') }}
    group by customer_id
)

select
    c.customer_id,
    c.email,
    c.country,
    c.segment,
    coalesce(o.orders, 0) as orders,
    coalesce(o.revenue, 0) as revenue,
    {% for status in order_statuses -%}
    coalesce(o.{{ status }}_orders, 0) as {{ status }}_orders,
    {% endfor -%}
    o.last_order_at,
    coalesce(w.web_events, 0) as web_events,
    coalesce(w.sessions, 0) as sessions,
    coalesce(s.tickets, 0) as tickets,
    s.avg_satisfaction,
    s.avg_resolution_hours,
    {{ safe_divide('coalesce(o.orders, 0)', 'coalesce(w.sessions, 0)') }} as orders_per_session
from {{ ref('stg_customers') }} c
left join orders o on o.customer_id = c.customer_id
left join web w on w.customer_id = c.customer_id
left join support s on s.customer_id = c.customer_id
