"""Every GraphQL document the Shopify adapter sends, as constants (validated against the schema in tests).

Only variables change between requests; no document is assembled at run time. `BULK_CATALOG` is the query a
bulk operation runs: it is sent as the `query` variable of `BULK_RUN_QUERY`.
"""

from __future__ import annotations

from typing import Final

SHOP: Final = """
query StorelinkShop {
  shop {
    name
    myshopifyDomain
    currencyCode
  }
}
"""

LOCATION: Final = """
query StorelinkLocation($id: ID!) {
  location(id: $id) {
    id
    name
    isActive
  }
}
"""

BULK_CATALOG: Final = """
{
  products {
    edges {
      node {
        id
        title
        handle
        status
        vendor
        description
        onlineStoreUrl
        updatedAt
        tags
        collections {
          edges {
            node {
              id
              handle
              title
            }
          }
        }
        media {
          edges {
            node {
              id
              ... on MediaImage {
                image {
                  url
                }
              }
            }
          }
        }
        variants {
          edges {
            node {
              id
              title
              sku
              barcode
              price
              compareAtPrice
              inventoryQuantity
              selectedOptions {
                name
                value
              }
              inventoryItem {
                id
                tracked
              }
            }
          }
        }
      }
    }
  }
}
"""

BULK_RUN_QUERY: Final = """
mutation StorelinkBulkRunQuery($query: String!) {
  bulkOperationRunQuery(query: $query, groupObjects: false) {
    bulkOperation {
      id
      status
    }
    userErrors {
      code
      field
      message
    }
  }
}
"""

BULK_STATUS: Final = """
query StorelinkBulkStatus($id: ID!) {
  node(id: $id) {
    ... on BulkOperation {
      id
      status
      errorCode
      objectCount
      rootObjectCount
      url
      partialDataUrl
      createdAt
      completedAt
    }
  }
}
"""

CATALOG_PAGE: Final = """
query StorelinkCatalogPage($first: Int!, $after: String, $query: String) {
  products(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    pageInfo {
      hasNextPage
      endCursor
    }
    nodes {
      id
      title
      handle
      status
      vendor
      description
      onlineStoreUrl
      updatedAt
      tags
      collections(first: 15) {
        nodes {
          id
          handle
          title
        }
      }
      media(first: 10) {
        nodes {
          id
          ... on MediaImage {
            image {
              url
            }
          }
        }
      }
      variants(first: 25) {
        pageInfo {
          hasNextPage
          endCursor
        }
        nodes {
          id
          title
          sku
          barcode
          price
          compareAtPrice
          inventoryQuantity
          selectedOptions {
            name
            value
          }
          inventoryItem {
            id
            tracked
          }
        }
      }
    }
  }
}
"""

PRODUCT_VARIANTS_PAGE: Final = """
query StorelinkProductVariants($id: ID!, $after: String) {
  product(id: $id) {
    id
    variants(first: 250, after: $after) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        id
        title
        sku
        barcode
        price
        compareAtPrice
        inventoryQuantity
        selectedOptions {
          name
          value
        }
        inventoryItem {
          id
          tracked
        }
      }
    }
  }
}
"""

INVENTORY_AT_LOCATION: Final = """
query StorelinkInventoryAtLocation($ids: [ID!]!, $locationId: ID!) {
  nodes(ids: $ids) {
    ... on ProductVariant {
      id
      inventoryItem {
        id
        tracked
        inventoryLevel(locationId: $locationId) {
          updatedAt
          location {
            id
          }
          quantities(names: ["available"]) {
            name
            quantity
          }
        }
      }
    }
  }
}
"""

INVENTORY_ALL_LOCATIONS: Final = """
query StorelinkInventory($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on ProductVariant {
      id
      inventoryItem {
        id
        tracked
        inventoryLevels(first: 50) {
          nodes {
            updatedAt
            location {
              id
            }
            quantities(names: ["available"]) {
              name
              quantity
            }
          }
        }
      }
    }
  }
}
"""

INVENTORY_ITEM_TOTALS: Final = """
query StorelinkInventoryItemTotals($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on InventoryItem {
      id
      tracked
      inventoryLevels(first: 50) {
        nodes {
          updatedAt
          location {
            id
          }
          quantities(names: ["available"]) {
            name
            quantity
          }
        }
      }
    }
  }
}
"""

INVENTORY_SET: Final = """
mutation StorelinkInventorySet($input: InventorySetQuantitiesInput!, $idempotencyKey: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $idempotencyKey) {
    inventoryAdjustmentGroup {
      id
      changes {
        name
        delta
        quantityAfterChange
      }
    }
    userErrors {
      code
      field
      message
    }
  }
}
"""

ORDER_CREATE: Final = """
mutation StorelinkOrderCreate($order: OrderCreateOrderInput!, $options: OrderCreateOptionsInput) {
  orderCreate(order: $order, options: $options) {
    order {
      id
      name
      sourceIdentifier
    }
    userErrors {
      code
      field
      message
    }
  }
}
"""

ORDER_FIND: Final = """
query StorelinkOrderFind($query: String!) {
  orders(first: 5, query: $query, sortKey: CREATED_AT, reverse: true) {
    nodes {
      id
      name
      sourceIdentifier
      tags
    }
  }
}
"""

ORDER_CANCEL: Final = """
mutation StorelinkOrderCancel(
  $orderId: ID!
  $reason: OrderCancelReason!
  $restock: Boolean!
  $refundMethod: OrderCancelRefundMethodInput
  $notifyCustomer: Boolean
  $staffNote: String
) {
  orderCancel(
    orderId: $orderId
    reason: $reason
    restock: $restock
    refundMethod: $refundMethod
    notifyCustomer: $notifyCustomer
    staffNote: $staffNote
  ) {
    job {
      id
      done
    }
    orderCancelUserErrors {
      code
      field
      message
    }
  }
}
"""

WEBHOOK_SUBSCRIBE: Final = """
mutation StorelinkWebhookSubscribe($topic: WebhookSubscriptionTopic!, $uri: String!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: {uri: $uri, format: JSON}) {
    webhookSubscription {
      id
      topic
    }
    userErrors {
      field
      message
    }
  }
}
"""

WEBHOOK_SUBSCRIPTIONS: Final = """
query StorelinkWebhookSubscriptions($after: String) {
  webhookSubscriptions(first: 100, after: $after) {
    nodes {
      topic
      uri
    }
    pageInfo {
      hasNextPage
      endCursor
    }
  }
}
"""

DOCUMENTS: Final[dict[str, str]] = {
    name: value for name, value in dict(globals()).items() if name.isupper() and isinstance(value, str)
}
"""Every document above by constant name (what the schema test walks)."""
