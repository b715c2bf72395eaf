-- One row per web event.
select
    event_id,
    customer_id,
    session_id,
    event_type,
    page,
    cast(occurred_at as timestamp) as occurred_at
from {{ ref('web_events') }}
where customer_id is not null
