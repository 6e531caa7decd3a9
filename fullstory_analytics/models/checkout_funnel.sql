{#
  An example funnel (macros/funnel.sql): sessions that viewed a product, then the cart, then
  the checkout, then the order confirmation. Aggregate it as you need, e.g.
    select count(*) as viewed, count(added_to_cart_at) as carted, ... from checkout_funnel
#}
{{ fullstory_funnel([
    {'name': 'viewed_product', 'where': "page_url like '%/p/%'"},
    {'name': 'viewed_cart', 'where': "page_url like '%/cart%'"},
    {'name': 'started_checkout', 'where': "page_url like '%/checkout?%'"},
    {'name': 'completed_order', 'where': "page_url like '%/checkout/complete%'"},
], within='session') }}
