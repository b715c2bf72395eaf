{# Amounts arrive in cents; marts report them in the currency unit. #}
{% macro cents_to_currency(column, scale=2) -%}
    round(cast({{ column }} as double) / 100.0, {{ scale }})
{%- endmacro %}

{# Division that yields NULL instead of failing on a zero denominator. #}
{% macro safe_divide(numerator, denominator) -%}
    case when {{ denominator }} = 0 then null else cast({{ numerator }} as double) / {{ denominator }} end
{%- endmacro %}
