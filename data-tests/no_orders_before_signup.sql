-- An order placed before its customer signed up means broken ingestion.
select o.order_id, o.ordered_at, c.signed_up_at
from {{ ref('stg_orders') }} o
join {{ ref('stg_customers') }} c on c.customer_id = o.customer_id
where o.ordered_at < c.signed_up_at
