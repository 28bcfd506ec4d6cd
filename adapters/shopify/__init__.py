"""Shopify store adapter: Admin GraphQL API client, mappers, webhooks and OAuth helpers."""
