-- One row per customer, with a normalised e-mail address.
select
    customer_id,
    first_name,
    last_name,
    lower(trim(email)) as email,
    upper(country) as country,
    segment,
    cast(signed_up_at as timestamp) as signed_up_at
from {{ ref('customers') }}
