-- One row per valid order: orders without a positive amount are dropped here.
select
    order_id,
    customer_id,
    cast(ordered_at as timestamp) as ordered_at,
    lower(status) as status,
    amount_cents,
    {{ cents_to_currency('amount_cents') }} as amount,
    channel
from {{ ref('orders') }}
where amount_cents >= {{ var('min_order_cents') }}
