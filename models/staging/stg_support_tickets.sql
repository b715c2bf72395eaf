-- One row per support ticket, with its resolution time when it is closed.
select
    ticket_id,
    customer_id,
    cast(opened_at as timestamp) as opened_at,
    cast(closed_at as timestamp) as closed_at,
    priority,
    channel,
    satisfaction,
    case
        when closed_at is null then null
        else (extract(epoch from cast(closed_at as timestamp)) - extract(epoch from cast(opened_at as timestamp))) / 3600.0
    end as resolution_hours
from {{ ref('support_tickets') }}
