"""Request shapes: each request body's fields declared once, as data, in a field table.

A module per entity (`projects`, `endpoints`, `subscriptions`, `sources`, `events`) holds
its table (`fields.Shape`) and its `validate_*` function, which reads and checks the body
through that table; `catalog.request_schemas` turns the same tables into the OpenAPI
request schemas. A field's type, required message, enum and bounds therefore have one
description, and the document cannot disagree with the validator about them. Cross-field
rules (a provider needs an HMAC secret, a single event needs an endpoint...) stay in code.

The broker config of a `pub_sub` source lives beside the broker messages, in
`convoy_stream.broker_config`. `convoy_stream.validation` re-exports the public names.
"""
