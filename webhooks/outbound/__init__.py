"""Outbound webhooks to the platform: signed Standard Webhooks deliveries with retries, breaker and replay.

One module per concept: `payload` (the JSON body), `signing` (Standard Webhooks headers and secrets),
`addresses` (which destinations may be called), `endpoints` (endpoint management), `fanout` (one delivery per
subscribed endpoint, in the publishing transaction), `scheduling` (delivery jobs reach the queue after
commit), `transport` (the HTTP POST), `retry` (outcome classification and the retry schedule), `breaker`
(per-endpoint circuit breaker) and `delivery` (the job, the sweeper and replay).
"""
