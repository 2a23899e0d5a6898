DROP TABLE webhook_dispatch_position;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
