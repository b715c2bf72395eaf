-- One row per app review, from the ingested landing files.
select
    review_id,
    customer_id,
    rating,
    review,
    cast(reviewed_at as timestamp) as reviewed_at,
    app_version,
    _source_file as landed_in
from {{ source('landing', 'app_reviews') }}
